//! Check-in lists: create, read, change, delete; their scan logs and conflicts.
//!
//! A list belongs to an event; tenancy is the event's, through [`access`]. Creating or
//! changing a list holds the event `FOR SHARE` while it checks the ticket types it names, and
//! deleting a ticket type holds it `FOR UPDATE` and refuses a type a list names: so a list
//! never names a type that is gone (an empty list would mean "every type").

use deadpool_postgres::{GenericClient, Transaction};
use serde::Serialize;
use utoipa::ToSchema;

use super::door::ListRules;
use super::input::{CreateList, ListScans, ResultFilter, UpdateList};
use super::model::{
    list_from_row, scan_at, scan_from_row, CheckinList, Conflict, ScanRecord, LIST_COLUMNS,
    LIST_STATS_JOIN, SCAN_COLUMNS,
};
use crate::access::{self, Lock};
use crate::audit;
use crate::caller::Caller;
use crate::error::{DbResultExt, DomainError, DomainResult, ErrorCode, FieldError};
use crate::etag;
use crate::lifecycle::EventStatus;
use crate::page::Pagination;
use crate::rules::{finish, Input};
use crate::sql;
use crate::work::{Done, Effects};

const NAME_KEY: &str = "checkin_lists_event_name_key";

fn duplicate_name() -> DomainError {
    DomainError::new(
        ErrorCode::InvalidState,
        "a check-in list with this name already exists for this event",
    )
}

/// A list the caller may see, with its event's owner and status; `lock`: `FOR UPDATE` of the
/// list row (changes), else a plain read.
pub(crate) struct Located {
    pub rules: ListRules,
    pub is_default: bool,
    pub name: String,
    pub organizer_id: String,
    /// The list row's version (`crate::etag`).
    pub version: String,
    /// When the list's rules last changed (the offline dataset restarts a full pass after).
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

pub(crate) async fn locate(
    db: &impl GenericClient,
    caller: &Caller,
    list_id: i64,
    for_update: bool,
) -> DomainResult<Located> {
    let sql = format!(
        "SELECT l.event_id, l.name, l.ticket_type_ids, l.allow_reentry, l.opens_at, l.closes_at,
                l.is_default, e.organizer_id, e.status, l.xmin::text AS version,
                l.updated_at
           FROM checkin_lists l JOIN events e ON e.id = l.event_id
          WHERE l.id = $1 {}",
        if for_update { "FOR UPDATE OF l" } else { "" }
    );
    let stmt = db.prepare_cached(&sql).await?;
    let row = db
        .query_opt(&stmt, &[&list_id])
        .await?
        .ok_or_else(|| DomainError::not_found("check-in list"))?;
    access::check(caller, row.get("organizer_id"), "check-in list")?;
    let status: EventStatus = sql::get(&row, "status")?;
    Ok(Located {
        rules: ListRules {
            id: list_id,
            event_id: row.get("event_id"),
            event_published: status == EventStatus::Published,
            allow_reentry: row.get("allow_reentry"),
            ticket_type_ids: row.get("ticket_type_ids"),
            opens_at: row.get("opens_at"),
            closes_at: row.get("closes_at"),
        },
        is_default: row.get("is_default"),
        name: row.get("name"),
        organizer_id: row.get("organizer_id"),
        version: row.get("version"),
        updated_at: row.get("updated_at"),
    })
}

/// Every id of `ids` must be a ticket type of the event.
async fn check_types(tx: &Transaction<'_>, event_id: i64, ids: &[i64]) -> DomainResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let rows = tx
        .query(
            "SELECT id FROM ticket_types WHERE event_id = $1 AND id = ANY ($2)",
            &[&event_id, &ids],
        )
        .await?;
    let known: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    finish(
        ids.iter()
            .enumerate()
            .filter(|(_, id)| !known.contains(id))
            .map(|(i, _)| {
                FieldError::new(
                    format!("ticketTypeIds[{i}]"),
                    "is not a ticket type of this event",
                )
            })
            .collect(),
    )
}

pub async fn by_id(db: &impl GenericClient, caller: &Caller, id: i64) -> DomainResult<CheckinList> {
    locate(db, caller, id, false).await?;
    read(db, id).await
}

async fn read(db: &impl GenericClient, id: i64) -> DomainResult<CheckinList> {
    let stmt = db
        .prepare_cached(&format!(
            "SELECT {LIST_COLUMNS} FROM checkin_lists l {LIST_STATS_JOIN} WHERE l.id = $1"
        ))
        .await?;
    let row = db
        .query_opt(&stmt, &[&id])
        .await?
        .ok_or_else(|| DomainError::not_found("check-in list"))?;
    list_from_row(&row)
}

/// The event's lists, the default first.
pub async fn for_event(
    db: &impl GenericClient,
    caller: &Caller,
    event_id: i64,
) -> DomainResult<Vec<CheckinList>> {
    access::event(db, caller, event_id, Lock::None, None).await?;
    let stmt = db
        .prepare_cached(&format!(
            "SELECT {LIST_COLUMNS} FROM checkin_lists l {LIST_STATS_JOIN}
              WHERE l.event_id = $1 ORDER BY l.is_default DESC, l.id"
        ))
        .await?;
    db.query(&stmt, &[&event_id])
        .await?
        .iter()
        .map(list_from_row)
        .collect()
}

pub async fn create(
    tx: &Transaction<'_>,
    caller: &Caller,
    event_id: i64,
    input: Input<CreateList>,
) -> DomainResult<Done<CheckinList>> {
    access::event(tx, caller, event_id, Lock::Share, None).await?;
    let input = input.take()?;
    let (opens_at, closes_at) = input.check()?;
    check_types(tx, event_id, &input.ticket_type_ids).await?;
    let row = tx
        .query_one(
            "INSERT INTO checkin_lists (event_id, name, ticket_type_ids, allow_reentry, opens_at, closes_at)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            &[
                &event_id,
                &input.name.trim(),
                &input.ticket_type_ids,
                &input.allow_reentry,
                &opens_at,
                &closes_at,
            ],
        )
        .await
        .on_constraint(NAME_KEY, duplicate_name)?;
    let list = read(tx, row.get(0)).await?;
    audit::record(
        tx,
        caller,
        Some(event_id),
        "checkin_list.created",
        "checkin_list",
        Some(list.id),
        serde_json::json!({"name": list.name, "ticketTypeIds": list.ticket_type_ids,
                           "allowReentry": list.allow_reentry, "opensAt": list.opens_at, "closesAt": list.closes_at}),
    )
    .await?;
    tracing::info!(list_id = list.id, event_id, "check-in list created");
    Ok(Done::new(list, Effects::default()))
}

