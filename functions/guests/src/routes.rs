//! Routes of the `guests` function.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use domain::guests::import::{self, ImportQuery, ImportReport};
use domain::guests::input::{ListGuests, Register, UpdateGuest};
use domain::guests::model::GuestList;
use domain::guests::privacy::{self, PersonalData};
use domain::guests::{commands, queries, Guest};
use domain::registration::{self, Registration};
use edge::docs::{ErrorBody, Success};
use edge::error::ApiResult;
use edge::http::{
    created, ok, ApiPath, ApiQuery, CsvInput, Envelope, IfMatch, JsonInput, Manager, Tagged,
};
use edge::rate_limit::{Limited, Registrations};
use edge::ApiState;

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_guests, register_guest))
        .routes(routes!(get_guest, update_guest, delete_guest))
        .routes(routes!(approve_guest))
        .routes(routes!(cancel_guest))
        .routes(routes!(resend_ticket))
        .routes(routes!(personal_data))
        .routes(routes!(erase_guest))
        .merge(
            OpenApiRouter::new()
                .routes(routes!(import_guests))
                .layer(axum::extract::DefaultBodyLimit::max(import::MAX_BYTES)),
        )
}

#[utoipa::path(post, path = "/api/events/{eventId}/guests/import", tag = "guests",
    params(("eventId" = i64, Path), ImportQuery),
    request_body(content = String, content_type = "text/csv",
        description = "UTF-8 (a BOM is fine), at most 5 000 rows and 1 MiB. A header row naming `firstName`, `lastName`, `email`, `phone`, `ticketType` in any order (case, spaces, `_` and `-` ignored; other columns ignored); `ticketType` is a ticket type's name, case-insensitive, required when the event has ticket types. Example:\n\n```\nfirstName,lastName,email,phone,ticketType\nAda,Lovelace,ada@example.com,+33612345678,VIP\n```"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "What was created and which rows failed (`row`: the spreadsheet row, the header being row 1). `all_or_nothing` creates nothing when any row fails; `dryRun` creates nothing and reports what would happen. Imported guests are `confirmed` with their tickets, and get the registration emails. Every row takes its seat through the same capacity path as registrations: an import never sells past a capacity, nor takes a seat held for a waiting-list offer.", body = Success<ImportReport>),
        (status = 400, description = "VALIDATION_ERROR: not text/csv, not UTF-8, a required column missing, no rows", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "REGISTRATION_CLOSED: the event is cancelled, completed or has started (a draft event may be imported into)", body = ErrorBody),
        (status = 413, description = "PAYLOAD_TOO_LARGE: over 1 MiB or 5 000 rows", body = ErrorBody),
    ))]
async fn import_guests(
    State(state): State<ApiState>,
    Manager(caller): Manager,
    ApiPath(event_id): ApiPath<i64>,
    ApiQuery(query): ApiQuery<ImportQuery>,
    CsvInput(body): CsvInput,
) -> ApiResult<Envelope<ImportReport>> {
    let keys = state.ticket_keys()?;
    let report = edge::unit_of_work!(state, |tx| import::import(
        tx,
        &caller,
        keys,
        event_id,
        &query,
        body.clone()
    ));
    Ok(ok(report))
}

#[utoipa::path(get, path = "/api/events/{eventId}/guests", tag = "guests",
    params(("eventId" = i64, Path), ListGuests), security(("bearer" = [])),
    responses(
        (status = 200, body = Success<GuestList>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
async fn list_guests(
    State(state): State<ApiState>,
    Manager(caller): Manager,
    ApiPath(event_id): ApiPath<i64>,
    ApiQuery(query): ApiQuery<ListGuests>,
) -> ApiResult<Envelope<GuestList>> {
    let db = state.db.get().await?;
    queries::list(&db, &caller, event_id, &query)
        .await
        .map(ok)
        .map_err(Into::into)
}

#[utoipa::path(post, path = "/api/events/{eventId}/guests", tag = "guests",
    params(("eventId" = i64, Path)), request_body = Register, security(("bearer" = [])),
    responses(
        (status = 201, description = "`confirmed` with its ticket, or `pending` (ticket null) when the event requires approval", body = Success<Registration>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "DUPLICATE_GUEST, SOLD_OUT, EVENT_FULL, REGISTRATION_CLOSED", body = ErrorBody),
    ))]
