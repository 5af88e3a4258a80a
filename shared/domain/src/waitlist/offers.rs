//! Offers: how a freed seat reaches the waiting list.
//!
//! Every path that frees a seat (a cancellation, a deleted guest, a guest moved to another
//! ticket type, a raised capacity, an expired or removed offer) calls [`seat_freed`] or
//! [`refill`] in its own transaction, after locking the event's `waitlists` row. So:
//! - a seat given back by a guest goes straight to the first waiting entry of its ticket
//!   type, without ever being free in the seat shards ([`seat_freed`]): no registration
//!   racing the cancellation can take it;
//! - other free seats are offered by [`fill`], which takes them in the shards like a
//!   registration, entry by entry in position order;
//! - offers of one event are made one transaction at a time (the `waitlists` row lock), so
//!   of two cancellations at once the first to commit offers to entry 1 and the second,
//!   which waited, to entry 2: each freed seat to exactly one entry, in position order.

use deadpool_postgres::Transaction;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::model::{WaitlistEntry, ENTRY_COLUMNS};
use crate::capacity;
use crate::error::{DomainError, DomainResult, ErrorCode};
use crate::outbox::{self, Job};
use crate::webhooks::{self, EventType};

/// An event's waiting list, locked for this transaction.
pub(crate) struct Locked {
    pub(crate) event_id: i64,
    pub(crate) organizer_id: String,
    pub(crate) offer_minutes: i32,
    /// Offers are made only while the list is enabled (entries stay when it is switched off)
    /// and the event takes registrations (published, not started): a seat freed after that
    /// goes back, nobody could claim an offer.
    pub(crate) enabled: bool,
}

/// Locks the event's `waitlists` row; `None` when the event never had a waiting list (no
/// entry to offer anything to).
pub(crate) async fn lock(tx: &Transaction<'_>, event_id: i64) -> DomainResult<Option<Locked>> {
    let stmt = tx
        .prepare_cached(
            "SELECT e.organizer_id, e.waitlist_offer_minutes,
                    e.waitlist_enabled AND e.status = 'published' AND e.event_date > now()
               FROM waitlists w JOIN events e ON e.id = w.event_id
              WHERE w.event_id = $1 FOR UPDATE OF w",
        )
        .await?;
    Ok(tx.query_opt(&stmt, &[&event_id]).await?.map(|r| Locked {
        event_id,
        organizer_id: r.get(0),
        offer_minutes: r.get(1),
        enabled: r.get(2),
    }))
}

/// A guest's (or an offer's) seat of `ticket_type_id` is no longer needed: it goes to the
/// first waiting entry of that ticket type if there is one (the seat stays taken in the
/// shards: the entry's hold replaces the guest), else it is given back and [`fill`] offers
/// what is free to the other entries. `start`: the shard to start from (the guest's id).
/// The caller holds the event row (at least FOR SHARE) and, if any, the guest's locks.
pub(crate) async fn seat_freed(
    tx: &Transaction<'_>,
    event_id: i64,
    ticket_type_id: Option<i64>,
    start: i64,
) -> DomainResult<()> {
    let list = lock(tx, event_id).await?.filter(|l| l.enabled);
    if let Some(list) = &list {
        if let Some(entry) = head(tx, event_id, ticket_type_id).await? {
            offer(tx, list, entry).await?;
            return Ok(());
        }
    }
    capacity::release_seat(tx, event_id, ticket_type_id, start).await?;
    if let Some(list) = &list {
        fill(tx, list).await?;
    }
    Ok(())
}

/// Offers whatever seats are free to the waiting entries, when the event has an enabled
/// waiting list: after a capacity was raised, a guest changed ticket type, or the list
/// was switched on.
/// Returns how many offers were made.
pub(crate) async fn refill(tx: &Transaction<'_>, event_id: i64) -> DomainResult<usize> {
    match lock(tx, event_id).await?.filter(|l| l.enabled) {
        Some(list) => fill(tx, &list).await,
        None => Ok(0),
    }
}

/// The first waiting entry of a ticket type (of the event, without ticket types), locked.
async fn head(
    tx: &Transaction<'_>,
    event_id: i64,
    ticket_type_id: Option<i64>,
) -> DomainResult<Option<i64>> {
    let stmt = tx
        .prepare_cached(
            "SELECT id FROM waitlist_entries
              WHERE event_id = $1 AND COALESCE(ticket_type_id, 0) = COALESCE($2::bigint, 0)
                AND status = 'waiting'
              ORDER BY position LIMIT 1 FOR UPDATE",
        )
        .await?;
    Ok(tx
        .query_opt(&stmt, &[&event_id, &ticket_type_id])
        .await?
        .map(|r| r.get(0)))
}

/// Offers free seats to the waiting entries in position order: each entry's seat is taken
/// in the shards like a registration's; an entry whose ticket type is full is passed over
/// (with the rest of its type) for the next one; it stops when the event itself is full or
/// nobody is waiting. The caller holds the waiting list's lock.
pub(crate) async fn fill(tx: &Transaction<'_>, list: &Locked) -> DomainResult<usize> {
    let next = tx
        .prepare_cached(
            "SELECT id, ticket_type_id FROM waitlist_entries
              WHERE event_id = $1 AND status = 'waiting'
                AND NOT (COALESCE(ticket_type_id, 0) = ANY($2))
              ORDER BY position LIMIT 1 FOR UPDATE",
        )
        .await?;
    let mut full_types: Vec<i64> = Vec::new();
    let mut offered = 0;
    while let Some(row) = tx.query_opt(&next, &[&list.event_id, &full_types]).await? {
        let (entry, ticket_type): (i64, Option<i64>) = (row.get(0), row.get(1));
        match capacity::try_take_seat(tx, list.event_id, ticket_type, entry).await? {
            None => {
                offer(tx, list, entry).await?;
                offered += 1;
            }
            Some(ErrorCode::SoldOut) => full_types.push(ticket_type.unwrap_or(0)),
            Some(_) => break,
        }
    }
    Ok(offered)
}

