//! Check-in at the door: exactly one scan of a ticket is accepted, however many scanners
//! try at the same moment.
//!
//! The acceptance is one statement, `ACCEPT`, run on its own (outside an explicit
//! transaction: a single statement is atomic, and this saves the `BEGIN`/`COMMIT` round
//! trips). Its writable CTEs do the whole check-in: the conditional update
//! `UPDATE tickets SET validated_at = now() … WHERE id = $1 AND validated_at IS NULL AND status = 'active'`
//! (with the event published and, unless the caller is an admin, its organizer the
//! caller's), the guest becomes `checked_in`, the `accepted` row goes to `ticket_scans`,
//! and the statement returns the ticket as it now is, for the answer.
//! Concurrent scans of the same ticket queue on its row lock; when the first statement
//! commits, PostgreSQL re-evaluates the `WHERE` of the others on the new row, finds
//! `validated_at` set, and updates nothing, so their guest update and scan insert (which
//! read the update's rows) do nothing either.
//!
//! A statement that accepts nothing (already validated, cancelled, not found, event not
//! published, another organizer's ticket: the rare path) is followed by the
//! multi-statement check-in in a transaction (`validate`), which says why and writes the
//! refusal to `ticket_scans` in the same transaction as its outcome; its own conditional
//! update still accepts a ticket that became valid in between, so every attempt is logged
//! exactly once, with its result.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use deadpool_postgres::{Client, GenericClient, Transaction};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use validator::Validate;

use super::model::Ticket;
use super::signing::{self, TicketKeys};
use super::{code, queries};
use crate::access;
use crate::caller::Caller;
use crate::error::{DomainError, DomainResult, ErrorCode};
use crate::events::EventStatus;
use crate::rules::not_blank;
use crate::rules::Input;
use crate::sql;
use crate::tickets::TicketStatus;
use crate::work::{Done, Effects};

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Scan {
    #[validate(length(min = 1, max = 100), custom(function = "not_blank"))]
    #[schema(min_length = 1, max_length = 100)]
    #[schema(example = "scanner-123")]
    pub scanner_id: String,
    #[validate(length(min = 1, max = 100), custom(function = "not_blank"))]
    #[schema(min_length = 1, max_length = 100)]
    #[schema(example = "Entrance A")]
    pub location: String,
}

/// `POST /api/tickets/validate`: what the scanner read, a signed QR payload or a typed code.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScanCode {
    #[validate(length(min = 1, max = 512))]
    #[schema(min_length = 1, max_length = 512)]
    pub code: String,
    #[validate(length(min = 1, max = 100), custom(function = "not_blank"))]
    #[schema(min_length = 1, max_length = 100)]
    pub scanner_id: String,
    #[validate(length(min = 1, max = 100), custom(function = "not_blank"))]
    #[schema(min_length = 1, max_length = 100)]
    pub location: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Validation {
    pub valid: bool,
    pub ticket: Ticket,
    pub validated_at: DateTime<Utc>,
}

/// The result of a scan attempt, as written to the scan log (`ticket_scans.result`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanResult {
    Accepted,
    /// The database refused the attempt with a conflict every time it was tried (503).
    Unavailable,
    AlreadyValidated,
    Cancelled,
    EventNotPublished,
    NotFound,
    InvalidSignature,
}

crate::text_enum!(ScanResult {
    Accepted => "accepted",
    Unavailable => "unavailable",
    AlreadyValidated => "already_validated",
    Cancelled => "cancelled",
    EventNotPublished => "event_not_published",
    NotFound => "not_found",
    InvalidSignature => "invalid_signature",
});

pub async fn by_id(
    db: &mut Client,
    caller: &Caller,
    ticket_id: i64,
    input: Input<Scan>,
) -> DomainResult<Done<Validation>> {
    let scan = match input
        .take()
        .and_then(|s| s.validate().map(|()| s).map_err(Into::into))
    {
        Ok(scan) => scan,
        Err(invalid) => {
            // Another organizer's ticket is not found, whatever the body says.
            access::ticket(&*db, caller, ticket_id).await?;
            return Err(invalid);
        }
    };
    check_in(
        db,
        caller,
        Some(ticket_id),
        &scan.scanner_id,
        &scan.location,
    )
    .await
    .map(done)
}

/// An accepted scan changes what the event shows (checked-in counts, stats).
fn done(v: Validation) -> Done<Validation> {
    let event_id = v.ticket.event.id;
    Done::new(v, Effects::default().event_changed(event_id))
}

