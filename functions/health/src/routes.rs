//! Routes of the `health` function: liveness, readiness, and the OpenAPI document.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use axum::extract::FromRef;

use crate::HealthState;

const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Served by the health function over its own [`HealthState`], and by the local server over
/// the API's state (any state a `HealthState` can be taken from).
pub fn routes<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    HealthState: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(ready))
        .routes(routes!(openapi_json))
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "healthy")]
    pub status: &'static str,
    #[schema(example = "core-service")]
    pub service: &'static str,
    /// Seconds since this process started.
    pub uptime: u64,
    pub version: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// `ready`, `degraded` (only Redis is down) or `not_ready`.
    pub status: &'static str,
    pub dependencies: Dependencies,
}

/// A dependency that is not configured is left out.
#[derive(Serialize, ToSchema)]
pub struct Dependencies {
    pub database: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<bool>,
}

#[utoipa::path(get, path = "/health", tag = "health",
    responses((status = 200, description = "Flat, without the envelope (probes read it directly)", body = Health)))]
async fn health(State(state): State<HealthState>) -> Json<Health> {
    Json(Health {
        status: "healthy",
        service: "core-service",
        uptime: state.started_at.elapsed().as_secs(),
        version: env!("CARGO_PKG_VERSION"),
    })
}

#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses(
        (status = 200, description = "`ready`, or `degraded` when only Redis is down (flat, without the envelope)", body = Readiness),
        (status = 503, description = "`not_ready`: the database or the queue is down (the same flat shape)", body = Readiness),
    ))]
async fn ready(State(state): State<HealthState>) -> Response {
    let queue = state.queue.as_deref();
    let report = platform::health::check(
        platform::health::ping_database(&state.db),
        PROBE_TIMEOUT,
        &state.cache,
        queue,
    )
    .await;
    let readiness = report.readiness();
    let body = Readiness {
        status: readiness.as_str(),
        dependencies: Dependencies {
            database: report.database.up,
            redis: report.redis.map(|c| c.up),
            queue: report.queue.map(|c| c.up),
        },
    };
    let code = match readiness {
        platform::health::Readiness::NotReady => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::OK,
    };
    (code, Json(body)).into_response()
}

#[utoipa::path(get, path = "/api/openapi.json", tag = "health",
    responses((status = 200, description = "This document", content_type = "application/json")))]
async fn openapi_json() -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        crate::OPENAPI_JSON,
    )
}
