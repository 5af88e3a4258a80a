//! What the API returns for guests.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::Row;
use utoipa::ToSchema;

use crate::error::DomainResult;
use crate::events::model::Pagination;
use crate::sql;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GuestStatus {
    /// Awaiting approval; holds a seat.
    Pending,
    Confirmed,
    CheckedIn,
    Cancelled,
}

crate::text_enum!(GuestStatus {
    Pending => "pending",
    Confirmed => "confirmed",
    CheckedIn => "checked_in",
    Cancelled => "cancelled",
});

impl GuestStatus {
    /// Pending, confirmed and checked-in guests count against capacity.
    pub fn holds_seat(self) -> bool {
        !matches!(self, Self::Cancelled)
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Guest {
    pub id: i64,
    pub event_id: i64,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub phone: Option<String>,
    pub status: GuestStatus,
    pub ticket_type_id: Option<i64>,
    pub ticket_id: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The row version behind the `ETag` header (`crate::etag`), when the query selected it
    /// ([`GUEST_VERSION`]); not in the body.
    #[serde(skip)]
    pub version: String,
}

/// The guest row's version, for the reads that answer one guest (`ETag`).
pub const GUEST_VERSION: &str = "g.xmin::text AS version";

/// The columns [`Guest::from_row`] reads, for `FROM guests g LEFT JOIN tickets t ON t.guest_id = g.id`.
pub const GUEST_COLUMNS: &str =
    "g.id, g.event_id, g.first_name, g.last_name, g.email, g.phone, g.status, \
     g.ticket_type_id, t.id AS ticket_id, g.created_at, g.updated_at";

impl Guest {
    pub fn from_row(row: &Row) -> DomainResult<Self> {
        Ok(Self {
            id: row.get("id"),
            event_id: row.get("event_id"),
            first_name: row.get("first_name"),
            last_name: row.get("last_name"),
            email: row.get("email"),
            phone: row.get("phone"),
            status: sql::get(row, "status")?,
            ticket_type_id: row.get("ticket_type_id"),
            ticket_id: row.get("ticket_id"),
            created_at: row.get("created_at"),
            updated_at: row.get("updated_at"),
            version: row.try_get("version").unwrap_or_default(),
        })
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GuestList {
    pub guests: Vec<Guest>,
    pub pagination: Pagination,
}
