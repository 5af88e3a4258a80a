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
    let name = format!("ept_tpl_{}", platform::db::migrations_fingerprint());
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
            platform::db::migrate(&mut client)
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
            url: app_url_for(&name),
            name,
        }
    }
}

/// The URL the service under test uses for database `db`: through the transaction pooler
/// of `TEST_POOLER_URL` when set (`infra/scripts/pooler-tests.sh`: pgbouncer in
/// transaction mode, as RDS Proxy multiplexes), else [`url_for`]. Creating and dropping
/// databases always goes straight to the server.
pub fn app_url_for(db: &str) -> String {
    match std::env::var("TEST_POOLER_URL") {
        Ok(pooler) if !pooler.trim().is_empty() => {
            let config = tokio_postgres::Config::from_str(&pooler).expect("TEST_POOLER_URL");
            let host = match config.get_hosts().first() {
                Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
                _ => "127.0.0.1".into(),
            };
            let port = config.get_ports().first().copied().unwrap_or(6432);
            let user = config.get_user().unwrap_or("postgres");
            format!("postgres://{user}@{host}:{port}/{db}")
        }
        _ => url_for(db),
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
pub mod private;

pub mod lambda {
    /// A bearer token the function under test accepts: HS256 with `secret` (its
    /// `JWT_SECRET`), for `sub` in `role` (a scanner works for the organizer of its name).
    pub fn token(secret: &str, sub: &str, role: domain::Role) -> String {
        let jwt = platform::config::JwtConfig {
            secret: secret.into(),
            issuer: None,
            audience: None,
            is_development_default: false,
        };
        let claims = edge::auth::Claims {
            sub: sub.into(),
            role,
            exp: 9_999_999_999,
            organizer_id: (role == domain::Role::Scanner).then(|| sub.to_owned()),
            iss: None,
            aud: None,
        };
        edge::auth::issue_token(&jwt, &claims)
    }

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
            .ancestors()
            .nth(2)
            .expect("shared/testkit/ is two levels below the root")
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
                // In Lambda the database connection defaults to verify-full TLS; the shared
                // test PostgreSQL has no TLS (the TLS tests set their own DB_SSLMODE).
                .env("DB_SSLMODE", "disable")
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

/// A local AWS for tests: one `moto_server` (SQS, Secrets Manager) per test process,
/// started from `<repo>/.venv/bin/moto_server` on a free port, or the one at `MOTO_URL`
/// when that is set. It stops when the test process ends, however it ends: it runs under
/// a small shell that kills it when its stdin (a pipe from this process) closes.
/// Clients get the endpoint, the region and the credentials explicitly (no process-wide
/// environment is changed, so tests run in parallel).
pub mod aws {
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};
    use std::process::{Child, ChildStdin, Command, Stdio};
    use std::sync::{Mutex, OnceLock};
    use std::time::{Duration, Instant};

    use aws_sdk_sqs::types::QueueAttributeName;

    pub const REGION: &str = "eu-west-1";

    pub struct Moto {
        pub url: String,
        /// Kept open for the life of the process: closing it stops the server.
        _guard: Option<Mutex<(Child, ChildStdin)>>,
    }

    /// The moto server of this test process (started on first use).
    pub fn moto() -> &'static Moto {
        static MOTO: OnceLock<Moto> = OnceLock::new();
        MOTO.get_or_init(start)
    }

    fn start() -> Moto {
        if let Some(url) = std::env::var("MOTO_URL").ok().filter(|u| !u.is_empty()) {
            return Moto { url, _guard: None };
        }
        let bin = super::lambda::repo_root().join(".venv/bin/moto_server");
        assert!(
            bin.exists(),
            "{} is missing: run infra/scripts/tools.sh (it installs moto[server] into .venv)",
            bin.display()
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        // The watchdog shell: starts moto, waits for EOF on stdin, then stops moto.
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(r#"m="$1"; shift; "$m" "$@" </dev/null >/dev/null 2>&1 & pid=$!; cat >/dev/null; kill $pid 2>/dev/null; wait $pid"#)
            .arg("moto-watchdog")
            .arg(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::piped())
            // Not the test's stdout/stderr: the watchdog outlives the test process briefly.
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server starts");
        let stdin = child.stdin.take().expect("a stdin pipe");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if answers(port) {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("moto_server exited during start ({status})");
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not answer on port {port} within 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto {
            url: format!("http://127.0.0.1:{port}"),
            _guard: Some(Mutex::new((child, stdin))),
        }
    }

    /// Whether an HTTP request to moto gets a response.
    fn answers(port: u16) -> bool {
        use std::io::Write;
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let req = "GET /moto-api/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
        if s.write_all(req.as_bytes()).is_err() {
            return false;
        }
        let mut head = [0u8; 12];
        s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
    }

    impl Moto {
        pub fn sqs(&self) -> aws_sdk_sqs::Client {
            let config = aws_sdk_sqs::Config::builder()
                .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
                .region(aws_sdk_sqs::config::Region::new(REGION))
                .endpoint_url(&self.url)
                .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                    "test", "test", None, None, "moto",
                ))
                .build();
            aws_sdk_sqs::Client::from_conf(config)
        }

        pub fn secrets(&self) -> aws_sdk_secretsmanager::Client {
            use aws_sdk_secretsmanager::config;
            let config = config::Builder::new()
                .behavior_version(config::BehaviorVersion::latest())
                .region(config::Region::new(REGION))
                .endpoint_url(&self.url)
                .credentials_provider(config::Credentials::new("test", "test", None, None, "moto"))
                .build();
            aws_sdk_secretsmanager::Client::from_conf(config)
        }

        /// The variables a child process (a function binary) needs to reach this moto.
        pub fn env(&self) -> Vec<(&'static str, String)> {
            vec![
                ("AWS_ENDPOINT_URL", self.url.clone()),
                ("AWS_REGION", REGION.into()),
                ("AWS_ACCESS_KEY_ID", "test".into()),
                ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ]
        }
    }

    /// A queue with its dead-letter queue.
    #[derive(Debug, Clone)]
    pub struct TestQueue {
        pub url: String,
        pub arn: String,
        pub dlq_url: String,
    }

    /// Creates `<name>-<random>` and its dead-letter queue: a message received more than
    /// `max_receive_count` times moves to the DLQ; `visibility_timeout` in seconds.
    pub async fn create_queue(
        client: &aws_sdk_sqs::Client,
        name: &str,
        visibility_timeout: u32,
        max_receive_count: u32,
    ) -> TestQueue {
        let name = format!("{name}-{}", uuid::Uuid::new_v4().simple());
        let dlq_url = client
            .create_queue()
            .queue_name(format!("{name}-dlq"))
            .send()
            .await
            .expect("CreateQueue (DLQ)")
            .queue_url
            .expect("a queue URL");
        let dlq_arn = queue_arn(client, &dlq_url).await;
        let url = client
            .create_queue()
            .queue_name(&name)
            .attributes(
                QueueAttributeName::VisibilityTimeout,
                visibility_timeout.to_string(),
            )
            .attributes(
                QueueAttributeName::RedrivePolicy,
                serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count.to_string()})
                    .to_string(),
            )
            .send()
            .await
            .expect("CreateQueue")
            .queue_url
            .expect("a queue URL");
        let arn = queue_arn(client, &url).await;
        TestQueue { url, arn, dlq_url }
    }

    /// An SQS → Lambda event as the event source mapping delivers it (the shape of
    /// infra/fixtures/sqs-event.json), one record per `(messageId, body)`.
    pub fn lambda_sqs_event(records: &[(&str, &str)], queue_arn: &str) -> serde_json::Value {
        let now_ms = chrono::Utc::now().timestamp_millis().to_string();
        let records: Vec<serde_json::Value> = records
            .iter()
            .map(|(id, body)| {
                serde_json::json!({
                    "messageId": id,
                    "receiptHandle": format!("AQEB{}", uuid::Uuid::new_v4().simple()),
                    "body": body,
                    "attributes": {
                        "ApproximateReceiveCount": "1",
                        "SentTimestamp": now_ms,
                        "SenderId": "AROAIWPX5BD2BHG722MW4:relay",
                        "ApproximateFirstReceiveTimestamp": now_ms
                    },
                    "messageAttributes": {},
                    "eventSource": "aws:sqs",
                    "eventSourceARN": queue_arn,
                    "awsRegion": REGION
                })
            })
            .collect();
        serde_json::json!({ "Records": records })
    }

    pub async fn queue_arn(client: &aws_sdk_sqs::Client, url: &str) -> String {
        client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("GetQueueAttributes")
            .attributes
            .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
            .expect("a queue ARN")
    }
}

