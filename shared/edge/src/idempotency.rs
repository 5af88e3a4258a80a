//! Idempotency keys on every POST, PATCH and DELETE (`Idempotency-Key`, 1–255 printable ASCII).
//!
//! For 24 hours, the same key from the same caller with the same method, path and body replays
//! the first answer (status and body, header `Idempotent-Replayed: true`) and does nothing again;
//! with a different request it is `IDEMPOTENCY_KEY_REUSED` (422); while the first is still
//! running, a second waits for it (up to [`WAIT`]) and then replays, or answers
//! `IDEMPOTENCY_IN_PROGRESS` (409). 5xx answers are not stored.
//!
//! **The key is committed with the change.** The layer ([`layer`]) puts the request's claim in a
//! task-local and runs the route; [`crate::unit_of_work!`] writes the key with the command's
//! answer as the last statement of its transaction ([`record_in`]): one row, written once. A
//! route that declares its success status (`answer = StatusCode::CREATED`) stores its final
//! answer there and nothing is written after it; any other stores its result, which the layer
//! completes with the status once it answered. A concurrent request with the same key runs
//! too, and blocks on the key's primary key at its own [`record_in`] until the first
//! transaction ends: committed, it rolls back and replays the first answer; rolled back, it
//! commits. A duplicate that fails before that (the first holds the seat, the email, the
//! ticket) stores its refusal only where no answer is stored, so it replays the first answer
//! too. A process that dies after the commit and before answering leaves the key with its
//! answer (or its result): a retry replays it and changes nothing again.
//!
//! **The one-statement check-ins too.** A scan is atomic on its own; under a key, an accepted
//! one writes the key in its own statement, with its answer as the row it was rendered from
//! (`answer_row`, type `scan_answer`: migrations/V21), one round trip as without a key
//! ([`crate::statement!`], `domain::checkin::scan`). A replay reads that row back
//! (`domain::checkin::scan::REPLAY_COLUMNS`: the ticket's write-once QR image is read from the
//! ticket, not copied) and renders it with the route's renderer ([`replay_rows_with`]): the
//! same values, so the same answer, whatever changed since. A refused scan runs again in a
//! transaction that also writes the key with its answer ([`settle_in`]): its error, with the
//! refused attempt logged in the same transaction. A retry blocks on the ticket, then on the
//! key, and rolls back, so the first scan is the only one logged and its answer is replayed.
//!
//! **No read before a write.** A key already used is found by its insert, so a request that
//! changes something costs one row, not a lookup as well. An answer that no transaction
//! recorded (a refusal of the input or of an extractor, before any transaction) is stored
//! afterwards where the key has none yet; where it has one, that one is the answer. Answers
//! 5xx and 429 (rate limited: the client is told to come back) are not stored.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, LazyLock, OnceLock};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use deadpool_postgres::Transaction;
use serde::Serialize;
use sha2::{Digest, Sha256};

use domain::idempotency::Key;
use domain::ErrorCode;
use tokio_postgres::Row;

use crate::error::{ApiError, ApiResult};
use crate::state::ApiState;

pub const HEADER: &str = "idempotency-key";
pub const REPLAYED: &str = "idempotent-replayed";
/// How long a request waits for the first one with its key to answer.
pub const WAIT: Duration = Duration::from_secs(10);
/// How long a committed change's answer is waited for before its stored result is replayed
/// (the first request stores its answer right after its commit; longer means it died).
pub const ANSWER_WAIT: Duration = Duration::from_secs(2);
/// Largest body read for the fingerprint (the routes' own limits are lower).
const MAX_BODY: usize = 1024 * 1024;
/// The marker of a claim lost to a committed request with the same key.
const COMMITTED: &str = domain::idempotency::KEY_USED;

/// Renders an answer stored as a row (`answer_row`, a keyed check-in's) into the body sent.
type Renderer = Box<dyn Fn(&Row) -> ApiResult<Vec<u8>> + Send + Sync>;

pub struct Claim {
    id: Key,
    /// What the route's transaction stored under the key: [`NOT_RECORDED`], [`RESULT`] (the
    /// layer adds the status) or [`ANSWER`] (final: nothing to write after it).
    recorded: AtomicU8,
    /// How the route renders an answer stored as a row ([`replay_rows_with`]).
    renderer: OnceLock<Renderer>,
}

const NOT_RECORDED: u8 = 0;
const RESULT: u8 = 1;
const ANSWER: u8 = 2;

tokio::task_local! {
    static CLAIM: Arc<Claim>;
}

fn current() -> Option<Arc<Claim>> {
    CLAIM.try_with(Arc::clone).ok()
}

