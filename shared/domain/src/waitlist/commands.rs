//! Waiting-list commands: join, list, remove, claim (by the organizer, or by the token of
//! the offer email).

use deadpool_postgres::{GenericClient, Transaction};
use serde_json::json;
use tokio_postgres::types::ToSql;

use super::input::{ClaimOffer, ListWaitlist};
use super::model::{WaitlistEntry, WaitlistPage, WaitlistStatus, ENTRY_COLUMNS};
use super::offers;
use crate::access::{self, Lock, Owned};
use crate::audit;
use crate::caller::Caller;
use crate::error::{DbResultExt, DomainError, DomainResult, ErrorCode};
use crate::events::EventStatus;
use crate::guests::commands::check_ticket_type;
use crate::guests::input::Register;
use crate::guests::GuestStatus;
use crate::outbox;
use crate::page::{page_and_total, PageQuery, Pagination, Plan};
use crate::registration::{insert_guest, Inserted, Registered};
use crate::rules::Input;
use crate::sql;
use crate::tickets::signing::TicketKeys;
use crate::webhooks::{self, EventType};
use crate::work::{Done, Effects};

const ACTIVE_EMAIL_KEY: &str = "waitlist_entries_active_email";

fn closed(reason: &str) -> DomainError {
    DomainError::new(
        ErrorCode::RegistrationClosed,
        format!("registration is closed: {reason}"),
    )
}

/// The event must take registrations (published, not started) for an entry to join or claim.
fn refuse_unless_open(event: &Owned) -> DomainResult<()> {
    if event.status != EventStatus::Published {
        return Err(closed(&format!("the event is {}", event.status.as_str())));
    }
    if event.event_date <= chrono::Utc::now() {
        return Err(closed("the event has started"));
    }
    Ok(())
}