/// Application fixtures built with the domain commands (no HTTP), for the tests of the
/// workers and functions.
pub mod fixtures {
    use serde_json::{json, Value};

    use domain::rules::Input;
    use domain::tickets::signing::TicketKeys;
    use domain::{Caller, Role};
    use edge::ApiState;
    use platform::config::Env;

    /// The state of a process connected to `database_url`, configured as from an
    /// environment holding only these variables (plus `vars`).
    pub fn state(database_url: &str, vars: &[(&str, &str)]) -> ApiState {
        ApiState::new(
            env(database_url, vars)
                .config()
                .expect("test configuration"),
            Some(TicketKeys::generate()),
        )
        .expect("test state")
    }

    /// The environment [`state`] is configured from.
    pub fn env(database_url: &str, vars: &[(&str, &str)]) -> Env {
        let mut env = Env::from_pairs([
            ("DATABASE_URL", database_url),
            ("JWT_SECRET", "test-secret"),
            ("DB_POOL_SIZE", "4"),
        ]);
        for (k, v) in vars {
            env = env.set(k, *v);
        }
        env
    }

    /// A published event (one ticket type) of organizer `org-1` with one confirmed guest
    /// `email`: the registration JSON (`{"guest", "ticket"}`, as the API returns it). The
    /// registration wrote its jobs to the outbox.
    pub async fn registration(state: &ApiState, email: &str) -> Value {
        let caller = Caller {
            user_id: "org-1".into(),
            role: Role::Organizer,
            organizer_id: None,
        };
        let date = (chrono::Utc::now() + chrono::Duration::days(30))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let mut db = state.db.get().await.expect("a database connection");
        // Each command in its own unit of work, committed with its effects, as the API does.
        let tx = db.transaction().await.unwrap();
        let done = domain::events::commands::create(
            &tx,
            &caller,
            serde_json::from_value(json!({
                "title": "Tech Conference 2027", "eventDate": date, "location": "Paris, La Défense",
                "maxAttendees": 500, "ticketTypes": [{"name": "VIP", "price": 299.99, "quantity": 50}]
            }))
            .expect("an event body"),
        )
        .await
        .expect("the event is created");
        let event = state.commit(tx, done, None).await.unwrap();
        let event = serde_json::to_value(event).unwrap();
        let event_id = event["id"].as_i64().expect("an event id");
        let tx = db.transaction().await.unwrap();
        let done = domain::events::commands::update(
            &tx,
            &caller,
            event_id,
            Input::ok(serde_json::from_value(json!({"status": "published"})).unwrap()),
        )
        .await
        .expect("the event is published");
        state.commit(tx, done, None).await.unwrap();
        let tx = db.transaction().await.unwrap();
        let done = domain::registration::register(
            &tx,
            &caller,
            state.ticket_keys().unwrap(),
            event_id,
            Input::ok(
                serde_json::from_value(json!({
                    "firstName": "Ada", "lastName": "Lovelace", "email": email,
                    "ticketTypeId": event["ticketTypes"][0]["id"]
                }))
                .unwrap(),
            ),
        )
        .await
        .expect("the guest is registered");
        let registration = state.commit(tx, done, None).await.unwrap();
        serde_json::to_value(registration).unwrap()
    }
}
