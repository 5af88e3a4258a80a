//! Routes of the `exports` function (organizers and admins; scanners are refused).

use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use domain::exports::{self, CreateExport, DownloadLinks, Export};
use edge::docs::{ErrorBody, Success};
use edge::error::ApiResult;
use edge::http::{ok, ApiPath, Envelope, JsonInput, Manager};
use edge::ApiState;

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(create_export))
        .routes(routes!(get_export))
}

#[utoipa::path(post, path = "/api/events/{eventId}/exports", tag = "exports",
    params(("eventId" = i64, Path)), request_body = CreateExport, security(("bearer" = [])),
    responses(
        (status = 202, description = "The export is queued (`status: pending`); a job builds the file whatever its size \
            (rows streamed page by page, flat memory). Poll `GET /api/exports/{id}`, or subscribe to the `export.done` webhook; \
            the user who asked also gets an `export_ready` email. CSV: a header row, RFC 4180 quoting, UTF-8, CRLF; cells that \
            begin with `=`, `+`, `-`, `@`, a tab or a carriage return are prefixed with `'` (formula injection), so phone \
            numbers read `'+33…`. Guests columns: guestId, firstName, lastName, email, phone, status, ticketTypeId, ticketType, \
            ticketId, ticketCode, checkedInAt, createdAt, updatedAt (every guest, cancelled ones too). Scans columns: scanId, \
            scannedAt, listId, list, type, result, code, ticketId, ticketCode, guestId, firstName, lastName, scannerId, \
            location, offline, receivedAt, revertedAt, revertedBy (every attempt on every check-in list, list by list).",
            body = Success<Export>),
        (status = 400, description = "VALIDATION_ERROR (`kind` is `guests` or `scans`, `format` `csv`)", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, description = "scanners", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
async fn create_export(
    State(state): State<ApiState>,
    Manager(caller): Manager,
    ApiPath(event_id): ApiPath<i64>,
    JsonInput(input): JsonInput<CreateExport>,
) -> ApiResult<Envelope<Export>> {
    let export = edge::unit_of_work!(state, |tx| exports::request(
        tx,
        &caller,
        event_id,
        input.clone()
    ));
    Ok(Envelope(StatusCode::ACCEPTED, export))
}

#[utoipa::path(get, path = "/api/exports/{exportId}", tag = "exports",
    params(("exportId" = i64, Path)), security(("bearer" = [])),
    responses(
        (status = 200, description = "The export. Once `done`: `rows` (data rows, header excluded) and `downloadUrl`, an S3 \
            presigned GET URL (no token needed) made at each read and valid for an hour (`expiresAt`; EXPORT_LINK_SECS); \
            ask again for a fresh one. The file is kept 7 days after `completedAt` (the bucket's lifecycle rule): after that \
            `downloadUrl` is null and `expiresAt` says when it was deleted. `failed` exports say why in `error`.",
            body = Success<Export>),
        (status = 401, body = ErrorBody), (status = 403, description = "scanners", body = ErrorBody),
        (status = 404, description = "No such export, or another organizer's", body = ErrorBody),
    ))]
async fn get_export(
    State(state): State<ApiState>,
    Manager(caller): Manager,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Envelope<Export>> {
    let db = state.db.get().await?;
    let links = state.exports.as_ref().map(|s| s as &dyn DownloadLinks);
    Ok(ok(exports::get(
        &db,
        &caller,
        id,
        links,
        chrono::Utc::now(),
    )
    .await?))
}
