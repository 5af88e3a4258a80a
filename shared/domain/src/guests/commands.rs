//! Changing guests: registration, approval, cancellation, edits. Each runs in the
//! transaction it is given (the edge's unit of work commits it, then applies the returned
//! effects), with the jobs it causes written to the outbox inside it.
//!
//! # Capacity under concurrency
//! Each capacity (the event's `max_attendees`, each ticket type's `quantity`) is split over
//! up to 16 rows of `seat_shards`, each bounded by its `quota` (the quotas add up to the
//! capacity; migrations/V4__seat_shards.sql). Registration takes one seat of the event and
//! one of its ticket type with `seat_shards_add`: a *conditional* update,
//! `UPDATE … SET taken = taken + 1 WHERE … AND taken < quota`, on the shard its guest id
//! points to, then on the next shards while they are full. Under READ COMMITTED a
//! concurrent transaction that updated the same shard first makes this one wait, and
//! PostgreSQL then re-evaluates the `WHERE` on the committed row: the check and the
//! increment are one atomic step, so no interleaving can sell seat `limit + 1`, and "full"
//! is only answered once every shard was found full. Concurrent registrations start on
//! different shards, so they no longer queue on one row lock until each other's commit.
//! The seats are taken *last*, just before commit, so the shard locks are held for the
//! shortest time.
//!
//! Every guest command that moves seats first locks the event row `FOR SHARE`
//! ([`Lock::Share`]); the event commands that cancel an event or change a capacity
//! lock it `FOR UPDATE`. So a registration's checks of the event's status hold until it
//! commits, and the shards are never laid out again under it. Locks are taken in one
//! order everywhere (event row, the guest's ticket, guest row, event shard, ticket type
//! shards in id order; check-in takes the ticket, then the guest), so commands cannot
//! deadlock each other or a scan.
//!
//! Duplicate registrations are refused by the partial unique index on
//! `(event_id, lower(email)) WHERE status <> 'cancelled'`: of two racing inserts the
//! second waits for the first and fails with a unique violation (`DUPLICATE_GUEST`) if
//! the first commits.

use deadpool_postgres::{GenericClient, Transaction};

use super::input::{Register, UpdateGuest};
use super::model::{Guest, GuestStatus, Registration};
use super::queries;
use crate::access::{self, Lock};
use crate::caller::Caller;
use crate::error::{DbResultExt, DomainError, DomainResult, ErrorCode};
use crate::events::EventStatus;
use crate::outbox::{self, Job};
use crate::rules::Input;
use crate::sql;
use crate::tickets;
use crate::tickets::signing::TicketKeys;
use crate::work::{Done, Effects};

const ACTIVE_EMAIL_KEY: &str = "guests_event_email_active_key";

fn duplicate() -> DomainError {
    DomainError::new(
        ErrorCode::DuplicateGuest,
        "this email is already registered for this event",
    )
}

fn closed(reason: &str) -> DomainError {
    DomainError::new(
        ErrorCode::RegistrationClosed,
        format!("registration is closed: {reason}"),
    )
}

