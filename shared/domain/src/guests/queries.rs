//! Reading guests.

use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;

use super::input::ListGuests;
use super::model::{
    status_condition, Guest, GuestList, GUEST_COLUMNS, GUEST_SYNC_ORDER, GUEST_UPDATED_AT,
    GUEST_VERSION,
};
use crate::access::{self, Lock};
use crate::caller::Caller;
use crate::error::{DomainError, DomainResult};
use crate::events::model::Pagination;
use crate::page::{like_pattern, page_and_total, PageQuery, Plan};

pub async fn get(
    db: &impl GenericClient,
    caller: &Caller,
    event_id: i64,
    guest_id: i64,
) -> DomainResult<Guest> {
    access::event(db, caller, event_id, Lock::None, None).await?;
    by_id(db, event_id, guest_id).await
}

/// A guest of `event_id` (tenancy already checked by the caller of this function).
pub async fn by_id(db: &impl GenericClient, event_id: i64, guest_id: i64) -> DomainResult<Guest> {
    let stmt = db
        .prepare_cached(&format!(
            "SELECT {GUEST_COLUMNS}, {GUEST_VERSION} FROM guests g LEFT JOIN tickets t ON t.guest_id = g.id
              WHERE g.id = $1 AND g.event_id = $2"
        ))
        .await?;
    let row = db
        .query_opt(&stmt, &[&guest_id, &event_id])
        .await?
        .ok_or_else(|| DomainError::not_found("guest"))?;
    Guest::from_row(&row)
}

pub async fn list(
    db: &impl GenericClient,
    caller: &Caller,
    event_id: i64,
    q: &ListGuests,
) -> DomainResult<GuestList> {
    q.check()?;
    access::event(db, caller, event_id, Lock::None, None).await?;
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
        conditions.push(status_condition(status, "$1"));
    }
    if let Some(tt) = q.ticket_type_id {
        params.push(Box::new(tt));
        conditions.push(format!("g.ticket_type_id = ${}", params.len()));
    }
    let since = q
        .updated_since
        .as_deref()
        .and_then(crate::rules::parse_rfc3339);
    if let Some(since) = since {
        params.push(Box::new(since));
        let n = params.len();
        // Changed since then: the guest's row (idx_guests_event_updated), or its ticket's
        // check-in, which writes no guest row (idx_tickets_checked_in). Both sets come from an
        // index; the derived updatedAt then decides.
        conditions.push(format!(
            "g.id IN (SELECT u.id FROM guests u WHERE u.event_id = $1 AND u.updated_at >= ${n}
                      UNION ALL
                      SELECT k.guest_id FROM tickets k
                       WHERE k.event_id = $1 AND k.checked_in_at >= ${n} AND k.checked_in_at IS NOT NULL)"
        ));
        conditions.push(format!("{GUEST_UPDATED_AT} >= ${n}"));
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
            order: if since.is_some() {
                GUEST_SYNC_ORDER
            } else {
                "g.id"
            },
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
        .collect::<DomainResult<Vec<_>>>()?;
    Ok(GuestList {
        guests,
        pagination: Pagination::new(page, limit, total),
    })
}
