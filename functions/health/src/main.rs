//! The `health` Lambda function: `/health`, `/health/ready` and `/api/openapi.json`.
use shared::api::{router, Group};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::logging::init("health");
    let state = shared::AppState::load().await?;
    lambda_http::run(router(state, &[Group::Health])).await
}
