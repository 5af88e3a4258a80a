//! `POST /api/events/{eventId}/guests/import`: guests from a spreadsheet's CSV, under the
//! registration rules, through the same seat shards as every registration.
//!
//! One transaction, in bulk (a handful of statements for 5 000 rows, not 5 000 round trips):
//! 1. the event row FOR SHARE (the tenancy gate), like every guest command that takes seats;
//! 2. the CSV parsed by the `csv` crate (quotes, embedded commas and newlines, a BOM), the
//!    header's columns found by name in any order, every row validated like a registration
//!    body, duplicates found inside the file and against the event's guests;
//! 3. seats taken in the shards in bulk (`seat_shards_take`: the event's, then each ticket
//!    type's in id order, the order registrations take them), rows given a seat in file
//!    order, the seats not used given back at once; so the import can never sell past a
//!    capacity whatever registrations, claims or offers run at the same time, and seats
//!    held for waiting-list offers are never taken;
//! 4. guests, tickets (signed), their jobs (`registration_confirmation`, `generate_ticket`),
//!    `guest.registered` webhooks and audit entries inserted with one statement each.
//!
//! `all_or_nothing` (the default) writes nothing when any row fails; `best_effort` creates
//! the rows that pass; `dryRun` answers what would happen and writes nothing (everything runs,
//! then a savepoint is rolled back). Imported guests are `confirmed`: an organizer importing
//! a list has decided who comes, even on an event that requires approval.

use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;
use deadpool_postgres::Transaction;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::input::Register;
use crate::access::{self, Lock};
use crate::caller::Caller;
use crate::capacity;
use crate::error::{validation_field_errors, DomainError, DomainResult, ErrorCode, FieldError};
use crate::events::EventStatus;
use crate::outbox::{self, Job};
use crate::rules::Input;
use crate::tickets::issue::issue_ticket;
use crate::tickets::signing::TicketKeys;
use crate::work::{Done, Effects};

/// Largest file: 1 MiB (the edge refuses a larger body with PAYLOAD_TOO_LARGE).
pub const MAX_BYTES: usize = 1024 * 1024;
/// Most data rows in one file.
pub const MAX_ROWS: usize = 5_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImportMode {
    /// Nothing is created when any row fails.
    #[default]
    AllOrNothing,
    /// The rows that pass are created; the others are reported.
    BestEffort,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// `all_or_nothing` (default) or `best_effort`.
    #[param(inline)]
    pub mode: Option<ImportMode>,
    /// Check everything (capacity included) and create nothing.
    pub dry_run: Option<bool>,
}

/// One row that was not (or would not be) imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RowFailure {
    /// The row as a spreadsheet numbers it: the header is row 1, the first guest row 2.
    pub row: usize,
    /// The column at fault (`firstName`, `email`, `ticketType`…), null when the row as a
    /// whole could not be read.
    pub field: Option<String>,
    /// A code of the contract: VALIDATION_ERROR, DUPLICATE_GUEST, SOLD_OUT, EVENT_FULL.
    pub code: ErrorCode,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportReport {
    /// Guests created (with `dryRun`: that would have been created).
    pub created: usize,
    pub failed: Vec<RowFailure>,
    pub dry_run: bool,
}

/// A row that passed validation.
struct Candidate {
    row: usize,
    guest: Register,
}

/// The columns of the contract, matched case-insensitively and ignoring spaces, `_` and `-`
/// (`First Name`, `first_name` and `firstName` are one column). Other columns are ignored.
const COLUMNS: [&str; 5] = ["firstName", "lastName", "email", "phone", "ticketType"];

fn normalize(header: &str) -> String {
    header
        .chars()
        .filter(|c| !matches!(c, ' ' | '_' | '-'))
        .flat_map(char::to_lowercase)
        .collect()
}