/// `POST /api/events/{eventId}/waitlist`: a new entry at the end of the queue. When seats
/// are free (nobody waiting before it), the offer is made at once, in this transaction.
pub async fn join(
    tx: &Transaction<'_>,
    caller: &Caller,
    event_id: i64,
    input: Input<Register>,
) -> DomainResult<Done<WaitlistEntry>> {
    let ticket_type = input.peek().and_then(|r| r.ticket_type_id);
    let event = access::event(tx, caller, event_id, Lock::Share, ticket_type).await?;
    let input = input.take()?;
    input.check()?;
    check_ticket_type(
        event.has_ticket_types,
        event.has_ticket_type,
        input.ticket_type_id,
    )?;
    if !event.waitlist_enabled {
        return Err(DomainError::invalid_state(
            "the waiting list is not enabled for this event (waitlistEnabled)",
        ));
    }
    refuse_unless_open(&event)?;
    let registered = tx
        .prepare_cached(
            "SELECT 1 FROM guests WHERE event_id = $1 AND lower(email) = lower($2) AND status <> 'cancelled'",
        )
        .await?;
    if tx
        .query_opt(&registered, &[&event_id, &input.email])
        .await?
        .is_some()
    {
        return Err(DomainError::new(
            ErrorCode::DuplicateGuest,
            "this email is already registered for this event",
        ));
    }
    // The waiting list's row, created with the first entry: locked, it hands out positions.
    let position = tx
        .prepare_cached(
            "INSERT INTO waitlists (event_id, last_position) VALUES ($1, 1)
             ON CONFLICT (event_id) DO UPDATE SET last_position = waitlists.last_position + 1
             RETURNING last_position",
        )
        .await?;
    let position: i64 = tx.query_one(&position, &[&event_id]).await?.get(0);
    let insert = tx
        .prepare_cached(
            "INSERT INTO waitlist_entries (event_id, ticket_type_id, first_name, last_name, email, phone, position)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .await?;
    let id: i64 = tx
        .query_one(
            &insert,
            &[
                &event_id,
                &input.ticket_type_id,
                &input.first_name,
                &input.last_name,
                &input.email,
                &input.phone,
                &position,
            ],
        )
        .await
        .on_constraint(ACTIVE_EMAIL_KEY, || {
            DomainError::new(
                ErrorCode::DuplicateGuest,
                "this email is already on the waiting list of this event",
            )
        })?
        .get(0);
    let list = offers::Locked {
        event_id,
        organizer_id: event.organizer_id.clone(),
        offer_minutes: event.waitlist_offer_minutes,
        enabled: true,
    };
    let offered = offers::fill(tx, &list).await?;
    audit::record(
        tx,
        caller,
        Some(event_id),
        "waitlist.joined",
        "waitlist_entry",
        Some(id),
        json!({"ticketTypeId": input.ticket_type_id, "position": position}),
    )
    .await?;
    let entry = by_id(tx, event_id, id).await?;
    tracing::info!(
        event_id,
        entry_id = id,
        position,
        "waiting-list entry added"
    );
    let effects = Effects::default().event_changed(event_id);
    Ok(Done::new(
        entry,
        if offered > 0 { effects.jobs() } else { effects },
    ))
}

pub async fn by_id(
    db: &impl GenericClient,
    event_id: i64,
    entry_id: i64,
) -> DomainResult<WaitlistEntry> {
    let stmt = db
        .prepare_cached(&format!(
            "SELECT {ENTRY_COLUMNS} FROM waitlist_entries w WHERE w.id = $1 AND w.event_id = $2"
        ))
        .await?;
    let row = db
        .query_opt(&stmt, &[&entry_id, &event_id])
        .await?
        .ok_or_else(|| DomainError::not_found("waiting-list entry"))?;
    WaitlistEntry::from_row(&row)
}

/// `GET /api/events/{eventId}/waitlist`: in position order.
pub async fn list(
    db: &impl GenericClient,
    caller: &Caller,
    event_id: i64,
    q: &ListWaitlist,
) -> DomainResult<WaitlistPage> {
    q.check()?;
    access::event(db, caller, event_id, Lock::None, None).await?;
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> = vec![Box::new(event_id)];
    let mut conditions = vec!["w.event_id = $1".to_owned()];
    if let Some(status) = q.status {
        params.push(Box::new(status.as_str()));
        conditions.push(format!("w.status = ${}", params.len()));
    }
    if let Some(t) = q.ticket_type_id {
        params.push(Box::new(t));
        conditions.push(format!("w.ticket_type_id = ${}", params.len()));
    }
    let from_where = format!("FROM waitlist_entries w WHERE {}", conditions.join(" AND "));
    let (page, limit) = (q.page(), q.limit());
    let (rows, total) = page_and_total(
        db,
        None,
        PageQuery {
            columns: ENTRY_COLUMNS,
            from_where: &from_where,
            order: "w.position",
            params: &params,
            page,
            limit,
            count_sql: None,
            plan: Plan::Cached,
        },
    )
    .await?;
    Ok(WaitlistPage {
        entries: rows
            .iter()
            .map(WaitlistEntry::from_row)
            .collect::<DomainResult<_>>()?,
        pagination: Pagination::new(page, limit, total),
    })
}

/// `DELETE /api/events/{eventId}/waitlist/{entryId}`: the entry is `removed`; an offer's
/// held seat goes to the next entry (or back on sale).
pub async fn remove(
    tx: &Transaction<'_>,
    caller: &Caller,
    event_id: i64,
    entry_id: i64,
) -> DomainResult<Done<WaitlistEntry>> {
    access::event(tx, caller, event_id, Lock::Share, None).await?;
    offers::lock(tx, event_id).await?;
    let stmt = tx
        .prepare_cached(
            "SELECT status, ticket_type_id FROM waitlist_entries WHERE id = $1 AND event_id = $2 FOR UPDATE",
        )
        .await?;
    let row = tx
        .query_opt(&stmt, &[&entry_id, &event_id])
        .await?
        .ok_or_else(|| DomainError::not_found("waiting-list entry"))?;
    let status: WaitlistStatus = sql::get(&row, "status")?;
    let ticket_type: Option<i64> = row.get(1);
    match status {
        WaitlistStatus::Waiting | WaitlistStatus::Offered => {}
        WaitlistStatus::Removed => {
            return Ok(Done::new(
                by_id(tx, event_id, entry_id).await?,
                Effects::default(),
            ))
        }
        other => {
            return Err(DomainError::invalid_state(format!(
                "a {} entry cannot be removed",
                other.as_str()
            )))
        }
    }
    tx.execute(
        "UPDATE waitlist_entries SET status = 'removed', updated_at = now() WHERE id = $1",
        &[&entry_id],
    )
    .await?;
    if status == WaitlistStatus::Offered {
        offers::seat_freed(tx, event_id, ticket_type, entry_id).await?;
    }
    audit::record(
        tx,
        caller,
        Some(event_id),
        "waitlist.removed",
        "waitlist_entry",
        Some(entry_id),
        json!({"status": status.as_str()}),
    )
    .await?;
    let entry = by_id(tx, event_id, entry_id).await?;
    let effects = Effects::default().event_changed(event_id);
    Ok(Done::new(
        entry,
        if status == WaitlistStatus::Offered {
            effects.jobs()
        } else {
            effects
        },
    ))
}

/// Who claims an offer.
pub enum Claimant<'a> {
    /// An organizer or admin, naming the entry.
    Manager(&'a Caller, i64, i64),
    /// Whoever holds the token of the offer email (the public endpoint).
    TokenHolder(Input<ClaimOffer>),
}

/// Turns an offer into a registration: the guest (confirmed) and its ticket, with the jobs
/// of a registration, on the seat the offer held (no seat is taken: it already is).
/// OFFER_EXPIRED after `offerExpiresAt` (whether or not the sweep has run) or once the
/// offer was withdrawn; a claimed offer cannot be claimed again.
pub async fn claim(
    tx: &Transaction<'_>,
    keys: &TicketKeys,
    who: Claimant<'_>,
) -> DomainResult<Done<Registered>> {
    let (event, entry_id, actor) = match who {
        Claimant::Manager(caller, event_id, entry_id) => {
            let event = access::event(tx, caller, event_id, Lock::Share, None).await?;
            (
                event,
                entry_id,
                (caller.user_id.clone(), caller.role.as_str()),
            )
        }
        Claimant::TokenHolder(input) => {
            let input = input.take()?;
            input.check()?;
            let stmt = tx
                .prepare_cached(
                    "SELECT event_id, id FROM waitlist_entries WHERE claim_token_hash = $1",
                )
                .await?;
            let row = tx
                .query_opt(&stmt, &[&offers::token_hash(&input.token)])
                .await?
                .ok_or_else(|| DomainError::not_found("offer"))?;
            let (event_id, entry_id): (i64, i64) = (row.get(0), row.get(1));
            let event = access::event_for_token_holder(tx, event_id, Lock::Share).await?;
            (
                event,
                entry_id,
                (format!("waitlist-entry:{entry_id}"), "guest"),
            )
        }
    };
    let event_id = event.id;
    let stmt = tx
        .prepare_cached(
            "SELECT status, offer_expires_at > clock_timestamp() AS live, ticket_type_id,
                    first_name, last_name, email, phone
               FROM waitlist_entries WHERE id = $1 AND event_id = $2 FOR UPDATE",
        )
        .await?;
    let row = tx
        .query_opt(&stmt, &[&entry_id, &event_id])
        .await?
        .ok_or_else(|| DomainError::not_found("waiting-list entry"))?;
    let status: WaitlistStatus = sql::get(&row, "status")?;
    let live: Option<bool> = row.get("live");
    match status {
        WaitlistStatus::Offered if live == Some(true) => {}
        WaitlistStatus::Offered | WaitlistStatus::Expired | WaitlistStatus::Removed => {
            return Err(DomainError::new(
                ErrorCode::OfferExpired,
                "this offer has expired or was withdrawn",
            ))
        }
        WaitlistStatus::Claimed => {
            return Err(DomainError::invalid_state("this offer was already claimed"))
        }
        WaitlistStatus::Waiting => {
            return Err(DomainError::invalid_state(
                "this entry has no offer yet: it is still waiting",
            ))
        }
    }
    refuse_unless_open(&event)?;
    let guest = Register {
        first_name: row.get("first_name"),
        last_name: row.get("last_name"),
        email: row.get("email"),
        phone: row.get("phone"),
        ticket_type_id: row.get("ticket_type_id"),
    };
    // The audit entry of the registration names who claimed.
    let Inserted {
        guest_id,
        jobs,
        deliveries,
    } = insert_guest(
        tx,
        (&actor.0, actor.1),
        keys,
        (event_id, &event.organizer_id),
        &guest,
        GuestStatus::Confirmed,
    )
    .await?;
    outbox::enqueue_all(tx, &jobs).await?;
    let stmt = tx
        .prepare_cached(&format!(
            "UPDATE waitlist_entries w SET status = 'claimed', guest_id = $2, updated_at = now()
              WHERE id = $1 RETURNING {ENTRY_COLUMNS}"
        ))
        .await?;
    let entry = WaitlistEntry::from_row(&tx.query_one(&stmt, &[&entry_id, &guest_id]).await?)?;
    webhooks::emit(tx, &event.organizer_id, EventType::WaitlistClaimed, &entry).await?;
    audit::record_as(
        tx,
        (&actor.0, actor.1),
        Some(event_id),
        "waitlist.claimed",
        "waitlist_entry",
        Some(entry_id),
        json!({"guestId": guest_id}),
    )
    .await?;
    tracing::info!(event_id, entry_id, guest_id, "waiting-list offer claimed");
    Ok(Done::new(
        Registered { event_id, guest_id },
        Effects::default()
            .event_changed(event_id)
            .jobs()
            .webhooks(deliveries),
    ))
}
