//! The `tickets` Lambda function: tickets, QR images, check-in, scanner keys, stats.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let env = platform::config::Env::process();
    platform::logging::init("tickets", &env);
    let state = edge::ApiState::load(env, edge::state::TicketKeysUse::SignsOrVerifies).await?;
    lambda_http::run(edge::http::serve_api(tickets::routes(), state)).await
}
