//! The state of the API functions (and of the local server), built once per process (per
//! Lambda execution environment), and the unit-of-work helper every command goes through.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use deadpool_postgres::{Pool, Transaction};
use domain::outbox::{self, QueueBackend, RelayConfig};
use domain::tickets::signing::{self, KeySource, TicketKeys};
use domain::{Done, Effects};
use platform::cache::Cache;
use platform::config::{Config, Env, Secret};
use tokio::sync::Notify;

use crate::auth::TokenVerifier;
use crate::error::ApiResult;

/// Whether an API function signs or verifies tickets, and so needs the ticket keys (and
/// their secret).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketKeysUse {
    SignsOrVerifies,
    None,
}

/// Where the local server keeps the development ticket-signing key it creates once.
pub const DEV_TICKET_KEY_FILE: &str = ".local/ticket-signing-key";

#[derive(Clone)]
pub struct ApiState {
    pub db: Pool,
    pub tokens: Arc<TokenVerifier>,
    /// The ticket keys, for the functions that sign or verify tickets (guests, tickets, the
    /// local server); `None` in the events function, which does neither ([`ApiState::ticket_keys`]).
    ticket_keys: Option<Arc<TicketKeys>>,
    /// Redis cache and rate-limit counters; a no-op without `REDIS_URL`.
    pub cache: Cache,
    pub config: Arc<Config>,
    pub started_at: Instant,
    /// Wakes the outbox relay of this process (if it runs one) after a commit that wrote jobs.
    pub outbox_signal: Arc<Notify>,
    /// Where jobs are relayed right after a commit (SQS in Lambda). `None` locally, where
    /// a relay loop woken by `outbox_signal` does it instead.
    pub queue: Option<Arc<dyn QueueBackend>>,
    /// Where the webhook deliveries a command wrote ([`Effects::webhooks`]) are sent right after
    /// the commit when `queue` is `None`: the webhooks queue in the API functions that write
    /// them (`WEBHOOKS_QUEUE_URL`, [`platform::sqs::WebhookQueue`]), the in-process queue in
    /// the local server once its job path starts. Neither set: they wait for a relay (due a
    /// minute after their commit).
    pub delivery_queue: Arc<std::sync::OnceLock<Arc<dyn QueueBackend>>>,
    /// The exports bucket, to make download links: set by the function that serves exports
    /// (and the local server), `None` in every other one.
    pub exports: Option<platform::s3::ObjectStore>,
}

impl ApiState {
    /// Builds the state; connections are opened lazily by the pool.
    pub fn new(config: Config, ticket_keys: Option<TicketKeys>) -> anyhow::Result<Self> {
        if config.jwt.is_development_default {
            tracing::warn!(
                "JWT_SECRET is not set: using the DEVELOPMENT default key; never run like this outside a laptop"
            );
        }
        Ok(Self {
            db: platform::db::pool(&config.db)?,
            tokens: Arc::new(
                TokenVerifier::new(&config.jwt).with_jwks(config.jwks_url.as_deref())?,
            ),
            ticket_keys: ticket_keys.map(Arc::new),
            cache: match &config.redis {
                Some(r) => Cache::from_config(r)?,
                None => Cache::disabled(),
            },
            config: Arc::new(config),
            started_at: Instant::now(),
            outbox_signal: Arc::new(Notify::new()),
            queue: None,
            delivery_queue: Arc::default(),
            exports: None,
        })
    }

    /// What every API function calls once per execution environment: the database, JWT
    /// and ticket-key secrets (and only those) are resolved from Secrets Manager into the
    /// configuration, and with `EMAIL_QUEUE_URL`/`TICKET_QUEUE_URL` set the outbox is
    /// relayed to SQS right after each commit; with `WEBHOOKS_QUEUE_URL` alone (the guests and
    /// tickets functions), only the webhook deliveries a command wrote are sent after it.
    /// Locally (no ARNs) this is [`ApiState::from_env`].
    pub async fn load(env: Env, keys: TicketKeysUse) -> anyhow::Result<Self> {
        let secrets: &[Secret] = match keys {
            TicketKeysUse::SignsOrVerifies => &[
                Secret::Database,
                Secret::Jwt,
                Secret::TicketKey,
                Secret::RedisAuth,
            ],
            TicketKeysUse::None => &[Secret::Database, Secret::Jwt, Secret::RedisAuth],
        };
        let env = env.with_secrets(secrets).await?;
        let mut state = match keys {
            TicketKeysUse::SignsOrVerifies => Self::from_env(&env)?,
            TicketKeysUse::None => Self::new(env.config()?, None)?,
        };
        if let Some(sqs) = platform::sqs::SqsQueue::from_env(&env).await? {
            state.queue = Some(Arc::new(sqs));
        } else if let Some(webhooks) = platform::sqs::WebhookQueue::from_env(&env).await? {
            let _ = state.delivery_queue.set(Arc::new(webhooks));
        }
        Ok(state)
    }

