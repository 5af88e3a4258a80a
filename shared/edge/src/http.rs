//! HTTP plumbing shared by every function: the response envelope, extractors whose
//! rejections are contract errors, the authenticated caller, and the request middleware
//! (request id, structured request log, error bodies, panics).

use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::Instrument;

use domain::rules::{parse_json, Input};
use domain::Caller;

use crate::docs::Success;
use crate::error::{ApiError, ErrorCode, FieldError};
use crate::state::ApiState;

pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Largest accepted request body (documented in the OpenAPI description).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// `{"success": true, "data": ...}` with a status.
pub struct Envelope<T>(pub StatusCode, pub T);

pub fn ok<T: Serialize>(data: T) -> Envelope<T> {
    Envelope(StatusCode::OK, data)
}

pub fn created<T: Serialize>(data: T) -> Envelope<T> {
    Envelope(StatusCode::CREATED, data)
}

/// The body is [`Success`], the type the OpenAPI document shows.
impl<T: Serialize> IntoResponse for Envelope<T> {
    fn into_response(self) -> Response {
        (
            self.0,
            axum::Json(Success {
                success: true,
                data: self.1,
            }),
        )
            .into_response()
    }
}

/// A JSON body deserialized with field paths in its errors: malformed JSON, wrong types
/// and unknown fields are `VALIDATION_ERROR`, an oversized body `PAYLOAD_TOO_LARGE`.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        read_json(req, state).await.map(ApiJson)
    }
}

/// A JSON body read like [`ApiJson`], whose problems are kept rather than answered at once:
/// the command opens it after the tenancy gate ([`domain::rules::Input`]), so another
/// organizer's resource is 404 whatever the body holds.
pub struct JsonInput<T>(pub Input<T>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonInput<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let if_match = if_match(req.headers());
        Ok(JsonInput(
            Input::new(read_json(req, state).await.map_err(|e| e.0)).with_if_match(if_match),
        ))
    }
}

/// A `text/csv` body (the guest import), read whole up to the route's body limit and kept,
/// like [`JsonInput`], for the command to open after the tenancy gate.
pub struct CsvInput(pub Input<Bytes>);

impl<S: Send + Sync> FromRequest<S> for CsvInput {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_csv = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                let media = v.split(';').next().unwrap_or("").trim();
                media.eq_ignore_ascii_case("text/csv")
                    || media.eq_ignore_ascii_case("application/csv")
            })
            .unwrap_or(false);
        let body = if !is_csv {
            Err(ApiError::field("body", "Content-Type must be text/csv").0)
        } else {
            Bytes::from_request(req, state).await.map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        ErrorCode::PayloadTooLarge,
                        "the file is larger than the limit",
                    )
                    .0
                } else {
                    ApiError::field("body", "the body could not be read").0
                }
            })
        };
        Ok(CsvInput(Input::new(body)))
    }
}

fn if_match(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get(axum::http::header::IF_MATCH)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// The request's `If-Match` (for routes without a body: DELETE); the command compares it with
/// the version of the row it locked (`domain::etag`).
pub struct IfMatch(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(IfMatch(if_match(&parts.headers)))
    }
}

/// An answer with the resource's `ETag` (its row version, `domain::etag`).
pub struct Tagged<T>(pub String, pub Envelope<T>);

impl<T: Serialize> IntoResponse for Tagged<T> {
    fn into_response(self) -> Response {
        let mut response = self.1.into_response();
        if let Ok(value) = HeaderValue::from_str(&domain::etag::etag(&self.0)) {
            response
                .headers_mut()
                .insert(axum::http::header::ETAG, value);
        }
        response
    }
}

async fn read_json<S: Send + Sync, T: DeserializeOwned>(
    req: Request,
    state: &S,
) -> Result<T, ApiError> {
    let is_json = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/json")
        })
        .unwrap_or(false);
    if !is_json {
        return Err(ApiError::field(
            "body",
            "Content-Type must be application/json",
        ));
    }
    let bytes = Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("the body is larger than {MAX_BODY_BYTES} bytes"),
            )
        } else {
            ApiError::field("body", "the body could not be read")
        }
    })?;
    Ok(parse_json(&bytes)?)
}

/// Query parameters with the same error shape as bodies (unknown parameters refused).
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        if let Some((key, _)) =
            form_urlencoded::parse(query.as_bytes()).find(|(_, v)| v.contains('\0'))
        {
            return Err(ApiError::field(
                &key,
                "must not contain the NUL character (%00)",
            ));
        }
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(ApiQuery)
            .map_err(|e| {
                let field = e.path().to_string();
                let field = if field == "." {
                    "query".to_owned()
                } else {
                    field
                };
                ApiError::validation(vec![FieldError::new(
                    field,
                    domain::rules::humanize(&e.into_inner().to_string()),
                )])
            })
    }
}

/// A path parameter; a malformed one (`/api/events/abc`) is a `VALIDATION_ERROR`.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e| {
                // axum says "Cannot parse `abc` to a `i64`": every path parameter is an id.
                let mut err = ApiError::field(
                    "path",
                    "ids in the path must be whole numbers between 1 and 2^63-1",
                );
                err.internal = Some(e.body_text());
                err
            })
    }
}

/// The authenticated caller; any failure is the same `401 UNAUTHORIZED`.
impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        // Verified once already by the idempotency layer, for a request under a key.
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        state.tokens.verify_header(header).await
    }
}

/// A function's routes as the router it serves, with the shared layers ([`finish`]).
pub fn serve<S: Clone + Send + Sync + 'static>(
    routes: utoipa_axum::router::OpenApiRouter<S>,
    state: S,
) -> Router {
    finish(routes.split_for_parts().0, state)
}

