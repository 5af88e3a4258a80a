//! Changing guests: cancellation, deletion, edits, resending the ticket (registration and
//! approval, which issue tickets, are [`crate::registration`]). Each runs in the
//! transaction it is given (the edge's unit of work commits it, then applies the returned
//! effects), with the jobs it causes written to the outbox inside it.
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
use serde_json::json;

use super::input::UpdateGuest;
use super::model::{Guest, GuestStatus, GUEST_STATUS, GUEST_VERSION};
use super::queries;
use crate::access::{self, Lock};
use crate::audit;
use crate::caller::Caller;
use crate::capacity;
use crate::error::{DbResultExt, DomainError, DomainResult, ErrorCode};
use crate::etag;
use crate::events::EventStatus;
use crate::outbox::{self, Job};
use crate::rules::Input;
use crate::sql;
use crate::waitlist;
use crate::webhooks::{self, EventType};
use crate::work::{Done, Effects};

pub(crate) const ACTIVE_EMAIL_KEY: &str = "guests_event_email_active_key";

pub(crate) fn duplicate() -> DomainError {
    DomainError::new(
        ErrorCode::DuplicateGuest,
        "this email is already registered for this event",
    )
}

/// A guest row locked for this transaction, with its event's state.
pub(crate) struct LockedGuest {
    pub(crate) status: GuestStatus,
    pub(crate) ticket_type_id: Option<i64>,
    pub(crate) event_status: EventStatus,
    /// Whether the ticket type `lock_guest` was asked about is one of the event's.
    pub(crate) has_ticket_type: bool,
    pub(crate) organizer_id: String,
    /// The guest row's version (`crate::etag`), read under its lock.
    pub(crate) version: String,
}

pub(crate) async fn lock_guest(
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
    // The status and version as the API shows them (they follow the ticket's check-in, which
    // the lock above holds still).
    let stmt = tx
        .prepare_cached(&format!(
            "SELECT {GUEST_STATUS} AS status, g.ticket_type_id, {GUEST_VERSION}
               FROM guests g LEFT JOIN tickets t ON t.guest_id = g.id
              WHERE g.id = $1 AND g.event_id = $2 FOR UPDATE OF g"
        ))
        .await?;
    let row = tx
        .query_opt(&stmt, &[&guest_id, &event_id])
        .await?
        .ok_or_else(|| DomainError::not_found("guest"))?;
    Ok(LockedGuest {
        status: sql::get(&row, "status")?,
        ticket_type_id: row.get(1),
        event_status: event.status,
        organizer_id: event.organizer_id.clone(),
        version: row.get("version"),
        has_ticket_type: event.has_ticket_type,
    })
}

/// `ticketTypeId` is required when the event has ticket types, and must be one of them
/// (`is_one`: whether it is, as [`access::Owned`] found).
pub(crate) fn check_ticket_type(
    has_types: bool,
    is_one: bool,
    id: Option<i64>,
) -> DomainResult<()> {
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

pub(crate) fn refuse_if_event_final(g: &LockedGuest) -> DomainResult<()> {
    if g.event_status.is_final() {
        return Err(DomainError::invalid_state(format!(
            "the event is {}",
            g.event_status.as_str()
        )));
    }
    Ok(())
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
    // The seat goes to the waiting list's next entry, if any (else back on sale).
    waitlist::offers::seat_freed(tx, event_id, g.ticket_type_id, guest_id).await?;
    outbox::enqueue(tx, Job::GuestCancelled { event_id, guest_id }).await?;
    let guest = queries::by_id(tx, event_id, guest_id).await?;
    webhooks::emit(tx, &g.organizer_id, EventType::GuestCancelled, &guest).await?;
    audit::record(
        tx,
        caller,
        Some(event_id),
        "guest.cancelled",
        "guest",
        Some(guest_id),
        json!({}),
    )
    .await?;
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
    if_match: Option<&str>,
) -> DomainResult<Done<()>> {
    // The event row is written (it had a guest): lock it for that at once, rather than
    // share it first and then wait to upgrade.
    let g = lock_guest(tx, caller, event_id, guest_id, Lock::NoKeyUpdate, None).await?;
    etag::check(if_match, &g.version)?;
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
        waitlist::offers::seat_freed(tx, event_id, g.ticket_type_id, guest_id).await?;
    }
    tx.execute("DELETE FROM guests WHERE id = $1", &[&guest_id])
        .await?;
    audit::record(
        tx,
        caller,
        Some(event_id),
        "guest.deleted",
        "guest",
        Some(guest_id),
        json!({}),
    )
    .await?;
    tracing::info!(event_id, guest_id, "guest deleted");
    // A freed seat may have become a waiting-list offer (its email in the outbox).
    Ok(Done::new(
        (),
        Effects::default().event_changed(event_id).jobs(),
    ))
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
    audit::record(
        tx,
        caller,
        Some(event_id),
        "guest.ticket_resent",
        "guest",
        Some(guest_id),
        json!({}),
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
    etag::check(input.if_match(), &g.version)?;
    let input = input.take()?;
    input.check()?;
    // The fields changed, not their values (personal data stays out of the log).
    audit::record(
        tx,
        caller,
        Some(event_id),
        "guest.updated",
        "guest",
        Some(guest_id),
        audit::fields_of(&input),
    )
    .await?;
    let moved = input
        .ticket_type_id
        .filter(|t| Some(*t) != g.ticket_type_id);
    if let Some(new_type) = moved {
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
    let effects = Effects::default().event_changed(event_id);
    // A move may have made a waiting-list offer (its email in the outbox).
    Ok(Done::new(
        guest,
        if moved.is_some() {
            effects.jobs()
        } else {
            effects
        },
    ))
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
        if !capacity::add_type_seat(tx, event_id, to, 1, guest_id).await? {
            return Err(DomainError::new(
                ErrorCode::SoldOut,
                "the new ticket type is sold out",
            ));
        }
        Ok(())
    };
    let give_back = |from: i64| async move {
        if !capacity::add_type_seat(tx, event_id, from, -1, guest_id).await? {
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
    // The old ticket type has a seat free: to its waiting list, if any.
    waitlist::offers::refill(tx, event_id).await?;
    Ok(())
}