    /// From an environment without secrets to resolve (local server, tests). In Lambda the
    /// ticket key must be configured; locally a development key is created once in
    /// [`DEV_TICKET_KEY_FILE`] and reused.
    pub fn from_env(env: &Env) -> anyhow::Result<Self> {
        let config = env.config()?;
        if env.in_lambda() && env.get("TICKET_SIGNING_KEY").is_none() {
            anyhow::bail!("TICKET_SIGNING_KEY is not set");
        }
        let (keys, source) = signing::load(env.lookup(), Path::new(DEV_TICKET_KEY_FILE))?;
        match source {
            KeySource::Configured => tracing::info!(
                key_id = keys.kid(),
                "ticket signing key loaded from the configuration"
            ),
            KeySource::DevelopmentFile { created } => tracing::warn!(
                key_id = keys.kid(),
                file = DEV_TICKET_KEY_FILE,
                created,
                "TICKET_SIGNING_KEY is not set: using a DEVELOPMENT ticket key kept in a local file"
            ),
        }
        Self::new(config, Some(keys))
    }

    /// The ticket keys; an internal error in a function built without them (a route that
    /// needs them is served by a function that loads them).
    pub fn ticket_keys(&self) -> ApiResult<&TicketKeys> {
        self.ticket_keys.as_deref().ok_or_else(|| {
            crate::ApiError::internal("this function was built without the ticket keys")
        })
    }

    /// The end of every unit of work (see [`crate::unit_of_work!`], which routes use): commits
    /// the transaction a command ran in, then applies
    /// the effects the command returned (cache generations, job relay). The only way a
    /// route gets a command's result, so none can forget the effects.
    ///
    /// `answer`: the route's success status, when it declares it to [`crate::unit_of_work!`]
    /// (`answer = StatusCode::CREATED`): under an Idempotency-Key the final answer is then
    /// stored with the change, and nothing after it.
    pub async fn commit<T: serde::Serialize>(
        &self,
        tx: Transaction<'_>,
        done: Done<T>,
        answer: Option<axum::http::StatusCode>,
    ) -> ApiResult<T> {
        let (value, effects) = done.into_parts();
        // Under an Idempotency-Key, the key is written with the change (crate::idempotency).
        crate::idempotency::record_in(&tx, answer, &value).await?;
        tx.commit().await?;
        self.apply(effects).await;
        Ok(value)
    }

    /// The effects of a command that is atomic on its own (the one-statement check-in),
    /// applied now; its result.
    pub async fn finish<T>(&self, done: Done<T>) -> T {
        let (value, effects) = done.into_parts();
        self.apply(effects).await;
        value
    }

    /// What must happen after a commit: cached views of the changed events and every
    /// cached list go stale, and the jobs the change wrote are relayed.
    pub async fn apply(&self, effects: Effects) {
        if !effects.events_changed.is_empty() {
            let mut keys: Vec<String> = effects
                .events_changed
                .iter()
                .map(|id| format!("event:{id}"))
                .collect();
            keys.push("lists".to_owned());
            self.cache.bump(&keys).await;
        }
        if !effects.webhook_deliveries.is_empty() {
            self.send_deliveries(&effects.webhook_deliveries).await;
        }
        if effects.jobs_written {
            self.relay_jobs().await;
        }
    }

