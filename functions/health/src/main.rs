//! The `health` Lambda function: `/health`, `/health/ready` and `/api/openapi.json`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let env = platform::config::Env::process();
    platform::logging::init("health", &env);
    let state = health::HealthState::load(env).await?;
    lambda_http::run(edge::http::serve(health::routes(), state)).await
}
