//! The HTTP edge: everything between API Gateway (or the local server) and the domain.
//! The response envelope, extractors whose rejections are contract errors (the caller
//! first, so roles are checked before any input is parsed), [`ApiError`] mapped from the
//! domain's error, bearer-token verification, rate limits, the [`ApiState`] the API
//! functions build, and [`ApiState::run`], the unit-of-work helper that commits a
//! command and applies its effects. Each API function (`functions/<group>`) holds its
//! own routes; this crate holds what they share.

pub mod auth;
pub mod docs;
pub mod error;
pub mod http;
pub mod idempotency;
pub mod rate_limit;
pub mod state;

pub use error::{ApiError, ApiResult};
pub use state::ApiState;
