//! What the OpenAPI document shares across the API functions: its header, the bearer
//! scheme, and the envelope shapes every operation refers to.

use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

pub use crate::error::{ErrorBody, ErrorDetail};
use crate::error::{ErrorCode, FieldError};

/// The base document (title, description, bearer scheme, shared schemas): the health
/// function and the local server merge every API function's routes into it.
pub fn base() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
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

/// `{"success": true, "data": ...}`: the body of every successful answer ([`crate::http::Envelope`])
/// and its shape in the OpenAPI document.
#[derive(Serialize, ToSchema)]
pub struct Success<T> {
    pub success: bool,
    pub data: T,
}
