//! Routes of the `events` function: events and their ticket types.

use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use domain::events::input::{
    CreateEvent, ListEvents, NewTicketType, UpdateEvent, UpdateTicketType,
};
use domain::events::{commands, queries, Event, EventList, TicketType};
use domain::{access, Caller};
use edge::docs::{ErrorBody, Success};
use edge::error::ApiResult;
use edge::http::{
    created, ok, ApiJson, ApiPath, ApiQuery, Envelope, IfMatch, JsonInput, Manager, Tagged,
};
use edge::ApiState;

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_events, create_event))
        .routes(routes!(get_event, update_event, delete_event))
        .routes(routes!(create_ticket_type))
        .routes(routes!(
            get_ticket_type,
            update_ticket_type,
            delete_ticket_type
        ))
        .routes(routes!(event_audit))
}

#[utoipa::path(get, path = "/api/events", tag = "events", params(ListEvents),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of the caller's events", body = Success<EventList>),
        (status = 400, description = "VALIDATION_ERROR: bad query parameters", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, description = "scanners", body = ErrorBody),
    ))]
async fn list_events(
    State(state): State<ApiState>,
    Manager(caller): Manager,
    ApiQuery(query): ApiQuery<ListEvents>,
) -> ApiResult<Envelope<EventList>> {
    let db = state.db.get().await?;
    list_cached(&db, &state, &caller, &query).await.map(ok)
}

#[utoipa::path(post, path = "/api/events", tag = "events", request_body = CreateEvent,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The event, in status `draft`", body = Success<Event>),
        (status = 400, description = "VALIDATION_ERROR", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "INVALID_STATE: duplicate ticket type names", body = ErrorBody),
        (status = 413, description = "PAYLOAD_TOO_LARGE", body = ErrorBody),
    ))]
async fn create_event(
    State(state): State<ApiState>,
    Manager(caller): Manager,
    ApiJson(input): ApiJson<CreateEvent>,
) -> ApiResult<Envelope<Event>> {
    let event = edge::unit_of_work!(state, |tx| commands::create(tx, &caller, input.clone()));
    Ok(created(event))
}

#[utoipa::path(get, path = "/api/events/{id}", tag = "events", params(("id" = i64, Path)),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "With an `ETag` (the event's row version) for `If-Match`", body = Success<Event>),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "unknown, or another organizer's", body = ErrorBody),
    ))]
async fn get_event(
    State(state): State<ApiState>,
    Manager(caller): Manager,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Tagged<Event>> {
    let db = state.db.get().await?;
    let event = get_cached(&db, &state, &caller, id).await?;
    Ok(Tagged(event.version.clone(), ok(event)))
}

#[utoipa::path(patch, path = "/api/events/{id}", tag = "events", params(("id" = i64, Path)), request_body = UpdateEvent,
    security(("bearer" = [])),
    responses(
        (status = 200, body = Success<Event>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "INVALID_STATE: forbidden status transition, final event, maxAttendees below registered, quantity below sold", body = ErrorBody),
        (status = 412, description = "PRECONDITION_FAILED: `If-Match` is not the event's current ETag", body = ErrorBody),
    ))]
async fn update_event(
    State(state): State<ApiState>,
    Manager(caller): Manager,
    ApiPath(id): ApiPath<i64>,
    JsonInput(input): JsonInput<UpdateEvent>,
) -> ApiResult<Tagged<Event>> {
    let event = edge::unit_of_work!(state, |tx| commands::update(tx, &caller, id, input.clone()));
    Ok(Tagged(event.version.clone(), ok(event)))
}

#[utoipa::path(delete, path = "/api/events/{id}", tag = "events", params(("id" = i64, Path)),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "INVALID_STATE: a guest was registered once", body = ErrorBody),
        (status = 412, description = "PRECONDITION_FAILED: `If-Match` is not the event's current ETag", body = ErrorBody),
    ))]
async fn delete_event(
    State(state): State<ApiState>,
    Manager(caller): Manager,
    IfMatch(if_match): IfMatch,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    edge::unit_of_work!(state, |tx| commands::delete(
        tx,
        &caller,
        id,
        if_match.as_deref()
    ));
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/events/{id}/ticket-types", tag = "events", params(("id" = i64, Path)),
    request_body = NewTicketType, security(("bearer" = [])),
    responses(
        (status = 201, body = Success<TicketType>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "INVALID_STATE: final event, name taken, more than 50 types", body = ErrorBody),
    ))]
async fn create_ticket_type(
    State(state): State<ApiState>,
    Manager(caller): Manager,
    ApiPath(id): ApiPath<i64>,
    JsonInput(input): JsonInput<NewTicketType>,
) -> ApiResult<Envelope<TicketType>> {
    let created_type = edge::unit_of_work!(state, |tx| commands::add_ticket_type(
        tx,
        &caller,
        id,
        input.clone()
    ));
    Ok(created(created_type))
}

#[utoipa::path(patch, path = "/api/events/{id}/ticket-types/{ticketTypeId}", tag = "events",
    params(("id" = i64, Path), ("ticketTypeId" = i64, Path)), request_body = UpdateTicketType,
    security(("bearer" = [])),
    responses(
        (status = 200, body = Success<TicketType>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "INVALID_STATE: quantity below sold, name taken, final event", body = ErrorBody),
        (status = 412, description = "PRECONDITION_FAILED: `If-Match` is not the ticket type's current ETag", body = ErrorBody),
    ))]
