//! The `webhooks` Lambda function: webhook endpoints, their secrets, deliveries and redelivery.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let env = platform::config::Env::process();
    platform::logging::init("webhooks", &env);
    let state = edge::ApiState::load(env, edge::state::TicketKeysUse::None).await?;
    lambda_http::run(edge::http::serve_api(webhooks::routes(), state)).await
}