pub async fn by_code(
    db: &mut Client,
    caller: &Caller,
    keys: &TicketKeys,
    input: ScanCode,
) -> DomainResult<Done<Validation>> {
    input.validate()?;
    let code = input.code.trim();
    // Which ticket was read: plain reads (a ticket's id, event and code never change).
    let ticket_id = if signing::looks_like_payload(code) {
        match keys.verify(code) {
            Ok(claims) => {
                // The signature is good; the ticket must still say the same thing.
                let stmt = db
                    .prepare_cached("SELECT id FROM tickets WHERE id = $1 AND event_id = $2 AND ticket_code = $3")
                    .await?;
                db.query_opt(&stmt, &[&claims.ticket_id, &claims.event_id, &claims.code])
                    .await?
                    .map(|r| r.get(0))
            }
            Err(e) => {
                log_scan(
                    &*db,
                    None,
                    None,
                    &input.scanner_id,
                    &input.location,
                    ScanResult::InvalidSignature,
                )
                .await?;
                return Err(DomainError::new(
                    ErrorCode::InvalidSignature,
                    format!("the ticket's signature does not verify ({e})"),
                ));
            }
        }
    } else if code::looks_like_code(&code.to_ascii_uppercase()) {
        let stmt = db
            .prepare_cached("SELECT id FROM tickets WHERE ticket_code = $1")
            .await?;
        db.query_opt(&stmt, &[&code.to_ascii_uppercase()])
            .await?
            .map(|r| r.get(0))
    } else {
        None
    };
    check_in(db, caller, ticket_id, &input.scanner_id, &input.location)
        .await
        .map(done)
}

/// The whole accepted check-in in one statement (see the module doc): `$1` ticket,
/// `$2` scanner, `$3` location, `$4` the caller's tenant (null for an admin), `$5` the
/// scan log's result. It returns one row, the ticket as `queries::from_row` reads it,
/// when the scan is accepted, and none otherwise (nothing then changed). The final
/// `SELECT` sees the database as it was before the statement, so the ticket and guest
/// come from the CTEs' `RETURNING` (their new rows), the event and ticket type (which a
/// check-in does not change) from their tables.
static ACCEPT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH accepted AS (
            UPDATE tickets t
               SET validated_at = now(), validated_by = $2, validation_location = $3, updated_at = now()
             WHERE t.id = $1 AND t.status = 'active' AND t.validated_at IS NULL
               AND EXISTS (SELECT 1 FROM events e
                            WHERE e.id = t.event_id AND e.status = 'published'
                              AND ($4::text IS NULL OR e.organizer_id = $4::text))
         RETURNING t.*),
              checked_in AS (
            UPDATE guests g SET status = 'checked_in', updated_at = now()
              FROM accepted a WHERE g.id = a.guest_id
         RETURNING g.*),
              scan AS (
            INSERT INTO ticket_scans (ticket_id, event_id, scanner_id, location, result)
            SELECT a.id, a.event_id, $2::text, $3::text, $5::text FROM accepted a)
        SELECT {}
          FROM accepted t
          LEFT JOIN checked_in g ON g.id = t.guest_id
          JOIN events e ON e.id = t.event_id
          LEFT JOIN ticket_types tt ON tt.id = t.ticket_type_id",
        queries::columns()
    )
});

/// A scan of `ticket_id` (`None`: nothing matched what was read): the one-statement
/// acceptance, else the explaining check-in in a transaction.
async fn check_in(
    db: &mut Client,
    caller: &Caller,
    ticket_id: Option<i64>,
    scanner_id: &str,
    location: &str,
) -> DomainResult<Validation> {
    // Locks are taken in one order (ticket, then guest) on every path that takes both, so a
    // deadlock should not happen; a serialization failure or deadlock that does is retried
    // here a bounded number of times before it becomes a 503.
    const ATTEMPTS: u32 = 4;
    let mut attempt = 1;
    loop {
        match check_in_once(db, caller, ticket_id, scanner_id, location).await {
            Err(e) if e.retryable && attempt < ATTEMPTS => {
                tracing::warn!(
                    attempt,
                    cause = e.internal.as_deref(),
                    "check-in conflict, retrying"
                );
                tokio::time::sleep(std::time::Duration::from_millis(5 << attempt)).await;
                attempt += 1;
            }
            Err(e) if e.retryable => {
                // Every attempt is in the scan log, even one the database kept refusing
                // (best effort: the 503 is the answer either way).
                let logged = log_scan(
                    &*db,
                    ticket_id,
                    None,
                    scanner_id,
                    location,
                    ScanResult::Unavailable,
                )
                .await;
                if let Err(log) = logged {
                    tracing::error!(
                        cause = log.internal.as_deref(),
                        "could not log the refused scan"
                    );
                }
                return Err(e);
            }
            outcome => return outcome,
        }
    }
}

async fn check_in_once(
    db: &mut Client,
    caller: &Caller,
    ticket_id: Option<i64>,
    scanner_id: &str,
    location: &str,
) -> DomainResult<Validation> {
    if let Some(id) = ticket_id {
        let stmt = db.prepare_cached(&ACCEPT).await?;
        let tenant = caller.tenant();
        if let Some(row) = db
            .query_opt(
                &stmt,
                &[&id, &scanner_id, &location, &tenant, &ScanResult::Accepted],
            )
            .await?
        {
            // Committed. A guest the update did not find (it cannot: deleting a guest
            // deletes its ticket) is an error, as it was on the multi-statement path.
            if row.get::<_, Option<i64>>("id").is_none() {
                return Err(DomainError::internal("guest vanished"));
            }
            let ticket = queries::from_row(&row)?;
            let validated_at = ticket
                .validated_at
                .ok_or_else(|| DomainError::internal("validated_at"))?;
            tracing::info!(
                ticket_id = id,
                event_id = ticket.event.id,
                scanner_id,
                "ticket validated"
            );
            return Ok(Validation {
                valid: true,
                ticket,
                validated_at,
            });
        }
    }
    // Rare: refused (or not found). Say why, and log it, in one transaction.
    let tx = db.transaction().await?;
    let outcome = validate(&tx, caller, ticket_id, scanner_id, location).await;
    tx.commit().await?;
    outcome
}

