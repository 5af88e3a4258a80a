//! Routes of the `webhooks` function (organizers and admins; scanners are refused).

use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use domain::webhooks::commands::{self, DeliveryPage};
use domain::webhooks::input::{CreateWebhook, ListDeliveries, UpdateWebhook};
use domain::webhooks::{Delivery, Webhook, WebhookWithSecret};
use edge::docs::{ErrorBody, Success};
use edge::error::ApiResult;
use edge::http::{created, ok, ApiPath, ApiQuery, Envelope, JsonInput, Manager};
use edge::ApiState;

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(create_webhook, list_webhooks))
        .routes(routes!(get_webhook, update_webhook, delete_webhook))
        .routes(routes!(rotate_secret))
        .routes(routes!(list_deliveries))
        .routes(routes!(redeliver))
}

#[utoipa::path(post, path = "/api/webhooks", tag = "webhooks", request_body = CreateWebhook,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The webhook with its secret (`whsec_…`), shown only here and at rotation. Deliveries follow the Standard Webhooks specification: headers webhook-id, webhook-timestamp, webhook-signature (v1,<base64 HMAC-SHA256 of \"id.timestamp.body\">); retries with exponential back-off for up to 3 days; 410 disables the webhook.", body = Success<WebhookWithSecret>),
        (status = 400, description = "VALIDATION_ERROR (url not https, unknown event type...)", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, description = "scanners", body = ErrorBody),
    ))]
async fn create_webhook(
    State(state): State<ApiState>,
    Manager(caller): Manager,
    JsonInput(input): JsonInput<CreateWebhook>,
) -> ApiResult<Envelope<WebhookWithSecret>> {
    let allow_local = state.config.webhooks_allow_local;
    let webhook = edge::unit_of_work!(state, |tx| commands::create(
        tx,
        &caller,
        input.clone(),
        allow_local
    ));
    Ok(created(webhook))
}

#[utoipa::path(get, path = "/api/webhooks", tag = "webhooks", security(("bearer" = [])),
    responses((status = 200, description = "The caller's webhooks (an admin: every organizer's)", body = Success<Vec<Webhook>>),
        (status = 401, body = ErrorBody), (status = 403, description = "scanners", body = ErrorBody)))]
async fn list_webhooks(
    State(state): State<ApiState>,
    Manager(caller): Manager,
) -> ApiResult<Envelope<Vec<Webhook>>> {
    let db = state.db.get().await?;
    Ok(ok(commands::list(&db, &caller).await?))
}

#[utoipa::path(get, path = "/api/webhooks/{id}", tag = "webhooks", params(("id" = i64, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = Success<Webhook>), (status = 401, body = ErrorBody),
        (status = 403, description = "scanners", body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_webhook(
    State(state): State<ApiState>,
    Manager(caller): Manager,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Envelope<Webhook>> {
    let db = state.db.get().await?;
    Ok(ok(commands::get(&db, &caller, id).await?))
}

#[utoipa::path(patch, path = "/api/webhooks/{id}", tag = "webhooks", params(("id" = i64, Path)),
    request_body = UpdateWebhook, security(("bearer" = [])),
    responses((status = 200, body = Success<Webhook>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, description = "scanners", body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn update_webhook(
    State(state): State<ApiState>,
    Manager(caller): Manager,
    ApiPath(id): ApiPath<i64>,
    JsonInput(input): JsonInput<UpdateWebhook>,
) -> ApiResult<Envelope<Webhook>> {
    let allow_local = state.config.webhooks_allow_local;
    let webhook = edge::unit_of_work!(state, |tx| commands::update(
        tx,
        &caller,
        id,
        input.clone(),
        allow_local
    ));
    Ok(ok(webhook))
}

#[utoipa::path(delete, path = "/api/webhooks/{id}", tag = "webhooks", params(("id" = i64, Path)),
    security(("bearer" = [])),
    responses((status = 204, description = "Deleted, with its pending deliveries"), (status = 401, body = ErrorBody),
        (status = 403, description = "scanners", body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_webhook(
    State(state): State<ApiState>,
    Manager(caller): Manager,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    edge::unit_of_work!(state, |tx| commands::delete(tx, &caller, id));
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/webhooks/{id}/rotate-secret", tag = "webhooks", params(("id" = i64, Path)),
    security(("bearer" = [])),
    responses((status = 200, description = "A new secret, shown only here; the previous one also signs (a second signature) for 24 hours", body = Success<WebhookWithSecret>),
        (status = 401, body = ErrorBody), (status = 403, description = "scanners", body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn rotate_secret(
    State(state): State<ApiState>,
    Manager(caller): Manager,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Envelope<WebhookWithSecret>> {
    let webhook = edge::unit_of_work!(state, |tx| commands::rotate_secret(tx, &caller, id));
    Ok(ok(webhook))
}

#[utoipa::path(get, path = "/api/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = i64, Path), ListDeliveries), security(("bearer" = [])),
    responses((status = 200, description = "Deliveries, newest first: attempts, last response status, duration, next attempt", body = Success<DeliveryPage>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, description = "scanners", body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_deliveries(
    State(state): State<ApiState>,
    Manager(caller): Manager,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(query): ApiQuery<ListDeliveries>,
) -> ApiResult<Envelope<DeliveryPage>> {
    let db = state.db.get().await?;
    Ok(ok(commands::deliveries(&db, &caller, id, query).await?))
}

#[utoipa::path(post, path = "/api/webhooks/{id}/deliveries/{deliveryId}/redeliver", tag = "webhooks",
    params(("id" = i64, Path), ("deliveryId" = i64, Path)), security(("bearer" = [])),
    responses((status = 200, description = "Sent again now with the same webhook-id and a new 3-day retry window (a delivery still pending is left to its schedule)", body = Success<Delivery>),
        (status = 401, body = ErrorBody), (status = 403, description = "scanners", body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "INVALID_STATE: the webhook is disabled", body = ErrorBody)))]
async fn redeliver(
    State(state): State<ApiState>,
    Manager(caller): Manager,
    ApiPath((id, delivery_id)): ApiPath<(i64, i64)>,
) -> ApiResult<Envelope<Delivery>> {
    let delivery = edge::unit_of_work!(state, |tx| commands::redeliver(
        tx,
        &caller,
        id,
        delivery_id
    ));
    Ok(ok(delivery))
}
