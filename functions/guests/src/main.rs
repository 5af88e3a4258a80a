//! The `guests` Lambda function: registration, approval, cancellation of guests.
use shared::api::{router, Group};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::logging::init("guests");
    let state = shared::AppState::load().await?;
    lambda_http::run(router(state, &[Group::Guests])).await
}
