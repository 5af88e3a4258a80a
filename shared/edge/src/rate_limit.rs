//! Rate limits on the endpoints worth abusing (registration, ticket validation), per
//! token, or per client IP for requests without one (the `Limited<_>` extractor). Fixed one-minute windows counted in
//! Redis; over the limit the answer is 429 `RATE_LIMITED` with `Retry-After`. Without
//! Redis (or while it is down) requests are not limited: availability first.

use std::time::Duration;

use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ErrorCode};
use crate::state::ApiState;

const WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Registrations,
    Validations,
    /// Waiting-list claims by token: always per client IP.
    Claims,
}

impl Limit {
    fn name(self) -> &'static str {
        match self {
            Limit::Registrations => "registrations",
            Limit::Validations => "validations",
            Limit::Claims => "claims",
        }
    }

    fn per_minute(self, state: &ApiState) -> u64 {
        match self {
            Limit::Registrations => state.config.limits.registrations_per_minute,
            Limit::Validations => state.config.limits.validations_per_minute,
            Limit::Claims => state.config.limits.claims_per_minute,
        }
    }
}

/// Who is counted: a digest of the bearer token, else the client's IP (always the IP for
/// [`Limit::Claims`]: the public claim endpoint takes no token).
fn subject(headers: &HeaderMap, limit: Limit) -> String {
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .filter(|_| limit != Limit::Claims);
    if let Some(token) = token {
        let digest = Sha256::digest(token.as_bytes());
        return format!(
            "tok:{}",
            digest
                .iter()
                .take(12)
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
    }
    // The last address of X-Forwarded-For is the one API Gateway appended (the peer it saw);
    // earlier ones come from the client and could be anything.
    let ip = headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .or_else(|| headers.get("x-real-ip").and_then(|v| v.to_str().ok()))
        .unwrap_or("unknown");
    format!("ip:{ip}")
}

/// Which limit an endpoint is under.
pub trait LimitKind {
    const LIMIT: Limit;
}

pub struct Registrations;
impl LimitKind for Registrations {
    const LIMIT: Limit = Limit::Registrations;
}

pub struct Validations;
impl LimitKind for Validations {
    const LIMIT: Limit = Limit::Validations;
}

pub struct Claims;
impl LimitKind for Claims {
    const LIMIT: Limit = Limit::Claims;
}

/// An extractor that counts the request against limit `L` (put it before `Caller`, so
/// requests without a valid token are counted by IP too) and refuses it over the limit.
pub struct Limited<L>(PhantomData<L>);

impl<L: LimitKind + Send> FromRequestParts<ApiState> for Limited<L> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let limit = L::LIMIT;
        let key = format!("rl:{}:{}", limit.name(), subject(&parts.headers, limit));
        if let Some((hits, retry_after)) = state.cache.hit(&key, WINDOW).await {
            if hits > limit.per_minute(state) {
                let mut err = ApiError::new(
                    ErrorCode::RateLimited,
                    format!("too many {} requests, retry later", limit.name()),
                );
                err.retry_after = Some(retry_after.max(1));
                return Err(err);
            }
        }
        Ok(Limited(PhantomData))
    }
}