pub async fn import(
    tx: &Transaction<'_>,
    caller: &Caller,
    keys: &TicketKeys,
    event_id: i64,
    query: &ImportQuery,
    body: Input<Bytes>,
) -> DomainResult<Done<ImportReport>> {
    let event = access::event(tx, caller, event_id, Lock::Share, None).await?;
    let body = body.take()?;
    if event.status.is_final() {
        return Err(DomainError::new(
            ErrorCode::RegistrationClosed,
            format!(
                "registration is closed: the event is {}",
                event.status.as_str()
            ),
        ));
    }
    if event.event_date <= chrono::Utc::now() {
        return Err(DomainError::new(
            ErrorCode::RegistrationClosed,
            "registration is closed: the event has started",
        ));
    }
    debug_assert!(matches!(
        event.status,
        EventStatus::Draft | EventStatus::Published
    ));
    let mode = query.mode.unwrap_or_default();
    let dry_run = query.dry_run.unwrap_or(false);

    let types = ticket_types(tx, event_id).await?;
    let (candidates, mut failed) = parse(&body, &types, event.has_ticket_types)?;
    let mut candidates = without_duplicates(tx, event_id, candidates, &mut failed).await?;
    if mode == ImportMode::AllOrNothing && !failed.is_empty() {
        failed.sort_by_key(|f| f.row);
        return Ok(Done::new(
            ImportReport {
                created: 0,
                failed,
                dry_run,
            },
            Effects::default(),
        ));
    }

    // Everything from here is undone for a dry run, or when all-or-nothing meets a failure.
    tx.batch_execute("SAVEPOINT guest_import").await?;
    let seated = take_seats(tx, event_id, &mut candidates, &mut failed).await?;
    let created = if seated.is_empty() {
        Vec::new()
    } else {
        insert(
            tx,
            caller,
            keys,
            (event_id, &event.organizer_id),
            seated,
            &mut failed,
        )
        .await?
    };
    failed.sort_by_key(|f| f.row);
    let undo = dry_run || (mode == ImportMode::AllOrNothing && !failed.is_empty());
    if undo {
        tx.batch_execute("ROLLBACK TO SAVEPOINT guest_import")
            .await?;
    } else {
        tx.batch_execute("RELEASE SAVEPOINT guest_import").await?;
    }
    let report = ImportReport {
        created: if undo && !dry_run { 0 } else { created.len() },
        failed,
        dry_run,
    };
    tracing::info!(
        event_id,
        created = report.created,
        failed = report.failed.len(),
        mode = ?mode,
        dry_run,
        "guest import"
    );
    let effects = Effects::default();
    let effects = if undo || created.is_empty() {
        effects
    } else {
        effects.event_changed(event_id).jobs()
    };
    Ok(Done::new(report, effects))
}

