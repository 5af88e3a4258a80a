//! The `guests` Lambda function: registration, approval, cancellation of guests.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let env = platform::config::Env::process();
    platform::logging::init("guests", &env);
    let state = edge::ApiState::load(env, edge::state::TicketKeysUse::SignsOrVerifies).await?;
    lambda_http::run(edge::http::serve_api(guests::routes(), state)).await
}
