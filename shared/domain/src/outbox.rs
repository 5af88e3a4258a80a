//! The transactional outbox. A job is written with [`enqueue`] in the same transaction as
//! the change that causes it, so it exists exactly when the change does. The relay
//! ([`relay_once`]) later hands pending jobs to the queue backend: it *leases* a batch
//! (pushes `next_attempt_at` forward in one short transaction, no lock held while
//! sending), sends, then marks each job dispatched. A relay that dies between commit and
//! dispatch, or between send and mark, leaves jobs whose lease simply expires: the next
//! relay sends them again. Delivery is therefore at least once; workers dedupe by
//! `jobId` (`processed_jobs`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Pool};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use async_trait::async_trait;

pub use crate::job::{Job, Queue};

/// The message body of the contract: `{"jobId", "type", "payload", "createdAt"}`, as stored
/// in `job_outbox` and sent on the queues. [`Message::job`] reads the typed [`Job`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub job_id: Uuid,
    #[serde(rename = "type")]
    pub job_type: String,
    pub payload: Value,
    pub created_at: DateTime<Utc>,
}

impl Message {
    /// The typed job; an error for a type or payload no worker knows (a poison message).
    pub fn job(&self) -> Result<Job, String> {
        Job::from_parts(&self.job_type, &self.payload)
    }

    /// The queue this message travels on (the email queue for a type it does not know).
    pub fn queue(&self) -> Queue {
        self.job().map(|j| j.queue()).unwrap_or(Queue::Email)
    }
}

/// Where the relay hands jobs: SQS in AWS (`platform::sqs`), an in-process queue locally
/// (`jobs::queue`). A port: the domain knows only this trait.
#[async_trait]
pub trait QueueBackend: Send + Sync {
    async fn send(&self, queue: Queue, message: &Message) -> anyhow::Result<()>;

    /// Whether the queue answers now (readiness).
    async fn ping(&self) -> bool {
        true
    }
}

/// Writes one job in the caller's transaction. Returns its id.
pub async fn enqueue(tx: &impl GenericClient, job: Job) -> Result<Uuid, tokio_postgres::Error> {
    Ok(enqueue_all(tx, &[job]).await?[0])
}

/// Writes several jobs in the caller's transaction with one statement (one round trip),
/// in the order given. Returns their ids.
pub async fn enqueue_all(
    tx: &impl GenericClient,
    jobs: &[Job],
) -> Result<Vec<Uuid>, tokio_postgres::Error> {
    let ids: Vec<Uuid> = jobs.iter().map(|_| Uuid::new_v4()).collect();
    let queues: Vec<&str> = jobs.iter().map(|j| j.queue().name()).collect();
    let types: Vec<&str> = jobs.iter().map(|j| j.type_name()).collect();
    let payloads: Vec<Value> = jobs.iter().map(|j| j.payload()).collect();
    let stmt = tx
        .prepare_cached(
            "INSERT INTO job_outbox (job_id, queue, job_type, payload)
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[])",
        )
        .await?;
    tx.execute(&stmt, &[&ids, &queues, &types, &payloads])
        .await?;
    Ok(ids)
}

/// The `deliver_webhook` message of one attempt at a webhook delivery. Webhook deliveries are
/// their own outbox (migrations/V20): no job row stands for them, and the job id is derived from
/// the delivery and the attempts it has had, so the same attempt sent twice (after the commit,
/// then by a relay after a long queue backlog) runs once, and each retry is a job of its own.
pub fn delivery_message(delivery_id: i64, attempts: i32) -> Message {
    // "whok" and the attempt count, then the delivery's id.
    let high = 0x7768_6f6b_0000_0000_u64 | u64::from(attempts.max(0) as u32);
    let job = Job::DeliverWebhook { delivery_id };
    Message {
        job_id: Uuid::from_u64_pair(high, delivery_id as u64),
        job_type: job.type_name().to_owned(),
        payload: job.payload(),
        created_at: Utc::now(),
    }
}

