//! The one tenancy gate. Every load of an event (or of something inside one: ticket
//! types, guests, tickets, stats, scanner keys, check-in) on behalf of a caller comes
//! through here, so a forgotten `WHERE organizer_id = …` cannot happen route by route:
//! another organizer's event answers exactly like an event that does not exist (404).
//!
//! Roles (which endpoints a caller may call at all) are checked earlier, at the HTTP edge,
//! before any input is parsed; this module decides which *data* a caller may touch.
//! Lists do not load one event: they filter by [`Caller::tenant`] in their SQL.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;

use crate::caller::Caller;
use crate::error::{DomainError, DomainResult};
use crate::lifecycle::EventStatus;
use crate::sql;

/// The row lock taken on the event for the rest of the transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    /// A plain read (outside a transaction, or where nothing depends on the event staying as read).
    None,
    /// `FOR SHARE`: the event's status and capacities (its seat shards) cannot change until
    /// this transaction ends, while any number of guest commands run at once. Every guest
    /// command that takes or gives back seats holds at least this lock; the event commands
    /// that cancel the event or change its capacities take [`Lock::Update`], so each waits
    /// for the other (see migrations/V4__seat_shards.sql).
    Share,
    /// `FOR NO KEY UPDATE`: a guest command that writes the event row itself.
    NoKeyUpdate,
    /// `FOR UPDATE`: an event command that changes the event's state or capacities.
    Update,
}

/// An event the caller may act on, as read (and locked) by [`event`].
#[derive(Debug, Clone)]
pub struct Owned {
    pub id: i64,
    pub organizer_id: String,
    pub status: EventStatus,
    pub event_date: DateTime<Utc>,
    pub requires_approval: bool,
    pub max_attendees: i32,
    pub ever_registered: bool,
    pub has_ticket_types: bool,
    /// Whether the ticket type asked about (`ticket_type` of [`event`]) is one of the event's.
    pub has_ticket_type: bool,
    pub waitlist_enabled: bool,
    pub waitlist_offer_minutes: i32,
    /// The event row's version as read (under the lock asked for): `crate::etag`.
    pub version: String,
}

const SELECT: &str =
    "SELECT organizer_id, status, event_date, requires_approval, max_attendees, ever_registered,
        waitlist_enabled, waitlist_offer_minutes, e.xmin::text AS version,
        EXISTS (SELECT 1 FROM ticket_types t WHERE t.event_id = e.id) AS has_types,
        EXISTS (SELECT 1 FROM ticket_types t WHERE t.event_id = e.id AND t.id = $2) AS has_type
   FROM events e WHERE id = $1";

/// The event `id` if `caller` may see it, locked as asked; `ticket_type`: a ticket type id
/// checked against the event in the same round trip ([`Owned::has_ticket_type`]).
pub async fn event(
    db: &impl GenericClient,
    caller: &Caller,
    id: i64,
    lock: Lock,
    ticket_type: Option<i64>,
) -> DomainResult<Owned> {
    let event = load(db, id, lock, ticket_type).await?;
    check(caller, &event.organizer_id, "event")?;
    Ok(event)
}

/// The event `id` for the holder of a capability that names it (a waiting-list claim
/// token, which the caller found by its hash): no role and no tenant to check, the token is
/// the authority. Locked as asked.
pub async fn event_for_token_holder(
    db: &impl GenericClient,
    id: i64,
    lock: Lock,
) -> DomainResult<Owned> {
    load(db, id, lock, None).await
}

async fn load(
    db: &impl GenericClient,
    id: i64,
    lock: Lock,
    ticket_type: Option<i64>,
) -> DomainResult<Owned> {
    let stmt = match lock {
        Lock::None => db.prepare_cached(SELECT).await?,
        Lock::Share => db.prepare_cached(&format!("{SELECT} FOR SHARE")).await?,
        Lock::NoKeyUpdate => {
            db.prepare_cached(&format!("{SELECT} FOR NO KEY UPDATE"))
                .await?
        }
        Lock::Update => db.prepare_cached(&format!("{SELECT} FOR UPDATE")).await?,
    };
    let row = db
        .query_opt(&stmt, &[&id, &ticket_type])
        .await?
        .ok_or_else(|| DomainError::not_found("event"))?;
    Ok(Owned {
        id,
        organizer_id: row.get("organizer_id"),
        status: sql::get(&row, "status")?,
        event_date: row.get("event_date"),
        requires_approval: row.get("requires_approval"),
        max_attendees: row.get("max_attendees"),
        ever_registered: row.get("ever_registered"),
        has_ticket_types: row.get("has_types"),
        has_ticket_type: row.get("has_type"),
        waitlist_enabled: row.get("waitlist_enabled"),
        waitlist_offer_minutes: row.get("waitlist_offer_minutes"),
        version: row.get("version"),
    })
}

/// The event a ticket belongs to, if `caller` may see it (404 `what` otherwise). A ticket's
/// event never changes, so this is a plain read.
pub async fn ticket(db: &impl GenericClient, caller: &Caller, ticket_id: i64) -> DomainResult<i64> {
    let stmt = db
        .prepare_cached(
            "SELECT t.event_id, e.organizer_id FROM tickets t JOIN events e ON e.id = t.event_id WHERE t.id = $1",
        )
        .await?;
    let row = db
        .query_opt(&stmt, &[&ticket_id])
        .await?
        .ok_or_else(|| DomainError::not_found("ticket"))?;
    check(caller, row.get(1), "ticket")?;
    Ok(row.get(0))
}

/// The same rule for a row already read (a cached event, a ticket joined with its event):
/// NOT_FOUND `what` unless the caller may see what `organizer_id` owns.
pub fn check(caller: &Caller, organizer_id: &str, what: &str) -> DomainResult<()> {
    match caller.tenant() {
        Some(tenant) if tenant != organizer_id => Err(DomainError::not_found(what)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caller::Role;

    fn caller(role: Role, user: &str, org: Option<&str>) -> Caller {
        Caller {
            user_id: user.into(),
            role,
            organizer_id: org.map(Into::into),
        }
    }

    #[test]
    fn tenancy_rules() {
        assert!(check(&caller(Role::Organizer, "o1", None), "o1", "event").is_ok());
        assert!(check(&caller(Role::Organizer, "o1", None), "o2", "event").is_err());
        assert!(check(&caller(Role::Admin, "a", None), "o2", "event").is_ok());
        assert!(check(&caller(Role::Scanner, "s", Some("o1")), "o1", "ticket").is_ok());
        let e = check(&caller(Role::Scanner, "s", Some("o1")), "o2", "ticket").unwrap_err();
        assert_eq!(e.code, crate::ErrorCode::NotFound);
    }
}
