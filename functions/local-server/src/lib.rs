//! The development server: every API function's routes on one port over one [`ApiState`],
//! and the in-process job runner ([`runner`]). No second implementation of anything: the
//! routes are the functions' own (`events::routes()`, ...), the jobs run through the same
//! relay, claims and handlers as the worker functions.

pub mod runner;

use axum::Router;
use edge::ApiState;
use utoipa_axum::router::OpenApiRouter;

/// The local server's state: the API's, with the exports bucket when `EXPORTS_BUCKET` is
/// set, the SQS queue as its relay target and readiness dependency when the queue URLs are
/// configured (as in Lambda), and that queue for the local runner's pollers.
pub async fn state(
    env: &platform::config::Env,
) -> anyhow::Result<(ApiState, Option<platform::sqs::SqsQueue>)> {
    let mut state = ApiState::from_env(env)?;
    state.exports = platform::s3::ObjectStore::from_env(env)?;
    if state.exports.is_none() {
        tracing::warn!(
            "EXPORTS_BUCKET is not set: exports will fail (infra/scripts/dev.sh starts a local S3)"
        );
    }
    let sqs = platform::sqs::SqsQueue::from_env(env).await?;
    if let Some(queue) = &sqs {
        state.queue = Some(std::sync::Arc::new(queue.clone()));
    }
    Ok((state, sqs))
}

/// Every API function's routes (the health function's too), with the shared layers.
pub fn app(state: ApiState) -> Router {
    let routes = OpenApiRouter::new()
        .merge(events::routes())
        .merge(guests::routes())
        .merge(tickets::routes())
        .merge(webhooks::routes())
        .merge(exports::routes())
        .merge(health::routes::<ApiState>());
    edge::http::serve_api(routes, state)
}

/// [`app`] with CORS for `origins` (`CORS_ALLOWED_ORIGINS`; none: unchanged).
pub fn with_cors(app: Router, origins: &[String]) -> Router {
    match edge::http::cors(origins) {
        Some(layer) => app.layer(layer),
        None => app,
    }
}

/// The OpenAPI document of the whole API, generated from every API function's routes (the
/// health function serves a checked copy of it, `health::OPENAPI_JSON`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = OpenApiRouter::<ApiState>::with_openapi(edge::docs::base())
        .merge(events::routes())
        .merge(guests::routes())
        .merge(tickets::routes())
        .merge(webhooks::routes())
        .merge(exports::routes())
        .merge(health::routes::<ApiState>())
        .split_for_parts()
        .1;
    edge::docs::add_common_responses(&mut doc);
    doc
}
