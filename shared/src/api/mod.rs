//! The HTTP API: each endpoint group's routes with their OpenAPI annotations, and the
//! one place that assembles them into a router (per Lambda function, or all of them for
//! the local server) and into the OpenAPI document.

pub mod events;
pub mod guests;
pub mod health;
pub mod tickets;

use std::sync::OnceLock;

use axum::Router;
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;

use crate::error::{ErrorCode, FieldError};
use crate::state::AppState;

/// The endpoint groups; each is deployed as its own Lambda function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    Events,
    Guests,
    Tickets,
    Health,
}

impl Group {
    pub const ALL: &'static [Group] =
        &[Group::Events, Group::Guests, Group::Tickets, Group::Health];

    fn routes(self) -> OpenApiRouter<AppState> {
        match self {
            Group::Events => events::routes(),
            Group::Guests => guests::routes(),
            Group::Tickets => tickets::routes(),
            Group::Health => health::routes(),
        }
    }
}

/// The router serving `groups`, with the shared middleware applied.
pub fn router(state: AppState, groups: &[Group]) -> Router {
    let mut api = OpenApiRouter::new();
    for g in groups {
        api = api.merge(g.routes());
    }
    crate::http::finish(api.split_for_parts().0, state)
}

/// The OpenAPI document of every group, built from the same routers that serve requests.
pub fn openapi() -> &'static utoipa::openapi::OpenApi {
    static DOC: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut api = OpenApiRouter::with_openapi(ApiDoc::openapi());
        for g in Group::ALL {
            api = api.merge(g.routes());
        }
        api.split_for_parts().1
    })
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Event Planner Core",
        description = "Events, ticket types, guests, tickets and check-in. Every response carries `x-request-id`. \
                       Request bodies are limited to 64 KiB (413 PAYLOAD_TOO_LARGE). Errors use the envelope \
                       `{success: false, error: {code, message, details, requestId}}`; unknown routes answer \
                       404 NOT_FOUND and known routes with another method 405 METHOD_NOT_ALLOWED."
    ),
    modifiers(&BearerAuth),
    components(schemas(ErrorCode, FieldError, ErrorBody))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// `{"success": true, "data": ...}` (documentation shape of [`crate::http::Envelope`]).
#[derive(Serialize, ToSchema)]
pub struct Success<T> {
    pub success: bool,
    pub data: T,
}

/// The error envelope.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub success: bool,
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
    /// For VALIDATION_ERROR a list of `{field, message}`; other codes document their own.
    pub details: Option<serde_json::Value>,
    pub request_id: Option<String>,
}
