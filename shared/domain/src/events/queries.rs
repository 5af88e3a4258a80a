//! Reading events: one event, or a filtered, sorted page of them. Ticket types come in the
//! same statement (a correlated `json_agg`), so a page of 100 events is one round trip.

use deadpool_postgres::{GenericClient, Pool};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::input::{EventSort, ListEvents, StatusFilter};
use super::model::{Event, EventCounts, EventList, EventStatus, Pagination, TicketType};
use crate::access;
use crate::caller::Caller;
use crate::error::{DomainError, DomainResult};
use crate::money::Cents;
use crate::page::{like_pattern, page_and_total, PageQuery, Plan};
use crate::sql;

/// The select list [`event_from_row`] reads (over `e`, events); also EXPLAINed by the
/// performance harness.
pub const EVENT_COLUMNS: &str = "e.id, e.title, e.description, e.event_date, e.location, e.max_attendees, \
     e.status, e.organizer_id, e.requires_approval, e.waitlist_enabled, e.waitlist_offer_minutes, \
     seats_taken(e.id, NULL) AS taken, seats_held(e.id, NULL) AS held, \
     (SELECT count(*) FROM waitlist_entries w WHERE w.event_id = e.id AND w.status = 'waiting') AS waiting, \
     ((SELECT count(*) FROM tickets k WHERE k.event_id = e.id AND k.checked_in_at IS NOT NULL) \
     + (SELECT count(*) FROM guests s WHERE s.event_id = e.id AND s.status = 'checked_in')) AS checked_in, \
     e.created_at, e.updated_at, e.xmin::text AS version, \
     (SELECT COALESCE(json_agg(json_build_object('id', t.id, 'name', t.name, 'priceCents', t.price_cents, \
             'quantity', t.quantity, 'taken', seats_taken(e.id, t.id), 'held', seats_held(e.id, t.id)) \
             ORDER BY t.id), '[]'::json) \
        FROM ticket_types t WHERE t.event_id = e.id) AS ticket_types";

/// The event `id` as `caller` may see it: another organizer's event is NOT_FOUND.
pub async fn get(db: &impl GenericClient, caller: &Caller, id: i64) -> DomainResult<Event> {
    let event = get_unscoped(db, id).await?;
    access::check(caller, &event.organizer_id, "event")?;
    Ok(event)
}

/// The event `id` for whoever asks: only for a value the caller checks with
/// [`access::check`] before showing it (the cache stores one copy for every caller).
pub async fn get_unscoped(db: &impl GenericClient, id: i64) -> DomainResult<Event> {
    let sql = format!("SELECT {EVENT_COLUMNS} FROM events e WHERE e.id = $1");
    let stmt = db.prepare_cached(&sql).await?;
    let row = db
        .query_opt(&stmt, &[&id])
        .await?
        .ok_or_else(|| DomainError::not_found("event"))?;
    event_from_row(&row)
}