/// The marker error of a key another request already used: the layer replays its answer (or
/// refuses a different request with `IDEMPOTENCY_KEY_REUSED`).
fn committed() -> ApiError {
    ApiError(domain::idempotency::key_used())
}

/// The request's Idempotency-Key, for a command that writes it in its own statement (a
/// check-in, [`crate::statement!`]).
pub fn key() -> Option<Key> {
    current().map(|c| c.id.clone())
}

/// The command wrote the key with its final answer (in its statement): nothing to store after.
pub fn answered() {
    if let Some(claim) = current() {
        claim.recorded.store(ANSWER, Ordering::Relaxed);
    }
}

/// How the route renders the answer a command stored as a row under the key (a keyed
/// check-in's `scan_answer`): the same function that made its first answer from the same
/// columns, in the success envelope. Set before the command runs, so a duplicate that finds
/// the key taken can replay it.
pub fn replay_rows_with<T: Serialize>(
    render: impl Fn(&Row) -> domain::DomainResult<T> + Send + Sync + 'static,
) {
    if let Some(claim) = current() {
        let _ = claim.renderer.set(Box::new(move |row| {
            let data = render(row)?;
            serde_json::to_vec(&crate::docs::Success {
                success: true,
                data: &data,
            })
            .map_err(|e| ApiError::internal(format!("replayed answer: {e}")))
        }));
    }
}

/// The last statement of a unit of work that runs under a key: stores the command's answer
/// with the change (`status`: the route's success status, when it declares it; else the layer
/// adds it once it answered). Waits while another transaction holds the same key; a key
/// another request committed (and not expired) is `IDEMPOTENCY_IN_PROGRESS` with the marker
/// the layer replays on, and the caller's transaction rolls back.
pub async fn record_in<T: Serialize>(
    tx: &Transaction<'_>,
    status: Option<StatusCode>,
    value: &T,
) -> ApiResult<()> {
    let success = crate::docs::Success {
        success: true,
        data: value,
    };
    write_key(tx, status, &success).await
}

/// The end of a command that is atomic on its own (a check-in) run under a key, in `tx`
/// ([`crate::statement!`]): its answer is stored with it and committed. An accepted scan is
/// stored with status 200; a refusal (4xx, whose scan is logged in `tx` too) with its error
/// envelope. Anything else (5xx) rolls back. A key another request committed rolls the whole
/// transaction back (the duplicate's logged refusal with it), and the layer replays that
/// request's answer.
pub async fn settle_in<T: Serialize>(
    tx: Transaction<'_>,
    result: domain::DomainResult<domain::Done<T>>,
) -> ApiResult<domain::Done<T>> {
    match result {
        Ok(done) => {
            record_in(&tx, Some(StatusCode::OK), done.value()).await?;
            tx.commit().await?;
            Ok(done)
        }
        Err(e) => {
            let error = ApiError(e);
            let status = error.status();
            if status.is_client_error() && status != StatusCode::TOO_MANY_REQUESTS {
                write_key(&tx, Some(status), &error.body(None)).await?;
                tx.commit().await?;
            }
            Err(error)
        }
    }
}

/// Inserts the key with `body` (and `status`, when final) in `tx`; `IDEMPOTENCY_IN_PROGRESS`
/// with the replay marker when another request holds it.
async fn write_key(
    tx: &Transaction<'_>,
    status: Option<StatusCode>,
    body: &impl Serialize,
) -> ApiResult<()> {
    let Some(claim) = current() else {
        return Ok(());
    };
    let body = serde_json::to_vec(body)
        .map_err(|e| ApiError::internal(format!("idempotent answer: {e}")))?;
    let stmt = tx
        .prepare_cached(
            "INSERT INTO idempotency_keys AS k (caller, key, fingerprint, status, body) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (caller, key) DO UPDATE
                SET fingerprint = excluded.fingerprint, status = excluded.status, body = excluded.body,
                    answer_row = NULL, created_at = now()
              WHERE k.created_at < now() - interval '24 hours'",
        )
        .await?;
    let status = status.map(|s| i32::from(s.as_u16()));
    let written = tx
        .execute(
            &stmt,
            &[
                &claim.id.caller,
                &claim.id.key,
                &claim.id.fingerprint,
                &status,
                &body,
            ],
        )
        .await?;
    if written == 0 {
        return Err(committed());
    }
    let recorded = if status.is_some() { ANSWER } else { RESULT };
    claim.recorded.store(recorded, Ordering::Relaxed);
    Ok(())
}

