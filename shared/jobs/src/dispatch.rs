//! Running jobs, whatever delivered them (SQS or the in-process queue): at least once
//! delivery, at most once effect. `processed_jobs` remembers every job that was done or
//! failed for good, so a redelivered message does nothing twice.

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
    async fn handle(&self, job: &Message) -> Result<(), JobError>;
}

/// How long a claim protects a running job; a worker that died releases it by expiry.
const CLAIM: std::time::Duration = std::time::Duration::from_secs(300);

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
    job: &Message,
) -> Result<Outcome, JobError> {
    // Claim the job: insert an in-progress row, or take over one whose claim expired.
    let db = pool.get().await?;
    let claimed = db
        .query_opt(
            "INSERT INTO processed_jobs (job_id, job_type, outcome, claimed_until)
                  VALUES ($1, $2, 'in_progress', now() + make_interval(secs => $3))
             ON CONFLICT (job_id) DO UPDATE SET claimed_until = EXCLUDED.claimed_until
                   WHERE processed_jobs.outcome = 'in_progress' AND processed_jobs.claimed_until < now()
             RETURNING 1",
            &[&job.job_id, &job.job_type, &CLAIM.as_secs_f64()],
        )
        .await?
        .is_some();
    if !claimed {
        let outcome: String = db
            .query_one(
                "SELECT outcome FROM processed_jobs WHERE job_id = $1",
                &[&job.job_id],
            )
            .await?
            .get(0);
        return match outcome.as_str() {
            "in_progress" => Err(JobError::Transient(
                "another worker is running this job".into(),
            )),
            _ => Ok(Outcome::Duplicate),
        };
    }
    drop(db);
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
        Err(e) => {
            // Release the claim so the retry can take it at once.
            let db = pool.get().await?;
            db.execute(
                "DELETE FROM processed_jobs WHERE job_id = $1 AND outcome = 'in_progress'",
                &[&job.job_id],
            )
            .await?;
            Err(e)
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
    db.execute(
        "INSERT INTO processed_jobs (job_id, job_type, outcome, detail) VALUES ($1, $2, $3, $4)
         ON CONFLICT (job_id) DO UPDATE SET outcome = EXCLUDED.outcome, detail = EXCLUDED.detail, claimed_until = NULL",
        &[&job.job_id, &job.job_type, &outcome, &detail],
    )
    .await?;
    Ok(())
}
