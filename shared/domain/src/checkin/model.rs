//! What the check-in list endpoints answer.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::Row;
use utoipa::ToSchema;
use uuid::Uuid;

use super::door::{Direction, ScanResult};
use crate::error::DomainResult;

/// A list's live counts: sums over the tickets' states on the list (accepted scans that were
/// not reverted) and the conflicts of offline uploads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListStats {
    /// Accepted entries (re-entries count again).
    pub entered: i64,
    /// Tickets inside now.
    pub inside: i64,
    pub exits: i64,
    pub conflicts: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckinList {
    pub id: i64,
    pub event_id: i64,
    pub name: String,
    /// The ticket types the list admits; empty: every ticket type of the event.
    pub ticket_type_ids: Vec<i64>,
    pub allow_reentry: bool,
    pub opens_at: Option<DateTime<Utc>>,
    pub closes_at: Option<DateTime<Utc>>,
    pub is_default: bool,
    pub stats: ListStats,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The row version behind the `ETag` header (`crate::etag`); not in the body.
    #[serde(skip)]
    pub version: String,
}

/// The select list [`list_from_row`] reads, over `l` (checkin_lists), stats included.
pub(crate) const LIST_COLUMNS: &str = "l.id, l.event_id, l.name, l.ticket_type_ids, l.allow_reentry,
    l.opens_at, l.closes_at, l.is_default, l.created_at, l.updated_at, l.xmin::text AS version,
    st.entered, st.inside, st.exits,
    (SELECT count(*) FROM ticket_scans c WHERE c.list_id = l.id AND c.result = 'conflict') AS conflicts";

/// The lateral join [`LIST_COLUMNS`] needs after `FROM checkin_lists l`.
pub(crate) const LIST_STATS_JOIN: &str = "CROSS JOIN LATERAL (
        SELECT coalesce(sum(s.entries), 0)::bigint AS entered,
               count(*) FILTER (WHERE s.inside) AS inside,
               coalesce(sum(s.exits), 0)::bigint AS exits
          FROM checkin_states s WHERE s.list_id = l.id) st";

pub(crate) fn list_from_row(row: &Row) -> DomainResult<CheckinList> {
    Ok(CheckinList {
        id: row.try_get("id")?,
        event_id: row.try_get("event_id")?,
        name: row.try_get("name")?,
        ticket_type_ids: row.try_get("ticket_type_ids")?,
        allow_reentry: row.try_get("allow_reentry")?,
        opens_at: row.try_get("opens_at")?,
        closes_at: row.try_get("closes_at")?,
        is_default: row.try_get("is_default")?,
        stats: ListStats {
            entered: row.try_get("entered")?,
            inside: row.try_get("inside")?,
            exits: row.try_get("exits")?,
            conflicts: row.try_get("conflicts")?,
        },
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        version: row.try_get("version")?,
    })
}

/// One attempt in a list's scan log.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScanRecord {
    pub id: i64,
    pub list_id: Option<i64>,
    /// Null when nothing matched what was scanned.
    pub ticket_id: Option<i64>,
    #[serde(rename = "type")]
    pub direction: Direction,
    /// `accepted`, `conflict` (an offline admission the server would have refused), or why it
    /// was refused: `already_validated`, `cancelled`, `not_on_list`, `list_closed`,
    /// `not_inside`, `event_not_published`, `not_found`, `invalid_signature`, `unavailable`.
    pub result: String,
    /// The contract's error code of a refusal or conflict.
    pub code: Option<String>,
    pub scanner_id: String,
    pub location: String,
    /// When the scan happened at the door (an offline scan: on the device).
    pub scanned_at: DateTime<Utc>,
    /// When the server received an offline scan (null: scanned online).
    pub received_at: Option<DateTime<Utc>>,
    pub client_scan_id: Option<Uuid>,
    pub reverted_at: Option<DateTime<Utc>>,
    pub reverted_by: Option<String>,
    /// When the record last changed (written, or reverted).
    pub updated_at: DateTime<Utc>,
}

pub(crate) const SCAN_COLUMNS: &str =
    "s.id, s.list_id, s.ticket_id, s.direction, s.result, s.code, s.scanner_id,
    s.location, s.scanned_at, s.received_at, s.client_scan_id, s.reverted_at, s.reverted_by, s.updated_at";

/// The scan record in the columns of `row` from index `at` on, in [`SCAN_COLUMNS`] order
/// (a conflict's row holds two of them).
pub(crate) fn scan_at(row: &Row, at: usize) -> DomainResult<ScanRecord> {
    let result: ScanResult = row.try_get(at + 4)?;
    Ok(ScanRecord {
        id: row.try_get(at)?,
        list_id: row.try_get(at + 1)?,
        ticket_id: row.try_get(at + 2)?,
        direction: row.try_get(at + 3)?,
        result: result.as_str().to_owned(),
        code: row.try_get(at + 5)?,
        scanner_id: row.try_get(at + 6)?,
        location: row.try_get(at + 7)?,
        scanned_at: row.try_get(at + 8)?,
        received_at: row.try_get(at + 9)?,
        client_scan_id: row.try_get(at + 10)?,
        reverted_at: row.try_get(at + 11)?,
        reverted_by: row.try_get(at + 12)?,
        updated_at: row.try_get(at + 13)?,
    })
}

/// A row that starts with [`SCAN_COLUMNS`].
pub(crate) fn scan_from_row(row: &Row) -> DomainResult<ScanRecord> {
    scan_at(row, 0)
}

/// A conflict with the scan that admitted the ticket first (null when the ticket had been
/// cancelled instead).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Conflict {
    pub ticket_id: Option<i64>,
    /// TICKET_ALREADY_VALIDATED or TICKET_CANCELLED.
    pub code: Option<String>,
    /// The offline admission the server could not accept.
    pub scan: ScanRecord,
    /// The accepted scan that admitted the ticket first.
    pub first_scan: Option<ScanRecord>,
}