fn valid_key(key: &str) -> bool {
    (1..=255).contains(&key.len()) && key.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

fn refusal(code: ErrorCode, message: &str) -> Response {
    ApiError::new(code, message).into_response()
}

/// The layer (outermost: it stores answers as the client receives them).
pub async fn layer(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    if !matches!(*req.method(), Method::POST | Method::PATCH | Method::DELETE) {
        return next.run(req).await;
    }
    let Some(key) = req.headers().get(HEADER).map(|v| v.as_bytes().to_vec()) else {
        return next.run(req).await;
    };
    let key = String::from_utf8(key).unwrap_or_default();
    if !valid_key(&key) {
        return ApiError::field(
            "Idempotency-Key",
            "must be 1 to 255 printable ASCII characters",
        )
        .into_response();
    }
    // Keys are per caller; a request without a valid token is answered 401 by its route.
    let auth = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let Ok(caller) = state.tokens.verify_header(auth.as_deref()).await else {
        return next.run(req).await;
    };
    let (mut parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        return refusal(ErrorCode::PayloadTooLarge, "the body is too large");
    };
    let mut hash = Sha256::new();
    hash.update(parts.method.as_str().as_bytes());
    hash.update(b"\n");
    hash.update(parts.uri.to_string().as_bytes());
    hash.update(b"\n");
    hash.update(&bytes);
    let claim = Arc::new(Claim {
        id: Key {
            caller: format!("{}:{}", caller.role.as_str(), caller.user_id),
            key,
            fingerprint: format!("{:x}", hash.finalize()),
        },
        recorded: AtomicU8::new(NOT_RECORDED),
        renderer: OnceLock::new(),
    });
    // The route's `Caller` extractor takes it from here instead of verifying the token again.
    parts.extensions.insert(caller);

    // The route runs at once: a unit of work or a check-in finds a used key when it writes its
    // own; a lookup is made only when one of them says the key was used, or when an answer no
    // transaction recorded finds the key taken.
    let started = tokio::time::Instant::now();
    let req = Request::from_parts(parts, Body::from(bytes));
    let response = CLAIM.scope(claim.clone(), next.run(req)).await;
    let (head, body) = response.into_parts();
    // An error's envelope is rendered further out (with the request id): store it rendered
    // here, without one.
    let error = head.extensions.get::<ApiError>();
    if error.is_some_and(|e| e.0.internal.as_deref() == Some(COMMITTED)) {
        return first_answer(&state, &claim, started).await;
    }
    let recorded = claim.recorded.load(Ordering::Relaxed);
    if recorded == ANSWER {
        // Stored with the change, final: nothing to add.
        return Response::from_parts(head, body);
    }
    if head.status.is_server_error() || head.status == StatusCode::TOO_MANY_REQUESTS {
        // Not stored. A retry turned away for now whose key already has an answer gets it.
        if recorded == NOT_RECORDED {
            if let Ok(Some(stored)) = lookup(&state, &claim).await {
                return answer_stored(stored, &claim);
            }
        }
        return Response::from_parts(head, body);
    }
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return refusal(ErrorCode::InternalError, "the answer could not be read");
    };
    let stored = match error {
        Some(e) => Bytes::from(serde_json::to_vec(&e.body(None)).unwrap_or_default()),
        None => body.clone(),
    };
    match store(
        &state,
        &claim,
        head.status.as_u16(),
        &stored,
        recorded == RESULT,
    )
    .await
    {
        // Another request's answer is stored under the key (a different request, or the same
        // one refused before reaching its transaction): that one is the answer. A success that
        // was not recorded did happen: it is answered as it is.
        Ok(false) if recorded == NOT_RECORDED && !head.status.is_success() => {
            first_answer(&state, &claim, started).await
        }
        Ok(_) => Response::from_parts(head, Body::from(body)),
        Err(e) => {
            tracing::warn!(
                cause = e.0.internal.as_deref(),
                "idempotent answer not stored"
            );
            Response::from_parts(head, Body::from(body))
        }
    }
}