#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Jobs (and due webhook deliveries) leased per round.
    pub batch: i64,
    /// How long a leased job is hidden from other relays before it counts as lost.
    pub lease: Duration,
    /// How long a webhook delivery sent to its queue waits for its worker before a relay sends
    /// it again (nothing marks it sent: the worker's outcome settles it or schedules it).
    pub delivery_lease: Duration,
    /// Retry delay after a failed send (doubled per attempt, capped at 5 minutes).
    pub retry_base: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            batch: 100,
            lease: Duration::from_secs(30),
            delivery_lease: Duration::from_secs(120),
            retry_base: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RelayReport {
    pub sent: usize,
    pub failed: usize,
    /// Leases taken ([`drain`]).
    pub rounds: usize,
    /// [`drain`] stopped at its deadline with jobs possibly still due.
    pub out_of_time: bool,
}

/// Leases up to `config.batch` due jobs, oldest first. Other relays skip them until the
/// lease runs out.
pub async fn lease(
    pool: &Pool,
    config: &RelayConfig,
) -> Result<Vec<(i64, Message)>, anyhow::Error> {
    let db = pool.get().await?;
    let stmt = db
        .prepare_cached(
            "UPDATE job_outbox o SET next_attempt_at = now() + make_interval(secs => $2), attempts = attempts + 1
              WHERE o.id IN (SELECT id FROM job_outbox
                              WHERE dispatched_at IS NULL AND next_attempt_at <= now()
                              ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
          RETURNING o.id, o.job_id, o.job_type, o.payload, o.created_at",
        )
        .await?;
    let rows = db
        .query(&stmt, &[&config.batch, &config.lease.as_secs_f64()])
        .await?;
    let mut jobs: Vec<(i64, Message)> = rows
        .iter()
        .map(|r| {
            (
                r.get(0),
                Message {
                    job_id: r.get(1),
                    job_type: r.get(2),
                    payload: r.get(3),
                    created_at: r.get(4),
                },
            )
        })
        .collect();
    jobs.sort_by_key(|(id, _)| *id);
    Ok(jobs)
}

/// One relay round: lease, send, mark. Returns what happened.
pub async fn relay_once(
    pool: &Pool,
    backend: &dyn QueueBackend,
    config: &RelayConfig,
) -> anyhow::Result<RelayReport> {
    let jobs = lease(pool, config).await?;
    let mut report = RelayReport::default();
    let mut sent_ids = Vec::new();
    for (id, job) in jobs {
        match backend.send(job.queue(), &job).await {
            Ok(()) => {
                sent_ids.push(id);
                report.sent += 1;
            }
            Err(e) => {
                report.failed += 1;
                tracing::warn!(job_id = %job.job_id, error = %e, "job could not be sent, will retry");
                let db = pool.get().await?;
                db.execute(
                    "UPDATE job_outbox SET last_error = $2,
                            next_attempt_at = now() + make_interval(secs => least($3 * power(2, attempts - 1), 300))
                      WHERE id = $1",
                    &[&id, &e.to_string(), &config.retry_base.as_secs_f64()],
                )
                .await?;
            }
        }
    }
    if !sent_ids.is_empty() {
        let db = pool.get().await?;
        let stmt = db
            .prepare_cached(
                "UPDATE job_outbox SET dispatched_at = now(), last_error = NULL WHERE id = ANY($1)",
            )
            .await?;
        db.execute(&stmt, &[&sent_ids]).await?;
    }
    Ok(report)
}

/// Sends up to `config.batch` due webhook deliveries (migrations/V20): a delivery whose
/// post-commit message was lost, a retry whose time has come, a change's delivery written due
/// at once. Each is leased first (`next_attempt_at` pushed forward by `delivery_lease`, one
/// statement for the batch), so other relays skip it while its message waits in the queue; one
/// whose send failed is due again at once, from when it first fell due.
pub async fn relay_deliveries(
    pool: &Pool,
    backend: &dyn QueueBackend,
    config: &RelayConfig,
) -> Result<RelayReport, anyhow::Error> {
    let db = pool.get().await?;
    let stmt = db
        .prepare_cached(
            "WITH due AS (
                SELECT id, next_attempt_at FROM webhook_deliveries
                 WHERE status = 'pending' AND next_attempt_at <= now()
                 ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
             UPDATE webhook_deliveries d SET next_attempt_at = now() + make_interval(secs => $2)
               FROM due WHERE d.id = due.id
          RETURNING d.id, d.attempts, due.next_attempt_at",
        )
        .await?;
    let rows = db
        .query(
            &stmt,
            &[&config.batch, &config.delivery_lease.as_secs_f64()],
        )
        .await?;
    // No connection held while sending.
    drop(db);
    let mut report = RelayReport::default();
    let (mut unsent, mut due): (Vec<i64>, Vec<DateTime<Utc>>) = (Vec::new(), Vec::new());
    for row in rows {
        let (id, attempts): (i64, i32) = (row.get(0), row.get(1));
        match backend
            .send(Queue::Webhooks, &delivery_message(id, attempts))
            .await
        {
            Ok(()) => report.sent += 1,
            Err(e) => {
                report.failed += 1;
                unsent.push(id);
                due.push(row.get(2));
                tracing::warn!(delivery_id = id, error = %e, "webhook delivery could not be sent, will retry");
            }
        }
    }
    if !unsent.is_empty() {
        // Due again from when they fell due: the next relay retries them, and the sweep's
        // backlog age counts from then.
        let db = pool.get().await?;
        let stmt = db
            .prepare_cached(
                "UPDATE webhook_deliveries d SET next_attempt_at = u.due
                   FROM unnest($1::bigint[], $2::timestamptz[]) AS u (id, due)
                  WHERE d.id = u.id AND d.status = 'pending'",
            )
            .await?;
        db.execute(&stmt, &[&unsent, &due]).await?;
    }
    Ok(report)
}

/// Relays until no due job and no due webhook delivery is left: the one relay loop, used after
/// a commit (API), after a batch (workers), by the local relay task ([`run_relay`]) and by the
/// scheduled sweep (with its deadline). Stops when nothing was due, or when nothing got through (the queue
/// is down: the failed jobs wait for their retry time), or at `deadline`.
pub async fn drain(
    pool: &Pool,
    backend: &dyn QueueBackend,
    config: &RelayConfig,
) -> anyhow::Result<RelayReport> {
    drain_until(pool, backend, config, None).await
}

/// [`drain`], stopping at `deadline` (a Lambda invocation's time budget).
pub async fn drain_until(
    pool: &Pool,
    backend: &dyn QueueBackend,
    config: &RelayConfig,
    deadline: Option<std::time::Instant>,
) -> anyhow::Result<RelayReport> {
    let mut total = RelayReport::default();
    loop {
        if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            total.out_of_time = true;
            return Ok(total);
        }
        let jobs = relay_once(pool, backend, config).await?;
        let deliveries = relay_deliveries(pool, backend, config).await?;
        total.rounds += 1;
        total.sent += jobs.sent + deliveries.sent;
        total.failed += jobs.failed + deliveries.failed;
        if jobs.sent + deliveries.sent == 0 {
            return Ok(total);
        }
    }
}

/// The relay loop of a long-running process (the local server): woken by `notify`
/// after each commit that wrote jobs, and every `interval` as a sweep.
pub async fn run_relay(
    pool: Pool,
    backend: std::sync::Arc<dyn QueueBackend>,
    notify: std::sync::Arc<tokio::sync::Notify>,
    interval: Duration,
) {
    let config = RelayConfig::default();
    loop {
        if let Err(e) = drain(&pool, backend.as_ref(), &config).await {
            tracing::warn!(error = %e, "outbox relay round failed");
        }
        let _ = tokio::time::timeout(interval, notify.notified()).await;
    }
}
