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

/// The condition "the guest is checked in", over `g` and its ticket `t` (for checks that join
/// the two, as the tests and the benchmark harness do; the service's own filters and counts use
/// [`status_condition`] and [`checked_in_count`], which read the index of checked-in tickets).
pub const GUEST_CHECKED_IN: &str =
    "(g.status = 'checked_in' OR (g.status = 'confirmed' AND t.checked_in_at IS NOT NULL))";

/// The SQL condition for guests of `status` among the guests of the event `event` (an SQL
/// expression, e.g. `$1`), over `g` alone: the checked-in ones come from the index of
/// checked-in tickets (idx_tickets_checked_in, one hashed set per query), not from a visit of
/// every guest's ticket.
pub fn status_condition(status: GuestStatus, event: &str) -> String {
    let checked_in = format!(
        "g.id IN (SELECT k.guest_id FROM tickets k WHERE k.event_id = {event} AND k.checked_in_at IS NOT NULL)"
    );
    match status {
        GuestStatus::Pending => "g.status = 'pending'".to_owned(),
        GuestStatus::Confirmed => format!("(g.status = 'confirmed' AND NOT {checked_in})"),
        GuestStatus::CheckedIn => {
            format!("(g.status = 'checked_in' OR (g.status = 'confirmed' AND {checked_in}))")
        }
        GuestStatus::Cancelled => "g.status = 'cancelled'".to_owned(),
    }
}

/// How many guests of the event `event` (of its ticket type `ticket_type`, when given) are
/// checked in: the checked-in tickets (an index-only scan of idx_tickets_checked_in; a
/// checked-in guest stays confirmed, migrations/V22), plus any guest stored as `checked_in` by
/// the code before V22.
pub fn checked_in_count(event: &str, ticket_type: Option<&str>) -> String {
    let of_type = |col: &str| {
        ticket_type
            .map(|t| format!(" AND {col}.ticket_type_id = {t}"))
            .unwrap_or_default()
    };
    format!(
        "((SELECT count(*) FROM tickets k WHERE k.event_id = {event} AND k.checked_in_at IS NOT NULL{}) \
         + (SELECT count(*) FROM guests s WHERE s.event_id = {event} AND s.status = 'checked_in'{}))",
        of_type("k"),
        of_type("s")
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The event's `stats.checkedIn` is counted as `checked_in_count` counts (one definition of
    /// who is checked in, which EVENT_COLUMNS, a constant, spells out).
    #[test]
    fn the_event_columns_count_as_checked_in_count_does() {
        let count = checked_in_count("e.id", None);
        assert!(
            crate::events::queries::EVENT_COLUMNS.contains(&format!("{count} AS checked_in")),
            "{count}"
        );
    }

    #[test]
    fn the_guest_columns_derive_status_and_updated_at() {
        assert!(GUEST_COLUMNS.contains(&format!("{GUEST_STATUS} AS status")));
        assert!(GUEST_COLUMNS.contains(&format!("{GUEST_UPDATED_AT} AS updated_at")));
        assert!(!GUEST_COLUMNS.contains("g.status,"));
    }
}
