//! The `health` function's routes (`/health`, `/health/ready`, `/api/openapi.json`) and the
//! OpenAPI document of the whole API, generated from every API function's routes.

use std::sync::OnceLock;

mod routes;

pub use routes::routes;

/// The OpenAPI document of every API function, built from the same routes that serve requests.
pub fn openapi() -> &'static utoipa::openapi::OpenApi {
    static DOC: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOC.get_or_init(|| {
        utoipa_axum::router::OpenApiRouter::<edge::ApiState>::with_openapi(edge::docs::base())
            .merge(events::routes())
            .merge(guests::routes())
            .merge(tickets::routes())
            .merge(routes())
            .split_for_parts()
            .1
    })
}
