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

/// cargo-lambda's runtime emulator (`cargo lambda watch --only-lambda-apis`) with function
/// binaries attached to it: tests drive the real Lambda runtime interface with real event
/// payloads (infra/scripts/lambda-emulator.sh is the shell twin of this).
pub mod lambda {
    use std::net::TcpListener;
    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    pub struct Emulator {
        pub port: u16,
        processes: Vec<Child>,
    }

    /// The repository root (the workspace manifest the emulator reads its function names from).
    pub fn repo_root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("shared/ has a parent")
            .to_path_buf()
    }

    fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port")
    }

    fn wait_for_port(port: u16, child: &mut Child) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the Lambda emulator exited early ({status})");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the Lambda emulator did not listen on port {port}");
    }

    impl Emulator {
        /// Starts an emulator on a free port. Needs `.venv/bin/cargo-lambda` (infra/scripts/tools.sh).
        pub fn start() -> Self {
            let root = repo_root();
            let bin = root.join(".venv/bin/cargo-lambda");
            assert!(
                bin.exists(),
                "{} is missing: run infra/scripts/tools.sh",
                bin.display()
            );
            let port = free_port();
            let mut child = Command::new(bin)
                .args([
                    "lambda",
                    "watch",
                    "--only-lambda-apis",
                    "--invoke-address",
                    "127.0.0.1",
                ])
                .args([
                    "--invoke-port",
                    &port.to_string(),
                    "--timeout",
                    "60",
                    "--manifest-path",
                ])
                .arg(root.join("Cargo.toml"))
                .current_dir(&root)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("cargo-lambda starts");
            wait_for_port(port, &mut child);
            Self {
                port,
                processes: vec![child],
            }
        }

        /// Runs the function binary `exe` as function `name`, with `env` added.
        pub fn attach(&mut self, name: &str, exe: &str, env: &[(&str, &str)]) {
            let child = Command::new(exe)
                .env("AWS_LAMBDA_FUNCTION_NAME", name)
                .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
                .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
                .env(
                    "AWS_LAMBDA_RUNTIME_API",
                    format!("http://127.0.0.1:{}/.rt/{name}", self.port),
                )
                .envs(env.iter().copied())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("the function binary starts");
            self.processes.push(child);
        }

        /// Invokes function `name` with `event` through the emulator; returns the HTTP
        /// status of the invocation and the function's JSON output.
        pub async fn invoke(
            &self,
            name: &str,
            event: &serde_json::Value,
        ) -> (u16, serde_json::Value) {
            let url = format!(
                "http://127.0.0.1:{}/2015-03-31/functions/{name}/invocations",
                self.port
            );
            let res = reqwest::Client::new()
                .post(url)
                .json(event)
                .timeout(Duration::from_secs(90))
                .send()
                .await
                .expect("the emulator answers");
            let status = res.status().as_u16();
            (status, res.json().await.unwrap_or(serde_json::Value::Null))
        }
    }

    impl Drop for Emulator {
        fn drop(&mut self) {
            for p in self.processes.iter_mut().rev() {
                let _ = p.kill();
                let _ = p.wait();
            }
        }
    }

    /// An API Gateway HTTP API (v2) request event, shaped like the real payload.
    pub fn apigw_v2(
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> serde_json::Value {
        let mut headers = serde_json::json!({"content-type": "application/json", "host": "api.example.com", "x-request-id": "lambda-test-1"});
        if let Some(t) = token {
            headers["authorization"] = serde_json::Value::String(format!("Bearer {t}"));
        }
        let (raw_path, query) = path.split_once('?').unwrap_or((path, ""));
        serde_json::json!({
            "version": "2.0",
            "routeKey": format!("{method} {raw_path}"),
            "rawPath": raw_path,
            "rawQueryString": query,
            "headers": headers,
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "api-id",
                "domainName": "api.example.com",
                "domainPrefix": "api",
                "http": {"method": method, "path": raw_path, "protocol": "HTTP/1.1", "sourceIp": "192.0.2.1", "userAgent": "lambda-test"},
                "requestId": "lambda-test-request",
                "routeKey": format!("{method} {raw_path}"),
                "stage": "$default",
                "time": "24/Nov/2026:10:00:00 +0000",
                "timeEpoch": 1795600000000u64
            },
            "body": body.map(|b| b.to_string()),
            "isBase64Encoded": false
        })
    }
}
