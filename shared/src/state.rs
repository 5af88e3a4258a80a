//! The state every route shares, built once per process (per Lambda execution environment).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use deadpool_postgres::Pool;
use tokio::sync::Notify;

use crate::auth::TokenVerifier;
use crate::cache::Cache;
use crate::config::Config;
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
        })
    }

    /// From the environment. In Lambda the ticket key must be configured; locally a
    /// development key is created once in [`DEV_TICKET_KEY_FILE`] and reused.
    pub fn from_env() -> anyhow::Result<Self> {
        let config = Config::from_env()?;
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        if env("AWS_LAMBDA_FUNCTION_NAME").is_some() && env("TICKET_SIGNING_KEY").is_none() {
            anyhow::bail!("TICKET_SIGNING_KEY is not set");
        }
        let (keys, source) = signing::load(env, Path::new(DEV_TICKET_KEY_FILE))?;
        match source {
            KeySource::Configured => tracing::info!(
                key_id = keys.kid(),
                "ticket signing key loaded from the environment"
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
    /// guests, check-ins) or that wrote outbox jobs: cached views of the event and every
    /// cached list go stale, and this process's outbox relay (if any) wakes up.
    pub async fn after_commit(&self, event_id: i64) {
        self.outbox_signal.notify_one();
        self.cache
            .bump(&[format!("event:{event_id}"), "lists".to_owned()])
            .await;
    }
}
