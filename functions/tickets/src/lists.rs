//! Routes of door operations: check-in lists, scans (online, offline batches), undo, the scan
//! log, conflicts and the offline dataset. Served by the `tickets` function with check-in.

use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use domain::checkin::input::{
    CreateList, ListScans, OfflineQuery, ScanBatch, ScanInput, UpdateList,
};
use domain::checkin::lists::{self, ScanPage};
use domain::checkin::offline::{self, OfflineData};
use domain::checkin::scan::{self, BatchResults, Scanned};
use domain::checkin::{CheckinList, Conflict, ScanRecord};
use domain::Caller;
use edge::docs::{ErrorBody, Success};
use edge::error::ApiResult;
use edge::http::{created, ok, ApiPath, ApiQuery, Envelope, IfMatch, JsonInput, Manager, Tagged};
use edge::rate_limit::{Limited, Validations};
use edge::ApiState;

/// Largest body of an offline upload: 500 scans with signed payloads.
pub const MAX_BATCH_BODY_BYTES: usize = 512 * 1024;

pub fn routes() -> OpenApiRouter<ApiState> {
    let batch = OpenApiRouter::new()
        .routes(routes!(upload_batch))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BATCH_BODY_BYTES));
    OpenApiRouter::new()
        .routes(routes!(create_list, event_lists))
        .routes(routes!(get_list, update_list, delete_list))
        .routes(routes!(scan_ticket, scan_log))
        .routes(routes!(revert_scan))
        .routes(routes!(list_conflicts))
        .routes(routes!(offline_data))
        .merge(batch)
}

#[utoipa::path(post, path = "/api/events/{eventId}/checkin-lists", tag = "check-in lists",
    params(("eventId" = i64, Path)), request_body = CreateList, security(("bearer" = [])),
    responses(
        (status = 201, body = Success<CheckinList>),
        (status = 400, description = "VALIDATION_ERROR (a ticket type of another event, closesAt before opensAt...)", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, description = "scanners", body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "INVALID_STATE: the name is taken", body = ErrorBody),
    ))]
async fn create_list(
    State(state): State<ApiState>,
    Manager(caller): Manager,
    ApiPath(event_id): ApiPath<i64>,
    JsonInput(input): JsonInput<CreateList>,
) -> ApiResult<Envelope<CheckinList>> {
    let list = edge::unit_of_work!(state, |tx| lists::create(
        tx,
        &caller,
        event_id,
        input.clone()
    ));
    Ok(created(list))
}

#[utoipa::path(get, path = "/api/events/{eventId}/checkin-lists", tag = "check-in lists",
    params(("eventId" = i64, Path)), security(("bearer" = [])),
    responses((status = 200, description = "The event's lists with their live counts, the default list first", body = Success<Vec<CheckinList>>),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn event_lists(
    State(state): State<ApiState>,
    caller: Caller,
    ApiPath(event_id): ApiPath<i64>,
) -> ApiResult<Envelope<Vec<CheckinList>>> {
    let db = state.db.get().await?;
    Ok(ok(lists::for_event(&db, &caller, event_id).await?))
}

#[utoipa::path(get, path = "/api/checkin-lists/{listId}", tag = "check-in lists",
    params(("listId" = i64, Path)), security(("bearer" = [])),
    responses((status = 200, description = "With an `ETag` (the list's row version) for `If-Match`", body = Success<CheckinList>), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_list(
    State(state): State<ApiState>,
    caller: Caller,
    ApiPath(list_id): ApiPath<i64>,
) -> ApiResult<Tagged<CheckinList>> {
    let db = state.db.get().await?;
    let list = lists::by_id(&db, &caller, list_id).await?;
    Ok(Tagged(list.version.clone(), ok(list)))
}

#[utoipa::path(patch, path = "/api/checkin-lists/{listId}", tag = "check-in lists",
    params(("listId" = i64, Path)), request_body = UpdateList, security(("bearer" = [])),
    responses(
        (status = 200, body = Success<CheckinList>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, description = "scanners", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "INVALID_STATE: the name is taken, or ticket types / re-entry on the default list", body = ErrorBody),
        (status = 412, description = "PRECONDITION_FAILED: `If-Match` is not the list's current ETag", body = ErrorBody),
    ))]
async fn update_list(
    State(state): State<ApiState>,
    Manager(caller): Manager,
    ApiPath(list_id): ApiPath<i64>,
    JsonInput(input): JsonInput<UpdateList>,
) -> ApiResult<Tagged<CheckinList>> {
    let list = edge::unit_of_work!(state, |tx| lists::update(
        tx,
        &caller,
        list_id,
        input.clone()
    ));
    Ok(Tagged(list.version.clone(), ok(list)))
}

#[utoipa::path(delete, path = "/api/checkin-lists/{listId}", tag = "check-in lists",
    params(("listId" = i64, Path)), security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, body = ErrorBody), (status = 403, description = "scanners", body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "INVALID_STATE: the default list, or a list with scans", body = ErrorBody),
        (status = 412, description = "PRECONDITION_FAILED: `If-Match` is not the list's current ETag", body = ErrorBody),
    ))]
