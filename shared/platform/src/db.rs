//! PostgreSQL: the connection pool, database creation for local runs, and migrations.

use anyhow::Context;
use deadpool_postgres::{ManagerConfig, Pool, PoolConfig, RecyclingMethod, Runtime, Timeouts};

use crate::config::DbConfig;

pub use deadpool_postgres::{GenericClient, Pool as DbPool, Transaction};

mod embedded {
    refinery::embed_migrations!("../../migrations");
}

/// Any lock id works as long as it is the same everywhere: migrations from several
/// processes (local servers, test binaries, deploy step) run one at a time.
const MIGRATION_LOCK: i64 = 0x6576_656e_7473; // "events"

pub fn pool(config: &DbConfig) -> anyhow::Result<Pool> {
    let (pg, tls) = config.connection()?;
    let manager_config = ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = match &config.secret_arn {
        // Credentials rotated by RDS: re-fetched from Secrets Manager on an authentication failure.
        Some(arn) => deadpool_postgres::Manager::from_connect(
            pg,
            crate::secrets::RefreshingConnect::new(
                crate::secrets::SecretsCache::global().clone(),
                arn,
                tls,
            ),
            manager_config,
        ),
        None => deadpool_postgres::Manager::from_config(pg, tls, manager_config),
    };
    let timeouts = Timeouts {
        wait: Some(config.timeout),
        create: Some(config.timeout),
        recycle: Some(config.timeout),
    };
    // A connection idle for longer than `max_idle` is dropped rather than reused: RDS Proxy
    // closes client connections idle for `IdleClientTimeout` (300 s in the template), and a
    // frozen Lambda environment would otherwise thaw onto a connection the proxy closed
    // (its first statement failing with "connection closed").
    let max_idle = config.max_idle;
    Pool::builder(manager)
        .config(PoolConfig {
            max_size: config.pool_size,
            timeouts,
            ..PoolConfig::default()
        })
        .pre_recycle(deadpool_postgres::Hook::sync_fn(move |_, metrics| {
            if metrics.last_used() > max_idle {
                Err(deadpool_postgres::HookError::message(
                    "idle for longer than DB_MAX_IDLE_SECS",
                ))
            } else {
                Ok(())
            }
        }))
        .runtime(Runtime::Tokio1)
        .build()
        .context("building the database pool")
}

/// Creates the database named in `url` when it does not exist (local development and
/// tests; in AWS the database is created with the RDS instance).
pub async fn ensure_database(db: &DbConfig) -> anyhow::Result<()> {
    let (config, tls) = db.connection()?;
    let name = config.get_dbname().unwrap_or("postgres").to_owned();
    let mut admin = config.clone();
    admin.dbname("postgres");
    let (client, conn) = admin
        .connect(tls)
        .await
        .context("connecting to PostgreSQL")?;
    tokio::spawn(conn);
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await?
        .is_some();
    if !exists {
        let sql = format!("CREATE DATABASE {}", domain::page::quote_ident(&name));
        match client.batch_execute(&sql).await {
            Ok(()) => tracing::info!(database = %name, "created the database"),
            // Someone else created it in the meantime.
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE) => {}
            Err(e) => return Err(e).context("creating the database"),
        }
    }
    Ok(())
}

/// How long a migration's statement waits for a lock before failing: DDL queued behind a
/// long transaction would otherwise block every query that queues behind it, for minutes.
/// A migration that fails is rolled back whole (refinery runs each in its own transaction).
const MIGRATION_LOCK_TIMEOUT: &str = "5s";

/// The embedded migrations as refinery records them (`V<n>__<name>`), oldest first.
pub fn migration_names() -> Vec<String> {
    let mut all: Vec<_> = embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| (m.version(), format!("V{}__{}", m.version(), m.name())))
        .collect();
    all.sort();
    all.into_iter().map(|(_, name)| name).collect()
}

/// Applies `migrations/` (embedded at compile time). Safe to run concurrently and twice.
/// Needs a session of its own (a direct connection, not a transaction pooler): it holds a
/// session advisory lock and sets `lock_timeout` (reset afterwards).
pub async fn migrate(client: &mut tokio_postgres::Client) -> anyhow::Result<usize> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    client
        .batch_execute(&format!("SET lock_timeout = '{MIGRATION_LOCK_TIMEOUT}'"))
        .await?;
    let result = embedded::migrations::runner().run_async(client).await;
    client.batch_execute("RESET lock_timeout").await?;
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await?;
    let report = result.context("applying migrations")?;
    for m in report.applied_migrations() {
        tracing::info!(migration = %m, "applied migration");
    }
    Ok(report.applied_migrations().len())
}

pub async fn migrate_pool(pool: &Pool) -> anyhow::Result<usize> {
    let mut client = pool.get().await.context("connecting to the database")?;
    migrate(&mut client).await
}

/// A fingerprint of the embedded migrations (tests key their template database by it).
pub fn migrations_fingerprint() -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for m in embedded::migrations::runner().get_migrations() {
        hash.update(m.to_string());
        hash.update(m.checksum().to_le_bytes());
    }
    hash.finalize()
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn backend_pid(pool: &Pool) -> i32 {
        let c = pool.get().await.unwrap();
        c.query_one("SELECT pg_backend_pid()", &[])
            .await
            .unwrap()
            .get(0)
    }

    #[tokio::test]
    async fn a_connection_idle_for_too_long_is_replaced_not_reused() {
        let url = std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let mut config = DbConfig::local(&url, 1);
        config.max_idle = std::time::Duration::from_millis(300);
        let pool = pool(&config).unwrap();
        let first = backend_pid(&pool).await;
        assert_eq!(backend_pid(&pool).await, first, "reused while fresh");
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        assert_ne!(backend_pid(&pool).await, first, "replaced after idling");
    }
}