/// The caller of an endpoint that only organizers and admins may call. A scanner gets 403
/// here, as an extractor that runs before the path, the query and the body are read, so
/// a caller without the role never learns anything from the validation of its input.
/// Handlers take it before their `ApiPath`/`ApiQuery`/`ApiJson` arguments.
pub struct Manager(pub Caller);

impl FromRequestParts<ApiState> for Manager {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if caller.is_manager() {
            Ok(Manager(caller))
        } else {
            Err(ApiError::forbidden())
        }
    }
}

/// An API function's routes as the router it serves: [`finish`]'s layers, and idempotency
/// keys on its writes ([`crate::idempotency`], inside the request context so its answers get
/// the request id and the error envelope like any other).
pub fn serve_api(routes: utoipa_axum::router::OpenApiRouter<ApiState>, state: ApiState) -> Router {
    base(routes.split_for_parts().0)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::idempotency::layer,
        ))
        .layer(axum::middleware::from_fn(request_context))
        .with_state(state)
}

/// Applies the cross-cutting layers to a function's router: every function (and the
/// local server) goes through this, so they behave the same.
pub fn finish<S: Clone + Send + Sync + 'static>(router: Router<S>, state: S) -> Router {
    base(router)
        .layer(axum::middleware::from_fn(request_context))
        .with_state(state)
}

fn base<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router
        .fallback(|| async { ApiError::new(ErrorCode::NotFound, "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                ErrorCode::MethodNotAllowed,
                "this method is not allowed on this route",
            )
        })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            ApiError::internal("handler panicked").into_response()
        }))
}

/// CORS for browser front ends on other origins (`CORS_ALLOWED_ORIGINS`, comma-separated
/// exact origins such as `https://app.example.com`; none: no CORS headers at all). In AWS
/// the HTTP API answers it from the template's `AllowedOrigins`; the local server uses this.
/// Allowed: the API's methods and request headers; exposed: what clients read.
pub fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::{header, HeaderName, Method};
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o.trim()).ok())
        .collect();
    if origins.is_empty() {
        return None;
    }
    Some(
        tower_http::cors::CorsLayer::new()
            .allow_origin(origins)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PATCH,
                Method::PUT,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::IF_MATCH,
                header::IF_NONE_MATCH,
                HeaderName::from_static("idempotency-key"),
                HeaderName::from_static(REQUEST_ID_HEADER),
            ])
            .expose_headers([
                header::ETAG,
                header::LOCATION,
                header::RETRY_AFTER,
                HeaderName::from_static(REQUEST_ID_HEADER),
            ])
            .max_age(std::time::Duration::from_secs(600)),
    )
}

/// Request id (echoed when the client sent a sane one), one span per request so every
/// log line carries it, a completion log line, and the error body written with it.
pub async fn request_context(req: Request, next: Next) -> Response {
    let request_id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_sane_request_id(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    // A request that came with a body which an error answer may have left unread (refused by
    // its token, role or size before the body was parsed): the server closes such a
    // connection, so it says so, and a keep-alive client does not send its next request
    // into a closing socket.
    let has_body = !axum::body::HttpBody::is_end_stream(req.body());
    let span = platform::logging::invocation_span(&request_id);
    let started = Instant::now();
    async move {
        let mut response = next.run(req).await;
        let status = response.status();
        if let Some(error) = response.extensions_mut().remove::<ApiError>() {
            if status.is_server_error() {
                tracing::error!(code = error.code.as_str(), cause = error.internal.as_deref(), %method, %path, "request failed");
            } else {
                tracing::info!(code = error.code.as_str(), cause = error.internal.as_deref(), "request refused");
            }
            let (mut parts, _) = response.into_parts();
            let body = serde_json::to_vec(&error.body(Some(&request_id))).unwrap_or_default();
            parts.headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            parts.headers.remove(axum::http::header::CONTENT_LENGTH);
            response = Response::from_parts(parts, Body::from(body));
        }
        tracing::info!(%method, %path, status = status.as_u16(), duration_ms = started.elapsed().as_millis() as u64, "request completed");
        if has_body && status.as_u16() >= 400 {
            response.headers_mut().insert(
                axum::http::header::CONNECTION,
                HeaderValue::from_static("close"),
            );
        }
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert(REQUEST_ID_HEADER, v);
        }
        response
    }
    .instrument(span)
    .await
}

fn is_sane_request_id(v: &str) -> bool {
    (1..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Sample {
        max_attendees: i64,
        items: Vec<Item>,
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Item {
        name: String,
    }

    fn field_of(e: domain::DomainError) -> String {
        e.details.unwrap()[0]["field"].as_str().unwrap().to_owned()
    }

    #[test]
    fn json_errors_name_the_field() {
        let e = parse_json::<Sample>(br#"{"maxAttendees": "x", "items": []}"#).unwrap_err();
        assert_eq!(e.code, ErrorCode::ValidationError);
        assert_eq!(field_of(e), "maxAttendees");
        let e =
            parse_json::<Sample>(br#"{"maxAttendees": 1, "items": [{"name": 1}]}"#).unwrap_err();
        assert_eq!(field_of(e), "items[0].name");
        let e =
            parse_json::<Sample>(br#"{"maxAttendees": 1, "items": [], "extra": 1}"#).unwrap_err();
        assert!(e.details.unwrap()[0]["message"]
            .as_str()
            .unwrap()
            .contains("unknown field"));
        let e = parse_json::<Sample>(b"{not json").unwrap_err();
        assert_eq!(e.code, ErrorCode::ValidationError);
    }

    #[test]
    fn request_ids_are_checked() {
        assert!(is_sane_request_id("abc-123_x.y"));
        assert!(!is_sane_request_id(""));
        assert!(!is_sane_request_id("a\nb"));
        assert!(!is_sane_request_id(&"a".repeat(129)));
    }
}
