//! Changing events and their ticket types. Each command runs in the transaction it is given
//! (the edge's unit of work commits it and applies the returned effects): it locks the event
//! row (`FOR UPDATE`, through the tenancy gate) before checking a rule that depends on its
//! state, so two concurrent changes cannot both pass a check that only one of them may pass.

use chrono::Utc;
use deadpool_postgres::{GenericClient, Transaction};
use serde_json::json;

use super::input::{CreateEvent, NewTicketType, UpdateEvent, UpdateTicketType, MAX_TICKET_TYPES};
use super::model::{Event, EventStatus, TicketType};
use super::queries;
use crate::access::{self, Lock};
use crate::audit;
use crate::caller::Caller;
use crate::error::{DbResultExt, DomainError, DomainResult, ErrorCode};
use crate::etag;
use crate::guests::model::checked_in_count;
use crate::outbox::{self, Job};
use crate::rules::Input;
use crate::waitlist;
use crate::webhooks::{self, EventType};
use crate::work::{Done, Effects};

const TICKET_TYPE_NAME_KEY: &str = "ticket_types_event_name_key";

fn duplicate_name() -> DomainError {
    DomainError::new(
        ErrorCode::InvalidState,
        "a ticket type with this name already exists for this event",
    )
}

pub async fn create(
    tx: &Transaction<'_>,
    caller: &Caller,
    input: CreateEvent,
) -> DomainResult<Done<Event>> {
    let event_date = input.check()?;
    let stmt = tx
        .prepare_cached(
            "INSERT INTO events (organizer_id, title, description, event_date, location, max_attendees, requires_approval,
                                 waitlist_enabled, waitlist_offer_minutes)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, COALESCE($9, 1440)) RETURNING id",
        )
        .await?;
    let max = input.max_attendees as i32;
    let id: i64 = tx
        .query_one(
            &stmt,
            &[
                &caller.user_id,
                &input.title,
                &input.description,
                &event_date,
                &input.location,
                &max,
                &input.requires_approval,
                &input.waitlist_enabled,
                &input.waitlist_offer_minutes.map(|m| m as i32),
            ],
        )
        .await?
        .get(0);
    insert_ticket_types(tx, id, &input.ticket_types).await?;
    let event = queries::get(tx, caller, id).await?;
    audit::record(
        tx,
        caller,
        Some(id),
        "event.created",
        "event",
        Some(id),
        json!({"title": event.title, "eventDate": event.event_date, "location": event.location,
               "maxAttendees": event.max_attendees, "ticketTypes": event.ticket_types.len()}),
    )
    .await?;
    tracing::info!(event_id = id, organizer_id = %caller.user_id, "event created");
    Ok(Done::new(event, Effects::default().event_changed(id)))
}

/// The locked state of an event a command is about to change.
struct Locked {
    status: EventStatus,
    max_attendees: i32,
    registered: i32,
    ever_registered: bool,
    ticket_types: i64,
    /// The event row's version under the lock (`crate::etag`).
    version: String,
}

/// Locks the event row for this transaction (through the tenancy gate: NOT_FOUND when it
/// is not the caller's), with the counts the event rules need.
async fn lock(tx: &Transaction<'_>, caller: &Caller, id: i64) -> DomainResult<Locked> {
    let event = access::event(tx, caller, id, Lock::Update, None).await?;
    let stmt = tx
        .prepare_cached(
            "SELECT seats_taken($1, NULL), (SELECT count(*) FROM ticket_types t WHERE t.event_id = $1)",
        )
        .await?;
    let row = tx.query_one(&stmt, &[&id]).await?;
    Ok(Locked {
        status: event.status,
        max_attendees: event.max_attendees,
        registered: row.get(0),
        ever_registered: event.ever_registered,
        ticket_types: row.get(1),
        version: event.version,
    })
}

fn refuse_if_final(status: EventStatus) -> DomainResult<()> {
    if status.is_final() {
        return Err(DomainError::invalid_state(format!(
            "the event is {} and can no longer change",
            status.as_str()
        )));
    }
    Ok(())
}

