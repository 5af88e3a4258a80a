//! Exports: an event's guest list or scan log as a CSV file of any size.
//!
//! - `POST /api/events/{eventId}/exports` ([`request`]) writes the export (`pending`), its
//!   `build_export` job and an audit entry in one transaction.
//! - The job (`jobs::export`) streams the rows page by page ([`csv::CsvStream`]: keyset
//!   pagination, ~1000 rows a page, the CSV of a page appended to a buffer that is shipped as
//!   one part of an S3 multipart upload whenever it reaches 5 MiB), so memory stays flat
//!   whatever the number of rows. Then [`complete`] marks the export `done` with its row count
//!   and writes the `export_ready` email job and the `export.done` webhook, in one transaction.
//! - `GET /api/exports/{exportId}` ([`get`]) answers the export; the HTTP edge adds the
//!   time-limited download link ([`DownloadLinks`]: an S3 presigned GET URL).
//!
//! The object's key is a function of the export ([`object_key`]): a job delivered again after
//! a crash overwrites the object it may have half-written, never a second one.

pub mod csv;

use chrono::{DateTime, Duration, Utc};
use deadpool_postgres::{GenericClient, Transaction};
use serde::{Deserialize, Serialize};
use tokio_postgres::Row;
use utoipa::ToSchema;

use crate::access::{self, Lock};
use crate::audit;
use crate::caller::Caller;
use crate::error::{DomainError, DomainResult};
use crate::outbox::{self, Job};
use crate::rules::Input;
use crate::webhooks::{self, EventType};
use crate::work::{Done, Effects};

/// How long an export's file is kept: the exports bucket's lifecycle rule deletes objects
/// after this many days (template.yaml, `ExportsBucket`), and the API stops handing out links
/// to it then.
pub const RETENTION_DAYS: i64 = 7;

/// How many times the job runs an export (crashed runs included) before it gives up and the
/// export ends `failed`.
pub const MAX_ATTEMPTS: i32 = 3;

/// What is exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExportKind {
    /// Every guest of the event (cancelled ones too, with their status), with ticket type,
    /// ticket code and check-in time.
    Guests,
    /// The event's scan log: every attempt on every check-in list, accepted or not.
    Scans,
}

crate::text_enum!(ExportKind {
    Guests => "guests",
    Scans => "scans",
});

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    /// RFC 4180 CSV, UTF-8, CRLF line ends, a header row.
    #[default]
    Csv,
}

crate::text_enum!(ExportFormat { Csv => "csv" });

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExportStatus {
    Pending,
    Done,
    Failed,
}

crate::text_enum!(ExportStatus {
    Pending => "pending",
    Done => "done",
    Failed => "failed",
});

/// `POST /api/events/{eventId}/exports`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateExport {
    pub kind: ExportKind,
    /// Only `csv` for now (the default).
    #[serde(default)]
    pub format: ExportFormat,
}

/// An export as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Export {
    pub id: i64,
    pub event_id: i64,
    pub kind: ExportKind,
    pub format: ExportFormat,
    /// `pending` (being built), `done` (the file is ready), `failed` (see `error`).
    pub status: ExportStatus,
    /// Data rows in the file (the header row not counted); null until done.
    pub rows: Option<i64>,
    /// Size of the file in bytes; null until done.
    pub size_bytes: Option<i64>,
    /// A time-limited link to the file (an S3 presigned GET URL, no token needed), made anew at
    /// every read of a done export until the file is deleted, `RETENTION_DAYS` (7) days after
    /// `completedAt`. Null while pending, when failed, and once the file is gone.
    pub download_url: Option<String>,
    /// When `downloadUrl` stops working (the link's own expiry, at most an hour after this
    /// read; never later than the file's deletion). Once the file is deleted: when it was.
    pub expires_at: Option<DateTime<Utc>>,
    /// Why a failed export failed.
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    /// When it became done or failed.
    pub completed_at: Option<DateTime<Utc>>,
}

/// An export with what only the service sees: its object and its owner.
#[derive(Debug, Clone)]
pub struct Stored {
    pub export: Export,
    pub object_key: Option<String>,
    pub organizer_id: String,
    /// The `sub` of the user who asked for it (the `export_ready` email's addressee).
    pub requested_by: String,
}