/// The answer of a request whose key another request used: waits for that request's answer,
/// then replays it (or refuses a different request with the key).
async fn first_answer(state: &ApiState, claim: &Claim, started: tokio::time::Instant) -> Response {
    let deadline = started + WAIT;
    loop {
        match lookup(state, claim).await {
            Err(e) => return e.into_response(),
            // Committed, answer not stored yet: the first request is answering, or its process
            // died after its commit. Wait for it, then replay what the change stored.
            Ok(Some(Stored {
                fingerprint,
                status: None,
                body: Some(body),
            })) if fingerprint == claim.id.fingerprint => {
                if started.elapsed() >= ANSWER_WAIT {
                    return replay(200, body);
                }
            }
            Ok(Some(stored))
                if stored.status.is_some() || stored.fingerprint != claim.id.fingerprint =>
            {
                return answer_stored(stored, claim);
            }
            Ok(Some(_)) => {}
            // The winner's row is gone (it rolled back after all, or expired): the first
            // attempt's answer is unknown; let the client retry.
            Ok(None) => {
                return in_progress();
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return in_progress();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The answer to a request whose key has a stored row: a different request is refused; the
/// same one gets the stored answer, or, when none is stored yet, `IDEMPOTENCY_IN_PROGRESS`.
fn answer_stored(stored: Stored, claim: &Claim) -> Response {
    if stored.fingerprint != claim.id.fingerprint {
        return refusal(
            ErrorCode::IdempotencyKeyReused,
            "this Idempotency-Key was used with a different request",
        );
    }
    match stored {
        Stored {
            status: Some(status),
            body: Some(body),
            ..
        } => replay(u16::try_from(status).unwrap_or(200), body),
        _ => in_progress(),
    }
}

fn in_progress() -> Response {
    refusal(
        ErrorCode::IdempotencyInProgress,
        "a request with this Idempotency-Key is still being processed",
    )
}

fn replay(status: u16, body: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let headers = response.headers_mut();
    headers.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(REPLAYED, HeaderValue::from_static("true"));
    response
}

struct Stored {
    fingerprint: String,
    status: Option<i32>,
    body: Option<Vec<u8>>,
}

/// The key's stored row, if any (and not expired). An answer stored as a row (a keyed
/// check-in's) is rendered here by the route's renderer, for the request it belongs to.
async fn lookup(state: &ApiState, claim: &Claim) -> ApiResult<Option<Stored>> {
    static LOOKUP: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT fingerprint AS k_fingerprint, status AS k_status, body AS k_body,
                    (answer_row).scan_id IS NOT NULL AS k_row, {}
               FROM idempotency_keys
              WHERE caller = $1 AND key = $2 AND created_at >= now() - interval '24 hours'",
            *domain::checkin::scan::REPLAY_COLUMNS
        )
    });
    let db = state.db.get().await?;
    let stmt = db.prepare_cached(&LOOKUP).await?;
    let Some(row) = db
        .query_opt(&stmt, &[&claim.id.caller, &claim.id.key])
        .await?
    else {
        return Ok(None);
    };
    // (`answer_row IS NOT NULL` would be true only with every field set: a row value.)
    let fingerprint: String = row.get("k_fingerprint");
    let mut body: Option<Vec<u8>> = row.get("k_body");
    if row.get::<_, bool>("k_row") && fingerprint == claim.id.fingerprint {
        let render = claim.renderer.get().ok_or_else(|| {
            ApiError::internal("an answer stored as a row, and no renderer for it")
        })?;
        body = Some(render(&row)?);
    }
    Ok(Some(Stored {
        fingerprint,
        status: row.get("k_status"),
        body,
    }))
}

/// The answer as sent, stored after it was sent; whether it was written. `complete`: the
/// request's own transaction stored its result under the key, which this completes with the
/// status and final body. Otherwise (a refusal whose transaction rolled back, a route that is
/// not a unit of work) it is stored only where the key has no answer yet: false means another
/// request's is there. Its commit does not wait for the WAL flush (`idempotency_answer`,
/// migrations/V19): a unit of work stored its result with its change already; for a route
/// that is not a unit of work (the one-statement check-in) a crash in that instant loses the
/// stored answer, and a retry runs again, which the route's own rules make harmless (a second
/// entry is refused as already validated).
async fn store(
    state: &ApiState,
    claim: &Claim,
    status: u16,
    body: &[u8],
    complete: bool,
) -> ApiResult<bool> {
    let db = state.db.get().await?;
    let stmt = db
        .prepare_cached("SELECT idempotency_answer($1, $2, $3, $4, $5, $6)")
        .await?;
    let written = db
        .query_one(
            &stmt,
            &[
                &claim.id.caller,
                &claim.id.key,
                &claim.id.fingerprint,
                &i32::from(status),
                &body,
                &complete,
            ],
        )
        .await?;
    Ok(written.get(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_printable_ascii() {
        assert!(valid_key("order-123"));
        assert!(valid_key(&"k".repeat(255)));
        assert!(!valid_key(""));
        assert!(!valid_key(&"k".repeat(256)));
        assert!(!valid_key("caf\u{e9}"));
        assert!(!valid_key("tab\there"));
    }
}
