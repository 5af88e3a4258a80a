//! Development server: every function's router on one port (`PORT`, default 3001),
//! against `DATABASE_URL`, with the database created and migrated first.
//! `local-server token <organizer|admin|scanner> <sub> [organizerId]` prints a JWT signed
//! with the configured key, for trying the API by hand.
use shared::api::{router, Group};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("token") {
        println!(
            "{}",
            shared::auth::development_token(&shared::config::Config::from_env()?.jwt, &args[1..])?
        );
        return Ok(());
    }
    shared::logging::init("local-server");
    let state = shared::AppState::from_env()?;
    shared::db::ensure_database(&state.config.database_url).await?;
    shared::db::migrate_pool(&state.db).await?;
    shared::workers::start_local(&state).await?;
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", state.config.port)).await?;
    tracing::info!(address = %listener.local_addr()?, "local server listening");
    axum::serve(listener, router(state, Group::ALL))
        .with_graceful_shutdown(async { tokio::signal::ctrl_c().await.unwrap_or(()) })
        .await?;
    Ok(())
}
