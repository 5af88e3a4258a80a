//! Personal-data rights: everything stored about a guest, and its erasure.
//!
//! Erasure keeps the guest's row, seat and counts (registrations, check-ins and stats stay as
//! they were) and replaces its name, email and phone with fixed placeholders. Its ticket is
//! cancelled and loses its payload and image, so the QR code the guest holds is refused at the
//! door with TICKET_CANCELLED (offline: the next sync carries the cancellation). Webhook
//! deliveries that carried the guest are reduced to its id, stored idempotent answers that
//! carried it are dropped. The audit row names who erased, not what.

use deadpool_postgres::{GenericClient, Transaction};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::commands::lock_guest;
use super::model::Guest;
use super::queries;
use crate::access::{self, Lock};
use crate::caller::Caller;
use crate::error::DomainResult;
use crate::tickets::{self, Ticket};
use crate::work::{Done, Effects};

pub const ERASED_FIRST_NAME: &str = "Erased";
pub const ERASED_LAST_NAME: &str = "Guest";

/// The placeholder email of an erased guest (unique per guest, never deliverable: `.invalid`).
pub fn erased_email(guest_id: i64) -> String {
    format!("erased-{guest_id}@erased.invalid")
}

/// `GET /api/events/{eventId}/guests/{guestId}/personal-data`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PersonalData {
    pub guest: Guest,
    pub erased_at: Option<chrono::DateTime<chrono::Utc>>,
    pub ticket: Option<Ticket>,
    /// Every scan of the guest's ticket, on every list.
    #[schema(value_type = Vec<Object>)]
    pub scans: Vec<Value>,
    /// Waiting-list entries (none until the waiting list exists).
    #[schema(value_type = Vec<Object>)]
    pub waitlist_entries: Vec<Value>,
    /// The emails written for the guest: type, when, and what became of them.
    #[schema(value_type = Vec<Object>)]
    pub emails: Vec<Value>,
    /// Webhook deliveries that carried the guest.
    #[schema(value_type = Vec<Object>)]
    pub webhook_deliveries: Vec<Value>,
    /// Audit entries about the guest.
    #[schema(value_type = Vec<Object>)]
    pub audit: Vec<Value>,
}

pub async fn personal_data(
    db: &impl GenericClient,
    caller: &Caller,
    event_id: i64,
    guest_id: i64,
) -> DomainResult<PersonalData> {
    let event = access::event(db, caller, event_id, Lock::None, None).await?;
    let guest = queries::by_id(db, event_id, guest_id).await?;
    let erased_at = db
        .query_one("SELECT erased_at FROM guests WHERE id = $1", &[&guest_id])
        .await?
        .get(0);
    let ticket = tickets::queries::by_guest(db, guest_id).await?;
    let json_rows = |rows: Vec<tokio_postgres::Row>| -> Vec<Value> {
        rows.iter().map(|r| r.get::<_, Value>(0)).collect()
    };
    let scans = json_rows(
        db.query(
            "SELECT jsonb_build_object('id', s.id, 'listId', s.list_id, 'type', s.direction, 'result', s.result,
                    'scannerId', s.scanner_id, 'location', s.location, 'scannedAt', s.scanned_at,
                    'revertedAt', s.reverted_at)
               FROM ticket_scans s JOIN tickets t ON t.id = s.ticket_id
              WHERE t.guest_id = $1 ORDER BY s.id",
            &[&guest_id],
        )
        .await?,
    );
    let emails = json_rows(
        db.query(
            "SELECT jsonb_build_object('jobId', o.job_id, 'type', o.job_type, 'createdAt', o.created_at,
                    'dispatchedAt', o.dispatched_at, 'outcome', p.outcome, 'processedAt', p.processed_at)
               FROM job_outbox o LEFT JOIN processed_jobs p ON p.job_id = o.job_id
              WHERE o.queue = 'email' AND o.payload ->> 'guestId' = $1::bigint::text
              ORDER BY o.id",
            &[&guest_id],
        )
        .await?,
    );
    let webhook_deliveries = json_rows(
        db.query(
            "SELECT jsonb_build_object('id', d.id, 'webhookId', d.webhook_id, 'eventType', d.event_type,
                    'status', d.status, 'createdAt', d.created_at, 'payload', delivery_payload(d))
               FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
              WHERE w.organizer_id = $2 AND d.event_type LIKE 'guest.%'
                AND delivery_data_id(d) = $1::bigint::text
              ORDER BY d.id",
            &[&guest_id, &event.organizer_id],
        )
        .await?,
    );
    // The guest's waiting-list entries: the one its claim came from, and any other entry
    // of the event under its email.
    let waitlist_entries = json_rows(
        db.query(
            "SELECT jsonb_build_object('id', w.id, 'status', w.status, 'position', w.position,
                    'ticketTypeId', w.ticket_type_id, 'firstName', w.first_name, 'lastName', w.last_name,
                    'email', w.email, 'phone', w.phone, 'offeredAt', w.offered_at,
                    'offerExpiresAt', w.offer_expires_at, 'createdAt', w.created_at)
               FROM waitlist_entries w
              WHERE w.event_id = $2
                AND (w.guest_id = $1 OR lower(w.email) = (SELECT lower(email) FROM guests WHERE id = $1))
              ORDER BY w.id",
            &[&guest_id, &event_id],
        )
        .await?,
    );
    let audit = json_rows(
        db.query(
            "SELECT jsonb_build_object('id', a.id, 'at', a.at, 'actor', jsonb_build_object('sub', a.actor_sub, 'role', a.actor_role),
                    'action', a.action, 'entity', a.entity, 'entityId', a.entity_id, 'changes', a.changes)
               FROM audit_log a WHERE a.event_id = $2 AND a.entity = 'guest' AND a.entity_id = $1
              ORDER BY a.id",
            &[&guest_id, &event_id],
        )
        .await?,
    );
    Ok(PersonalData {
        guest,
        erased_at,
        ticket,
        scans,
        waitlist_entries,
        emails,
        webhook_deliveries,
        audit,
    })
}