/// The event's ticket types by lower-cased name.
async fn ticket_types(tx: &Transaction<'_>, event_id: i64) -> DomainResult<HashMap<String, i64>> {
    let rows = tx
        .query(
            "SELECT lower(name), id FROM ticket_types WHERE event_id = $1",
            &[&event_id],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Reads the file: the header, then each row validated like a registration body.
fn parse(
    body: &[u8],
    types: &HashMap<String, i64>,
    has_types: bool,
) -> DomainResult<(Vec<Candidate>, Vec<RowFailure>)> {
    let text = std::str::from_utf8(body)
        .map_err(|_| DomainError::field("body", "the file must be UTF-8 text"))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| DomainError::field("body", format!("the header row cannot be read: {e}")))?
        .clone();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, h) in headers.iter().enumerate() {
        if let Some(col) = COLUMNS.iter().find(|c| normalize(c) == normalize(h)) {
            if index.insert(col, i).is_some() {
                return Err(DomainError::field(
                    "header",
                    format!("the column {col} appears twice"),
                ));
            }
        }
    }
    let mut missing: Vec<FieldError> = ["firstName", "lastName", "email"]
        .into_iter()
        .chain(has_types.then_some("ticketType"))
        .filter(|c| !index.contains_key(c))
        .map(|c| FieldError::new("header", format!("the column {c} is missing")))
        .collect();
    if !missing.is_empty() {
        missing.push(FieldError::new(
            "header",
            format!("expected a header row naming {}", COLUMNS.join(", ")),
        ));
        return Err(DomainError::validation(missing));
    }
    let mut candidates = Vec::new();
    let mut failed = Vec::new();
    for (n, record) in reader.records().enumerate() {
        let row = n + 2;
        if n >= MAX_ROWS {
            return Err(DomainError::new(
                ErrorCode::PayloadTooLarge,
                format!("a file has at most {MAX_ROWS} guest rows"),
            ));
        }
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                failed.push(RowFailure {
                    row,
                    field: None,
                    code: ErrorCode::ValidationError,
                    message: format!("the row cannot be read: {e}"),
                });
                continue;
            }
        };
        if record.iter().all(str::is_empty) {
            continue; // a blank line, as spreadsheets leave at the end
        }
        let cell = |col: &str| {
            index
                .get(col)
                .and_then(|i| record.get(*i))
                .unwrap_or("")
                .to_owned()
        };
        let type_name = cell("ticketType");
        let ticket_type_id = match (has_types, type_name.is_empty()) {
            (false, true) => None,
            (false, false) => {
                failed.push(fail(row, "ticketType", "this event has no ticket types"));
                continue;
            }
            (true, true) => {
                failed.push(fail(
                    row,
                    "ticketType",
                    "is required: the event has ticket types",
                ));
                continue;
            }
            (true, false) => match types.get(&type_name.to_lowercase()) {
                Some(id) => Some(*id),
                None => {
                    failed.push(fail(
                        row,
                        "ticketType",
                        &format!("no ticket type of this event is named {type_name:?}"),
                    ));
                    continue;
                }
            },
        };
        let phone = cell("phone");
        let guest = Register {
            first_name: cell("firstName"),
            last_name: cell("lastName"),
            email: cell("email"),
            phone: (!phone.is_empty()).then_some(phone),
            ticket_type_id,
        };
        match validator::Validate::validate(&guest) {
            Ok(()) => candidates.push(Candidate { row, guest }),
            Err(e) => {
                // One failure per column (its first problem).
                let mut fields = HashSet::new();
                failed.extend(
                    validation_field_errors(&e)
                        .into_iter()
                        .filter(|f| fields.insert(f.field.clone()))
                        .map(|f| RowFailure {
                            row,
                            field: Some(f.field),
                            code: ErrorCode::ValidationError,
                            message: f.message,
                        }),
                )
            }
        }
    }
    if candidates.is_empty() && failed.is_empty() {
        return Err(DomainError::field("body", "the file has no guest rows"));
    }
    Ok((candidates, failed))
}

fn fail(row: usize, field: &str, message: &str) -> RowFailure {
    RowFailure {
        row,
        field: Some(field.to_owned()),
        code: ErrorCode::ValidationError,
        message: message.to_owned(),
    }
}

fn duplicate(row: usize, message: &str) -> RowFailure {
    RowFailure {
        row,
        field: Some("email".to_owned()),
        code: ErrorCode::DuplicateGuest,
        message: message.to_owned(),
    }
}

/// Drops the rows whose email is already registered (not cancelled) for the event, or
/// appears earlier in the file.
async fn without_duplicates(
    tx: &Transaction<'_>,
    event_id: i64,
    candidates: Vec<Candidate>,
    failed: &mut Vec<RowFailure>,
) -> DomainResult<Vec<Candidate>> {
    let emails: Vec<String> = candidates
        .iter()
        .map(|c| c.guest.email.to_lowercase())
        .collect();
    let stmt = tx
        .prepare_cached(
            "SELECT lower(email) FROM guests
              WHERE event_id = $1 AND status <> 'cancelled' AND lower(email) = ANY($2)",
        )
        .await?;
    let existing: HashSet<String> = tx
        .query(&stmt, &[&event_id, &emails])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut kept = Vec::with_capacity(candidates.len());
    for (c, email) in candidates.into_iter().zip(emails) {
        if existing.contains(&email) {
            failed.push(duplicate(
                c.row,
                "this email is already registered for this event",
            ));
        } else if let Some(first) = seen.get(&email) {
            failed.push(duplicate(
                c.row,
                &format!("this email is already on row {first} of the file"),
            ));
        } else {
            seen.insert(email, c.row);
            kept.push(c);
        }
    }
    Ok(kept)
}