/// Makes download links to stored files (S3 presigned URLs in the HTTP edge).
pub trait DownloadLinks: Send + Sync {
    /// A link to `object_key` valid until the returned time; `file_name` is the name a browser
    /// saves it under.
    fn link(&self, object_key: &str, file_name: &str) -> (String, DateTime<Utc>);
}

const COLUMNS: &str = "x.id, x.event_id, x.kind, x.format, x.status, x.row_count, x.size_bytes,
    x.error, x.created_at, x.completed_at, x.object_key, x.requested_by, e.organizer_id";

fn from_row(row: &Row) -> DomainResult<Stored> {
    Ok(Stored {
        export: Export {
            id: row.try_get("id")?,
            event_id: row.try_get("event_id")?,
            kind: crate::sql::get(row, "kind")?,
            format: crate::sql::get(row, "format")?,
            status: crate::sql::get(row, "status")?,
            rows: row.try_get("row_count")?,
            size_bytes: row.try_get("size_bytes")?,
            download_url: None,
            expires_at: None,
            error: row.try_get("error")?,
            created_at: row.try_get("created_at")?,
            completed_at: row.try_get("completed_at")?,
        },
        object_key: row.try_get("object_key")?,
        organizer_id: row.try_get("organizer_id")?,
        requested_by: row.try_get("requested_by")?,
    })
}

/// The object an export is written to: the same for every run of its job.
pub fn object_key(event_id: i64, export_id: i64) -> String {
    format!("exports/{event_id}/{export_id}.csv")
}

/// The name a browser saves the file under.
pub fn file_name(export: &Export) -> String {
    format!(
        "event-{}-{}-{}.csv",
        export.event_id,
        export.kind.as_str(),
        export.id
    )
}

/// `POST /api/events/{eventId}/exports`: the export (`pending`), its `build_export` job and
/// the audit entry, in the caller's transaction.
pub async fn request(
    tx: &Transaction<'_>,
    caller: &Caller,
    event_id: i64,
    input: Input<CreateExport>,
) -> DomainResult<Done<Export>> {
    let event = access::event(tx, caller, event_id, Lock::None, None).await?;
    let input = input.take()?;
    let stmt = tx
        .prepare_cached(
            "INSERT INTO exports (event_id, kind, format, requested_by, requested_role)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .await?;
    let id: i64 = tx
        .query_one(
            &stmt,
            &[
                &event_id,
                &input.kind,
                &input.format,
                &caller.user_id,
                &caller.role.as_str(),
            ],
        )
        .await?
        .get(0);
    outbox::enqueue(tx, Job::BuildExport { export_id: id }).await?;
    audit::record(
        tx,
        caller,
        Some(event_id),
        "export.requested",
        "export",
        Some(id),
        serde_json::json!({"kind": input.kind, "format": input.format}),
    )
    .await?;
    let stored = read(tx, id).await?;
    tracing::info!(
        export_id = id,
        event_id,
        organizer = %event.organizer_id,
        kind = input.kind.as_str(),
        "export requested"
    );
    Ok(Done::new(stored.export, Effects::default().jobs()))
}

async fn read(db: &impl GenericClient, id: i64) -> DomainResult<Stored> {
    let stmt = db
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM exports x JOIN events e ON e.id = x.event_id WHERE x.id = $1"
        ))
        .await?;
    let row = db
        .query_opt(&stmt, &[&id])
        .await?
        .ok_or_else(|| DomainError::not_found("export"))?;
    from_row(&row)
}

/// `GET /api/exports/{exportId}`: the export if the caller may see its event (404 like a
/// missing one otherwise), with a fresh download link when it is done and its file still kept.
pub async fn get(
    db: &impl GenericClient,
    caller: &Caller,
    id: i64,
    links: Option<&dyn DownloadLinks>,
    now: DateTime<Utc>,
) -> DomainResult<Export> {
    let stored = read(db, id).await?;
    access::check(caller, &stored.organizer_id, "export")?;
    let mut export = stored.export;
    if let (ExportStatus::Done, Some(key), Some(completed)) =
        (export.status, stored.object_key, export.completed_at)
    {
        let deleted_at = completed + Duration::days(RETENTION_DAYS);
        if now >= deleted_at {
            export.expires_at = Some(deleted_at);
        } else if let Some(links) = links {
            let (url, until) = links.link(&key, &file_name(&export));
            export.download_url = Some(url);
            export.expires_at = Some(until.min(deleted_at));
        } else {
            return Err(DomainError::internal(
                "this function was built without the exports storage",
            ));
        }
    }
    Ok(export)
}

