//! The `outbox-sweep` function, run every minute by an EventBridge schedule: relays the
//! due jobs of the outbox to SQS ([`domain::outbox::drain_until`] until nothing is due or
//! the invocation's time runs out), then measures what is left.
//!
//! The API functions only write jobs to the outbox (in the transaction of the change);
//! the workers relay the jobs their own batches wrote. Everything else reaches SQS
//! through this sweep, so a job waits at most about a minute, and a job whose send failed
//! is retried by a later round (its lease expires). Concurrent sweeps are harmless:
//! leases skip each other's rows.
//!
//! Each run publishes (EMF, namespace `EventPlannerCore`, dimension `Service`):
//! `OutboxSent`, `OutboxFailed`, `OutboxPending` (jobs not yet dispatched, and webhook
//! deliveries due but not sent: they are their own outbox, migrations/V20) and
//! `OutboxOldestPendingAge` (seconds): a growing age means jobs are not getting out
//! (SQS unreachable, or every send failing).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use deadpool_postgres::Pool;
use serde::Serialize;
use tokio::sync::OnceCell;

use domain::outbox::{self, QueueBackend, RelayConfig};
use platform::config::Env;
use platform::emf::{Metrics, Unit};
use platform::invocation::{Invocation, METRICS_NAMESPACE};

/// Kept back from the invocation's time to measure the backlog and answer.
const MARGIN: Duration = Duration::from_secs(5);

#[derive(Debug, Default, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepReport {
    pub sent: usize,
    pub failed: usize,
    /// Relay rounds (each leases up to `RelayConfig::batch` jobs).
    pub rounds: usize,
    /// True when the time ran out before the outbox was drained.
    pub out_of_time: bool,
    /// Jobs not dispatched after the sweep (due or waiting for a retry), and webhook
    /// deliveries due but not sent.
    pub pending: i64,
    /// Age of the oldest of them, in seconds (0 when none); a delivery's from when it fell due.
    pub oldest_pending_age_seconds: f64,
    /// Rows removed by the retention rules ([`crate::prune`]).
    pub pruned: crate::prune::PruneReport,
    /// Waiting-list offers expired by this run (their seats handed to the next entries).
    pub offers_expired: usize,
}

impl SweepReport {
    /// The EMF document of this run.
    pub fn metrics(&self, service: &str) -> Metrics {
        Metrics::new(METRICS_NAMESPACE)
            .dimension("Service", service)
            .metric("OutboxSent", Unit::Count, self.sent as f64)
            .metric("OutboxFailed", Unit::Count, self.failed as f64)
            .metric("OutboxPending", Unit::Count, self.pending as f64)
            .metric(
                "OutboxOldestPendingAge",
                Unit::Seconds,
                self.oldest_pending_age_seconds,
            )
    }
}

/// Relays due jobs until none is left, a round sends nothing, or `deadline` is near.
pub async fn sweep(
    pool: &Pool,
    backend: &dyn QueueBackend,
    config: &RelayConfig,
    deadline: Instant,
) -> anyhow::Result<SweepReport> {
    let relayed = outbox::drain_until(pool, backend, config, Some(deadline)).await?;
    let mut report = SweepReport {
        rounds: relayed.rounds,
        sent: relayed.sent,
        failed: relayed.failed,
        out_of_time: relayed.out_of_time,
        ..SweepReport::default()
    };
    let db = pool.get().await.context("connecting to the database")?;
    let row = db
        .query_one(
            "SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(created_at))::float8, 0)
               FROM job_outbox WHERE dispatched_at IS NULL",
            &[],
        )
        .await
        .context("measuring the outbox backlog")?;
    report.pending = row.get(0);
    report.oldest_pending_age_seconds = row.get::<_, f64>(1).max(0.0);
    // Webhook deliveries are their own outbox (migrations/V20): one still due after the sweep
    // is one it could not send, and counts in the backlog from the time it fell due.
    let row = db
        .query_one(
            "SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(next_attempt_at))::float8, 0)
               FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= now()",
            &[],
        )
        .await
        .context("measuring the webhook deliveries not sent")?;
    report.pending += row.get::<_, i64>(0);
    report.oldest_pending_age_seconds = report.oldest_pending_age_seconds.max(row.get::<_, f64>(1));
    Ok(report)
}

/// The sweep of one execution environment: the pool is opened at the first run (so a
/// database outage is a failed invocation, visible in the `Errors` metric, not a failed
/// start), the queue backend is given.
pub struct Sweeper {
    pool: OnceCell<Pool>,
    env: Env,
    backend: Arc<dyn QueueBackend>,
    config: RelayConfig,
    service: String,
    retention: crate::prune::Retention,
}

impl Sweeper {
    pub fn new(env: Env, backend: Arc<dyn QueueBackend>) -> anyhow::Result<Self> {
        Ok(Self {
            pool: OnceCell::new(),
            service: env.service_name(),
            retention: crate::prune::Retention::from_env(&env)?,
            env,
            backend,
            config: RelayConfig::default(),
        })
    }

