//! Registration: a guest takes a seat and, when confirmed, gets a signed ticket; approval
//! confirms a pending guest and issues the ticket then. Above both `guests` and `tickets`
//! (a registration answers the guest with its ticket), so neither depends on the other's
//! commands.
//!
//! Duplicate registrations are refused by the partial unique index on
//! `(event_id, lower(email)) WHERE status <> 'cancelled'`: of two racing inserts the
//! second waits for the first and fails with a unique violation (`DUPLICATE_GUEST`) if
//! the first commits. Seats are taken last ([`crate::capacity`]), just before the commit.

use std::sync::LazyLock;

use deadpool_postgres::{GenericClient, Transaction};
use serde::Serialize;
use utoipa::ToSchema;

use crate::access::{self, Lock};
use crate::audit;
use crate::caller::Caller;
use crate::capacity::take_seat;
use crate::error::{DbResultExt, DomainError, DomainResult, ErrorCode};
use crate::events::EventStatus;
use crate::guests::commands::{
    check_ticket_type, duplicate, lock_guest, refuse_if_event_final, ACTIVE_EMAIL_KEY,
};
use crate::guests::input::Register;
use crate::guests::{queries, Guest, GuestStatus};
use crate::outbox::{self, Job};
use crate::rules::Input;
use crate::tickets::issue::{issue_ticket, sign_ticket, NewTicket};
use crate::tickets::signing::TicketKeys;
use crate::tickets::{self, Ticket};
use crate::webhooks::emit::INLINE;
use crate::webhooks::{self, EventType};
use crate::work::{Done, Effects};

/// What a registration or an approval answers.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Registration {
    pub guest: Guest,
    /// Null while the guest awaits approval.
    pub ticket: Option<Ticket>,
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
) -> DomainResult<Done<Registration>> {
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

    let Inserted {
        guest_id,
        jobs,
        deliveries,
    } = insert_guest(
        tx,
        (&caller.user_id, caller.role.as_str()),
        keys,
        (event_id, &event.organizer_id),
        &input,
        status,
    )
    .await?;
    // The jobs and the answer (two statements at once, one round trip), before the seat: the
    // answer is what the route sends and what an Idempotency-Key stores with the change.
    let (_, registration) = tokio::try_join!(
        async {
            outbox::enqueue_all(tx, &jobs)
                .await
                .map_err(DomainError::from)
        },
        read(tx, event_id, guest_id)
    )?;
    // Last, so the seat shards stay locked only until the commit right after.
    take_seat(tx, event_id, input.ticket_type_id, guest_id).await?;
    tracing::info!(
        event_id,
        guest_id,
        status = status.as_str(),
        "guest registered"
    );
    Ok(Done::new(
        registration,
        Effects::default()
            .event_changed(event_id)
            .jobs()
            .webhooks(deliveries),
    ))
}

/// The statement of [`insert_guest`]: the guest, its ticket when confirmed, its audit entry and
/// its guest.registered deliveries, written by `webhook_write` or (`inline_hooks`) by an insert
/// of the statement ([`webhooks::emit::Inline`]). `$1` event, `$2` ticket type, `$3`..`$6` first
/// name, last name, email, phone, `$7` status, `$8` ticket code, `$9` organizer, `$10`/`$11`
/// the actor.
fn insert_guest_sql(inline_hooks: bool) -> String {
    let (hook, hooks) = if inline_hooks {
        webhooks::emit::inline_guest_deliveries(
            EventType::GuestRegistered,
            "$9",
            "guest_snapshot(ROW(guest.*)::guests, (SELECT id FROM ticket), NULL)",
            "guest",
        )
    } else {
        (
            "hook AS (
                 SELECT webhook_write($9, 'guest.registered',
                                      webhook_guest(ROW(guest.*)::guests, (SELECT id FROM ticket), NULL),
                                      interval '1 minute') AS ids
                   FROM guest)"
                .to_owned(),
            "(SELECT ids FROM hook)",
        )
    };
    format!(
        "WITH guest AS (
                 INSERT INTO guests (event_id, ticket_type_id, first_name, last_name, email, phone, status)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 RETURNING *),
             ticket AS (
                 INSERT INTO tickets (guest_id, event_id, ticket_type_id, ticket_code)
                 SELECT guest.id, $1, $2, $8 FROM guest WHERE $7 = 'confirmed'
                 ON CONFLICT (ticket_code) DO NOTHING
                 RETURNING id),
             -- the audit entry (no personal data) and guest.registered webhooks, in this statement
             audit AS (
                 INSERT INTO audit_log (event_id, actor_sub, actor_role, action, entity, entity_id, changes)
                 SELECT $1, $10, $11, 'guest.registered', 'guest', guest.id,
                        jsonb_build_object('status', guest.status, 'ticketTypeId', guest.ticket_type_id)
                   FROM guest),
             {hook}
             SELECT guest.id, (SELECT id FROM ticket), {hooks} FROM guest"
    )
}