async fn update_ticket_type(
    State(state): State<ApiState>,
    Manager(caller): Manager,
    ApiPath((id, ticket_type_id)): ApiPath<(i64, i64)>,
    JsonInput(input): JsonInput<UpdateTicketType>,
) -> ApiResult<Tagged<TicketType>> {
    let updated = edge::unit_of_work!(state, |tx| commands::update_ticket_type(
        tx,
        &caller,
        id,
        ticket_type_id,
        input.clone()
    ));
    Ok(Tagged(updated.version.clone(), ok(updated)))
}

#[utoipa::path(get, path = "/api/events/{id}/ticket-types/{ticketTypeId}", tag = "events",
    params(("id" = i64, Path), ("ticketTypeId" = i64, Path)), security(("bearer" = [])),
    responses(
        (status = 200, description = "With an `ETag` (the ticket type's row version) for `If-Match`", body = Success<TicketType>),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    ))]
async fn get_ticket_type(
    State(state): State<ApiState>,
    Manager(caller): Manager,
    ApiPath((id, ticket_type_id)): ApiPath<(i64, i64)>,
) -> ApiResult<Tagged<TicketType>> {
    let db = state.db.get().await?;
    access::event(&db, &caller, id, access::Lock::None, None).await?;
    let t = queries::ticket_type(&db, id, ticket_type_id).await?;
    Ok(Tagged(t.version.clone(), ok(t)))
}

#[utoipa::path(delete, path = "/api/events/{id}/ticket-types/{ticketTypeId}", tag = "events",
    params(("id" = i64, Path), ("ticketTypeId" = i64, Path)), security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "INVALID_STATE: seats were sold, or a check-in list names it", body = ErrorBody),
        (status = 412, description = "PRECONDITION_FAILED: `If-Match` is not the ticket type's current ETag", body = ErrorBody),
    ))]
async fn delete_ticket_type(
    State(state): State<ApiState>,
    Manager(caller): Manager,
    IfMatch(if_match): IfMatch,
    ApiPath((id, ticket_type_id)): ApiPath<(i64, i64)>,
) -> ApiResult<StatusCode> {
    edge::unit_of_work!(state, |tx| commands::delete_ticket_type(
        tx,
        &caller,
        id,
        ticket_type_id,
        if_match.as_deref()
    ));
    Ok(StatusCode::NO_CONTENT)
}

/// [`queries::get`] through the cache: the entry is keyed by the event's generation (see
/// `platform::cache`), and the tenancy gate's rule is applied to the cached value as to a
/// fresh one.
async fn get_cached(
    db: &deadpool_postgres::Client,
    state: &ApiState,
    caller: &Caller,
    id: i64,
) -> ApiResult<Event> {
    let Some(generation) = state.cache.generation(&format!("event:{id}")).await else {
        return Ok(queries::get(db, caller, id).await?);
    };
    // The row version travels beside the event (it is not in the event's JSON).
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Cached {
        event: Event,
        version: String,
    }
    let key = format!("event:{id}:{generation}");
    let event = match state.cache.get::<Cached>(&key).await {
        Some(Cached { mut event, version }) => {
            event.version = version;
            event
        }
        None => {
            let event = queries::get_unscoped(db, id).await?;
            let cached = Cached {
                version: event.version.clone(),
                event,
            };
            state.cache.put(&key, &cached).await;
            cached.event
        }
    };
    access::check(caller, &event.organizer_id, "event")?;
    Ok(event)
}

/// [`queries::list`] through the cache, for a short time (lists of upcoming/past events
/// move with the clock) and invalidated by any change to any event.
async fn list_cached(
    db: &deadpool_postgres::Client,
    state: &ApiState,
    caller: &Caller,
    q: &ListEvents,
) -> ApiResult<EventList> {
    q.check()?;
    let Some(generation) = state.cache.generation("lists").await else {
        return Ok(queries::list(db, Some(&state.db), caller, q).await?);
    };
    let key = format!(
        "events:{}:{generation}:{}:{}:{:?}:{:?}:{}:{}",
        caller.tenant().unwrap_or("*"),
        q.page(),
        q.limit(),
        q.status,
        q.sort,
        q.updated_since.as_deref().unwrap_or(""),
        q.search.as_deref().unwrap_or("")
    );
    if let Some(hit) = state.cache.get::<EventList>(&key).await {
        return Ok(hit);
    }
    let fresh = queries::list(db, Some(&state.db), caller, q).await?;
    state
        .cache
        .put_for(&key, &fresh, Some(std::time::Duration::from_secs(30)))
        .await;
    Ok(fresh)
}

#[utoipa::path(get, path = "/api/events/{eventId}/audit", tag = "events",
    params(("eventId" = i64, Path), domain::audit::ListAudit), security(("bearer" = [])),
    responses(
        (status = 200, description = "Who changed what in the event, newest first (no personal data in `changes`)", body = Success<domain::audit::AuditPage>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
async fn event_audit(
    State(state): State<ApiState>,
    Manager(caller): Manager,
    ApiPath(event_id): ApiPath<i64>,
    ApiQuery(query): ApiQuery<domain::audit::ListAudit>,
) -> ApiResult<Envelope<domain::audit::AuditPage>> {
    let db = state.db.get().await?;
    Ok(ok(domain::audit::list(&db, &caller, event_id, query).await?))
}