pub async fn update(
    tx: &Transaction<'_>,
    caller: &Caller,
    id: i64,
    input: Input<UpdateEvent>,
) -> DomainResult<Done<Event>> {
    let current = lock(tx, caller, id).await?;
    etag::check(input.if_match(), &current.version)?;
    let input = input.take()?;
    let event_date = input.check()?;
    refuse_if_final(current.status)?;

    let max_attendees = input
        .max_attendees
        .map(|m| m as i32)
        .unwrap_or(current.max_attendees);
    if max_attendees < current.registered {
        return Err(DomainError::invalid_state(format!(
            "maxAttendees cannot drop below the {} guests already registered",
            current.registered
        )));
    }
    if let Some(next) = input.status {
        if !current.status.can_become(next) {
            return Err(DomainError::invalid_state(format!(
                "an event cannot go from {} to {}",
                current.status.as_str(),
                next.as_str()
            )));
        }
        if next == EventStatus::Published && current.status != next {
            let date = match event_date {
                Some(d) => d,
                None => tx
                    .query_one("SELECT event_date FROM events WHERE id = $1", &[&id])
                    .await?
                    .get(0),
            };
            if date <= Utc::now() {
                return Err(DomainError::invalid_state(
                    "an event that has already started cannot be published",
                ));
            }
        }
    }

    let (set_description, description) = match &input.description {
        Some(d) => (true, d.clone()),
        None => (false, None),
    };
    let stmt = tx
        .prepare_cached(
            "UPDATE events SET
                title = COALESCE($2, title),
                description = CASE WHEN $3 THEN $4 ELSE description END,
                event_date = COALESCE($5, event_date),
                location = COALESCE($6, location),
                max_attendees = $7,
                requires_approval = COALESCE($8, requires_approval),
                status = COALESCE($9, status),
                waitlist_enabled = COALESCE($10, waitlist_enabled),
                waitlist_offer_minutes = COALESCE($11, waitlist_offer_minutes),
                updated_at = now()
              WHERE id = $1",
        )
        .await?;
    tx.execute(
        &stmt,
        &[
            &id,
            &input.title,
            &set_description,
            &description,
            &event_date,
            &input.location,
            &max_attendees,
            &input.requires_approval,
            &input.status.map(EventStatus::as_str),
            &input.waitlist_enabled,
            &input.waitlist_offer_minutes.map(|m| m as i32),
        ],
    )
    .await?;

    if let Some(types) = &input.ticket_types {
        replace_ticket_types(tx, id, types, max_attendees).await?;
    }
    let cancelled = input.status == Some(EventStatus::Cancelled);
    let mut offered = false;
    if cancelled {
        cancel_registrations(tx, id).await?;
    } else {
        // A raised capacity (or a waiting list switched on) offers the free seats to the
        // waiting entries before any registration can take them: the event row is locked
        // FOR UPDATE, so none is running.
        offered = waitlist::offers::refill(tx, id).await? > 0;
    }
    let event = queries::get(tx, caller, id).await?;
    tracing::info!(
        event_id = id,
        status = event.status.as_str(),
        "event updated"
    );
    let action = match input.status {
        Some(EventStatus::Published) if current.status != EventStatus::Published => {
            "event.published"
        }
        Some(EventStatus::Cancelled) if current.status != EventStatus::Cancelled => {
            "event.cancelled"
        }
        _ => "event.updated",
    };
    audit::record(
        tx,
        caller,
        Some(id),
        action,
        "event",
        Some(id),
        audit::values_of(&input),
    )
    .await?;
    // Integrations hear of a status change in its transaction.
    let announced = match input.status {
        Some(next) if next != current.status => {
            let kind = match next {
                EventStatus::Published => Some(EventType::EventPublished),
                EventStatus::Cancelled => Some(EventType::EventCancelled),
                _ => None,
            };
            match kind {
                Some(kind) => webhooks::emit(tx, &event.organizer_id, kind, &event).await?,
                None => false,
            }
        }
        _ => false,
    };
    let effects = Effects::default().event_changed(id);
    let effects = if cancelled || announced || offered {
        effects.jobs()
    } else {
        effects
    };
    Ok(Done::new(event, effects))
}