pub async fn register(
    tx: &Transaction<'_>,
    caller: &Caller,
    keys: &TicketKeys,
    event_id: i64,
    input: Input<Register>,
) -> DomainResult<Done<Registered>> {
    let ticket_type = input.peek().and_then(|r| r.ticket_type_id);
    let event = access::event(tx, caller, event_id, Lock::Share, ticket_type).await?;
    let input = input.take()?;
    input.check()?;
    if event.status != EventStatus::Published {
        return Err(closed(&format!("the event is {}", event.status.as_str())));
    }
    if event.event_date <= chrono::Utc::now() {
        return Err(closed("the event has started"));
    }
    check_ticket_type(
        event.has_ticket_types,
        event.has_ticket_type,
        input.ticket_type_id,
    )?;
    let status = if event.requires_approval {
        GuestStatus::Pending
    } else {
        GuestStatus::Confirmed
    };

    // The ticket id is drawn with the guest row (one round trip), so its signed payload is
    // written with the ticket row.
    let stmt = tx
        .prepare_cached(
            "INSERT INTO guests (event_id, ticket_type_id, first_name, last_name, email, phone, status)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             RETURNING id, CASE WHEN $7 = 'confirmed' THEN nextval(pg_get_serial_sequence('tickets', 'id')) END",
        )
        .await?;
    let row = tx
        .query_one(
            &stmt,
            &[
                &event_id,
                &input.ticket_type_id,
                &input.first_name,
                &input.last_name,
                &input.email,
                &input.phone,
                &status.as_str(),
            ],
        )
        .await
        .on_constraint(ACTIVE_EMAIL_KEY, duplicate)?;
    let (guest_id, ticket_id): (i64, Option<i64>) = (row.get(0), row.get(1));
    let mut jobs = vec![Job::RegistrationConfirmation { event_id, guest_id }];
    if let Some(ticket_id) = ticket_id {
        let ids = (event_id, guest_id, ticket_id);
        jobs.push(issue_ticket(tx, keys, ids, input.ticket_type_id).await?);
    }
    outbox::enqueue_all(tx, &jobs).await?;
    // Last, so the seat shards stay locked only until the commit right after.
    take_seat(tx, event_id, input.ticket_type_id, guest_id).await?;
    tracing::info!(
        event_id,
        guest_id,
        status = status.as_str(),
        "guest registered"
    );
    // The answer is read after the commit ([`queries::registration`]), so the seat shards
    // stay locked only until the commit right after the seat is taken.
    Ok(Done::new(
        Registered { event_id, guest_id },
        Effects::default().event_changed(event_id).jobs(),
    ))
}

/// A registration that committed; [`queries::registration`] reads what the API answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registered {
    pub event_id: i64,
    pub guest_id: i64,
}

/// `ticketTypeId` is required when the event has ticket types, and must be one of them
/// (`is_one`: whether it is, as [`EventAccess`](super::queries::EventAccess) found).
fn check_ticket_type(has_types: bool, is_one: bool, id: Option<i64>) -> DomainResult<()> {
    match (has_types, id) {
        (false, None) => Ok(()),
        (false, Some(_)) => Err(DomainError::field(
            "ticketTypeId",
            "this event has no ticket types",
        )),
        (true, None) => Err(DomainError::field(
            "ticketTypeId",
            "is required: the event has ticket types",
        )),
        (true, Some(_)) if is_one => Ok(()),
        (true, Some(_)) => Err(DomainError::field(
            "ticketTypeId",
            "is not a ticket type of this event",
        )),
    }
}

/// Takes a seat of the event, then of its ticket type, as described in the module
/// documentation: one statement, one round trip while the shards are locked. The guest id
/// picks the first shard tried, so concurrent registrations spread over the shards.
async fn take_seat(
    tx: &Transaction<'_>,
    event_id: i64,
    ticket_type_id: Option<i64>,
    guest_id: i64,
) -> DomainResult<()> {
    let (event_seat, type_seat) = add_seat(tx, event_id, ticket_type_id, 1, guest_id).await?;
    if !event_seat {
        return Err(DomainError::new(
            ErrorCode::EventFull,
            "the event has reached its maximum number of attendees",
        ));
    }
    if !type_seat {
        return Err(DomainError::new(
            ErrorCode::SoldOut,
            "this ticket type is sold out",
        ));
    }
    Ok(())
}

/// Gives back the seat a guest held, to the event and to its ticket type.
async fn release_seat(
    tx: &Transaction<'_>,
    event_id: i64,
    ticket_type_id: Option<i64>,
    guest_id: i64,
) -> DomainResult<()> {
    match add_seat(tx, event_id, ticket_type_id, -1, guest_id).await? {
        (true, true) => Ok(()),
        _ => Err(DomainError::internal(format!(
            "event {event_id}: no seat held to give back for guest {guest_id}"
        ))),
    }
}

