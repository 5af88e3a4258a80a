//! What the API returns for waiting-list entries.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::Row;
use utoipa::ToSchema;

use crate::error::DomainResult;
use crate::page::Pagination;
use crate::sql;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WaitlistStatus {
    Waiting,
    /// A seat is held for the entry until `offerExpiresAt`.
    Offered,
    Claimed,
    Expired,
    Removed,
}

crate::text_enum!(WaitlistStatus {
    Waiting => "waiting",
    Offered => "offered",
    Claimed => "claimed",
    Expired => "expired",
    Removed => "removed",
});

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WaitlistEntry {
    pub id: i64,
    pub event_id: i64,
    pub ticket_type_id: Option<i64>,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub phone: Option<String>,
    pub status: WaitlistStatus,
    /// The entry's place in the event's queue (1 for the first entry ever added; entries
    /// keep their number when those before them leave).
    pub position: i64,
    pub offered_at: Option<DateTime<Utc>>,
    /// While `offered`: the claim must come before this time (it keeps its value afterwards).
    pub offer_expires_at: Option<DateTime<Utc>>,
    /// The guest a claim created.
    pub guest_id: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The columns [`WaitlistEntry::from_row`] reads, over `waitlist_entries w`.
pub const ENTRY_COLUMNS: &str = "w.id, w.event_id, w.ticket_type_id, w.first_name, w.last_name, w.email, w.phone, \
     w.status, w.position, w.offered_at, w.offer_expires_at, w.guest_id, w.created_at, w.updated_at";

impl WaitlistEntry {
    pub fn from_row(row: &Row) -> DomainResult<Self> {
        Ok(Self {
            id: row.get("id"),
            event_id: row.get("event_id"),
            ticket_type_id: row.get("ticket_type_id"),
            first_name: row.get("first_name"),
            last_name: row.get("last_name"),
            email: row.get("email"),
            phone: row.get("phone"),
            status: sql::get(row, "status")?,
            position: row.get("position"),
            offered_at: row.get("offered_at"),
            offer_expires_at: row.get("offer_expires_at"),
            guest_id: row.get("guest_id"),
            created_at: row.get("created_at"),
            updated_at: row.get("updated_at"),
        })
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WaitlistPage {
    pub entries: Vec<WaitlistEntry>,
    pub pagination: Pagination,
}