/// Takes the seats of the rows in bulk and gives each row one in file order: the event's
/// seats first, then each ticket type's in id order (the order registrations take them);
/// the seats taken but not given to a row go back at once. Returns the rows with a seat.
async fn take_seats(
    tx: &Transaction<'_>,
    event_id: i64,
    candidates: &mut Vec<Candidate>,
    failed: &mut Vec<RowFailure>,
) -> DomainResult<Vec<Candidate>> {
    let start = i64::from(rand::random::<u16>());
    let wanted = candidates.len() as i32;
    let mut event_left = capacity::take_seats(tx, event_id, None, wanted, start).await?;
    let mut per_type: BTreeMap<i64, i32> = BTreeMap::new();
    for c in candidates.iter() {
        if let Some(t) = c.guest.ticket_type_id {
            *per_type.entry(t).or_default() += 1;
        }
    }
    let mut type_left: BTreeMap<i64, i32> = BTreeMap::new();
    for (t, n) in &per_type {
        let got = capacity::take_seats(tx, event_id, Some(*t), *n, start).await?;
        type_left.insert(*t, got);
    }
    let taken_event = event_left;
    let taken_types = type_left.clone();
    let mut seated = Vec::with_capacity(candidates.len());
    for c in candidates.drain(..) {
        let type_ok = c
            .guest
            .ticket_type_id
            .is_none_or(|t| type_left.get(&t).copied().unwrap_or(0) > 0);
        if event_left == 0 {
            failed.push(RowFailure {
                row: c.row,
                field: None,
                code: ErrorCode::EventFull,
                message: "the event has reached its maximum number of attendees".into(),
            });
        } else if !type_ok {
            failed.push(RowFailure {
                row: c.row,
                field: Some("ticketType".into()),
                code: ErrorCode::SoldOut,
                message: "this ticket type is sold out".into(),
            });
        } else {
            event_left -= 1;
            if let Some(t) = c.guest.ticket_type_id {
                *type_left.get_mut(&t).expect("counted above") -= 1;
            }
            seated.push(c);
        }
    }
    // Unused seats back, in the same order (they are rows this transaction already holds).
    if event_left > 0 {
        capacity::take_seats(tx, event_id, None, -event_left, start).await?;
    }
    for (t, left) in &type_left {
        if *left > 0 {
            capacity::take_seats(tx, event_id, Some(*t), -left, start).await?;
        }
    }
    tracing::debug!(
        event_id,
        taken_event,
        ?taken_types,
        seated = seated.len(),
        "import seats"
    );
    Ok(seated)
}