/// A page of the caller's events. `spare`: the pool `db` came from, to count on a second
/// connection at the same time as the page (see [`page_and_total`]); `None` inside a
/// transaction or where there is no pool.
///
/// The total is exact in every case, and read from the `event_counts` counters (kept by
/// triggers in the transaction of every change, migration V5) where the filter allows:
/// without a search term, all events or one plain status is a sum of counter rows; upcoming
/// and past are the counters minus a count of the smaller side (in one statement, so one
/// snapshot). Only a search term counts the matching rows.
pub async fn list(
    db: &impl GenericClient,
    spare: Option<&Pool>,
    caller: &Caller,
    q: &ListEvents,
) -> DomainResult<EventList> {
    q.check()?;
    let mut conditions: Vec<String> = Vec::new();
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    fn bind(
        value: Box<dyn ToSql + Sync + Send>,
        params: &mut Vec<Box<dyn ToSql + Sync + Send>>,
    ) -> String {
        params.push(value);
        format!("${}", params.len())
    }
    // Conditions on the counters, same placeholders as on events (`c.` for `e.`).
    let mut counter_conditions: Vec<String> = Vec::new();
    if let Some(tenant) = caller.tenant() {
        let p = bind(Box::new(tenant.to_owned()), &mut params);
        conditions.push(format!("e.organizer_id = {p}"));
        counter_conditions.push(format!("c.organizer_id = {p}"));
    }
    let tenant_only = conditions.clone();
    let search = q.search.as_deref().map(str::trim).filter(|t| !t.is_empty());
    if let Some(term) = search {
        let p = bind(Box::new(like_pattern(term)), &mut params);
        conditions.push(format!("(e.title ILIKE {p} OR e.location ILIKE {p})"));
    }
    let counters = |extra: Option<&str>| {
        let mut c = counter_conditions.clone();
        c.extend(extra.map(str::to_owned));
        let filter = if c.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", c.join(" AND "))
        };
        format!("(SELECT COALESCE(sum(c.n), 0) FROM event_counts c{filter})")
    };
    let events_count = |extra: &str| {
        let mut c = tenant_only.clone();
        c.push(extra.to_owned());
        format!("(SELECT count(*) FROM events e WHERE {})", c.join(" AND "))
    };
    let counted = match q.status {
        None => counters(None),
        Some(StatusFilter::Upcoming) => {
            conditions.push("e.status = 'published' AND e.event_date > now()".into());
            format!(
                "{} - {}",
                counters(Some("c.status = 'published'")),
                events_count("e.status = 'published' AND e.event_date <= now()")
            )
        }
        Some(StatusFilter::Past) => {
            conditions.push("e.event_date <= now()".into());
            format!(
                "{} - {}",
                counters(None),
                events_count("e.event_date > now()")
            )
        }
        Some(s) => {
            let status = match s {
                StatusFilter::Draft => EventStatus::Draft,
                StatusFilter::Published => EventStatus::Published,
                StatusFilter::Cancelled => EventStatus::Cancelled,
                _ => EventStatus::Completed,
            };
            let p = bind(Box::new(status.as_str()), &mut params);
            conditions.push(format!("e.status = {p}"));
            counters(Some(&format!("c.status = {p}")))
        }
    };
    let since = q
        .updated_since
        .as_deref()
        .and_then(crate::rules::parse_rfc3339);
    if let Some(since) = since {
        let p = bind(Box::new(since), &mut params);
        conditions.push(format!("e.updated_at >= {p}"));
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    let order = match q.sort.unwrap_or_default() {
        _ if since.is_some() => "e.updated_at ASC, e.id ASC",
        EventSort::EventDate => "e.event_date ASC, e.id ASC",
        EventSort::EventDateDesc => "e.event_date DESC, e.id DESC",
        EventSort::CreatedAt => "e.created_at ASC, e.id ASC",
        EventSort::CreatedAtDesc => "e.created_at DESC, e.id DESC",
        EventSort::Title => "e.title ASC, e.id ASC",
    };
    let (page, limit) = (q.page(), q.limit());
    let from_where = format!("FROM events e {filter}");
    let (count_sql, plan) = match (search, since) {
        // The matches of a term are counted; its plans depend on the term.
        (Some(_), _) => (None, Plan::Custom),
        // What changed since is counted (no counter keeps it).
        (None, Some(_)) => (None, Plan::Cached),
        (None, None) => (Some(format!("SELECT ({counted})::bigint")), Plan::Cached),
    };
    let (rows, total) = page_and_total(
        db,
        spare,
        PageQuery {
            columns: EVENT_COLUMNS,
            from_where: &from_where,
            order,
            params: &params,
            page,
            limit,
            count_sql,
            plan,
        },
    )
    .await?;
    let events = rows
        .iter()
        .map(event_from_row)
        .collect::<DomainResult<Vec<_>>>()?;
    Ok(EventList {
        events,
        pagination: Pagination::new(page, limit, total),
    })
}

/// Ticket types of one event (for the ticket-type endpoints).
pub async fn ticket_type(
    db: &impl GenericClient,
    event_id: i64,
    id: i64,
) -> DomainResult<TicketType> {
    let stmt = db
        .prepare_cached(
            "SELECT id, event_id, name, price_cents, quantity,
                    seats_taken(event_id, id) - seats_held(event_id, id) AS sold,
                    seats_held(event_id, id) AS held, xmin::text AS version
               FROM ticket_types WHERE id = $1 AND event_id = $2",
        )
        .await?;
    let row = db
        .query_opt(&stmt, &[&id, &event_id])
        .await?
        .ok_or_else(|| DomainError::not_found("ticket type"))?;
    Ok(TicketType {
        version: row.get("version"),
        ..ticket_type_from_row(&row)
    })
}

pub fn ticket_type_from_row(row: &Row) -> TicketType {
    TicketType::new(
        row.get("id"),
        row.get("event_id"),
        row.get("name"),
        Cents(row.get("price_cents")),
        row.get("quantity"),
        row.get("sold"),
        row.get("held"),
    )
}

fn event_from_row(row: &Row) -> DomainResult<Event> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct TicketTypeJson {
        id: i64,
        name: String,
        price_cents: i64,
        quantity: i32,
        taken: i32,
        held: i32,
    }
    let id: i64 = row.get("id");
    let types: Vec<TicketTypeJson> = serde_json::from_value(row.get("ticket_types"))
        .map_err(|e| DomainError::internal(format!("ticket types: {e}")))?;
    let (max, taken, held): (i32, i32, i32) =
        (row.get("max_attendees"), row.get("taken"), row.get("held"));
    Ok(Event {
        id,
        title: row.get("title"),
        description: row.get("description"),
        event_date: row.get("event_date"),
        location: row.get("location"),
        max_attendees: max,
        status: sql::get(row, "status")?,
        organizer_id: row.get("organizer_id"),
        requires_approval: row.get("requires_approval"),
        waitlist_enabled: row.get("waitlist_enabled"),
        waitlist_offer_minutes: row.get("waitlist_offer_minutes"),
        ticket_types: types
            .into_iter()
            .map(|t| {
                let sold = t.taken - t.held;
                TicketType::new(
                    t.id,
                    id,
                    t.name,
                    Cents(t.price_cents),
                    t.quantity,
                    sold,
                    t.held,
                )
            })
            .collect(),
        stats: EventCounts {
            registered: taken - held,
            checked_in: row.get::<_, i64>("checked_in") as i32,
            held,
            waiting: row.get::<_, i64>("waiting") as i32,
            available: max - taken,
        },
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
        version: row.get("version"),
    })
}
