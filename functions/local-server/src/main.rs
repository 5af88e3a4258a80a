//! Development server: every function's router on one port (`PORT`, default 3001),
//! against `DATABASE_URL`, with the database created and migrated first.
//! `local-server token <organizer|admin|scanner> <sub> [organizerId]` prints a JWT signed
//! with the configured key, for trying the API by hand.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env = platform::config::Env::process();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("token") {
        println!(
            "{}",
            edge::auth::development_token(&env.jwt()?, &args[1..])?
        );
        return Ok(());
    }
    platform::logging::init("local-server", &env);
    let (state, sqs) = local_server::state(&env).await?;
    platform::db::ensure_database(&state.config.db).await?;
    platform::db::migrate_pool(&state.db).await?;
    local_server::runner::start_local(&env, &state, sqs).await?;
    local_server::runner::start_offer_expiry(&state, std::time::Duration::from_secs(15));
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", state.config.port)).await?;
    tracing::info!(address = %listener.local_addr()?, "local server listening");
    let app = local_server::with_cors(local_server::app(state), &env.cors_origins());
    axum::serve(listener, app)
        .with_graceful_shutdown(async { tokio::signal::ctrl_c().await.unwrap_or(()) })
        .await?;
    Ok(())
}
