//! Capacity: the seats of an event and of its ticket types, taken and given back.
//!
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
//! Every path that takes or gives back a seat (registration, approval, cancellation,
//! deletion, a change of ticket type) goes through this module.

use deadpool_postgres::Transaction;

use crate::error::{DomainError, DomainResult, ErrorCode};

/// Takes a seat of the event, then of its ticket type, as described in the module
/// documentation: one statement, one round trip while the shards are locked. The guest id
/// picks the first shard tried, so concurrent registrations spread over the shards.
pub async fn take_seat(
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
pub async fn release_seat(
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
pub async fn add_type_seat(
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

/// Takes a seat of the event and of its ticket type, or neither: `None` when both were
/// taken, else the code of the capacity that was full (the other one's seat, if taken, is
/// given back in the same transaction). For paths that go on when a capacity is full (the
/// waiting list's offers).
pub(crate) async fn try_take_seat(
    tx: &Transaction<'_>,
    event_id: i64,
    ticket_type_id: Option<i64>,
    start: i64,
) -> DomainResult<Option<ErrorCode>> {
    let (event_seat, type_seat) = add_seat(tx, event_id, ticket_type_id, 1, start).await?;
    match (event_seat, type_seat) {
        (true, true) => Ok(None),
        (true, false) => {
            add_seat(tx, event_id, None, -1, start).await?;
            Ok(Some(ErrorCode::SoldOut))
        }
        (false, type_seat) => {
            if let (true, Some(t)) = (type_seat, ticket_type_id) {
                add_type_seat(tx, event_id, t, -1, start).await?;
            }
            Ok(Some(ErrorCode::EventFull))
        }
    }
}

/// Takes up to `n` seats of one capacity (the event's when `ticket_type_id` is `None`) in
/// one call, shard by shard from `start` (`seat_shards_take`, migrations/V15); a negative
/// `n` gives back up to `-n`. Returns how many moved. The CSV import's bulk path.
pub(crate) async fn take_seats(
    tx: &Transaction<'_>,
    event_id: i64,
    ticket_type_id: Option<i64>,
    n: i32,
    start: i64,
) -> DomainResult<i32> {
    let stmt = tx
        .prepare_cached("SELECT seat_shards_take($1, $2, $3, $4)")
        .await?;
    let row = tx
        .query_one(&stmt, &[&event_id, &ticket_type_id, &n, &start])
        .await?;
    Ok(row.get(0))
}