async fn register_guest(
    State(state): State<ApiState>,
    _: Limited<Registrations>,
    Manager(caller): Manager,
    ApiPath(event_id): ApiPath<i64>,
    JsonInput(input): JsonInput<Register>,
) -> ApiResult<Envelope<Registration>> {
    // Under an Idempotency-Key, this answer is stored with the registration itself.
    let registration = edge::unit_of_work!(state, answer = StatusCode::CREATED, |tx| {
        registration::register(tx, &caller, state.ticket_keys()?, event_id, input.clone())
    });
    Ok(created(registration))
}

#[utoipa::path(get, path = "/api/events/{eventId}/guests/{guestId}", tag = "guests",
    params(("eventId" = i64, Path), ("guestId" = i64, Path)), security(("bearer" = [])),
    responses((status = 200, description = "With an `ETag` (the guest's row version) for `If-Match`", body = Success<Guest>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_guest(
    State(state): State<ApiState>,
    Manager(caller): Manager,
    ApiPath((event_id, guest_id)): ApiPath<(i64, i64)>,
) -> ApiResult<Tagged<Guest>> {
    let db = state.db.get().await?;
    let guest = queries::get(&db, &caller, event_id, guest_id).await?;
    Ok(Tagged(guest.version.clone(), ok(guest)))
}

#[utoipa::path(patch, path = "/api/events/{eventId}/guests/{guestId}", tag = "guests",
    params(("eventId" = i64, Path), ("guestId" = i64, Path)), request_body = UpdateGuest, security(("bearer" = [])),
    responses(
        (status = 200, body = Success<Guest>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "DUPLICATE_GUEST (email taken), SOLD_OUT (new ticket type full), INVALID_STATE", body = ErrorBody),
        (status = 412, description = "PRECONDITION_FAILED: `If-Match` is not the guest's current ETag", body = ErrorBody),
    ))]
async fn update_guest(
    State(state): State<ApiState>,
    Manager(caller): Manager,
    ApiPath((event_id, guest_id)): ApiPath<(i64, i64)>,
    JsonInput(input): JsonInput<UpdateGuest>,
) -> ApiResult<Tagged<Guest>> {
    let guest = edge::unit_of_work!(state, |tx| commands::update(
        tx,
        &caller,
        event_id,
        guest_id,
        input.clone()
    ));
    Ok(Tagged(guest.version.clone(), ok(guest)))
}

#[utoipa::path(delete, path = "/api/events/{eventId}/guests/{guestId}", tag = "guests",
    params(("eventId" = i64, Path), ("guestId" = i64, Path)), security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted; a held seat is freed"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "INVALID_STATE: checked in", body = ErrorBody),
        (status = 412, description = "PRECONDITION_FAILED: `If-Match` is not the guest's current ETag", body = ErrorBody),
    ))]
async fn delete_guest(
    State(state): State<ApiState>,
    Manager(caller): Manager,
    IfMatch(if_match): IfMatch,
    ApiPath((event_id, guest_id)): ApiPath<(i64, i64)>,
) -> ApiResult<StatusCode> {
    edge::unit_of_work!(state, |tx| commands::delete(
        tx,
        &caller,
        event_id,
        guest_id,
        if_match.as_deref()
    ));
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/events/{eventId}/guests/{guestId}/approve", tag = "guests",
    params(("eventId" = i64, Path), ("guestId" = i64, Path)), security(("bearer" = [])),
    responses(
        (status = 200, description = "Confirmed, with the new ticket", body = Success<Registration>),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "INVALID_STATE: not pending", body = ErrorBody),
    ))]