/// The check-in as separate statements in `tx`, for the scans `ACCEPT` did not accept:
/// tenancy, the same conditional update (which accepts a ticket that became valid since),
/// else why not, and the scan log's row with the result.
async fn validate(
    tx: &Transaction<'_>,
    caller: &Caller,
    ticket_id: Option<i64>,
    scanner_id: &str,
    location: &str,
) -> DomainResult<Validation> {
    // Tenancy first: the ticket's organizer, before anything changes.
    let found = match ticket_id {
        Some(id) => match access::ticket(tx, caller, id).await {
            Ok(event_id) => Some((id, event_id)),
            Err(e) if e.code == ErrorCode::NotFound => None,
            Err(e) => return Err(e),
        },
        None => None,
    };
    let Some((ticket_id, event_id)) = found else {
        log_scan(tx, None, None, scanner_id, location, ScanResult::NotFound).await?;
        return Err(DomainError::not_found("ticket"));
    };

    let accept = tx
        .prepare_cached(
            "UPDATE tickets t SET validated_at = now(), validated_by = $2, validation_location = $3, updated_at = now()
              WHERE t.id = $1 AND t.status = 'active' AND t.validated_at IS NULL
                AND EXISTS (SELECT 1 FROM events e WHERE e.id = t.event_id AND e.status = 'published')
          RETURNING t.guest_id, t.validated_at",
        )
        .await?;
    if let Some(row) = tx
        .query_opt(&accept, &[&ticket_id, &scanner_id, &location])
        .await?
    {
        let (guest_id, validated_at): (i64, DateTime<Utc>) = (row.get(0), row.get(1));
        let checked_in = tx
            .prepare_cached(
                "UPDATE guests SET status = 'checked_in', updated_at = now() WHERE id = $1",
            )
            .await?;
        tx.execute(&checked_in, &[&guest_id]).await?;
        log_scan(
            tx,
            Some(ticket_id),
            Some(event_id),
            scanner_id,
            location,
            ScanResult::Accepted,
        )
        .await?;
        let ticket = queries::by_id(tx, ticket_id)
            .await?
            .ok_or_else(|| DomainError::internal("ticket vanished"))?;
        tracing::info!(ticket_id, event_id, scanner_id, "ticket validated");
        return Ok(Validation {
            valid: true,
            ticket,
            validated_at,
        });
    }

    // Refused: say why, from the row as it is now.
    let stmt = tx
        .prepare_cached(
            "SELECT t.status, t.validated_at, t.validated_by, t.validation_location, e.status AS event_status
               FROM tickets t JOIN events e ON e.id = t.event_id WHERE t.id = $1",
        )
        .await?;
    let Some(row) = tx.query_opt(&stmt, &[&ticket_id]).await? else {
        log_scan(tx, None, None, scanner_id, location, ScanResult::NotFound).await?;
        return Err(DomainError::not_found("ticket"));
    };
    let status: TicketStatus = sql::get(&row, "status")?;
    let validated_at: Option<DateTime<Utc>> = row.get(1);
    let event_status: EventStatus = sql::get(&row, "event_status")?;
    let (result, error) = if status == TicketStatus::Cancelled {
        (
            ScanResult::Cancelled,
            DomainError::new(ErrorCode::TicketCancelled, "this ticket was cancelled"),
        )
    } else if let Some(at) = validated_at {
        let by: Option<String> = row.get(2);
        let loc: Option<String> = row.get(3);
        (
            ScanResult::AlreadyValidated,
            DomainError::new(
                ErrorCode::TicketAlreadyValidated,
                "this ticket was already validated",
            )
            .with_details(json!({"validatedAt": at, "scannerId": by, "location": loc})),
        )
    } else {
        (
            ScanResult::EventNotPublished,
            DomainError::invalid_state(format!(
                "the event is {}, tickets cannot be validated",
                event_status.as_str()
            )),
        )
    };
    log_scan(
        tx,
        Some(ticket_id),
        Some(event_id),
        scanner_id,
        location,
        result,
    )
    .await?;
    Err(error)
}

async fn log_scan(
    tx: &impl GenericClient,
    ticket_id: Option<i64>,
    event_id: Option<i64>,
    scanner_id: &str,
    location: &str,
    result: ScanResult,
) -> DomainResult<()> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO ticket_scans (ticket_id, event_id, scanner_id, location, result) VALUES ($1, $2, $3, $4, $5)",
        )
        .await?;
    tx.execute(
        &stmt,
        &[&ticket_id, &event_id, &scanner_id, &location, &result],
    )
    .await?;
    Ok(())
}
