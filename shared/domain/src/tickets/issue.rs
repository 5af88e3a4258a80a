//! Issuing a guest's ticket: its id drawn first, so the signed payload is written with the
//! row, a fresh code, and the job that renders its QR code.

use deadpool_postgres::Transaction;

use crate::error::{DomainError, DomainResult};
use crate::outbox::Job;
use crate::tickets;
use crate::tickets::signing::TicketKeys;

/// Draws the id of a ticket about to be issued (see [`issue_ticket`]).
pub async fn next_ticket_id(tx: &Transaction<'_>) -> DomainResult<i64> {
    let stmt = tx
        .prepare_cached("SELECT nextval(pg_get_serial_sequence('tickets', 'id'))")
        .await?;
    Ok(tx.query_one(&stmt, &[]).await?.get(0))
}

/// Creates the guest's ticket (`ids`: event, guest, and the ticket id drawn beforehand, so
/// the signed payload is written with the row) with a fresh code (a collision just draws
/// another). Returns its generation job, for the caller to queue with its others.
pub async fn issue_ticket(
    tx: &Transaction<'_>,
    keys: &TicketKeys,
    (event_id, guest_id, ticket_id): (i64, i64, i64),
    ticket_type_id: Option<i64>,
) -> DomainResult<Job> {
    let insert = tx
        .prepare_cached(
            "INSERT INTO tickets (id, guest_id, event_id, ticket_type_id, ticket_code, qr_payload)
             OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (ticket_code) DO NOTHING",
        )
        .await?;
    let year = chrono::Datelike::year(&chrono::Utc::now());
    for _ in 0..5 {
        let code = tickets::code::generate(year);
        let payload = keys.sign(ticket_id, event_id, &code);
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] = [
            &ticket_id,
            &guest_id,
            &event_id,
            &ticket_type_id,
            &code,
            &payload,
        ];
        if tx.execute(&insert, &params).await? == 1 {
            return Ok(Job::GenerateTicket { ticket_id });
        }
    }
    Err(DomainError::internal(
        "could not draw a unique ticket code in 5 attempts",
    ))
}