/// `DELETE /api/events/{id}`: only while no guest was ever registered.
pub async fn delete(
    tx: &Transaction<'_>,
    caller: &Caller,
    id: i64,
    if_match: Option<&str>,
) -> DomainResult<Done<()>> {
    let current = lock(tx, caller, id).await?;
    etag::check(if_match, &current.version)?;
    if current.ever_registered {
        return Err(DomainError::invalid_state(
            "an event that has had guests cannot be deleted; cancel it instead",
        ));
    }
    tx.execute("DELETE FROM events WHERE id = $1", &[&id])
        .await
        .map_err(|e| match e.code() {
            Some(c) if *c == tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION => {
                DomainError::invalid_state(
                    "an event that has had guests cannot be deleted; cancel it instead",
                )
            }
            _ => e.into(),
        })?;
    // Kept after the event (its rows go with it): no event id.
    audit::record(
        tx,
        caller,
        None,
        "event.deleted",
        "event",
        Some(id),
        json!({}),
    )
    .await?;
    tracing::info!(event_id = id, "event deleted");
    Ok(Done::new((), Effects::default().event_changed(id)))
}

pub async fn add_ticket_type(
    tx: &Transaction<'_>,
    caller: &Caller,
    event_id: i64,
    input: Input<NewTicketType>,
) -> DomainResult<Done<TicketType>> {
    let current = lock(tx, caller, event_id).await?;
    let input = input.take()?;
    input.check(current.max_attendees as i64)?;
    refuse_if_final(current.status)?;
    if current.ticket_types >= MAX_TICKET_TYPES as i64 {
        return Err(DomainError::invalid_state(format!(
            "an event has at most {MAX_TICKET_TYPES} ticket types"
        )));
    }
    let ids = insert_ticket_types(tx, event_id, std::slice::from_ref(&input)).await?;
    let created = queries::ticket_type(tx, event_id, ids[0]).await?;
    audit::record(
        tx,
        caller,
        Some(event_id),
        "ticket_type.created",
        "ticket_type",
        Some(created.id),
        json!({"name": created.name, "quantity": created.quantity, "price": created.price}),
    )
    .await?;
    touch(tx, event_id).await?;
    Ok(Done::new(
        created,
        Effects::default().event_changed(event_id),
    ))
}

pub async fn update_ticket_type(
    tx: &Transaction<'_>,
    caller: &Caller,
    event_id: i64,
    id: i64,
    input: Input<UpdateTicketType>,
) -> DomainResult<Done<TicketType>> {
    let current = lock(tx, caller, event_id).await?;
    let existing = queries::ticket_type(tx, event_id, id).await?;
    etag::check(input.if_match(), &existing.version)?;
    let input = input.take()?;
    input.check(current.max_attendees as i64)?;
    refuse_if_final(current.status)?;
    if let Some(q) = input
        .quantity
        .map(|q| q as i32)
        .filter(|q| *q < existing.sold + existing.held)
    {
        return Err(DomainError::invalid_state(format!(
            "quantity {q} is below the {} seats already sold or held for the waiting list",
            existing.sold + existing.held
        )));
    }
    let stmt = tx
        .prepare_cached(
            "UPDATE ticket_types SET name = COALESCE($2, name), price_cents = COALESCE($3, price_cents),
                    quantity = COALESCE($4, quantity), updated_at = now()
              WHERE id = $1",
        )
        .await?;
    let price = input.price_cents().map(|c| c.0);
    tx.execute(
        &stmt,
        &[&id, &input.name, &price, &input.quantity.map(|q| q as i32)],
    )
    .await
    .on_constraint(TICKET_TYPE_NAME_KEY, duplicate_name)?;
    let updated = queries::ticket_type(tx, event_id, id).await?;
    audit::record(
        tx,
        caller,
        Some(event_id),
        "ticket_type.updated",
        "ticket_type",
        Some(id),
        audit::values_of(&input),
    )
    .await?;
    touch(tx, event_id).await?;
    let offered = waitlist::offers::refill(tx, event_id).await? > 0;
    let effects = Effects::default().event_changed(event_id);
    Ok(Done::new(
        updated,
        if offered { effects.jobs() } else { effects },
    ))
}

