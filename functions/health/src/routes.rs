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

use edge::ApiState;

const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub fn routes() -> OpenApiRouter<ApiState> {
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
async fn health(State(state): State<ApiState>) -> Json<Health> {
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
async fn ready(State(state): State<ApiState>) -> Response {
    let queue_ping = async {
        match &state.queue {
            Some(q) => Some(q.ping().await),
            None => None,
        }
    };
    let (database, redis, queue) =
        tokio::join!(database_answers(&state), state.cache.ping(), queue_ping);
    let status = match (database, queue, redis) {
        (false, _, _) | (_, Some(false), _) => "not_ready",
        // The API still serves, uncached.
        (true, _, Some(false)) => "degraded",
        _ => "ready",
    };
    let report = Readiness {
        status,
        dependencies: Dependencies {
            database,
            redis,
            queue,
        },
    };
    let code = if status == "not_ready" {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (code, Json(report)).into_response()
}

async fn database_answers(state: &ApiState) -> bool {
    let probe = async {
        let db = state.db.get().await.ok()?;
        db.simple_query("SELECT 1").await.ok()
    };
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, probe).await,
        Ok(Some(_))
    )
}

#[utoipa::path(get, path = "/api/openapi.json", tag = "health",
    responses((status = 200, description = "This document", content_type = "application/json")))]
async fn openapi_json() -> (StatusCode, Json<&'static utoipa::openapi::OpenApi>) {
    (StatusCode::OK, Json(crate::openapi()))
}
