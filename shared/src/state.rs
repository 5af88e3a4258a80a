//! The state every route shares, built once per process (per Lambda execution environment).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use deadpool_postgres::Pool;
use tokio::sync::Notify;

use crate::auth::TokenVerifier;
use crate::cache::Cache;
use crate::config::Config;
use crate::outbox::{self, RelayConfig};
use crate::queue::QueueBackend;
use crate::tickets::signing::{self, KeySource, TicketKeys};

/// Where the local server keeps the development ticket-signing key it creates once.
pub const DEV_TICKET_KEY_FILE: &str = ".local/ticket-signing-key";

#[derive(Clone)]
pub struct AppState {
    pub db: Pool,
    pub tokens: Arc<TokenVerifier>,
    pub ticket_keys: Arc<TicketKeys>,
    /// Redis cache and rate-limit counters; a no-op without `REDIS_URL`.
    pub cache: Cache,
    pub config: Arc<Config>,
    pub started_at: Instant,
    /// Wakes the outbox relay of this process (if it runs one) after a commit that wrote jobs.
    pub outbox_signal: Arc<Notify>,
    /// Where jobs are relayed right after a commit (SQS in Lambda). `None` locally, where
    /// a relay loop woken by `outbox_signal` does it instead.
    pub queue: Option<Arc<dyn QueueBackend>>,
}

impl AppState {
    /// Builds the state; connections are opened lazily by the pool.
    pub fn new(config: Config, ticket_keys: TicketKeys) -> anyhow::Result<Self> {
        if config.jwt.is_development_default {
            tracing::warn!(
                "JWT_SECRET is not set: using the DEVELOPMENT default key; never run like this outside a laptop"
            );
        }
        Ok(Self {
            db: crate::db::pool(&config)?,
            tokens: Arc::new(TokenVerifier::new(&config.jwt)),
            ticket_keys: Arc::new(ticket_keys),
            cache: match &config.redis {
                Some(r) => Cache::new(&r.url, r.timeout, r.ttl, &r.prefix)?,
                None => Cache::disabled(),
            },
            config: Arc::new(config),
            started_at: Instant::now(),
            outbox_signal: Arc::new(Notify::new()),
            queue: None,
        })
    }

    /// From the process environment only (local server, tests). In Lambda the ticket key
    /// must be configured; locally a development key is created once in
    /// [`DEV_TICKET_KEY_FILE`] and reused.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// What every deployed function calls once per execution environment: the secrets
    /// named by `JWT_SECRET_ARN`, `TICKET_SIGNING_KEY_SECRET_ARN` and `DB_SECRET_ARN` are
    /// fetched from Secrets Manager ([`crate::secrets::resolve_env`]) and override the
    /// environment, and with `EMAIL_QUEUE_URL`/`TICKET_QUEUE_URL` set the outbox is
    /// relayed to SQS right after each commit ([`AppState::relay_jobs`]). Without any of
    /// these variables this is [`AppState::from_env`].
    pub async fn load() -> anyhow::Result<Self> {
        let resolved = crate::secrets::resolve_env(|k| std::env::var(k).ok()).await?;
        let mut state =
            Self::from_lookup(|k| resolved.get(k).cloned().or_else(|| std::env::var(k).ok()))?;
        if let Some(sqs) = crate::queue::sqs::SqsQueue::from_env().await? {
            state.queue = Some(Arc::new(sqs));
        }
        Ok(state)
    }

    /// [`AppState::from_env`] reading its variables through `get`.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let config = Config::from_lookup(&get)?;
        let env = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        if env("AWS_LAMBDA_FUNCTION_NAME").is_some() && env("TICKET_SIGNING_KEY").is_none() {
            anyhow::bail!("TICKET_SIGNING_KEY is not set");
        }
        let (keys, source) = signing::load(env, Path::new(DEV_TICKET_KEY_FILE))?;
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
        Self::new(config, keys)
    }

    /// Call after committing any change to an event or what it shows (ticket types,
    /// guests, check-ins): cached views of the event and every cached list go stale, and
    /// the jobs the change wrote are relayed.
    pub async fn after_commit(&self, event_id: i64) {
        self.cache
            .bump(&[format!("event:{event_id}"), "lists".to_owned()])
            .await;
        self.relay_jobs().await;
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