async fn delete_list(
    State(state): State<ApiState>,
    Manager(caller): Manager,
    IfMatch(if_match): IfMatch,
    ApiPath(list_id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    edge::unit_of_work!(state, |tx| lists::delete(
        tx,
        &caller,
        list_id,
        if_match.as_deref()
    ));
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/checkin-lists/{listId}/scans", tag = "check-in lists",
    params(("listId" = i64, Path)), request_body = ScanInput, security(("bearer" = [])),
    responses(
        (status = 200, description = "Accepted: an entry (the first on any list checks the guest in) or an exit", body = Success<Scanned>),
        (status = 400, description = "VALIDATION_ERROR, INVALID_SIGNATURE", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, description = "the list, or the ticket (not of this list's event)", body = ErrorBody),
        (status = 409, description = "TICKET_ALREADY_VALIDATED (details: validatedAt, scannerId, location, scanId of the entry that holds the ticket), TICKET_CANCELLED, NOT_ON_LIST, LIST_CLOSED, NOT_INSIDE, INVALID_STATE (event not published)", body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
async fn scan_ticket(
    State(state): State<ApiState>,
    _: Limited<Validations>,
    caller: Caller,
    ApiPath(list_id): ApiPath<i64>,
    JsonInput(input): JsonInput<ScanInput>,
) -> ApiResult<Envelope<Scanned>> {
    let keys = state.ticket_keys()?;
    let direction = input.peek().map(|i| i.direction);
    let scanned = edge::statement!(
        state,
        replay = move |row| scan::replayed(row, direction.unwrap_or_default()),
        |db, key| scan::scan(db, key, &caller, keys, list_id, input.clone())
    );
    Ok(ok(scanned))
}

#[utoipa::path(get, path = "/api/checkin-lists/{listId}/scans", tag = "check-in lists",
    params(("listId" = i64, Path), ListScans), security(("bearer" = [])),
    responses((status = 200, description = "Every attempt on the list, accepted or refused, newest first", body = Success<ScanPage>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn scan_log(
    State(state): State<ApiState>,
    caller: Caller,
    ApiPath(list_id): ApiPath<i64>,
    ApiQuery(query): ApiQuery<ListScans>,
) -> ApiResult<Envelope<ScanPage>> {
    let db = state.db.get().await?;
    Ok(ok(lists::scans(&db, &caller, list_id, query).await?))
}

#[utoipa::path(post, path = "/api/checkin-lists/{listId}/scans/{scanId}/revert", tag = "check-in lists",
    params(("listId" = i64, Path), ("scanId" = i64, Path)), security(("bearer" = [])),
    responses(
        (status = 200, description = "The scan, with revertedAt and revertedBy; the ticket is back in its previous state on the list. Reverting again answers the same.", body = Success<ScanRecord>),
        (status = 401, body = ErrorBody), (status = 403, description = "scanners", body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "INVALID_STATE: a refused scan, or not the ticket's latest accepted scan on the list", body = ErrorBody),
    ))]
async fn revert_scan(
    State(state): State<ApiState>,
    Manager(caller): Manager,
    ApiPath((list_id, scan_id)): ApiPath<(i64, i64)>,
) -> ApiResult<Envelope<ScanRecord>> {
    let scan = edge::unit_of_work!(state, |tx| scan::revert(tx, &caller, list_id, scan_id));
    Ok(ok(scan))
}

#[utoipa::path(post, path = "/api/checkin-lists/{listId}/scans/batch", tag = "check-in lists",
    params(("listId" = i64, Path)), request_body = ScanBatch, security(("bearer" = [])),
    responses(
        (status = 200, description = "One result per scan, in request order: accepted, conflict (an admission the server would have refused: the ticket was already in, or cancelled) or rejected, with its error code. Idempotent by clientScanId; all or nothing.", body = Success<BatchResults>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, description = "over 512 KiB", body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
async fn upload_batch(
    State(state): State<ApiState>,
    _: Limited<Validations>,
    caller: Caller,
    ApiPath(list_id): ApiPath<i64>,
    JsonInput(input): JsonInput<ScanBatch>,
) -> ApiResult<Envelope<BatchResults>> {
    let results = edge::unit_of_work!(state, |tx| scan::batch(
        tx,
        &caller,
        state.ticket_keys()?,
        list_id,
        input.clone()
    ));
    Ok(ok(results))
}

#[utoipa::path(get, path = "/api/checkin-lists/{listId}/conflicts", tag = "check-in lists",
    params(("listId" = i64, Path)), security(("bearer" = [])),
    responses((status = 200, description = "Offline admissions the server could not accept, newest first (at most 1000), each with the scan that admitted the ticket first", body = Success<Vec<Conflict>>),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_conflicts(
    State(state): State<ApiState>,
    caller: Caller,
    ApiPath(list_id): ApiPath<i64>,
) -> ApiResult<Envelope<Vec<Conflict>>> {
    let db = state.db.get().await?;
    Ok(ok(lists::conflicts(&db, &caller, list_id).await?))
}

#[utoipa::path(get, path = "/api/checkin-lists/{listId}/offline-data", tag = "check-in lists",
    params(("listId" = i64, Path), OfflineQuery), security(("bearer" = [])),
    responses((status = 200, description = "Every ticket the list admits, then with the returned cursor only what changed. Guest details only inside `sealed`: base64url (no padding) of a 12-byte nonce and the AES-256-GCM ciphertext of {firstName, lastName, ticketCode, ticketTypeName} under SHA-256(\"EP-SEAL-1\" ‖ qrPayload).", body = Success<OfflineData>),
        (status = 400, description = "VALIDATION_ERROR: a cursor of another list, or not a cursor", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn offline_data(
    State(state): State<ApiState>,
    caller: Caller,
    ApiPath(list_id): ApiPath<i64>,
    ApiQuery(query): ApiQuery<OfflineQuery>,
) -> ApiResult<Envelope<OfflineData>> {
    let db = state.db.get().await?;
    Ok(ok(offline::data(&db, &caller, list_id, query).await?))
}