pub async fn update(
    tx: &Transaction<'_>,
    caller: &Caller,
    list_id: i64,
    input: Input<UpdateList>,
) -> DomainResult<Done<CheckinList>> {
    let located = locate(tx, caller, list_id, true).await?;
    etag::check(input.if_match(), &located.version)?;
    let input = input.take()?;
    input.check()?;
    let event_id = located.rules.event_id;
    if located.is_default
        && (input
            .ticket_type_ids
            .as_ref()
            .is_some_and(|ids| !ids.is_empty())
            || input.allow_reentry == Some(true))
    {
        return Err(DomainError::invalid_state(
            "the default list admits every ticket type once (the ticket check-in endpoints scan on it); create another list instead",
        ));
    }
    let (opens_at, closes_at) = input.window((located.rules.opens_at, located.rules.closes_at))?;
    // The event's ticket types stay as checked until the commit.
    access::event(tx, caller, event_id, Lock::Share, None).await?;
    if let Some(ids) = &input.ticket_type_ids {
        check_types(tx, event_id, ids).await?;
    }
    tx.execute(
        "UPDATE checkin_lists
            SET name = COALESCE($2, name), ticket_type_ids = COALESCE($3, ticket_type_ids),
                allow_reentry = COALESCE($4, allow_reentry), opens_at = $5, closes_at = $6,
                updated_at = now()
          WHERE id = $1",
        &[
            &list_id,
            &input.name.as_deref().map(str::trim),
            &input.ticket_type_ids,
            &input.allow_reentry,
            &opens_at,
            &closes_at,
        ],
    )
    .await
    .on_constraint(NAME_KEY, duplicate_name)?;
    audit::record(
        tx,
        caller,
        Some(event_id),
        "checkin_list.updated",
        "checkin_list",
        Some(list_id),
        audit::values_of(&input),
    )
    .await?;
    Ok(Done::new(read(tx, list_id).await?, Effects::default()))
}

pub async fn delete(
    tx: &Transaction<'_>,
    caller: &Caller,
    list_id: i64,
    if_match: Option<&str>,
) -> DomainResult<Done<()>> {
    // FOR UPDATE of the list: a scan being recorded on it (its foreign key check locks the
    // list row) waits for this delete, then fails; one recorded before is seen below.
    let located = locate(tx, caller, list_id, true).await?;
    etag::check(if_match, &located.version)?;
    if located.is_default {
        return Err(DomainError::invalid_state(
            "the default check-in list cannot be deleted",
        ));
    }
    let scanned = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM ticket_scans WHERE list_id = $1)",
            &[&list_id],
        )
        .await?
        .get::<_, bool>(0);
    if scanned {
        return Err(DomainError::invalid_state(format!(
            "the check-in list '{}' has scans and cannot be deleted",
            located.name
        )));
    }
    tx.execute("DELETE FROM checkin_lists WHERE id = $1", &[&list_id])
        .await?;
    audit::record(
        tx,
        caller,
        Some(located.rules.event_id),
        "checkin_list.deleted",
        "checkin_list",
        Some(list_id),
        serde_json::json!({"name": located.name}),
    )
    .await?;
    Ok(Done::new((), Effects::default()))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScanPage {
    pub scans: Vec<ScanRecord>,
    pub pagination: Pagination,
}

