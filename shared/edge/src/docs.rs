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

/// The answers every operation can give besides its own, added to the whole document so that
/// no route has to repeat them (and none can forget one): 400 (a malformed path id, query
/// or body), 401 (operations behind a token), 413 (operations with a body), 429 (the
/// rate-limited ones), 500 and 503 (a dependency that is down).
pub fn add_common_responses(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    let error = |description: &str| -> RefOr<utoipa::openapi::Response> {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build(),
        )
    };
    const RATE_LIMITED: [(&str, &str); 4] = [
        ("post", "/api/events/{eventId}/guests"),
        ("post", "/api/waitlist/claim"),
        ("post", "/api/tickets/{ticketId}/validate"),
        ("post", "/api/tickets/validate"),
    ];
    for (path, item) in doc.paths.paths.iter_mut() {
        let operations = [
            ("get", item.get.as_mut()),
            ("post", item.post.as_mut()),
            ("put", item.put.as_mut()),
            ("patch", item.patch.as_mut()),
            ("delete", item.delete.as_mut()),
        ];
        for (method, operation) in operations {
            let Some(op) = operation else { continue };
            let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
            let has_body = op.request_body.is_some();
            let limited = RATE_LIMITED.contains(&(method, path.as_str()));
            if matches!(method, "post" | "patch" | "delete") && secured {
                let params = op.parameters.get_or_insert_with(Vec::new);
                params.push(
                    utoipa::openapi::path::ParameterBuilder::new()
                        .name("Idempotency-Key")
                        .parameter_in(utoipa::openapi::path::ParameterIn::Header)
                        .required(utoipa::openapi::Required::False)
                        .description(Some(
                            "1–255 printable ASCII. For 24 hours the same key from the same caller with the same request replays the first answer (header Idempotent-Replayed: true) and changes nothing again.",
                        ))
                        .schema(Some(
                            utoipa::openapi::ObjectBuilder::new()
                                .schema_type(utoipa::openapi::schema::Type::String)
                                .min_length(Some(1))
                                .max_length(Some(255)),
                        ))
                        .build(),
                );
                if matches!(method, "patch" | "delete")
                    && op.responses.responses.contains_key("412")
                {
                    params.push(
                        utoipa::openapi::path::ParameterBuilder::new()
                            .name("If-Match")
                            .parameter_in(utoipa::openapi::path::ParameterIn::Header)
                            .required(utoipa::openapi::Required::False)
                            .description(Some(
                                "The ETag of the resource as read: the change is refused with 412 if it changed since",
                            ))
                            .schema(Some(
                                utoipa::openapi::ObjectBuilder::new()
                                    .schema_type(utoipa::openapi::schema::Type::String),
                            ))
                            .build(),
                    );
                }
            }
            let mut add = |code: &str, description: &str| {
                op.responses
                    .responses
                    .entry(code.to_owned())
                    .or_insert_with(|| error(description));
            };
            if !path.starts_with("/health") && path != "/api/openapi.json" {
                add(
                    "400",
                    "VALIDATION_ERROR: a malformed path id, query parameter or body",
                );
            }
            if secured {
                add(
                    "401",
                    "UNAUTHORIZED: no token, or an invalid or expired one",
                );
            }
            if has_body {
                add("413", "PAYLOAD_TOO_LARGE: a body over 64 KiB");
            }
            if limited {
                add(
                    "429",
                    "RATE_LIMITED: too many requests for this token; see Retry-After",
                );
            }
            let write = matches!(method, "post" | "patch" | "delete");
            if write && secured {
                add(
                    "409",
                    "IDEMPOTENCY_IN_PROGRESS: a request with this Idempotency-Key is still running (besides the operation's own conflicts)",
                );
                add(
                    "422",
                    "IDEMPOTENCY_KEY_REUSED: this Idempotency-Key was used with another request",
                );
            }
            add("500", "INTERNAL_ERROR");
            add(
                "503",
                "SERVICE_UNAVAILABLE: the database (or another dependency) is down",
            );
        }
    }
}