/// A run of the `build_export` job, as [`start`] found it.
#[derive(Debug, Clone)]
pub struct Run {
    pub export_id: i64,
    pub event_id: i64,
    pub kind: ExportKind,
    /// This run's number (1 for the first).
    pub attempt: i32,
}

/// The start of a run of the job: counts it (in its own statement, so a run that crashes
/// counts too) and answers what to export; `None` when the export is no longer pending
/// (done or failed by an earlier delivery: nothing to do again).
pub async fn start(db: &impl GenericClient, export_id: i64) -> DomainResult<Option<Run>> {
    let stmt = db
        .prepare_cached(
            "UPDATE exports SET attempts = attempts + 1 WHERE id = $1 AND status = 'pending'
             RETURNING event_id, kind, attempts",
        )
        .await?;
    match db.query_opt(&stmt, &[&export_id]).await? {
        Some(row) => Ok(Some(Run {
            export_id,
            event_id: row.try_get("event_id")?,
            kind: crate::sql::get(&row, "kind")?,
            attempt: row.try_get("attempts")?,
        })),
        None => {
            read(db, export_id).await?;
            Ok(None)
        }
    }
}

/// The end of a successful run, in one transaction: the export is `done` with its row count
/// and object, the `export_ready` email job and the `export.done` webhook are written. Returns
/// the export, or `None` when it was not pending any more (nothing written).
pub async fn complete(
    tx: &Transaction<'_>,
    export_id: i64,
    rows: i64,
    size_bytes: i64,
    object_key: &str,
) -> DomainResult<Option<Export>> {
    let stmt = tx
        .prepare_cached(
            "UPDATE exports SET status = 'done', row_count = $2, size_bytes = $3, object_key = $4,
                    completed_at = now(), error = NULL
              WHERE id = $1 AND status = 'pending'",
        )
        .await?;
    if tx
        .execute(&stmt, &[&export_id, &rows, &size_bytes, &object_key])
        .await?
        == 0
    {
        return Ok(None);
    }
    let stored = read(tx, export_id).await?;
    outbox::enqueue(tx, Job::ExportReady { export_id }).await?;
    // Receivers get the export without a link: links are made by the API at each read
    // (`GET /api/exports/{id}`), where the caller's right to the file is checked.
    webhooks::emit(
        tx,
        &stored.organizer_id,
        EventType::ExportDone,
        &stored.export,
    )
    .await?;
    Ok(Some(stored.export))
}

/// A run that cannot succeed: the export ends `failed` with `reason` (when still pending).
pub async fn fail(db: &impl GenericClient, export_id: i64, reason: &str) -> DomainResult<()> {
    let stmt = db
        .prepare_cached(
            "UPDATE exports SET status = 'failed', error = $2, completed_at = now()
              WHERE id = $1 AND status = 'pending'",
        )
        .await?;
    let reason: String = reason.chars().take(1000).collect();
    db.execute(&stmt, &[&export_id, &reason]).await?;
    tracing::warn!(export_id, %reason, "export failed");
    Ok(())
}

/// What the `export_ready` email says, read by the email worker.
#[derive(Debug, Clone)]
pub struct ReadyNotice {
    pub export: Export,
    /// The `sub` of the user who asked for the export.
    pub requested_by: String,
    pub event_title: String,
}

/// The export an `export_ready` email is about; NOT_FOUND when it no longer exists.
pub async fn ready_notice(db: &impl GenericClient, export_id: i64) -> DomainResult<ReadyNotice> {
    let stored = read(db, export_id).await?;
    let stmt = db
        .prepare_cached("SELECT title FROM events WHERE id = $1")
        .await?;
    let title: String = db
        .query_one(&stmt, &[&stored.export.event_id])
        .await?
        .try_get(0)?;
    Ok(ReadyNotice {
        export: stored.export,
        requested_by: stored.requested_by,
        event_title: title,
    })
}
