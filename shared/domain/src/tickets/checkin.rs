//! Part 1's check-in at the door: `POST /api/tickets/{ticketId}/validate` and
//! `POST /api/tickets/validate`. Both scan an entry on the event's default check-in list
//! (every ticket type, no re-entry) through [`crate::checkin::scan`], which keeps their
//! guarantees: however many scanners validate the same ticket at the same moment, exactly one
//! is accepted (one statement when accepted; a refusal is decided with the ticket locked), and
//! every attempt, accepted or refused, is in the scan log with its result.

use chrono::{DateTime, Utc};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

use super::model::Ticket;
use super::signing::TicketKeys;
use crate::access;
use crate::caller::Caller;
use crate::checkin::scan::{self, Door, OnList, Read, Scanned};
use crate::checkin::Direction;
use crate::error::DomainResult;
use crate::idempotency::Key;
use crate::rules::not_blank;
use crate::rules::Input;
use crate::work::Done;

pub use crate::checkin::ScanResult;

#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
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
#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
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

pub async fn by_id<D: Door>(
    db: &mut D,
    key: Option<&Key>,
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
        key,
        caller,
        Read::ticket(ticket_id),
        &scan.scanner_id,
        &scan.location,
    )
    .await
}

pub async fn by_code<D: Door>(
    db: &mut D,
    key: Option<&Key>,
    caller: &Caller,
    keys: &TicketKeys,
    input: ScanCode,
) -> DomainResult<Done<Validation>> {
    input.validate()?;
    let read = scan::resolve(&*db, keys, &input.code).await?;
    check_in(db, key, caller, read, &input.scanner_id, &input.location).await
}

async fn check_in<D: Door>(
    db: &mut D,
    key: Option<&Key>,
    caller: &Caller,
    read: Read,
    scanner_id: &str,
    location: &str,
) -> DomainResult<Done<Validation>> {
    let done = scan::online(
        db,
        caller,
        OnList::DefaultOf,
        read,
        scanner_id,
        location,
        Direction::Entry,
        key,
    )
    .await?;
    let (scanned, effects): (Scanned, _) = done.into_parts();
    Ok(Done::new(Validation::from(scanned), effects))
}

impl From<Scanned> for Validation {
    fn from(scanned: Scanned) -> Self {
        Self {
            valid: true,
            validated_at: scanned.scanned_at,
            ticket: scanned.ticket,
        }
    }
}

/// The answer stored under an Idempotency-Key with an accepted check-in, read back for a
/// replay (`edge::statement!`): see [`scan::replayed`].
pub fn replayed(row: &tokio_postgres::Row) -> DomainResult<Validation> {
    scan::replayed(row, Direction::Entry).map(Validation::from)
}