/// `seat_shards_add` on the event's capacity, then on the ticket type's (if any): whether
/// each found a shard with room (taking) or a seat to give back.
async fn add_seat(
    tx: &Transaction<'_>,
    event_id: i64,
    ticket_type_id: Option<i64>,
    delta: i32,
    guest_id: i64,
) -> DomainResult<(bool, bool)> {
    let stmt = tx
        .prepare_cached(
            "SELECT seat_shards_add($1, NULL, $3, $4),
                    $2::bigint IS NULL OR seat_shards_add($1, $2, $3, $4)",
        )
        .await?;
    let row = tx
        .query_one(&stmt, &[&event_id, &ticket_type_id, &delta, &guest_id])
        .await?;
    Ok((row.get(0), row.get(1)))
}

/// `seat_shards_add` on one ticket type's capacity.
async fn add_type_seat(
    tx: &Transaction<'_>,
    event_id: i64,
    ticket_type_id: i64,
    delta: i32,
    guest_id: i64,
) -> DomainResult<bool> {
    let stmt = tx
        .prepare_cached("SELECT seat_shards_add($1, $2, $3, $4)")
        .await?;
    let row = tx
        .query_one(&stmt, &[&event_id, &ticket_type_id, &delta, &guest_id])
        .await?;
    Ok(row.get(0))
}

/// Draws the id of a ticket about to be issued (see [`issue_ticket`]).
async fn next_ticket_id(tx: &Transaction<'_>) -> DomainResult<i64> {
    let stmt = tx
        .prepare_cached("SELECT nextval(pg_get_serial_sequence('tickets', 'id'))")
        .await?;
    Ok(tx.query_one(&stmt, &[]).await?.get(0))
}

