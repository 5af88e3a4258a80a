//! The `events` Lambda function: events and ticket types (API Gateway HTTP API v2).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let env = platform::config::Env::process();
    platform::logging::init("events", &env);
    let state = edge::ApiState::load(env, edge::state::TicketKeysUse::None).await?;
    lambda_http::run(edge::http::serve_api(events::routes(), state)).await
}
