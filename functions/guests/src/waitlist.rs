//! Routes of the waiting list (in the `guests` function: entries become guests).

use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use domain::guests::input::Register;
use domain::registration::{self, Registration};
use domain::waitlist::commands::{self, Claimant};
use domain::waitlist::input::{ClaimOffer, ListWaitlist};
use domain::waitlist::{WaitlistEntry, WaitlistPage};
use edge::docs::{ErrorBody, Success};
use edge::error::ApiResult;
use edge::http::{created, ok, ApiPath, ApiQuery, Envelope, JsonInput, Manager};
use edge::rate_limit::{Claims, Limited};
use edge::ApiState;

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_waitlist, join_waitlist))
        .routes(routes!(remove_entry))
        .routes(routes!(claim_entry))
        .routes(routes!(claim_offer))
}

#[utoipa::path(get, path = "/api/events/{eventId}/waitlist", tag = "waitlist",
    params(("eventId" = i64, Path), ListWaitlist), security(("bearer" = [])),
    responses(
        (status = 200, description = "Entries in position order", body = Success<WaitlistPage>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
async fn list_waitlist(
    State(state): State<ApiState>,
    Manager(caller): Manager,
    ApiPath(event_id): ApiPath<i64>,
    ApiQuery(query): ApiQuery<ListWaitlist>,
) -> ApiResult<Envelope<WaitlistPage>> {
    let db = state.db.get().await?;
    Ok(ok(commands::list(&db, &caller, event_id, &query).await?))
}

#[utoipa::path(post, path = "/api/events/{eventId}/waitlist", tag = "waitlist",
    params(("eventId" = i64, Path)), request_body = Register, security(("bearer" = [])),
    responses(
        (status = 201, description = "At the end of the queue; `offered` at once when a seat is free and nobody waits before it", body = Success<WaitlistEntry>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "DUPLICATE_GUEST (registered, or already waiting), REGISTRATION_CLOSED, INVALID_STATE (the waiting list is not enabled)", body = ErrorBody),
    ))]
async fn join_waitlist(
    State(state): State<ApiState>,
    Manager(caller): Manager,
    ApiPath(event_id): ApiPath<i64>,
    JsonInput(input): JsonInput<Register>,
) -> ApiResult<Envelope<WaitlistEntry>> {
    let entry = edge::unit_of_work!(state, |tx| commands::join(
        tx,
        &caller,
        event_id,
        input.clone()
    ));
    Ok(created(entry))
}

#[utoipa::path(delete, path = "/api/events/{eventId}/waitlist/{entryId}", tag = "waitlist",
    params(("eventId" = i64, Path), ("entryId" = i64, Path)), security(("bearer" = [])),
    responses(
        (status = 200, description = "`removed`; an offer's held seat goes to the next entry (or back on sale). Removing again answers the same.", body = Success<WaitlistEntry>),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "INVALID_STATE: the entry was claimed or has expired", body = ErrorBody),
    ))]
async fn remove_entry(
    State(state): State<ApiState>,
    Manager(caller): Manager,
    ApiPath((event_id, entry_id)): ApiPath<(i64, i64)>,
) -> ApiResult<Envelope<WaitlistEntry>> {
    let entry = edge::unit_of_work!(state, |tx| commands::remove(
        tx, &caller, event_id, entry_id
    ));
    Ok(ok(entry))
}

#[utoipa::path(post, path = "/api/events/{eventId}/waitlist/{entryId}/claim", tag = "waitlist",
    params(("eventId" = i64, Path), ("entryId" = i64, Path)), security(("bearer" = [])),
    responses(
        (status = 201, description = "The offer became a registration (confirmed, with its ticket) on the seat it held", body = Success<Registration>),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "OFFER_EXPIRED (past `offerExpiresAt`, or withdrawn), INVALID_STATE (still waiting, or already claimed), DUPLICATE_GUEST, REGISTRATION_CLOSED", body = ErrorBody),
    ))]
async fn claim_entry(
    State(state): State<ApiState>,
    Manager(caller): Manager,
    ApiPath((event_id, entry_id)): ApiPath<(i64, i64)>,
) -> ApiResult<Envelope<Registration>> {
    let keys = state.ticket_keys()?;
    let claimed = edge::unit_of_work!(state, |tx| commands::claim(
        tx,
        keys,
        Claimant::Manager(&caller, event_id, entry_id)
    ));
    let registration = edge::after_commit!(state, |db| registration::read(
        &db,
        claimed.event_id,
        claimed.guest_id
    ));
    Ok(created(registration))
}

#[utoipa::path(post, path = "/api/waitlist/claim", tag = "waitlist",
    request_body = ClaimOffer,
    responses(
        (status = 201, description = "No token: the claim token of the offer email is the authority. The offer became a registration (confirmed, with its ticket).", body = Success<Registration>),
        (status = 400, body = ErrorBody),
        (status = 404, description = "NOT_FOUND: no offer has this token", body = ErrorBody),
        (status = 409, description = "OFFER_EXPIRED (past `offerExpiresAt`, or withdrawn), INVALID_STATE (already claimed), DUPLICATE_GUEST, REGISTRATION_CLOSED", body = ErrorBody),
    ))]
async fn claim_offer(
    State(state): State<ApiState>,
    _: Limited<Claims>,
    JsonInput(input): JsonInput<ClaimOffer>,
) -> ApiResult<Envelope<Registration>> {
    let keys = state.ticket_keys()?;
    let claimed = edge::unit_of_work!(state, |tx| commands::claim(
        tx,
        keys,
        Claimant::TokenHolder(input.clone())
    ));
    let registration = edge::after_commit!(state, |db| registration::read(
        &db,
        claimed.event_id,
        claimed.guest_id
    ));
    Ok(created(registration))
}