    /// Sends a `deliver_webhook` message for each delivery a command wrote (migrations/V20: the
    /// delivery row is the outbox; nothing is written after the send). A failure only logs: the
    /// delivery is due a minute after its commit, and a relay sends it then.
    async fn send_deliveries(&self, deliveries: &[i64]) {
        let Some(queue) = self.queue.as_ref().or_else(|| self.delivery_queue.get()) else {
            tracing::debug!(
                deliveries = deliveries.len(),
                "no queue to send webhook deliveries to: a relay sends them once due"
            );
            return;
        };
        for &id in deliveries {
            let message = outbox::delivery_message(id, 0);
            if let Err(e) = queue.send(outbox::Queue::Webhooks, &message).await {
                tracing::warn!(
                    delivery_id = id,
                    error = %e,
                    "webhook delivery not sent after its commit; a relay sends it once due"
                );
            }
        }
    }

    /// Hands the outbox's due jobs to the queue now (Lambda: SQS), or wakes this
    /// process's relay loop (local server). A failure only logs: the jobs stay in the
    /// outbox for the next relay or the scheduled sweep.
    pub async fn relay_jobs(&self) {
        self.outbox_signal.notify_one();
        let Some(queue) = &self.queue else { return };
        match outbox::drain(&self.db, queue.as_ref(), &RelayConfig::default()).await {
            Ok(r) if r.failed > 0 => tracing::warn!(
                sent = r.sent,
                failed = r.failed,
                "outbox relay: some jobs wait for the next round"
            ),
            Ok(r) if r.sent > 0 => tracing::debug!(sent = r.sent, "outbox relayed"),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "outbox relay failed; the jobs wait for the next round")
            }
        }
    }
}

/// Runs a command as a unit of work in a route: a connection, a transaction, the command
/// (which gets `&Transaction` as `$tx` and returns `DomainResult<Done<T>>`), then
/// [`ApiState::commit`]: commit and effects. Evaluates to the command's result `T`; every
/// failure returns from the route with its [`crate::ApiError`].
///
/// A serialization failure or deadlock (SQLSTATE 40001 / 40P01: PostgreSQL rolled the
/// transaction back, nothing was written) runs the whole unit again, up to
/// [`UNIT_OF_WORK_ATTEMPTS`] times with a short growing pause, before it becomes a 503: the
/// command expression is evaluated once per attempt, so it must not move a route's value
/// (pass `input.clone()`, which the compiler insists on). Only such a definite rollback
/// is retried: a connection lost at commit is not, since the commit may have happened.
///
/// ```ignore
/// let guest = edge::unit_of_work!(state, |tx| commands::cancel(tx, &caller, event_id, guest_id));
/// // A route that answers the command's result with this status (idempotency: the final
/// // answer is stored with the change, and nothing after it):
/// let guest = edge::unit_of_work!(state, answer = StatusCode::CREATED, |tx| commands::create(tx, ..));
/// ```
/// A macro rather than a function taking a closure: the command's future borrows both the
/// transaction and the route's values, which a closure bound cannot say while keeping the
/// route's future `Send`.
#[macro_export]
macro_rules! unit_of_work {
    ($state:expr, |$tx:ident| $command:expr) => {
        $crate::unit_of_work!(@run $state, None, |$tx| $command)
    };
    ($state:expr, answer = $answer:expr, |$tx:ident| $command:expr) => {
        $crate::unit_of_work!(@run $state, Some($answer), |$tx| $command)
    };
    (@run $state:expr, $answer:expr, |$tx:ident| $command:expr) => {{
        let mut attempt: u32 = 1;
        loop {
            let outcome: $crate::ApiResult<_> = async {
                let mut db = $state.db.get().await?;
                let transaction = db.transaction().await?;
                let done = {
                    let $tx = &transaction;
                    $command.await?
                };
                // Under an Idempotency-Key, the key is written last, with the answer.
                $state.commit(transaction, done, $answer).await
            }
            .await;
            match outcome {
                Err(e) if e.0.retryable && attempt < $crate::state::UNIT_OF_WORK_ATTEMPTS => {
                    $crate::state::conflict_pause(attempt, &e).await;
                    attempt += 1;
                }
                other => break other?,
            }
        }
    }};
}

