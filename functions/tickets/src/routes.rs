//! Routes of the `tickets` function: tickets, QR images, check-in, scanner keys, stats, and
//! the door operations of check-in lists (`lists.rs`).

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use deadpool_postgres::GenericClient;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use domain::tickets::checkin::{self, Scan, ScanCode, Validation};
use domain::tickets::stats::{self, EventStats};
use domain::tickets::{qr, queries, Ticket};
use domain::{access, Caller};
use edge::docs::{ErrorBody, Success};
use edge::error::{ApiError, ApiResult};
use edge::http::{ok, ApiJson, ApiPath, Envelope, JsonInput, Manager};
use edge::rate_limit::{Limited, Validations};
use edge::ApiState;

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(get_ticket))
        .routes(routes!(ticket_qr))
        .routes(routes!(validate_ticket))
        .routes(routes!(validate_scanned))
        .routes(routes!(scanner_key))
        .routes(routes!(event_stats))
        .merge(crate::lists::routes())
}

/// The ticket `id` if the caller may see it (organizer of its event, admin, scanner of that organizer).
async fn visible_ticket(db: &impl GenericClient, caller: &Caller, id: i64) -> ApiResult<Ticket> {
    let ticket = queries::by_id(db, id)
        .await?
        .ok_or_else(|| ApiError::not_found("ticket"))?;
    access::check(caller, &ticket.event.organizer_id, "ticket")?;
    Ok(ticket)
}

#[utoipa::path(get, path = "/api/tickets/{ticketId}", tag = "tickets", params(("ticketId" = i64, Path)),
    security(("bearer" = [])),
    responses((status = 200, description = "The ticket with its guest, event and ticket type", body = Success<Ticket>),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_ticket(
    State(state): State<ApiState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Envelope<Ticket>> {
    let db = state.db.get().await?;
    visible_ticket(&db, &caller, id).await.map(ok)
}

#[utoipa::path(get, path = "/api/tickets/{ticketId}/qr", tag = "tickets", params(("ticketId" = i64, Path)),
    security(("bearer" = [])),
    responses((status = 200, description = "The QR code of `qrPayload`", content_type = "image/png"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "TICKET_CANCELLED: the ticket of an erased guest has no QR code", body = ErrorBody)))]
async fn ticket_qr(
    State(state): State<ApiState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<impl IntoResponse> {
    let db = state.db.get().await?;
    let ticket = visible_ticket(&db, &caller, id).await?;
    // The stored image when the generation job has run; rendered now otherwise.
    use base64::Engine;
    let stored = ticket
        .qr_code_data
        .as_deref()
        .map(|b64| base64::engine::general_purpose::STANDARD.decode(b64));
    let png = match stored {
        Some(Ok(png)) => png,
        _ => {
            // Only an erased guest's ticket has none: it is cancelled and has no QR code left.
            let payload = ticket.qr_payload.as_deref().ok_or_else(|| {
                ApiError::new(
                    domain::ErrorCode::TicketCancelled,
                    "this ticket was cancelled and has no QR code",
                )
            })?;
            qr::png(payload).map_err(ApiError::internal)?
        }
    };
    Ok((
        [
            (header::CONTENT_TYPE, "image/png"),
            (header::CACHE_CONTROL, "private, max-age=3600"),
        ],
        png,
    ))
}

#[utoipa::path(post, path = "/api/tickets/{ticketId}/validate", tag = "tickets", params(("ticketId" = i64, Path)),
    request_body = Scan, security(("bearer" = [])),
    responses(
        (status = 200, description = "First scan: accepted, the guest is checked in", body = Success<Validation>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "TICKET_ALREADY_VALIDATED (details: validatedAt, scannerId, location of the first scan), TICKET_CANCELLED, INVALID_STATE (event not published)", body = ErrorBody),
    ))]
async fn validate_ticket(
    State(state): State<ApiState>,
    _: Limited<Validations>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    JsonInput(scan): JsonInput<Scan>,
) -> ApiResult<Envelope<Validation>> {
    let validation = edge::statement!(state, replay = checkin::replayed, |db, key| {
        checkin::by_id(db, key, &caller, id, scan.clone())
    });
    Ok(ok(validation))
}

#[utoipa::path(post, path = "/api/tickets/validate", tag = "tickets", request_body = ScanCode, security(("bearer" = [])),
    responses(
        (status = 200, body = Success<Validation>),
        (status = 400, description = "VALIDATION_ERROR, INVALID_SIGNATURE (a scanned payload whose signature does not verify)", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, description = "unknown code", body = ErrorBody),
        (status = 409, body = ErrorBody),
    ))]
async fn validate_scanned(
    State(state): State<ApiState>,
    _: Limited<Validations>,
    caller: Caller,
    ApiJson(input): ApiJson<ScanCode>,
) -> ApiResult<Envelope<Validation>> {
    let keys = state.ticket_keys()?;
    let validation = edge::statement!(state, replay = checkin::replayed, |db, key| {
        checkin::by_code(db, key, &caller, keys, input.clone())
    });
    Ok(ok(validation))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScannerKey {
    #[schema(example = "Ed25519")]
    pub algorithm: &'static str,
    pub key_id: String,
    /// Standard base64 of the 32-byte Ed25519 public key.
    pub public_key: String,
}

#[utoipa::path(get, path = "/api/events/{eventId}/scanner-key", tag = "tickets", params(("eventId" = i64, Path)),
    security(("bearer" = [])),
    responses((status = 200, description = "The key that verifies this event's QR payloads offline (format in shared/src/tickets/signing.rs)", body = Success<ScannerKey>),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn scanner_key(
    State(state): State<ApiState>,
    caller: Caller,
    ApiPath(event_id): ApiPath<i64>,
) -> ApiResult<Envelope<ScannerKey>> {
    let db = state.db.get().await?;
    access::event(&db, &caller, event_id, access::Lock::None, None).await?;
    let keys = state.ticket_keys()?;
    Ok(ok(ScannerKey {
        algorithm: "Ed25519",
        key_id: keys.kid().to_owned(),
        public_key: keys.public_key_base64(),
    }))
}

#[utoipa::path(get, path = "/api/events/{eventId}/stats", tag = "tickets", params(("eventId" = i64, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = Success<EventStats>),
        (status = 401, body = ErrorBody), (status = 403, description = "scanners", body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn event_stats(
    State(state): State<ApiState>,
    Manager(caller): Manager,
    ApiPath(event_id): ApiPath<i64>,
) -> ApiResult<Envelope<EventStats>> {
    let db = state.db.get().await?;
    stats::for_event(&db, &caller, event_id)
        .await
        .map(ok)
        .map_err(Into::into)
}