pub async fn delete_ticket_type(
    tx: &Transaction<'_>,
    caller: &Caller,
    event_id: i64,
    id: i64,
    if_match: Option<&str>,
) -> DomainResult<Done<()>> {
    let current = lock(tx, caller, event_id).await?;
    refuse_if_final(current.status)?;
    let existing = queries::ticket_type(tx, event_id, id).await?;
    etag::check(if_match, &existing.version)?;
    audit::record(
        tx,
        caller,
        Some(event_id),
        "ticket_type.deleted",
        "ticket_type",
        Some(id),
        json!({"name": existing.name}),
    )
    .await?;
    remove_ticket_type(tx, &existing).await?;
    touch(tx, event_id).await?;
    Ok(Done::new((), Effects::default().event_changed(event_id)))
}

async fn remove_ticket_type(tx: &Transaction<'_>, t: &TicketType) -> DomainResult<()> {
    if t.sold + t.held > 0 {
        return Err(DomainError::invalid_state(format!(
            "ticket type '{}' has sold seats (or seats held for the waiting list) and cannot be deleted",
            t.name
        )));
    }
    let waiting = tx
        .query_opt(
            "SELECT 1 FROM waitlist_entries WHERE ticket_type_id = $1 AND status IN ('waiting', 'offered') LIMIT 1",
            &[&t.id],
        )
        .await?;
    if waiting.is_some() {
        return Err(DomainError::invalid_state(format!(
            "ticket type '{}' has people on its waiting list; remove their entries first",
            t.name
        )));
    }
    // A check-in list that names the type would silently widen to every type without it
    // (the caller holds the event FOR UPDATE; list commands hold it FOR SHARE).
    let named = tx
        .query_opt(
            "SELECT name FROM checkin_lists WHERE event_id = $1 AND $2 = ANY (ticket_type_ids) LIMIT 1",
            &[&t.event_id, &t.id],
        )
        .await?;
    if let Some(list) = named {
        return Err(DomainError::invalid_state(format!(
            "ticket type '{}' is admitted by the check-in list '{}'; change the list first",
            t.name,
            list.get::<_, String>(0)
        )));
    }
    tx.execute("DELETE FROM ticket_types WHERE id = $1", &[&t.id])
        .await
        .map_err(|e| match e.code() {
            Some(c) if *c == tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION => {
                DomainError::invalid_state(format!(
                    "ticket type '{}' is referenced by past registrations and cannot be deleted",
                    t.name
                ))
            }
            _ => e.into(),
        })?;
    Ok(())
}

