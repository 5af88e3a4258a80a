//! An `Idempotency-Key` as the commands see it: the HTTP edge (`edge::idempotency`) reads and
//! fingerprints it, and a command that writes its answer in its own statement (a keyed online
//! check-in, [`crate::checkin::scan`]) inserts it there.

use crate::error::{DomainError, ErrorCode};

/// A request's key, per caller, with the fingerprint of the request (method, path, body).
#[derive(Debug, Clone)]
pub struct Key {
    /// `<role>:<user id>`: keys are per caller.
    pub caller: String,
    pub key: String,
    pub fingerprint: String,
}

/// The marker (`DomainError::internal`) of a key another request already used and committed:
/// the edge replays that request's answer, or refuses a different request with the key.
pub const KEY_USED: &str = "idempotency key committed by another request";

/// The marker of a keyed command that could not answer in its one statement (a refused
/// check-in): the edge runs it again in a transaction that stores its answer with it.
pub const NEEDS_TRANSACTION: &str = "the keyed command needs a transaction";

/// A key another request committed: see [`KEY_USED`].
pub fn key_used() -> DomainError {
    marker(
        "a request with this Idempotency-Key was already processed",
        KEY_USED,
    )
}

/// See [`NEEDS_TRANSACTION`].
pub fn needs_transaction() -> DomainError {
    marker(
        "a request with this Idempotency-Key is being processed",
        NEEDS_TRANSACTION,
    )
}

/// Whether `e` is the marker `which`.
pub fn is(e: &DomainError, which: &str) -> bool {
    e.internal.as_deref() == Some(which)
}

fn marker(message: &str, which: &str) -> DomainError {
    let mut e = DomainError::new(ErrorCode::IdempotencyInProgress, message);
    e.internal = Some(which.to_owned());
    e
}

/// Deletes `key` when it is past its 24 hours (the prune had not come yet); whether it was.
pub async fn drop_expired(
    db: &impl deadpool_postgres::GenericClient,
    key: &Key,
) -> crate::DomainResult<bool> {
    let stmt = db
        .prepare_cached(
            "DELETE FROM idempotency_keys
              WHERE caller = $1 AND key = $2 AND created_at < now() - interval '24 hours'",
        )
        .await?;
    Ok(db.execute(&stmt, &[&key.caller, &key.key]).await? > 0)
}
