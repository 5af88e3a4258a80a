//! The state every route shares, built once per process (per Lambda execution environment).

use std::sync::Arc;
use std::time::Instant;

use deadpool_postgres::Pool;
use tokio::sync::Notify;

use crate::auth::TokenVerifier;
use crate::config::Config;

#[derive(Clone)]
pub struct AppState {
    pub db: Pool,
    pub tokens: Arc<TokenVerifier>,
    pub config: Arc<Config>,
    pub started_at: Instant,
    /// Wakes the outbox relay of this process (if it runs one) after a commit that wrote jobs.
    pub outbox_signal: Arc<Notify>,
}

impl AppState {
    /// Builds the state; connections are opened lazily by the pool.
    pub fn new(config: Config) -> anyhow::Result<Self> {
        if config.jwt.is_development_default {
            tracing::warn!(
                "JWT_SECRET is not set: using the DEVELOPMENT default key; never run like this outside a laptop"
            );
        }
        Ok(Self {
            db: crate::db::pool(&config)?,
            tokens: Arc::new(TokenVerifier::new(&config.jwt)),
            config: Arc::new(config),
            started_at: Instant::now(),
            outbox_signal: Arc::new(Notify::new()),
        })
    }

    /// Call after committing a change that wrote outbox jobs.
    pub fn jobs_written(&self) {
        self.outbox_signal.notify_one();
    }

    pub fn from_env() -> anyhow::Result<Self> {
        Self::new(Config::from_env()?)
    }
}
