//! Reading guests.

use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;

use super::input::ListGuests;
use super::model::{Guest, GuestList, GUEST_COLUMNS};
use crate::auth::Caller;
use crate::db::{like_pattern, page_and_total, PageQuery, Plan};
use crate::error::{ApiError, ApiResult};
use crate::events::model::Pagination;

/// What the guest commands need to know of the event, once tenancy is checked.
pub struct EventAccess {
    pub id: i64,
    pub status: String,
    pub event_date: chrono::DateTime<chrono::Utc>,
    pub requires_approval: bool,
    pub has_ticket_types: bool,
    /// Whether the ticket type asked about ([`event_access_locked`]'s `ticket_type`) is one
    /// of the event's.
    pub has_ticket_type: bool,
}

/// The row lock a guest command takes on its event, see [`event_access_locked`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventLock {
    /// `FOR SHARE`: the event's status and capacities (its seat shards) cannot change until
    /// this transaction ends, while any number of guest commands run at once.
    Share,
    /// `FOR NO KEY UPDATE`: for a command that must write the event row itself.
    Update,
}

/// The event `id` if the caller manages it (scanners: 403; other organizers: 404).
pub async fn event_access(
    db: &impl GenericClient,
    caller: &Caller,
    id: i64,
) -> ApiResult<EventAccess> {
    access(db, caller, id, None, None).await
}

/// [`event_access`], with the event row locked for the rest of the transaction. Every
/// guest command that takes or gives back seats holds at least [`EventLock::Share`]: the
/// event commands that cancel the event or change its capacities lock it `FOR UPDATE`, so
/// they wait for those guest commands and the guest commands wait for them. A registration
/// therefore sees a status that cannot change before it commits, and seat shards that are
/// not being laid out again (see migrations/V4__seat_shards.sql).
///
/// `ticket_type`: a ticket type id to check against the event in the same round trip
/// ([`EventAccess::has_ticket_type`]).
pub async fn event_access_locked(
    db: &impl GenericClient,
    caller: &Caller,
    id: i64,
    lock: EventLock,
    ticket_type: Option<i64>,
) -> ApiResult<EventAccess> {
    access(db, caller, id, Some(lock), ticket_type).await
}

async fn access(
    db: &impl GenericClient,
    caller: &Caller,
    id: i64,
    lock: Option<EventLock>,
    ticket_type: Option<i64>,
) -> ApiResult<EventAccess> {
    caller.require_manager()?;
    const SELECT: &str = "SELECT organizer_id, status, event_date, requires_approval,
                    EXISTS (SELECT 1 FROM ticket_types t WHERE t.event_id = e.id) AS has_types,
                    EXISTS (SELECT 1 FROM ticket_types t WHERE t.event_id = e.id AND t.id = $2) AS has_type
               FROM events e WHERE id = $1";
    let stmt = match lock {
        None => db.prepare_cached(SELECT).await?,
        Some(EventLock::Share) => db.prepare_cached(&format!("{SELECT} FOR SHARE")).await?,
        Some(EventLock::Update) => {
            db.prepare_cached(&format!("{SELECT} FOR NO KEY UPDATE"))
                .await?
        }
    };
    let row = db
        .query_opt(&stmt, &[&id, &ticket_type])
        .await?
        .ok_or_else(|| ApiError::not_found("event"))?;
    if !caller.can_see(row.get("organizer_id")) {
        return Err(ApiError::not_found("event"));
    }
    Ok(EventAccess {
        id,
        status: row.get("status"),
        event_date: row.get("event_date"),
        requires_approval: row.get("requires_approval"),
        has_ticket_types: row.get("has_types"),
        has_ticket_type: row.get("has_type"),
    })
}

pub async fn get(
    db: &impl GenericClient,
    caller: &Caller,
    event_id: i64,
    guest_id: i64,
) -> ApiResult<Guest> {
    event_access(db, caller, event_id).await?;
    by_id(db, event_id, guest_id).await
}

/// A guest of `event_id` (tenancy already checked by the caller of this function).
pub async fn by_id(db: &impl GenericClient, event_id: i64, guest_id: i64) -> ApiResult<Guest> {
    let stmt = db
        .prepare_cached(&format!(
            "SELECT {GUEST_COLUMNS} FROM guests g LEFT JOIN tickets t ON t.guest_id = g.id
              WHERE g.id = $1 AND g.event_id = $2"
        ))
        .await?;
    let row = db
        .query_opt(&stmt, &[&guest_id, &event_id])
        .await?
        .ok_or_else(|| ApiError::not_found("guest"))?;
    Guest::from_row(&row)
}

pub async fn list(
    db: &impl GenericClient,
    caller: &Caller,
    event_id: i64,
    q: &ListGuests,
) -> ApiResult<GuestList> {
    q.check()?;
    event_access(db, caller, event_id).await?;
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> = vec![Box::new(event_id)];
    let mut conditions = vec!["g.event_id = $1".to_owned()];
    if let Some(term) = q.search.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        params.push(Box::new(like_pattern(term)));
        // The same expression as idx_guests_search_trgm, so the index serves it.
        conditions.push(format!(
            "(g.first_name || ' ' || g.last_name || ' ' || g.email) ILIKE ${}",
            params.len()
        ));
    }
    if let Some(status) = q.status {
        params.push(Box::new(status.as_str()));
        conditions.push(format!("g.status = ${}", params.len()));
    }
    if let Some(tt) = q.ticket_type_id {
        params.push(Box::new(tt));
        conditions.push(format!("g.ticket_type_id = ${}", params.len()));
    }
    let from_where = format!(
        "FROM guests g LEFT JOIN tickets t ON t.guest_id = g.id WHERE {}",
        conditions.join(" AND ")
    );
    let (page, limit) = (q.page(), q.limit());
    let (rows, total) = page_and_total(
        db,
        None,
        PageQuery {
            columns: GUEST_COLUMNS,
            from_where: &from_where,
            order: "g.id",
            params: &params,
            page,
            limit,
            count_sql: None,
            plan: Plan::Cached,
        },
    )
    .await?;
    let guests = rows
        .iter()
        .map(Guest::from_row)
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(GuestList {
        guests,
        pagination: Pagination::new(page, limit, total),
    })
}