    /// With the SQS backend (`EMAIL_QUEUE_URL`, `TICKET_QUEUE_URL`, both required).
    pub async fn from_env(env: Env) -> anyhow::Result<Self> {
        // Boxed: the SDK's configuration loading is a deep future (rustc's layout depth limit).
        let queue = Box::pin(platform::sqs::SqsQueue::from_env(&env))
            .await?
            .context("EMAIL_QUEUE_URL and TICKET_QUEUE_URL must be set")?;
        Self::new(env, Arc::new(queue))
    }

    /// One scheduled run: sweeps, logs, publishes the metrics, returns the report.
    pub async fn run(&self, invocation: &Invocation) -> anyhow::Result<SweepReport> {
        let pool = self
            .pool
            .get_or_try_init(|| async { platform::db::pool(&self.env.database_resolved(1).await?) })
            .await?;
        let budget = invocation.budget(MARGIN, Duration::from_secs(50));
        // Expired waiting-list offers first: the offers they hand on are relayed below.
        let offers_expired = match domain::waitlist::offers::sweep_expired(pool).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, cause = e.internal.as_deref(), "expiring waiting-list offers failed; the next run tries again");
                0
            }
        };
        let mut report = sweep(
            pool,
            self.backend.as_ref(),
            &self.config,
            Instant::now() + budget,
        )
        .await?;
        report.offers_expired = offers_expired;
        // Retention after the relay (which is what the schedule is for); a failure here
        // is logged, not fatal: the next run tries again.
        match crate::prune::prune(pool, &self.retention).await {
            Ok(pruned) => report.pruned = pruned,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "pruning failed; the next run tries again")
            }
        }
        if report.failed > 0 || report.out_of_time {
            tracing::warn!(
                sent = report.sent,
                failed = report.failed,
                pending = report.pending,
                out_of_time = report.out_of_time,
                "outbox sweep left jobs behind"
            );
        } else {
            tracing::info!(
                sent = report.sent,
                pending = report.pending,
                pruned_outbox = report.pruned.outbox,
                pruned_processed_jobs = report.pruned.processed_jobs,
                pruned_scans = report.pruned.scans,
                "outbox sweep"
            );
        }
        report.metrics(&self.service).emit();
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A queue that refuses every message (SQS down), or takes them all.
    struct Queue {
        up: bool,
        sent: std::sync::Mutex<Vec<outbox::Message>>,
    }

    #[async_trait::async_trait]
    impl QueueBackend for Queue {
        async fn send(&self, _: outbox::Queue, message: &outbox::Message) -> anyhow::Result<()> {
            if !self.up {
                anyhow::bail!("the queue is down");
            }
            self.sent.lock().unwrap().push(message.clone());
            Ok(())
        }
    }

    /// Webhook deliveries are their own outbox: the sweep sends the due ones, and one it could
    /// not send counts in the backlog from the time it fell due (the alarm on
    /// `OutboxOldestPendingAge` covers them).
    #[tokio::test]
    async fn due_deliveries_are_sent_and_unsent_ones_count_in_the_backlog() {
        let db = testkit::TestDatabase::create().await;
        let pool = platform::db::pool(&platform::config::DbConfig::local(&db.url, 2)).unwrap();
        pool.get()
            .await
            .unwrap()
            .batch_execute(
                "INSERT INTO webhooks (organizer_id, url, event_types, secret)
                      VALUES ('org', 'https://crm.example.com/h', '{event.published}', 'whsec_x');
                 INSERT INTO webhook_deliveries (webhook_id, message_id, event_type, payload, next_attempt_at)
                      SELECT (SELECT id FROM webhooks), 'msg_' || d, 'event.published', '{}', now() + make_interval(secs => d)
                        FROM unnest(ARRAY[-90, 600]) d;",
            )
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let config = RelayConfig::default();
        let down = Queue {
            up: false,
            sent: Default::default(),
        };
        let report = sweep(&pool, &down, &config, deadline).await.unwrap();
        assert_eq!(
            (report.sent, report.failed, report.pending),
            (0, 1, 1),
            "{report:?}"
        );
        assert!(report.oldest_pending_age_seconds >= 90.0, "{report:?}");
        // The next sweep, with the queue back, sends it (not the one due later).
        let up = Queue {
            up: true,
            sent: Default::default(),
        };
        let report = sweep(&pool, &up, &config, deadline).await.unwrap();
        assert_eq!((report.sent, report.pending), (1, 0), "{report:?}");
        let sent = up.sent.lock().unwrap();
        assert_eq!(sent[0].job_type, "deliver_webhook");
    }

    #[test]
    fn the_metrics_name_the_backlog() {
        let report = SweepReport {
            sent: 3,
            failed: 1,
            rounds: 2,
            out_of_time: false,
            pending: 1,
            oldest_pending_age_seconds: 12.5,
            pruned: Default::default(),
            offers_expired: 0,
        };
        let doc = report.metrics("epc-test").document(0);
        assert_eq!(doc["OutboxSent"], 3);
        assert_eq!(doc["OutboxOldestPendingAge"], 12.5);
        assert_eq!(doc["Service"], "epc-test");
        let names: Vec<&str> = doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "OutboxSent",
                "OutboxFailed",
                "OutboxPending",
                "OutboxOldestPendingAge"
            ]
        );
    }
}
