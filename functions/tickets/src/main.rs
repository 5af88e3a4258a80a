//! The `tickets` Lambda function: tickets, QR images, check-in, scanner keys, stats.
use shared::api::{router, Group};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::logging::init("tickets");
    let state = shared::AppState::load().await?;
    lambda_http::run(router(state, &[Group::Tickets])).await
}
