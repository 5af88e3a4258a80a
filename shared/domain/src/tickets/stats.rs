//! `GET /api/events/{eventId}/stats`: registrations, check-ins and scans of one event,
//! read in one statement (one snapshot, so the figures agree with each other while scans
//! are happening).

use std::sync::LazyLock;

use deadpool_postgres::GenericClient;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::access;
use crate::caller::Caller;
use crate::error::{DomainError, DomainResult};
use crate::guests::model::checked_in_count;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventStats {
    /// `maxAttendees`.
    pub capacity: i64,
    /// Pending + confirmed + checked in.
    pub registered: i64,
    pub pending: i64,
    pub confirmed: i64,
    pub checked_in: i64,
    pub cancelled: i64,
    /// Seats held for waiting-list offers (counted against capacity, not in `registered`).
    pub held: i64,
    /// Waiting-list entries still waiting for a seat.
    pub waiting: i64,
    pub by_ticket_type: Vec<TicketTypeStats>,
    pub scans: ScanStats,
    /// Each check-in list's live counts, the default list first.
    pub by_list: Vec<ListCounts>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListCounts {
    pub list_id: i64,
    pub name: String,
    pub entered: i64,
    pub inside: i64,
    pub exits: i64,
    pub conflicts: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TicketTypeStats {
    pub ticket_type_id: i64,
    pub name: String,
    pub quantity: i64,
    pub sold: i64,
    pub held: i64,
    pub checked_in: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScanStats {
    pub accepted: i64,
    pub rejected: i64,
    pub by_location: Vec<LocationStats>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocationStats {
    pub location: String,
    pub accepted: i64,
}

/// The stats statement. Who is checked in is counted as `checked_in_count` counts (a checked-in
/// guest stays confirmed, migrations/V22, so the confirmed ones are the stored confirmed minus
/// the checked-in tickets).
static STATS_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "
SELECT e.organizer_id,
       json_build_object(
         'capacity', e.max_attendees,
         'registered', (SELECT count(*) FROM guests g WHERE g.event_id = e.id AND g.status <> 'cancelled'),
         'pending', (SELECT count(*) FROM guests g WHERE g.event_id = e.id AND g.status = 'pending'),
         'confirmed', (SELECT count(*) FROM guests g WHERE g.event_id = e.id AND g.status = 'confirmed')
                      - (SELECT count(*) FROM tickets k WHERE k.event_id = e.id AND k.checked_in_at IS NOT NULL),
         'checkedIn', {event_checked_in},
         'cancelled', (SELECT count(*) FROM guests g WHERE g.event_id = e.id AND g.status = 'cancelled'),
         'held', seats_held(e.id, NULL),
         'waiting', (SELECT count(*) FROM waitlist_entries w WHERE w.event_id = e.id AND w.status = 'waiting'),
         'byTicketType', COALESCE((
            SELECT json_agg(json_build_object(
                     'ticketTypeId', t.id, 'name', t.name, 'quantity', t.quantity, 'sold', seats_taken(e.id, t.id) - seats_held(e.id, t.id),
                     'held', seats_held(e.id, t.id),
                     'checkedIn', {type_checked_in})
                   ORDER BY t.id)
              FROM ticket_types t WHERE t.event_id = e.id), '[]'::json),
         'scans', json_build_object(
            'accepted', (SELECT count(*) FROM checkin_lists l JOIN ticket_scans s ON s.list_id = l.id
                          WHERE l.event_id = e.id AND s.result = 'accepted' AND s.reverted_at IS NULL),
            'rejected', (SELECT count(*) FROM checkin_lists l JOIN ticket_scans s ON s.list_id = l.id
                          WHERE l.event_id = e.id AND s.result <> 'accepted'),
            'byLocation', COALESCE((
               SELECT json_agg(json_build_object('location', x.location, 'accepted', x.n) ORDER BY x.location)
                 FROM (SELECT s.location, count(*) AS n
                         FROM checkin_lists l JOIN ticket_scans s ON s.list_id = l.id
                        WHERE l.event_id = e.id AND s.result = 'accepted' AND s.reverted_at IS NULL
                        GROUP BY s.location) x), '[]'::json)
         ),
         'byList', COALESCE((
            SELECT json_agg(json_build_object(
                     'listId', l.id, 'name', l.name, 'entered', st.entered, 'inside', st.inside,
                     'exits', st.exits,
                     'conflicts', (SELECT count(*) FROM ticket_scans c WHERE c.list_id = l.id AND c.result = 'conflict'))
                   ORDER BY l.is_default DESC, l.id)
              FROM checkin_lists l
             CROSS JOIN LATERAL (
                   SELECT coalesce(sum(s.entries), 0) AS entered, count(*) FILTER (WHERE s.inside) AS inside,
                          coalesce(sum(s.exits), 0) AS exits
                     FROM checkin_states s WHERE s.list_id = l.id) st
             WHERE l.event_id = e.id), '[]'::json)
       ) AS stats
  FROM events e WHERE e.id = $1",
        event_checked_in = checked_in_count("e.id", None),
        type_checked_in = checked_in_count("e.id", Some("t.id")),
    )
});

pub async fn for_event(
    db: &impl GenericClient,
    caller: &Caller,
    event_id: i64,
) -> DomainResult<EventStats> {
    let stmt = db.prepare_cached(&STATS_SQL).await?;
    let row = db
        .query_opt(&stmt, &[&event_id])
        .await?
        .ok_or_else(|| DomainError::not_found("event"))?;
    access::check(caller, row.get(0), "event")?;
    serde_json::from_value(row.get(1)).map_err(|e| DomainError::internal(format!("stats: {e}")))
}
