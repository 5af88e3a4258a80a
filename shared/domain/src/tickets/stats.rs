//! `GET /api/events/{eventId}/stats`: registrations, check-ins and scans of one event,
//! read in one statement (one snapshot, so the figures agree with each other while scans
//! are happening).

use deadpool_postgres::GenericClient;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::access;
use crate::caller::Caller;
use crate::error::{DomainError, DomainResult};

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
    pub by_ticket_type: Vec<TicketTypeStats>,
    pub scans: ScanStats,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TicketTypeStats {
    pub ticket_type_id: i64,
    pub name: String,
    pub quantity: i64,
    pub sold: i64,
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

const STATS_SQL: &str = "
SELECT e.organizer_id,
       json_build_object(
         'capacity', e.max_attendees,
         'registered', (SELECT count(*) FROM guests g WHERE g.event_id = e.id AND g.status <> 'cancelled'),
         'pending', (SELECT count(*) FROM guests g WHERE g.event_id = e.id AND g.status = 'pending'),
         'confirmed', (SELECT count(*) FROM guests g WHERE g.event_id = e.id AND g.status = 'confirmed'),
         'checkedIn', (SELECT count(*) FROM guests g WHERE g.event_id = e.id AND g.status = 'checked_in'),
         'cancelled', (SELECT count(*) FROM guests g WHERE g.event_id = e.id AND g.status = 'cancelled'),
         'byTicketType', COALESCE((
            SELECT json_agg(json_build_object(
                     'ticketTypeId', t.id, 'name', t.name, 'quantity', t.quantity, 'sold', seats_taken(e.id, t.id),
                     'checkedIn', (SELECT count(*) FROM guests g WHERE g.ticket_type_id = t.id AND g.status = 'checked_in'))
                   ORDER BY t.id)
              FROM ticket_types t WHERE t.event_id = e.id), '[]'::json),
         'scans', json_build_object(
            'accepted', (SELECT count(*) FROM ticket_scans s WHERE s.event_id = e.id AND s.result = 'accepted'),
            'rejected', (SELECT count(*) FROM ticket_scans s WHERE s.event_id = e.id AND s.result <> 'accepted'),
            'byLocation', COALESCE((
               SELECT json_agg(json_build_object('location', l.location, 'accepted', l.n) ORDER BY l.location)
                 FROM (SELECT s.location, count(*) AS n FROM ticket_scans s
                        WHERE s.event_id = e.id AND s.result = 'accepted' GROUP BY s.location) l), '[]'::json)
         )
       ) AS stats
  FROM events e WHERE e.id = $1";

pub async fn for_event(
    db: &impl GenericClient,
    caller: &Caller,
    event_id: i64,
) -> DomainResult<EventStats> {
    let stmt = db.prepare_cached(STATS_SQL).await?;
    let row = db
        .query_opt(&stmt, &[&event_id])
        .await?
        .ok_or_else(|| DomainError::not_found("event"))?;
    access::check(caller, row.get(0), "event")?;
    serde_json::from_value(row.get(1)).map_err(|e| DomainError::internal(format!("stats: {e}")))
}