/// The list's scan log, newest first.
pub async fn scans(
    db: &impl GenericClient,
    caller: &Caller,
    list_id: i64,
    query: ListScans,
) -> DomainResult<ScanPage> {
    locate(db, caller, list_id, false).await?;
    query.check()?;
    let (page, limit) = (query.page.unwrap_or(1), query.limit.unwrap_or(50));
    let result = match query.result {
        None => "",
        Some(ResultFilter::Accepted) => "AND s.result = 'accepted'",
        Some(ResultFilter::Conflict) => "AND s.result = 'conflict'",
        Some(ResultFilter::Rejected) => "AND s.result NOT IN ('accepted', 'conflict')",
    };
    let since = query
        .updated_since
        .as_deref()
        .and_then(crate::rules::parse_rfc3339);
    let from_where = format!(
        "FROM ticket_scans s WHERE s.list_id = $1 AND ($2::bigint IS NULL OR s.ticket_id = $2)
           AND ($3::timestamptz IS NULL OR s.updated_at >= $3) {result}"
    );
    let order = if since.is_some() {
        "s.updated_at, s.id"
    } else {
        "s.id DESC"
    };
    let stmt = db
        .prepare_cached(&format!(
            "SELECT {SCAN_COLUMNS}, count(*) OVER () AS total {from_where}
              ORDER BY {order} LIMIT $4 OFFSET $5"
        ))
        .await?;
    let rows = db
        .query(
            &stmt,
            &[
                &list_id,
                &query.ticket_id,
                &since,
                &limit,
                &((page - 1) * limit),
            ],
        )
        .await?;
    let total = match rows.first() {
        Some(r) => r.get("total"),
        None if page == 1 => 0,
        None => {
            let count = db
                .prepare_cached(&format!("SELECT count(*) {from_where}"))
                .await?;
            db.query_one(&count, &[&list_id, &query.ticket_id, &since])
                .await?
                .get(0)
        }
    };
    Ok(ScanPage {
        scans: rows.iter().map(scan_from_row).collect::<Result<_, _>>()?,
        pagination: Pagination::new(page, limit, total),
    })
}

/// The list's conflicts, newest first, each with the scan that admitted the ticket first.
pub async fn conflicts(
    db: &impl GenericClient,
    caller: &Caller,
    list_id: i64,
) -> DomainResult<Vec<Conflict>> {
    locate(db, caller, list_id, false).await?;
    read_conflicts(db, list_id, None).await
}

/// The conflicts `ids` of the list (their `scan.conflict` webhooks).
pub(crate) async fn conflicts_by_id(
    db: &impl GenericClient,
    list_id: i64,
    ids: &[i64],
) -> DomainResult<Vec<Conflict>> {
    read_conflicts(db, list_id, Some(ids)).await
}

async fn read_conflicts(
    db: &impl GenericClient,
    list_id: i64,
    ids: Option<&[i64]>,
) -> DomainResult<Vec<Conflict>> {
    let first_columns = SCAN_COLUMNS.replace("s.", "f.");
    let stmt = db
        .prepare_cached(&format!(
            "SELECT {SCAN_COLUMNS}, f.* FROM ticket_scans s
               LEFT JOIN LATERAL (SELECT {first_columns} FROM ticket_scans f WHERE f.id = s.conflict_with) f ON true
              WHERE s.list_id = $1 AND s.result = 'conflict' AND ($2::bigint[] IS NULL OR s.id = ANY ($2))
              ORDER BY s.id DESC LIMIT 1000"
        ))
        .await?;
    let rows = db.query(&stmt, &[&list_id, &ids]).await?;
    let width = SCAN_COLUMNS.split(',').count();
    rows.iter()
        .map(|row| {
            let scan = scan_from_row(row)?;
            let first_id: Option<i64> = row.try_get(width)?;
            let first_scan = match first_id {
                Some(_) => Some(scan_at(row, width)?),
                None => None,
            };
            Ok(Conflict {
                ticket_id: scan.ticket_id,
                code: scan.code.clone(),
                scan,
                first_scan,
            })
        })
        .collect()
}
