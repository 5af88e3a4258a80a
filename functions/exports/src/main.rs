//! The `exports` Lambda function: export requests and their download links.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let env = platform::config::Env::process();
    platform::logging::init("exports", &env);
    let store = platform::s3::ObjectStore::from_env(&env)?
        .ok_or("EXPORTS_BUCKET is not set: the exports function needs its bucket")?;
    let mut state = edge::ApiState::load(env, edge::state::TicketKeysUse::None).await?;
    state.exports = Some(store);
    lambda_http::run(edge::http::serve_api(exports::routes(), state)).await
}
