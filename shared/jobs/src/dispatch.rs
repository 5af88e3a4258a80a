//! Running jobs, whatever delivered them (SQS or the in-process queue): at least once
//! delivery, at most once effect. `processed_jobs` remembers every job that was done or
//! failed for good, so a redelivered message does nothing twice.

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::Pool;

use domain::outbox::Message;

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Worth retrying (a dependency is down or slow).
    #[error("transient: {0}")]
    Transient(String),
    /// Retrying cannot help (the job is malformed, its subject is gone, the service refused it).
    #[error("permanent: {0}")]
    Permanent(String),
    /// Another attempt holds the job's claim for up to this long: try again then. Not a
    /// failure of the job: it uses up no attempt.
    #[error("another attempt is running this job (claim held for {0:?} more)")]
    Busy(std::time::Duration),
}

impl From<tokio_postgres::Error> for JobError {
    /// With the SQLSTATE and the server's message when there is one ("db error" alone
    /// says nothing in a log).
    fn from(e: tokio_postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) => {
                JobError::Transient(format!("database: {} {}", db.code().code(), db.message()))
            }
            None => JobError::Transient(format!("database: {e}")),
        }
    }
}

impl From<deadpool_postgres::PoolError> for JobError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        JobError::Transient(format!("database pool: {e}"))
    }
}

#[async_trait]
pub trait JobHandler: Send + Sync {
    async fn handle(&self, job: &Message) -> Result<(), JobError>;
}

/// How long a claim protects a running job; an attempt that died (and could not release
/// it) releases it by expiry. Longer than a worker function's 30 s time-out.
const CLAIM: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// Seen before: nothing was done again.
    Duplicate,
    /// Recorded as failed; the message must not be retried.
    FailedPermanently,
}

/// Runs `job` once. `Err` means "retry me": transient failure, or [`JobError::Busy`].
///
/// `owner` names the delivery lineage (the SQS message id, the in-process queue's id for the
/// job): the claim it takes belongs to it, so its own retry may take it again even when the
/// failed attempt could not release it (the database was restarting), while another
/// delivery of the same job (the relay sent it twice) waits until the claim is released or
/// expires.
pub async fn process(
    pool: &Pool,
    handler: &dyn JobHandler,
    job: &Message,
    owner: &str,
) -> Result<Outcome, JobError> {
    // Claim the job: insert an in-progress row, take over one whose claim expired, or
    // take back our own.
    // Prepared once per connection (every job runs these two statements).
    let db = pool.get().await?;
    let claim = db
        .prepare_cached(
            "INSERT INTO processed_jobs (job_id, job_type, outcome, claimed_until, claimed_by)
                  VALUES ($1, $2, 'in_progress', now() + make_interval(secs => $3), $4)
             ON CONFLICT (job_id) DO UPDATE
                   SET claimed_until = EXCLUDED.claimed_until, claimed_by = EXCLUDED.claimed_by
                 WHERE processed_jobs.outcome = 'in_progress'
                   AND (processed_jobs.claimed_until < now() OR processed_jobs.claimed_by = EXCLUDED.claimed_by)
             RETURNING 1",
        )
        .await?;
    let claimed = db
        .query_opt(
            &claim,
            &[&job.job_id, &job.job_type, &CLAIM.as_secs_f64(), &owner],
        )
        .await?
        .is_some();
    if !claimed {
        let row = db
            .query_one(
                "SELECT outcome, GREATEST(EXTRACT(EPOCH FROM claimed_until - now()), 0)::float8
                   FROM processed_jobs WHERE job_id = $1",
                &[&job.job_id],
            )
            .await?;
        let (outcome, held): (String, Option<f64>) = (row.get(0), row.get(1));
        return match outcome.as_str() {
            "in_progress" => Err(JobError::Busy(Duration::from_secs_f64(
                held.unwrap_or(0.0).max(0.5),
            ))),
            _ => Ok(Outcome::Duplicate),
        };
    }
    drop(db);
    match handler.handle(job).await {
        Ok(()) => {
            // The effect happened: recording it must survive a database hiccup, or a retry
            // would act twice.
            bookkeeping("record the job as done", || record(pool, job, "done", None)).await?;
            Ok(Outcome::Done)
        }
        Err(JobError::Permanent(reason)) => {
            tracing::error!(job_id = %job.job_id, job_type = %job.job_type, %reason, "job failed permanently");
            bookkeeping("record the permanent failure", || {
                record(pool, job, "failed_permanently", Some(&reason))
            })
            .await?;
            Ok(Outcome::FailedPermanently)
        }
        Err(e) => {
            // Release our claim so that any retry can take it at once. If the database does
            // not answer, our own retry can still take it back (see `owner`), and any other
            // delivery can when it expires.
            let released = bookkeeping("release the claim", || async {
                let db = pool.get().await?;
                db.execute(
                    "DELETE FROM processed_jobs WHERE job_id = $1 AND outcome = 'in_progress' AND claimed_by = $2",
                    &[&job.job_id, &owner],
                )
                .await?;
                Ok(())
            })
            .await;
            if let Err(release) = released {
                tracing::warn!(job_id = %job.job_id, error = %release, "claim not released; it expires by itself");
            }
            Err(e)
        }
    }
}

/// A statement about a job's state, tried a few times over a few seconds: a database
/// restart (connections closed, refused for a moment) must not turn into a lost or
/// doubled job.
async fn bookkeeping<F, Fut>(what: &str, mut step: F) -> Result<(), JobError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), JobError>>,
{
    let mut pause = Duration::from_millis(100);
    let mut attempt = 1;
    loop {
        match step().await {
            Ok(()) => return Ok(()),
            Err(e) if attempt < 6 => {
                tracing::warn!(attempt, error = %e, "could not {what}, retrying");
                tokio::time::sleep(pause).await;
                pause *= 2;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Records a job that exhausted its retries.
pub async fn record_failure(pool: &Pool, job: &Message, reason: &str) -> Result<(), JobError> {
    record(pool, job, "failed_permanently", Some(reason)).await
}

async fn record(
    pool: &Pool,
    job: &Message,
    outcome: &str,
    detail: Option<&str>,
) -> Result<(), JobError> {
    let db = pool.get().await?;
    let stmt = db
        .prepare_cached(
            "INSERT INTO processed_jobs (job_id, job_type, outcome, detail) VALUES ($1, $2, $3, $4)
             ON CONFLICT (job_id) DO UPDATE SET outcome = EXCLUDED.outcome, detail = EXCLUDED.detail,
                    claimed_until = NULL, claimed_by = NULL",
        )
        .await?;
    db.execute(&stmt, &[&job.job_id, &job.job_type, &outcome, &detail])
        .await?;
    Ok(())
}