/// Makes the offer to `entry` (locked, `waiting`, its seat already held): a fresh claim
/// token (only its SHA-256 is stored), the expiry, the `waitlist_offer` email with the token
/// and the `waitlist.offered` webhooks, all in this transaction.
async fn offer(tx: &Transaction<'_>, list: &Locked, entry: i64) -> DomainResult<()> {
    let token = new_token();
    let stmt = tx
        .prepare_cached(&format!(
            "UPDATE waitlist_entries w SET status = 'offered', offered_at = now(),
                    offer_expires_at = now() + make_interval(mins => $2), claim_token_hash = $3,
                    updated_at = now()
              WHERE id = $1 AND status = 'waiting'
              RETURNING {ENTRY_COLUMNS}"
        ))
        .await?;
    let row = tx
        .query_opt(&stmt, &[&entry, &list.offer_minutes, &token_hash(&token)])
        .await?
        .ok_or_else(|| DomainError::internal(format!("waitlist entry {entry} is not waiting")))?;
    let entry = WaitlistEntry::from_row(&row)?;
    outbox::enqueue(
        tx,
        Job::WaitlistOffer {
            event_id: list.event_id,
            entry_id: entry.id,
            token,
        },
    )
    .await?;
    webhooks::emit(tx, &list.organizer_id, EventType::WaitlistOffered, &entry).await?;
    tracing::info!(
        event_id = list.event_id,
        entry_id = entry.id,
        ticket_type_id = entry.ticket_type_id,
        expires_at = ?entry.offer_expires_at,
        "waiting-list offer made: a seat is held"
    );
    Ok(())
}

/// What the expiry sweep did to one event.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Expired {
    pub expired: usize,
}

/// Expires the event's offers that are past `offer_expires_at`, handing each held seat to
/// the next entry (or giving it back). One event per transaction: the sweep runs this
/// for each event [`due_events`] names. Offers already claimed or removed are left alone
/// (their rows are locked by the claim first, or no longer `offered`).
pub async fn expire_due(tx: &Transaction<'_>, event_id: i64) -> DomainResult<Expired> {
    // The event row FOR SHARE first, like every guest command that moves seats.
    let stmt = tx
        .prepare_cached("SELECT 1 FROM events WHERE id = $1 FOR SHARE")
        .await?;
    if tx.query_opt(&stmt, &[&event_id]).await?.is_none() {
        return Ok(Expired::default());
    }
    if lock(tx, event_id).await?.is_none() {
        return Ok(Expired::default());
    }
    let stmt = tx
        .prepare_cached(
            "UPDATE waitlist_entries SET status = 'expired', updated_at = now()
              WHERE event_id = $1 AND status = 'offered' AND offer_expires_at <= clock_timestamp()
              RETURNING id, ticket_type_id",
        )
        .await?;
    let rows = tx.query(&stmt, &[&event_id]).await?;
    for row in &rows {
        let (entry, ticket_type): (i64, Option<i64>) = (row.get(0), row.get(1));
        tracing::info!(event_id, entry_id = entry, "waiting-list offer expired");
        seat_freed(tx, event_id, ticket_type, entry).await?;
    }
    Ok(Expired {
        expired: rows.len(),
    })
}

/// Events with offers past their expiry (at most `limit`), for the sweep.
pub async fn due_events(
    db: &impl deadpool_postgres::GenericClient,
    limit: i64,
) -> DomainResult<Vec<i64>> {
    let stmt = db
        .prepare_cached(
            "SELECT DISTINCT event_id FROM (
                 SELECT event_id FROM waitlist_entries
                  WHERE status = 'offered' AND offer_expires_at <= clock_timestamp()
                  ORDER BY offer_expires_at LIMIT $1) due",
        )
        .await?;
    Ok(db
        .query(&stmt, &[&limit])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// A claim token: 32 random bytes, URL-safe base64 (43 characters).
fn new_token() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// What is stored of a token, and looked up by.
pub(crate) fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// The expiry sweep: expires every offer past its time, event by event (one transaction
/// each: [`expire_due`]), handing the seats on. Returns how many offers expired. Run by
/// the scheduled `outbox-sweep` function in AWS and by a timer in the local server; a
/// claim never needs it (it checks the time itself), so a late sweep only delays the next
/// offer. Concurrent sweeps are harmless: the waiting-list lock serializes them per event
/// and an expired offer is no longer `offered`.
pub async fn sweep_expired(pool: &deadpool_postgres::Pool) -> DomainResult<usize> {
    let mut expired = 0;
    loop {
        let events = {
            let db = pool.get().await?;
            due_events(&db, 500).await?
        };
        if events.is_empty() {
            return Ok(expired);
        }
        let mut progress = 0;
        for event_id in events {
            let mut db = pool.get().await?;
            let tx = db.transaction().await?;
            let done = expire_due(&tx, event_id).await?;
            tx.commit().await?;
            progress += done.expired;
        }
        expired += progress;
        if progress == 0 {
            // Due offers that another sweep is expiring right now: its commit will do.
            return Ok(expired);
        }
    }
}