/// Runs a command that is atomic on its own (the one-statement check-ins: a scan is its own
/// transaction, with its own retry after a conflict) on a pooled connection (`$db`, given to
/// the command as `&mut` [`domain::checkin::scan::Door`]), then applies its effects
/// ([`ApiState::finish`]). Evaluates to the command's result.
///
/// Under an Idempotency-Key (`$key`: `Some` of it for the command), an accepted scan writes
/// the key with its answer's row in its one statement, and `replay` renders that row for a
/// replay (the function that made the answer, from the same columns). Anything else the
/// command says it cannot answer in one statement
/// ([`domain::idempotency::needs_transaction`]: a refusal, a code to check first) runs again,
/// with `$key` `None`, in a transaction that also stores its answer
/// ([`crate::idempotency::settle_in`]): the key is committed with the refused scan's log too.
/// Either way a retry under the key finds it when it writes its own, is rolled back and
/// replays the first answer. A serialization failure or deadlock runs that transaction again,
/// as [`unit_of_work!`] does.
#[macro_export]
macro_rules! statement {
    ($state:expr, replay = $replay:expr, |$db:ident, $key:ident| $command:expr) => {{
        let mut connection = $state.db.get().await?;
        let outcome: $crate::ApiResult<_> = match $crate::idempotency::key() {
            None => {
                let $db = &mut connection;
                let $key: Option<&domain::idempotency::Key> = None;
                $command.await.map_err($crate::ApiError::from)
            }
            Some(key) => {
                $crate::idempotency::replay_rows_with($replay);
                let first = {
                    let $db = &mut connection;
                    let $key = Some(&key);
                    $command.await
                };
                match first {
                    Ok(done) => {
                        $crate::idempotency::answered();
                        Ok(done)
                    }
                    Err(e)
                        if domain::idempotency::is(&e, domain::idempotency::NEEDS_TRANSACTION) =>
                    {
                        let mut attempt: u32 = 1;
                        loop {
                            let outcome: $crate::ApiResult<_> = async {
                                let mut transaction = connection.transaction().await?;
                                let result = {
                                    let $db = &mut transaction;
                                    let $key: Option<&domain::idempotency::Key> = None;
                                    $command.await
                                };
                                $crate::idempotency::settle_in(transaction, result).await
                            }
                            .await;
                            match outcome {
                                Err(e)
                                    if e.0.retryable
                                        && attempt < $crate::state::UNIT_OF_WORK_ATTEMPTS =>
                                {
                                    $crate::state::conflict_pause(attempt, &e).await;
                                    attempt += 1;
                                }
                                other => break other,
                            }
                        }
                    }
                    Err(e) => Err($crate::ApiError(e)),
                }
            }
        };
        drop(connection);
        $state.finish(outcome?).await
    }};
}

/// How many times [`unit_of_work!`] runs a unit that PostgreSQL rolled back for a
/// serialization failure or a deadlock.
pub const UNIT_OF_WORK_ATTEMPTS: u32 = 4;

/// The pause before attempt `attempt + 1` of a unit of work that met a transaction
/// conflict (10, 20, 40 ms), logged with the database's own words.
pub async fn conflict_pause(attempt: u32, error: &crate::ApiError) {
    tracing::warn!(
        attempt,
        cause = error.0.internal.as_deref(),
        "transaction conflict, running the unit of work again"
    );
    tokio::time::sleep(std::time::Duration::from_millis(5 << attempt)).await;
}

/// A read that completes the answer to a write that is already committed (e.g. the
/// registration read after its seats were released): `$db` is a pooled connection. A
/// database that is unavailable for a moment (a restart, a failover) is waited for over
/// about 3 s before the 503: answering 503 to a write that happened would have the client
/// retry into a conflict.
#[macro_export]
macro_rules! after_commit {
    ($state:expr, |$db:ident| $read:expr) => {{
        let mut attempt: u32 = 1;
        loop {
            let outcome: $crate::ApiResult<_> = async {
                let $db = $state.db.get().await?;
                Ok($read.await?)
            }
            .await;
            match outcome {
                Err(e)
                    if e.0.code == domain::ErrorCode::ServiceUnavailable
                        && attempt < $crate::state::AFTER_COMMIT_ATTEMPTS =>
                {
                    tracing::warn!(
                        attempt,
                        cause = e.0.internal.as_deref(),
                        "read after a commit failed, retrying"
                    );
                    tokio::time::sleep(std::time::Duration::from_millis(100 << attempt)).await;
                    attempt += 1;
                }
                other => break other?,
            }
        }
    }};
}

/// How many times [`after_commit!`] tries its read (pauses 200, 400, 800, 1600 ms).
pub const AFTER_COMMIT_ATTEMPTS: u32 = 5;