async fn approve_guest(
    State(state): State<ApiState>,
    Manager(caller): Manager,
    ApiPath((event_id, guest_id)): ApiPath<(i64, i64)>,
) -> ApiResult<Envelope<Registration>> {
    let keys = state.ticket_keys()?;
    let registration = edge::unit_of_work!(state, |tx| registration::approve(
        tx, &caller, keys, event_id, guest_id
    ));
    Ok(ok(registration))
}

#[utoipa::path(post, path = "/api/events/{eventId}/guests/{guestId}/cancel", tag = "guests",
    params(("eventId" = i64, Path), ("guestId" = i64, Path)), security(("bearer" = [])),
    responses(
        (status = 200, description = "Cancelled: seat freed, ticket cancelled, email queued", body = Success<Guest>),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "INVALID_STATE: checked in or already cancelled", body = ErrorBody),
    ))]
async fn cancel_guest(
    State(state): State<ApiState>,
    Manager(caller): Manager,
    ApiPath((event_id, guest_id)): ApiPath<(i64, i64)>,
) -> ApiResult<Envelope<Guest>> {
    let guest = edge::unit_of_work!(state, |tx| commands::cancel(
        tx, &caller, event_id, guest_id
    ));
    Ok(ok(guest))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Queued {
    pub job_id: uuid::Uuid,
}

#[utoipa::path(post, path = "/api/events/{eventId}/guests/{guestId}/resend-ticket", tag = "guests",
    params(("eventId" = i64, Path), ("guestId" = i64, Path)), security(("bearer" = [])),
    responses(
        (status = 202, description = "The ticket email is queued", body = Success<Queued>),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "INVALID_STATE: no active ticket", body = ErrorBody),
    ))]
async fn resend_ticket(
    State(state): State<ApiState>,
    Manager(caller): Manager,
    ApiPath((event_id, guest_id)): ApiPath<(i64, i64)>,
) -> ApiResult<Envelope<Queued>> {
    let job_id = edge::unit_of_work!(state, |tx| commands::resend_ticket(
        tx, &caller, event_id, guest_id
    ));
    Ok(Envelope(StatusCode::ACCEPTED, Queued { job_id }))
}

#[utoipa::path(get, path = "/api/events/{eventId}/guests/{guestId}/personal-data", tag = "guests",
    params(("eventId" = i64, Path), ("guestId" = i64, Path)), security(("bearer" = [])),
    responses((status = 200, description = "Everything stored about the guest: the guest, its ticket, scans, waiting-list entries, emails, webhook deliveries and audit entries", body = Success<PersonalData>),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn personal_data(
    State(state): State<ApiState>,
    Manager(caller): Manager,
    ApiPath((event_id, guest_id)): ApiPath<(i64, i64)>,
) -> ApiResult<Envelope<PersonalData>> {
    let db = state.db.get().await?;
    Ok(ok(
        privacy::personal_data(&db, &caller, event_id, guest_id).await?
    ))
}

#[utoipa::path(post, path = "/api/events/{eventId}/guests/{guestId}/erase", tag = "guests",
    params(("eventId" = i64, Path), ("guestId" = i64, Path)), security(("bearer" = [])),
    responses((status = 200, description = "Erased: name, email and phone replaced by placeholders; seat and counts unchanged; the ticket's QR code no longer verifies at the door. Erasing again answers the same.", body = Success<Guest>),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn erase_guest(
    State(state): State<ApiState>,
    Manager(caller): Manager,
    ApiPath((event_id, guest_id)): ApiPath<(i64, i64)>,
) -> ApiResult<Envelope<Guest>> {
    let guest = edge::unit_of_work!(state, |tx| privacy::erase(tx, &caller, event_id, guest_id));
    Ok(ok(guest))
}
