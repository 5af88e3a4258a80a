//! Issuing a guest's ticket: the row inserted with a fresh code (its id drawn by the
//! insert itself: no `nextval()` in a statement, which would pin an RDS Proxy session),
//! then its signed payload, which names that id, and the job that renders its QR code.

use deadpool_postgres::Transaction;

use crate::error::{DomainError, DomainResult};
use crate::outbox::Job;
use crate::tickets;
use crate::tickets::signing::TicketKeys;

/// A ticket row just inserted, not yet signed.
#[derive(Debug, Clone)]
pub struct NewTicket {
    pub id: i64,
    pub event_id: i64,
    pub code: String,
}

/// Creates the guest's ticket with a fresh code (a collision just draws another) and signs
/// it. Returns its generation job, for the caller to queue with its others.
pub async fn issue_ticket(
    tx: &Transaction<'_>,
    keys: &TicketKeys,
    (event_id, guest_id): (i64, i64),
    ticket_type_id: Option<i64>,
) -> DomainResult<Job> {
    let insert = tx
        .prepare_cached(
            "INSERT INTO tickets (guest_id, event_id, ticket_type_id, ticket_code)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (ticket_code) DO NOTHING
             RETURNING id",
        )
        .await?;
    let year = chrono::Datelike::year(&chrono::Utc::now());
    for _ in 0..5 {
        let code = tickets::code::generate(year);
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
            [&guest_id, &event_id, &ticket_type_id, &code];
        if let Some(row) = tx.query_opt(&insert, &params).await? {
            let ticket = NewTicket {
                id: row.get(0),
                event_id,
                code,
            };
            return sign_ticket(tx, keys, &ticket).await;
        }
    }
    Err(DomainError::internal(
        "could not draw a unique ticket code in 5 attempts",
    ))
}

/// Writes the signed payload of a ticket just inserted (it names the ticket's id, known only
/// after the insert). Returns the ticket's generation job.
pub async fn sign_ticket(
    tx: &Transaction<'_>,
    keys: &TicketKeys,
    ticket: &NewTicket,
) -> DomainResult<Job> {
    let update = tx
        .prepare_cached("UPDATE tickets SET qr_payload = $2 WHERE id = $1")
        .await?;
    let payload = keys.sign(ticket.id, ticket.event_id, &ticket.code);
    tx.execute(&update, &[&ticket.id, &payload]).await?;
    Ok(Job::GenerateTicket {
        ticket_id: ticket.id,
    })
}