/// Creates the guest's ticket (`ids`: event, guest, and the ticket id drawn beforehand, so
/// the signed payload is written with the row) with a fresh code (a collision just draws
/// another). Returns its generation job, for the caller to queue with its others.
async fn issue_ticket(
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

/// A guest row locked for this transaction, with its event's state.
struct LockedGuest {
    status: GuestStatus,
    ticket_type_id: Option<i64>,
    event_status: EventStatus,
    /// Whether the ticket type `lock_guest` was asked about is one of the event's.
    has_ticket_type: bool,
}

async fn lock_guest(
    tx: &Transaction<'_>,
    caller: &Caller,
    event_id: i64,
    guest_id: i64,
    lock: Lock,
    ticket_type: Option<i64>,
) -> DomainResult<LockedGuest> {
    let event = access::event(tx, caller, event_id, lock, ticket_type).await?;
    // The guest's ticket before the guest: the order check-in takes them in (its one
    // statement updates the ticket, then the guest), so a cancellation racing a scan of the
    // same guest waits instead of deadlocking.
    let ticket = tx
        .prepare_cached("SELECT 1 FROM tickets WHERE guest_id = $1 FOR UPDATE")
        .await?;
    tx.query(&ticket, &[&guest_id]).await?;
    let stmt = tx
        .prepare_cached(
            "SELECT status, ticket_type_id FROM guests WHERE id = $1 AND event_id = $2 FOR UPDATE",
        )
        .await?;
    let row = tx
        .query_opt(&stmt, &[&guest_id, &event_id])
        .await?
        .ok_or_else(|| DomainError::not_found("guest"))?;
    Ok(LockedGuest {
        status: sql::get(&row, "status")?,
        ticket_type_id: row.get(1),
        event_status: event.status,
        has_ticket_type: event.has_ticket_type,
    })
}

fn refuse_if_event_final(g: &LockedGuest) -> DomainResult<()> {
    if g.event_status.is_final() {
        return Err(DomainError::invalid_state(format!(
            "the event is {}",
            g.event_status.as_str()
        )));
    }
    Ok(())
}

pub async fn approve(
    tx: &Transaction<'_>,
    caller: &Caller,
    keys: &TicketKeys,
    event_id: i64,
    guest_id: i64,
) -> DomainResult<Done<Registration>> {
    let g = lock_guest(tx, caller, event_id, guest_id, Lock::Share, None).await?;
    refuse_if_event_final(&g)?;
    if g.status != GuestStatus::Pending {
        return Err(DomainError::invalid_state(format!(
            "only a pending guest can be approved (this one is {})",
            g.status.as_str()
        )));
    }
    tx.execute(
        "UPDATE guests SET status = 'confirmed', updated_at = now() WHERE id = $1",
        &[&guest_id],
    )
    .await?;
    let ticket_id = next_ticket_id(tx).await?;
    let job = issue_ticket(tx, keys, (event_id, guest_id, ticket_id), g.ticket_type_id).await?;
    outbox::enqueue(tx, job).await?;
    let guest = queries::by_id(tx, event_id, guest_id).await?;
    let ticket = tickets::queries::by_guest(tx, guest_id).await?;
    tracing::info!(event_id, guest_id, "guest approved");
    Ok(Done::new(
        Registration { guest, ticket },
        Effects::default().event_changed(event_id).jobs(),
    ))
}

pub async fn cancel(
    tx: &Transaction<'_>,
    caller: &Caller,
    event_id: i64,
    guest_id: i64,
) -> DomainResult<Done<Guest>> {
    let g = lock_guest(tx, caller, event_id, guest_id, Lock::Share, None).await?;
    refuse_if_event_final(&g)?;
    match g.status {
        GuestStatus::CheckedIn => {
            return Err(DomainError::invalid_state(
                "a checked-in guest cannot be cancelled",
            ))
        }
        GuestStatus::Cancelled => {
            return Err(DomainError::invalid_state("the guest is already cancelled"))
        }
        GuestStatus::Pending | GuestStatus::Confirmed => {}
    }
    tx.execute(
        "UPDATE guests SET status = 'cancelled', updated_at = now() WHERE id = $1",
        &[&guest_id],
    )
    .await?;
    tx.execute(
        "UPDATE tickets SET status = 'cancelled', updated_at = now() WHERE guest_id = $1",
        &[&guest_id],
    )
    .await?;
    release_seat(tx, event_id, g.ticket_type_id, guest_id).await?;
    outbox::enqueue(tx, Job::GuestCancelled { event_id, guest_id }).await?;
    let guest = queries::by_id(tx, event_id, guest_id).await?;
    tracing::info!(event_id, guest_id, "guest cancelled");
    Ok(Done::new(
        guest,
        Effects::default().event_changed(event_id).jobs(),
    ))
}

pub async fn delete(
    tx: &Transaction<'_>,
    caller: &Caller,
    event_id: i64,
    guest_id: i64,
) -> DomainResult<Done<()>> {
    // The event row is written (it had a guest): lock it for that at once, rather than
    // share it first and then wait to upgrade.
    let g = lock_guest(tx, caller, event_id, guest_id, Lock::NoKeyUpdate, None).await?;
    if g.status == GuestStatus::CheckedIn {
        return Err(DomainError::invalid_state(
            "a checked-in guest cannot be deleted",
        ));
    }
    tx.execute(
        "UPDATE events SET ever_registered = true WHERE id = $1 AND NOT ever_registered",
        &[&event_id],
    )
    .await?;
    if g.status.holds_seat() {
        release_seat(tx, event_id, g.ticket_type_id, guest_id).await?;
    }
    tx.execute("DELETE FROM guests WHERE id = $1", &[&guest_id])
        .await?;
    tracing::info!(event_id, guest_id, "guest deleted");
    Ok(Done::new((), Effects::default().event_changed(event_id)))
}

/// Queues the ticket email again. Returns the job id.
pub async fn resend_ticket(
    tx: &Transaction<'_>,
    caller: &Caller,
    event_id: i64,
    guest_id: i64,
) -> DomainResult<Done<uuid::Uuid>> {
    let g = lock_guest(tx, caller, event_id, guest_id, Lock::Share, None).await?;
    let ticket: Option<i64> = tx
        .query_opt(
            "SELECT id FROM tickets WHERE guest_id = $1 AND status = 'active'",
            &[&guest_id],
        )
        .await?
        .map(|r| r.get(0));
    let Some(ticket_id) = ticket.filter(|_| g.status.holds_seat()) else {
        return Err(DomainError::invalid_state(
            "the guest has no active ticket to send",
        ));
    };
    let job = outbox::enqueue(
        tx,
        Job::TicketResend {
            event_id,
            guest_id,
            ticket_id,
        },
    )
    .await?;
    Ok(Done::new(job, Effects::default().jobs()))
}

pub async fn update(
    tx: &Transaction<'_>,
    caller: &Caller,
    event_id: i64,
    guest_id: i64,
    input: Input<UpdateGuest>,
) -> DomainResult<Done<Guest>> {
    let ticket_type = input.peek().and_then(|u| u.ticket_type_id);
    let g = lock_guest(tx, caller, event_id, guest_id, Lock::Share, ticket_type).await?;
    let input = input.take()?;
    input.check()?;
    if let Some(new_type) = input
        .ticket_type_id
        .filter(|t| Some(*t) != g.ticket_type_id)
    {
        move_seat(tx, event_id, guest_id, &g, new_type).await?;
    }
    let (set_phone, phone) = match &input.phone {
        Some(p) => (true, p.clone()),
        None => (false, None),
    };
    let stmt = tx
        .prepare_cached(
            "UPDATE guests SET first_name = COALESCE($2, first_name), last_name = COALESCE($3, last_name),
                    email = COALESCE($4, email), phone = CASE WHEN $5 THEN $6 ELSE phone END, updated_at = now()
              WHERE id = $1",
        )
        .await?;
    tx.execute(
        &stmt,
        &[
            &guest_id,
            &input.first_name,
            &input.last_name,
            &input.email,
            &set_phone,
            &phone,
        ],
    )
    .await
    .on_constraint(ACTIVE_EMAIL_KEY, duplicate)?;
    let guest = queries::by_id(tx, event_id, guest_id).await?;
    Ok(Done::new(guest, Effects::default().event_changed(event_id)))
}

/// Moves a seat-holding guest to another ticket type of the same event. The two ticket
/// type rows are updated in id order so two opposite moves cannot deadlock.
async fn move_seat(
    tx: &Transaction<'_>,
    event_id: i64,
    guest_id: i64,
    g: &LockedGuest,
    to: i64,
) -> DomainResult<()> {
    match g.status {
        GuestStatus::Pending | GuestStatus::Confirmed => {}
        GuestStatus::CheckedIn => {
            return Err(DomainError::invalid_state(
                "a checked-in guest cannot change ticket type",
            ))
        }
        GuestStatus::Cancelled => {
            return Err(DomainError::invalid_state(
                "a cancelled guest holds no seat to move",
            ))
        }
    }
    refuse_if_event_final(g)?;
    check_ticket_type(true, g.has_ticket_type, Some(to))?;
    let take = || async {
        if !add_type_seat(tx, event_id, to, 1, guest_id).await? {
            return Err(DomainError::new(
                ErrorCode::SoldOut,
                "the new ticket type is sold out",
            ));
        }
        Ok(())
    };
    let give_back = |from: i64| async move {
        if !add_type_seat(tx, event_id, from, -1, guest_id).await? {
            return Err(DomainError::internal(format!(
                "ticket type {from}: no seat held to give back for guest {guest_id}"
            )));
        }
        Ok(())
    };
    match g.ticket_type_id {
        Some(from) if from < to => {
            give_back(from).await?;
            take().await?;
        }
        Some(from) => {
            take().await?;
            give_back(from).await?;
        }
        None => take().await?,
    }
    tx.execute(
        "UPDATE guests SET ticket_type_id = $2 WHERE id = $1",
        &[&guest_id, &to],
    )
    .await?;
    tx.execute(
        "UPDATE tickets SET ticket_type_id = $2 WHERE guest_id = $1",
        &[&guest_id, &to],
    )
    .await?;
    Ok(())
}
