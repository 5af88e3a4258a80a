//! The one health checker: the database, Redis and the queue, checked at once, each with its
//! answer time. `/health/ready` (the health function) reads it as ready / degraded /
//! not_ready; the health-probe function publishes it as CloudWatch metrics.

use std::future::Future;
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use domain::outbox::QueueBackend;
use serde::Serialize;

use crate::cache::Cache;

/// One dependency's answer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    pub up: bool,
    pub latency_ms: f64,
}

/// The dependencies that are configured, and how they answered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub database: Check,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<Check>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<Check>,
}

/// What `/health/ready` answers (the contract's Health section).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// Only Redis is down: the API still serves, uncached.
    Degraded,
    /// The database or the queue is down.
    NotReady,
}

impl Readiness {
    pub fn as_str(self) -> &'static str {
        match self {
            Readiness::Ready => "ready",
            Readiness::Degraded => "degraded",
            Readiness::NotReady => "not_ready",
        }
    }
}

impl Report {
    /// Every configured dependency answered (the probe's `Healthy` metric: stricter than
    /// readiness, a Redis outage counts).
    pub fn healthy(&self) -> bool {
        self.database.up && self.redis.is_none_or(|c| c.up) && self.queue.is_none_or(|c| c.up)
    }

    pub fn readiness(&self) -> Readiness {
        if !self.database.up || self.queue.is_some_and(|c| !c.up) {
            Readiness::NotReady
        } else if self.redis.is_some_and(|c| !c.up) {
            Readiness::Degraded
        } else {
            Readiness::Ready
        }
    }
}

/// `SELECT 1` on a connection of `pool`.
pub async fn ping_database(pool: &Pool) -> anyhow::Result<()> {
    let db = pool.get().await?;
    db.simple_query("SELECT 1").await?;
    Ok(())
}

/// Checks the three dependencies concurrently. `database`: the database check (usually
/// [`ping_database`]), bounded by `database_timeout`; Redis and the queue bound their own
/// pings. A dependency that is not configured (no Redis, no queue) is left out.
pub async fn check(
    database: impl Future<Output = anyhow::Result<()>>,
    database_timeout: Duration,
    cache: &Cache,
    queue: Option<&dyn QueueBackend>,
) -> Report {
    let database = async {
        let start = Instant::now();
        let up = match tokio::time::timeout(database_timeout, database).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::warn!(error = %format!("{e:#}"), "database check failed");
                false
            }
            Err(_) => {
                tracing::warn!(
                    timeout_ms = database_timeout.as_millis() as u64,
                    "database check timed out"
                );
                false
            }
        };
        Check {
            up,
            latency_ms: elapsed_ms(start),
        }
    };
    let redis = async {
        let start = Instant::now();
        let up = cache.ping().await?;
        Some(Check {
            up,
            latency_ms: elapsed_ms(start),
        })
    };
    let queue = async {
        let queue = queue?;
        let start = Instant::now();
        let up = queue.ping().await;
        Some(Check {
            up,
            latency_ms: elapsed_ms(start),
        })
    };
    let (database, redis, queue) = tokio::join!(database, redis, queue);
    Report {
        database,
        redis,
        queue,
    }
}

fn elapsed_ms(start: Instant) -> f64 {
    (start.elapsed().as_secs_f64() * 1000.0 * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(up: bool) -> Check {
        Check {
            up,
            latency_ms: 1.0,
        }
    }

    #[test]
    fn readiness_follows_the_contract() {
        let r = |database, redis, queue| Report {
            database: c(database),
            redis,
            queue,
        };
        assert_eq!(r(true, None, None).readiness(), Readiness::Ready);
        assert_eq!(
            r(true, Some(c(true)), Some(c(true))).readiness(),
            Readiness::Ready
        );
        assert_eq!(
            r(true, Some(c(false)), None).readiness(),
            Readiness::Degraded
        );
        assert!(!r(true, Some(c(false)), None).healthy());
        assert_eq!(
            r(false, Some(c(true)), None).readiness(),
            Readiness::NotReady
        );
        assert_eq!(
            r(true, Some(c(true)), Some(c(false))).readiness(),
            Readiness::NotReady
        );
        assert_eq!(Readiness::NotReady.as_str(), "not_ready");
    }
}