static INSERT_GUEST: LazyLock<String> = LazyLock::new(|| insert_guest_sql(false));
static INSERT_GUEST_INLINE_HOOKS: LazyLock<String> = LazyLock::new(|| insert_guest_sql(true));

/// Inserts a registered guest and, when confirmed, its signed ticket, with its audit entry and
/// `guest.registered` webhooks, and returns the guest's id with the jobs to queue and the
/// deliveries written. Takes no
/// seat: a registration takes one after ([`register`]), a waiting-list claim already holds
/// one (`crate::waitlist`).
pub(crate) async fn insert_guest(
    tx: &Transaction<'_>,
    (actor_sub, actor_role): (&str, &str),
    keys: &TicketKeys,
    (event_id, organizer_id): (i64, &str),
    input: &Register,
    status: GuestStatus,
) -> DomainResult<Inserted> {
    // The guest row and, when confirmed, its ticket row in one statement (one round trip);
    // their ids come from the inserts (no `nextval()`, which would pin an RDS Proxy session).
    // The ticket's signed payload names its id, so it is written right after.
    let code = tickets::code::generate(chrono::Datelike::year(&chrono::Utc::now()));
    let inline = INLINE.get(EventType::GuestRegistered, Some(organizer_id));
    let stmt = tx
        .prepare_cached(if inline {
            &INSERT_GUEST_INLINE_HOOKS
        } else {
            &INSERT_GUEST
        })
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
                &code,
                &organizer_id,
                &actor_sub,
                &actor_role,
            ],
        )
        .await
        .on_constraint(ACTIVE_EMAIL_KEY, duplicate)?;
    let (guest_id, ticket_id, deliveries): (i64, Option<i64>, Vec<i64>) =
        (row.get(0), row.get(1), row.get(2));
    INLINE.learn(
        EventType::GuestRegistered,
        Some(organizer_id),
        inline,
        !deliveries.is_empty(),
    );
    if !deliveries.is_empty() {
        tracing::info!(
            event_id,
            guest_id,
            deliveries = deliveries.len(),
            "guest.registered webhooks written"
        );
    }
    let mut jobs = vec![Job::RegistrationConfirmation { event_id, guest_id }];
    match ticket_id {
        Some(id) => {
            let ticket = NewTicket { id, event_id, code };
            jobs.push(sign_ticket(tx, keys, &ticket).await?);
        }
        // Confirmed, but the drawn code was taken (rare): another code.
        None if status == GuestStatus::Confirmed => {
            jobs.push(issue_ticket(tx, keys, (event_id, guest_id), input.ticket_type_id).await?);
        }
        None => {}
    }
    Ok(Inserted {
        guest_id,
        jobs,
        deliveries,
    })
}

/// A guest written by [`insert_guest`]: its id, the jobs to queue, and the `guest.registered`
/// webhook deliveries, whose messages the caller's effects send after the commit.
pub(crate) struct Inserted {
    pub guest_id: i64,
    pub jobs: Vec<Job>,
    pub deliveries: Vec<i64>,
}

/// A registration that committed; [`read`] reads what the API answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Registered {
    pub event_id: i64,
    pub guest_id: i64,
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
    let job = issue_ticket(tx, keys, (event_id, guest_id), g.ticket_type_id).await?;
    outbox::enqueue(tx, job).await?;
    let guest = queries::by_id(tx, event_id, guest_id).await?;
    let ticket = tickets::queries::by_guest(tx, guest_id).await?;
    webhooks::emit(tx, &g.organizer_id, EventType::GuestApproved, &guest).await?;
    audit::record(
        tx,
        caller,
        Some(event_id),
        "guest.approved",
        "guest",
        Some(guest_id),
        serde_json::json!({}),
    )
    .await?;
    tracing::info!(event_id, guest_id, "guest approved");
    Ok(Done::new(
        Registration { guest, ticket },
        Effects::default().event_changed(event_id).jobs(),
    ))
}

/// What a registration answers: the guest and its ticket (two statements at once).
pub async fn read(
    db: &impl GenericClient,
    event_id: i64,
    guest_id: i64,
) -> DomainResult<Registration> {
    let (guest, ticket) = tokio::try_join!(
        queries::by_id(db, event_id, guest_id),
        tickets::queries::by_guest(db, guest_id)
    )?;
    Ok(Registration { guest, ticket })
}