/// `POST /api/events/{eventId}/guests/{guestId}/erase`. Erasing twice answers the same.
pub async fn erase(
    tx: &Transaction<'_>,
    caller: &Caller,
    event_id: i64,
    guest_id: i64,
) -> DomainResult<Done<Guest>> {
    let g = lock_guest(tx, caller, event_id, guest_id, Lock::Share, None).await?;
    let already: bool = tx
        .query_one(
            "SELECT erased_at IS NOT NULL FROM guests WHERE id = $1",
            &[&guest_id],
        )
        .await?
        .get(0);
    if !already {
        let g_email: String = tx
            .query_one("SELECT email FROM guests WHERE id = $1", &[&guest_id])
            .await?
            .get(0);
        // Its waiting-list entries (and what webhooks carried of them) go the same way.
        let entries: Vec<i64> = tx
            .query(
                "UPDATE waitlist_entries SET first_name = $3, last_name = $4, email = $5, phone = NULL,
                        updated_at = now()
                  WHERE event_id = $2 AND (guest_id = $1 OR lower(email) = lower($6))
                 RETURNING id",
                &[
                    &guest_id,
                    &event_id,
                    &ERASED_FIRST_NAME,
                    &ERASED_LAST_NAME,
                    &erased_email(guest_id),
                    &g_email,
                ],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        tx.execute(
            "UPDATE webhook_deliveries d SET payload = jsonb_set(d.payload, '{data}', jsonb_build_object('id', (d.payload -> 'data' ->> 'id')::bigint, 'erased', true))
               FROM webhooks w
              WHERE w.id = d.webhook_id AND w.organizer_id = $2 AND d.event_type LIKE 'waitlist.%'
                AND (d.payload -> 'data' ->> 'id')::bigint = ANY($1)",
            &[&entries, &g.organizer_id],
        )
        .await?;
        tx.execute(
            "UPDATE guests SET first_name = $2, last_name = $3, email = $4, phone = NULL,
                    erased_at = now(), updated_at = now()
              WHERE id = $1",
            &[
                &guest_id,
                &ERASED_FIRST_NAME,
                &ERASED_LAST_NAME,
                &erased_email(guest_id),
            ],
        )
        .await?;
        // The ticket no longer admits anyone: cancelled (the door answers TICKET_CANCELLED to the
        // QR code the guest holds, offline scanners learn it at their next sync), its payload and
        // image gone. The seat stays taken: seats follow the guest, whose status is unchanged.
        tx.execute(
            "UPDATE tickets SET status = 'cancelled', qr_payload = NULL, qr_code_data = NULL, updated_at = now()
              WHERE guest_id = $1",
            &[&guest_id],
        )
        .await?;
        // Stored answers of idempotent requests that carried the guest: its registration's
        // (a body), its keyed check-ins' (an answer row).
        tx.execute(
            "DELETE FROM idempotency_keys
              WHERE position(convert_to($1, 'UTF8') IN body) > 0 OR (answer_row).id = $2",
            &[&g_email, &guest_id],
        )
        .await?;
        tx.execute(
            "UPDATE webhook_deliveries d
                SET payload = jsonb_set(delivery_payload(d), '{data}', jsonb_build_object('id', $1::bigint, 'erased', true)),
                    guest = NULL
               FROM webhooks w
              WHERE w.id = d.webhook_id AND w.organizer_id = $2 AND d.event_type LIKE 'guest.%'
                AND delivery_data_id(d) = $1::bigint::text",
            &[&guest_id, &g.organizer_id],
        )
        .await?;
        tx.execute(
            "INSERT INTO audit_log (event_id, actor_sub, actor_role, action, entity, entity_id, changes)
             VALUES ($1, $2, $3, 'guest.erased', 'guest', $4, '{}')",
            &[&event_id, &caller.user_id, &caller.role.as_str(), &guest_id],
        )
        .await?;
        tracing::info!(event_id, guest_id, by = %caller.user_id, "guest erased");
    }
    let guest = queries::by_id(tx, event_id, guest_id).await?;
    Ok(Done::new(guest, Effects::default().event_changed(event_id)))
}
