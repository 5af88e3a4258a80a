//! The `generate_ticket` job: renders the ticket's signed payload as a PNG QR code,
//! stores it as `qr_code_data`, and queues the `ticket_ready` email, all in one
//! transaction. Idempotent: a ticket that already has its image is left alone and no
//! second email is queued, so a redelivered job does nothing twice.

use deadpool_postgres::Pool;
use domain::outbox::{self, Job};
use domain::tickets::{qr, TicketStatus};

use crate::dispatch::JobError;

pub async fn generate_ticket(pool: &Pool, ticket_id: i64) -> Result<(), JobError> {
    let mut db = pool.get().await?;
    let tx = db.transaction().await?;
    let row = tx
        .query_opt(
            "SELECT qr_payload, qr_code_data IS NOT NULL, status, guest_id, event_id FROM tickets WHERE id = $1 FOR UPDATE",
            &[&ticket_id],
        )
        .await?
        .ok_or_else(|| JobError::Permanent(format!("ticket {ticket_id} does not exist")))?;
    let (qr_payload, rendered): (Option<String>, bool) = (row.get(0), row.get(1));
    let status: TicketStatus =
        domain::sql::get(&row, "status").map_err(|e| JobError::Permanent(e.to_string()))?;
    if rendered || status != TicketStatus::Active {
        return Ok(());
    }
    let qr_payload = qr_payload
        .ok_or_else(|| JobError::Permanent(format!("ticket {ticket_id} has no payload")))?;
    let png = qr::png_base64(&qr_payload)
        .map_err(|e| JobError::Permanent(format!("QR rendering: {e}")))?;
    tx.execute(
        "UPDATE tickets SET qr_code_data = $2, updated_at = now() WHERE id = $1",
        &[&ticket_id, &png],
    )
    .await?;
    let (guest_id, event_id): (i64, i64) = (row.get(3), row.get(4));
    outbox::enqueue(
        &tx,
        Job::TicketReady {
            ticket_id,
            guest_id,
            event_id,
        },
    )
    .await?;
    tx.commit().await?;
    tracing::info!(ticket_id, "ticket QR code rendered");
    Ok(())
}