/// Inserts the seated rows' guests, tickets, jobs, webhooks and audit entries in bulk.
/// A row whose email a concurrent registration took meanwhile fails DUPLICATE_GUEST and
/// gives its seat back. Returns the guest ids created.
async fn insert(
    tx: &Transaction<'_>,
    caller: &Caller,
    keys: &TicketKeys,
    (event_id, organizer_id): (i64, &str),
    seated: Vec<Candidate>,
    failed: &mut Vec<RowFailure>,
) -> DomainResult<Vec<i64>> {
    let col = |f: fn(&Register) -> Option<String>| -> Vec<Option<String>> {
        seated.iter().map(|c| f(&c.guest)).collect()
    };
    let types: Vec<Option<i64>> = seated.iter().map(|c| c.guest.ticket_type_id).collect();
    let (first, last, email, phone) = (
        col(|g| Some(g.first_name.clone())),
        col(|g| Some(g.last_name.clone())),
        col(|g| Some(g.email.clone())),
        col(|g| g.phone.clone()),
    );
    let stmt = tx
        .prepare_cached(
            "INSERT INTO guests (event_id, ticket_type_id, first_name, last_name, email, phone, status)
             SELECT $1, r.t, r.f, r.l, r.e, r.p, 'confirmed'
               FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[])
                    WITH ORDINALITY AS r(t, f, l, e, p, n)
              ORDER BY r.n
             ON CONFLICT (event_id, lower(email)) WHERE status <> 'cancelled' DO NOTHING
             RETURNING id, lower(email), ticket_type_id",
        )
        .await?;
    let rows = tx
        .query(&stmt, &[&event_id, &types, &first, &last, &email, &phone])
        .await?;
    let inserted: HashMap<String, (i64, Option<i64>)> = rows
        .iter()
        .map(|r| (r.get(1), (r.get(0), r.get(2))))
        .collect();
    let mut guests: Vec<(i64, Option<i64>)> = Vec::with_capacity(seated.len());
    for c in &seated {
        match inserted.get(&c.guest.email.to_lowercase()) {
            Some(g) => guests.push(*g),
            None => {
                failed.push(duplicate(
                    c.row,
                    "this email was registered for this event during the import",
                ));
                capacity::release_seat(tx, event_id, c.guest.ticket_type_id, c.row as i64).await?;
            }
        }
    }
    if guests.is_empty() {
        return Ok(Vec::new());
    }
    let guest_ids: Vec<i64> = guests.iter().map(|g| g.0).collect();
    let guest_types: Vec<Option<i64>> = guests.iter().map(|g| g.1).collect();

    // Tickets with fresh codes (a code another ticket holds is drawn again below).
    let year = chrono::Datelike::year(&chrono::Utc::now());
    let codes: Vec<String> = guests
        .iter()
        .map(|_| crate::tickets::code::generate(year))
        .collect();
    let stmt = tx
        .prepare_cached(
            "INSERT INTO tickets (guest_id, event_id, ticket_type_id, ticket_code)
             SELECT g, $1, t, c FROM unnest($2::bigint[], $3::bigint[], $4::text[]) AS r(g, t, c)
             ON CONFLICT (ticket_code) DO NOTHING
             RETURNING id, guest_id, ticket_code",
        )
        .await?;
    let tickets = tx
        .query(&stmt, &[&event_id, &guest_ids, &guest_types, &codes])
        .await?;
    let (mut ids, mut payloads) = (Vec::new(), Vec::new());
    let mut jobs: Vec<Job> = Vec::with_capacity(guests.len() * 2);
    let mut with_ticket: HashSet<i64> = HashSet::new();
    for t in &tickets {
        let (id, guest, code): (i64, i64, String) = (t.get(0), t.get(1), t.get(2));
        ids.push(id);
        payloads.push(keys.sign(id, event_id, &code));
        jobs.push(Job::GenerateTicket { ticket_id: id });
        with_ticket.insert(guest);
    }
    let stmt = tx
        .prepare_cached(
            "UPDATE tickets t SET qr_payload = u.p FROM unnest($1::bigint[], $2::text[]) AS u(id, p)
              WHERE t.id = u.id",
        )
        .await?;
    tx.execute(&stmt, &[&ids, &payloads]).await?;
    for (guest, ticket_type) in &guests {
        if !with_ticket.contains(guest) {
            jobs.push(issue_ticket(tx, keys, (event_id, *guest), *ticket_type).await?);
        }
    }
    jobs.extend(guest_ids.iter().map(|g| Job::RegistrationConfirmation {
        event_id,
        guest_id: *g,
    }));
    outbox::enqueue_all(tx, &jobs).await?;

    // Audit entries (no personal data) and guest.registered webhooks, one statement each.
    let stmt = tx
        .prepare_cached(
            "INSERT INTO audit_log (event_id, actor_sub, actor_role, action, entity, entity_id, changes)
             SELECT $1, $2, $3, 'guest.imported', 'guest', g.id,
                    jsonb_build_object('status', g.status, 'ticketTypeId', g.ticket_type_id)
               FROM guests g WHERE g.id = ANY($4)",
        )
        .await?;
    tx.execute(
        &stmt,
        &[
            &event_id,
            &caller.user_id,
            &caller.role.as_str(),
            &guest_ids,
        ],
    )
    .await?;
    let stmt = tx
        .prepare_cached(
            "SELECT COALESCE(sum(cardinality(webhook_write($1, 'guest.registered', webhook_guest(g, t.id, t.checked_in_at), interval '0'))), 0)::bigint
               FROM guests g LEFT JOIN tickets t ON t.guest_id = g.id
              WHERE g.id = ANY($2) AND EXISTS (SELECT 1 FROM webhooks w WHERE w.organizer_id = $1 AND w.enabled)",
        )
        .await?;
    let hooks: i64 = tx
        .query_one(&stmt, &[&organizer_id, &guest_ids])
        .await?
        .get(0);
    if hooks > 0 {
        tracing::info!(
            event_id,
            deliveries = hooks,
            "guest.registered webhooks written for the import"
        );
    }
    Ok(guest_ids)
}
