//! The `events` Lambda function: events and ticket types (API Gateway HTTP API v2).
use shared::api::{router, Group};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::logging::init("events");
    let state = shared::AppState::load().await?;
    lambda_http::run(router(state, &[Group::Events])).await
}
