//! Running jobs, whatever delivered them (SQS or the in-process queue): at least once
//! delivery, at most once effect. `processed_jobs` remembers every job that was done or
//! failed for good, so a redelivered message does nothing twice.

use async_trait::async_trait;
use deadpool_postgres::Pool;

use crate::outbox::Job;

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Worth retrying (a dependency is down or slow).
    #[error("transient: {0}")]
    Transient(String),
    /// Retrying cannot help (the job is malformed, its subject is gone, the service refused it).
    #[error("permanent: {0}")]
    Permanent(String),
}

impl From<tokio_postgres::Error> for JobError {
    fn from(e: tokio_postgres::Error) -> Self {
        JobError::Transient(format!("database: {e}"))
    }
}

impl From<deadpool_postgres::PoolError> for JobError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        JobError::Transient(format!("database pool: {e}"))
    }
}

#[async_trait]
pub trait JobHandler: Send + Sync {
    async fn handle(&self, job: &Job) -> Result<(), JobError>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// Seen before: nothing was done again.
    Duplicate,
    /// Recorded as failed; the message must not be retried.
    FailedPermanently,
}

/// Runs `job` once. `Err` means "retry me" (transient failure).
pub async fn process(
    pool: &Pool,
    handler: &dyn JobHandler,
    job: &Job,
) -> Result<Outcome, JobError> {
    let db = pool.get().await?;
    let seen = db
        .query_opt(
            "SELECT 1 FROM processed_jobs WHERE job_id = $1",
            &[&job.job_id],
        )
        .await?
        .is_some();
    drop(db);
    if seen {
        return Ok(Outcome::Duplicate);
    }
    match handler.handle(job).await {
        Ok(()) => {
            record(pool, job, "done", None).await?;
            Ok(Outcome::Done)
        }
        Err(JobError::Permanent(reason)) => {
            tracing::error!(job_id = %job.job_id, job_type = %job.job_type, %reason, "job failed permanently");
            record(pool, job, "failed_permanently", Some(&reason)).await?;
            Ok(Outcome::FailedPermanently)
        }
        Err(e) => Err(e),
    }
}

/// Records a job that exhausted its retries.
pub async fn record_failure(pool: &Pool, job: &Job, reason: &str) -> Result<(), JobError> {
    record(pool, job, "failed_permanently", Some(reason)).await
}

async fn record(
    pool: &Pool,
    job: &Job,
    outcome: &str,
    detail: Option<&str>,
) -> Result<(), JobError> {
    let db = pool.get().await?;
    db.execute(
        "INSERT INTO processed_jobs (job_id, job_type, outcome, detail) VALUES ($1, $2, $3, $4)
         ON CONFLICT (job_id) DO NOTHING",
        &[&job.job_id, &job.job_type, &outcome, &detail],
    )
    .await?;
    Ok(())
}