async fn insert_ticket_types(
    tx: &Transaction<'_>,
    event_id: i64,
    types: &[NewTicketType],
) -> DomainResult<Vec<i64>> {
    if types.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<&str> = types.iter().map(|t| t.name.as_str()).collect();
    let prices: Vec<i64> = types.iter().map(|t| t.price_cents().0).collect();
    let quantities: Vec<i32> = types.iter().map(|t| t.quantity as i32).collect();
    let stmt = tx
        .prepare_cached(
            "INSERT INTO ticket_types (event_id, name, price_cents, quantity)
             SELECT $1, t.name, t.price, t.qty
               FROM unnest($2::text[], $3::bigint[], $4::int[]) WITH ORDINALITY AS t(name, price, qty, ord)
              ORDER BY t.ord
             RETURNING id",
        )
        .await?;
    let rows = tx
        .query(&stmt, &[&event_id, &names, &prices, &quantities])
        .await
        .on_constraint(TICKET_TYPE_NAME_KEY, duplicate_name)?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// PATCH with `ticketTypes`: the list becomes the event's ticket types (matched by name).
async fn replace_ticket_types(
    tx: &Transaction<'_>,
    event_id: i64,
    wanted: &[NewTicketType],
    max_attendees: i32,
) -> DomainResult<()> {
    let rows = tx
        .query(
            "SELECT id, event_id, name, price_cents, quantity,
                    seats_taken(event_id, id) - seats_held(event_id, id) AS sold, seats_held(event_id, id) AS held
               FROM ticket_types WHERE event_id = $1",
            &[&event_id],
        )
        .await?;
    let existing: Vec<TicketType> = rows.iter().map(queries::ticket_type_from_row).collect();
    let key = |name: &str| name.trim().to_lowercase();
    for t in &existing {
        if !wanted.iter().any(|w| key(&w.name) == key(&t.name)) {
            remove_ticket_type(tx, t).await?;
        }
    }
    let mut new = Vec::new();
    for (i, w) in wanted.iter().enumerate() {
        if w.quantity > max_attendees as i64 {
            return Err(DomainError::field(
                &format!("ticketTypes[{i}].quantity"),
                format!("must not exceed maxAttendees ({max_attendees})"),
            ));
        }
        match existing.iter().find(|t| key(&t.name) == key(&w.name)) {
            Some(t) if (w.quantity as i32) < t.sold + t.held => {
                return Err(DomainError::invalid_state(format!(
                    "ticket type '{}': quantity {} is below the {} seats already sold or held for the waiting list",
                    t.name,
                    w.quantity,
                    t.sold + t.held
                )))
            }
            Some(t) => {
                tx.execute(
                    "UPDATE ticket_types SET name = $2, price_cents = $3, quantity = $4, updated_at = now() WHERE id = $1",
                    &[&t.id, &w.name, &w.price_cents().0, &(w.quantity as i32)],
                )
                .await?;
            }
            None => new.push(w.clone()),
        }
    }
    insert_ticket_types(tx, event_id, &new).await?;
    Ok(())
}

/// Cancelling an event: every active ticket is cancelled, every pending or confirmed guest
/// too, seats are released, and each guest who held a place gets an `event_cancelled`
/// email through the outbox, all in the transaction that changes the status.
async fn cancel_registrations(tx: &Transaction<'_>, event_id: i64) -> DomainResult<()> {
    let jobs: Vec<Job> = tx
        .query(
            "SELECT id FROM guests WHERE event_id = $1 AND status <> 'cancelled' ORDER BY id",
            &[&event_id],
        )
        .await?
        .iter()
        .map(|r| Job::EventCancelled {
            event_id,
            guest_id: r.get(0),
        })
        .collect();
    outbox::enqueue_all(tx, &jobs).await?;
    let emails = jobs.len();
    tx.execute("UPDATE tickets SET status = 'cancelled', updated_at = now() WHERE event_id = $1 AND status = 'active'", &[&event_id])
        .await?;
    tx.execute(
        "UPDATE guests g SET status = 'cancelled', updated_at = now()
          WHERE g.event_id = $1 AND g.status IN ('pending', 'confirmed')
            AND g.id NOT IN (SELECT k.guest_id FROM tickets k WHERE k.event_id = $1 AND k.checked_in_at IS NOT NULL)",
        &[&event_id],
    )
    .await?;
    // The waiting list closes with the event (held seats go with the layout below).
    tx.execute(
        "UPDATE waitlist_entries SET status = 'removed', updated_at = now() WHERE event_id = $1 AND status IN ('waiting', 'offered')",
        &[&event_id],
    )
    .await?;
    // Only the checked-in guests keep their seats (the event row is locked FOR UPDATE: no
    // guest command is taking or giving back seats meanwhile).
    let sql = format!(
        "SELECT seat_shards_set(e.id, NULL, e.max_attendees, {}::int)
           FROM events e WHERE e.id = $1
         UNION ALL
         SELECT seat_shards_set(t.event_id, t.id, t.quantity, {}::int)
           FROM ticket_types t WHERE t.event_id = $1",
        checked_in_count("e.id", None),
        checked_in_count("t.event_id", Some("t.id"))
    );
    tx.execute(&sql, &[&event_id]).await?;
    tracing::info!(
        event_id,
        emails,
        "event cancelled: registrations cancelled, emails queued"
    );
    Ok(())
}

async fn touch(tx: &Transaction<'_>, event_id: i64) -> DomainResult<()> {
    tx.execute(
        "UPDATE events SET updated_at = now() WHERE id = $1",
        &[&event_id],
    )
    .await?;
    Ok(())
}
