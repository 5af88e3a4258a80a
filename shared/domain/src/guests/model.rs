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

// A check-in writes no guest row (migrations/V22__checked_in_from_ticket.sql): the ticket's
// `checked_in_at` says the guest is checked in. These expressions, over `g` (guests) and `t`
// (the guest's ticket, may be null), are the one place that derives what the API shows.

/// The guest's status as the API shows it: `checked_in` when a confirmed guest's ticket has
/// been checked in. A stored `checked_in` (written by the code before V22 during a
/// deployment) reads as it is.
macro_rules! guest_status {
    () => {
        "CASE WHEN g.status = 'confirmed' AND t.checked_in_at IS NOT NULL THEN 'checked_in' ELSE g.status END"
    };
}

/// The guest's `updatedAt`: its row's, or its check-in's when that is later.
macro_rules! guest_updated_at {
    () => {
        "GREATEST(g.updated_at, t.checked_in_at)"
    };
}

pub const GUEST_STATUS: &str = guest_status!();
pub const GUEST_UPDATED_AT: &str = guest_updated_at!();
/// The order of a guest list with `updatedSince`.
pub const GUEST_SYNC_ORDER: &str = concat!(guest_updated_at!(), ", g.id");

/// The condition "the guest is checked in" (for filters and counts), and its negation among
/// confirmed guests.
pub const GUEST_CHECKED_IN: &str =
    "(g.status = 'checked_in' OR (g.status = 'confirmed' AND t.checked_in_at IS NOT NULL))";
pub const GUEST_CONFIRMED: &str = "(g.status = 'confirmed' AND t.checked_in_at IS NULL)";

/// The SQL condition for guests of `status`.
pub fn status_condition(status: GuestStatus) -> &'static str {
    match status {
        GuestStatus::Pending => "g.status = 'pending'",
        GuestStatus::Confirmed => GUEST_CONFIRMED,
        GuestStatus::CheckedIn => GUEST_CHECKED_IN,
        GuestStatus::Cancelled => "g.status = 'cancelled'",
    }
}

/// The guest's version, for the reads that answer one guest (`ETag`): the row's `xmin`, and
/// the time of its check-in once it has one (checking in does not write the guest row).
pub const GUEST_VERSION: &str = "g.xmin::text || COALESCE('.' || (extract(epoch FROM t.checked_in_at) * 1000000)::bigint::text, '') AS version";

/// The columns [`Guest::from_row`] reads, for `FROM guests g LEFT JOIN tickets t ON t.guest_id = g.id`.
pub const GUEST_COLUMNS: &str = concat!(
    "g.id, g.event_id, g.first_name, g.last_name, g.email, g.phone, ",
    guest_status!(),
    " AS status, g.ticket_type_id, t.id AS ticket_id, g.created_at, ",
    guest_updated_at!(),
    " AS updated_at"
);

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
