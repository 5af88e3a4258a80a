//! [`ApiError`]: the domain's error as an HTTP response. The status comes from the
//! contract's code ([`ErrorCode::http_status`]); the body is the error envelope, written
//! with the request id by the request middleware ([`crate::http::request_context`]),
//! which also logs the internal cause (SQLSTATE, dependency) that never reaches the client.

use std::ops::{Deref, DerefMut};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
pub use domain::error::{DbResultExt, ErrorCode, FieldError};
use domain::DomainError;

use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone)]
pub struct ApiError(pub DomainError);

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self(DomainError::new(code, message))
    }

    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self(DomainError::field(field, message))
    }

    pub fn validation(errors: Vec<FieldError>) -> Self {
        Self(DomainError::validation(errors))
    }

    pub fn not_found(what: &str) -> Self {
        Self(DomainError::not_found(what))
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self(DomainError::unauthorized(message))
    }

    pub fn forbidden() -> Self {
        Self(DomainError::forbidden())
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self(DomainError::internal(cause))
    }

    pub fn unavailable(what: &str, cause: impl std::fmt::Display) -> Self {
        Self(DomainError::unavailable(what, cause))
    }

    /// The contract's error envelope ([`ErrorBody`], the type the OpenAPI document shows):
    /// the code, the message and the details, never the internal cause.
    pub fn body(&self, request_id: Option<&str>) -> ErrorBody {
        ErrorBody {
            success: false,
            error: ErrorDetail {
                code: self.0.code,
                message: self.0.message.clone(),
                details: self.0.details.clone(),
                request_id: request_id.map(str::to_owned),
            },
        }
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.0.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl Deref for ApiError {
    type Target = DomainError;
    fn deref(&self) -> &DomainError {
        &self.0
    }
}

impl DerefMut for ApiError {
    fn deref_mut(&mut self) -> &mut DomainError {
        &mut self.0
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for ApiError {}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        Self(e)
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self(e.into())
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        Self(e.into())
    }
}

impl From<validator::ValidationErrors> for ApiError {
    fn from(e: validator::ValidationErrors) -> Self {
        Self(e.into())
    }
}

/// The response carries the error in its extensions; the request middleware logs it and
/// writes the final body with the request id.
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), axum::Json(self.body(None))).into_response();
        if let Some(secs) = self.0.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response.extensions_mut().insert(self);
        response
    }
}

/// The error envelope: the body of every error answer ([`crate::error::ApiError::body`]) and its
/// shape in the OpenAPI document.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_details_never_reach_the_body() {
        let e = ApiError::internal("relation \"events\" does not exist at /src/x.rs");
        let body = serde_json::to_string(&e.body(Some("abc"))).unwrap();
        assert!(!body.contains("relation"));
        assert!(body.contains("INTERNAL_ERROR"));
        assert!(body.contains("abc"));
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
