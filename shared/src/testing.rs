//! Test support shared by every crate's tests (feature `test-support`, never in a
//! deployed binary): a fresh database per test, copied from a migrated template.

use std::str::FromStr;

use tokio_postgres::NoTls;

/// The server tests create their databases on (`TEST_DATABASE_URL`, default local).
pub fn server_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The URL of database `db` on the test server.
pub fn url_for(db: &str) -> String {
    let config = tokio_postgres::Config::from_str(&server_url()).expect("TEST_DATABASE_URL");
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("postgres");
    format!("postgres://{user}@{host}:{port}/{db}")
}

async fn admin() -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&server_url(), NoTls)
        .await
        .expect("PostgreSQL must run for the tests (infra/scripts/services.sh starts it)");
    tokio::spawn(conn);
    client
}

/// The migrated template database, built once per migration set under an advisory lock
/// (test processes run in parallel).
async fn template() -> String {
    let name = format!("ept_tpl_{}", crate::db::migrations_fingerprint());
    let admin = admin().await;
    admin
        .execute("SELECT pg_advisory_lock(4242)", &[])
        .await
        .unwrap();
    let exists = admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .unwrap()
        .is_some();
    if !exists {
        let building = format!("{name}_building");
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {building}"))
            .await
            .unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {building}"))
            .await
            .unwrap();
        {
            let (mut client, conn) = tokio_postgres::connect(&url_for(&building), NoTls)
                .await
                .unwrap();
            let handle = tokio::spawn(conn);
            crate::db::migrate(&mut client)
                .await
                .expect("migrations apply");
            drop(client);
            let _ = handle.await;
        }
        admin
            .batch_execute(&format!("ALTER DATABASE {building} RENAME TO {name}"))
            .await
            .unwrap();
    }
    admin
        .execute("SELECT pg_advisory_unlock(4242)", &[])
        .await
        .unwrap();
    name
}

/// A migrated database of its own, dropped when this value is dropped.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    pub async fn create() -> Self {
        let template = template().await;
        let name = format!("ept_test_{}", uuid::Uuid::new_v4().simple());
        admin()
            .await
            .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
            .await
            .unwrap();
        Self {
            url: url_for(&name),
            name,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop cannot await: use a short-lived runtime on another thread.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let _ = admin()
                    .await
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
            });
        })
        .join();
    }
}
