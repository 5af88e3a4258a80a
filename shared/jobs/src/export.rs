//! The `build_export` job: an export's rows streamed into its S3 object, then the export
//! marked `done` with the `export_ready` email and the `export.done` webhook in one
//! transaction (`domain::exports`).
//!
//! - Flat memory: the rows are read a page at a time ([`CsvStream`], keyset pagination) in one
//!   read-only REPEATABLE READ transaction (the file is one consistent snapshot), and the CSV
//!   is shipped as a multipart-upload part whenever [`PART_SIZE`] bytes are buffered: one page
//!   of rows and one part in memory, whatever the number of rows.
//! - Idempotent: a delivery of a job already done does nothing (`dispatch::process`, and
//!   `exports::start` finds the export no longer pending); a run after a crash writes the same
//!   object key again (`exports::object_key`), replacing what the crashed run left.
//! - Failures: S3 refusing (no bucket, no permission), no storage configured, or
//!   [`MAX_ATTEMPTS`] runs without success end the export `failed` with the reason; other
//!   failures (S3 or the database unavailable) are retried by the queue.

use deadpool_postgres::Pool;
use domain::exports::{self, csv::CsvStream, Run, MAX_ATTEMPTS};
use domain::ErrorCode;
use platform::s3::{ObjectStore, ObjectUpload, S3Error, PART_SIZE};
use tokio_postgres::IsolationLevel;

use crate::dispatch::JobError;

/// The content type of the objects (and of the downloads).
pub const CSV_CONTENT_TYPE: &str = "text/csv; charset=utf-8";

/// Why a run failed, in words fit for the export's `error` (no SQL, no credentials).
#[derive(Debug)]
enum Failure {
    Transient(String),
    Permanent(String),
}

impl From<domain::DomainError> for Failure {
    fn from(e: domain::DomainError) -> Self {
        tracing::warn!(error = %e, "export: database");
        match e.code {
            ErrorCode::InternalError => {
                Failure::Permanent("the export could not be written".into())
            }
            _ => Failure::Transient("the database was unavailable".into()),
        }
    }
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        domain::DomainError::from(e).into()
    }
}

impl From<S3Error> for Failure {
    fn from(e: S3Error) -> Self {
        match e {
            S3Error::Transient(_) => Failure::Transient(e.to_string()),
            S3Error::Rejected(_) => Failure::Permanent(e.to_string()),
        }
    }
}

pub async fn build(
    pool: &Pool,
    store: Option<&ObjectStore>,
    export_id: i64,
) -> Result<(), JobError> {
    // One connection for the whole run (a worker's pool may hold only one).
    let mut db = pool.get().await?;
    let run = match exports::start(&db, export_id).await {
        Ok(Some(run)) => run,
        Ok(None) => {
            tracing::info!(export_id, "export already finished: nothing to do");
            return Ok(());
        }
        Err(e) if e.code == ErrorCode::NotFound => {
            return Err(JobError::Permanent(format!(
                "export {export_id} does not exist"
            )))
        }
        Err(e) => return Err(JobError::Transient(e.to_string())),
    };
    let give_up = |reason: String| async move {
        let db = pool.get().await?;
        exports::fail(&db, export_id, &reason)
            .await
            .map_err(|e| JobError::Transient(e.to_string()))?;
        Err::<(), JobError>(JobError::Permanent(reason))
    };
    let Some(store) = store else {
        drop(db);
        return give_up("the exports storage is not configured (EXPORTS_BUCKET)".into()).await;
    };
    if run.attempt > MAX_ATTEMPTS {
        drop(db);
        return give_up(format!("gave up after {MAX_ATTEMPTS} attempts")).await;
    }
    let started = std::time::Instant::now();
    let key = exports::object_key(run.event_id, run.export_id);
    let written = write(&mut db, store, &run, &key).await;
    let (rows, size) = match written {
        Ok(done) => done,
        Err(Failure::Transient(reason)) if run.attempt < MAX_ATTEMPTS => {
            tracing::warn!(export_id, attempt = run.attempt, %reason, "export run failed; retried");
            return Err(JobError::Transient(reason));
        }
        Err(Failure::Transient(reason)) => {
            drop(db);
            return give_up(format!("failed {MAX_ATTEMPTS} times, last: {reason}")).await;
        }
        Err(Failure::Permanent(reason)) => {
            drop(db);
            return give_up(reason).await;
        }
    };
    let tx = db.transaction().await?;
    let done = exports::complete(&tx, export_id, rows as i64, size as i64, &key)
        .await
        .map_err(|e| JobError::Transient(e.to_string()))?;
    tx.commit().await?;
    match done {
        Some(_) => tracing::info!(
            export_id,
            rows,
            bytes = size,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "export done"
        ),
        None => tracing::info!(export_id, "export finished meanwhile by another run"),
    }
    Ok(())
}

/// The rows of `run` into the object `key`: (rows, bytes).
async fn write(
    db: &mut deadpool_postgres::Object,
    store: &ObjectStore,
    run: &Run,
    key: &str,
) -> Result<(u64, u64), Failure> {
    let tx = db
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let mut stream = CsvStream::open(&tx, run.kind, run.event_id).await?;
    let mut upload = ObjectUpload::new(store, key, CSV_CONTENT_TYPE);
    let shipped: Result<(), Failure> = async {
        while stream.next_page(&tx).await? {
            if stream.buffered() >= PART_SIZE {
                upload.part(stream.take()).await?;
            }
        }
        Ok(())
    }
    .await;
    if let Err(e) = shipped {
        upload.abort().await;
        return Err(e);
    }
    tx.commit().await?;
    let size = upload.finish(stream.take()).await?;
    Ok((stream.rows(), size))
}
