//! The library every function of the core service is built on.
//!
//! A request travels: `functions/<group>/src/main.rs` → [`api`] (routes, OpenAPI) →
//! a domain module ([`events`], [`guests`], [`tickets`]) → PostgreSQL. [`http`] holds the envelope, extractors
//! and middleware, [`error`] the one error type, [`auth`] the caller and tenancy rules.

pub mod api;
pub mod auth;
pub mod cache;
pub mod clients;
pub mod config;
pub mod db;
pub mod email;
pub mod error;
pub mod events;
pub mod guests;
pub mod http;
pub mod jobs;
pub mod logging;
pub mod ops;
pub mod outbox;
pub mod queue;
pub mod rate_limit;
pub mod secrets;
pub mod sqs_worker;
pub mod state;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod tickets;
pub mod validation;
pub mod workers;

pub use error::{ApiError, ApiResult};
pub use state::AppState;
