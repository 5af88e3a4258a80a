//! Test harness: every test gets its own database ([`TestDatabase`], copied from a
//! migrated template in ~50 ms), so tests run in parallel against the real PostgreSQL
//! and never see each other's rows. The app is the same router the Lambda
//! functions and the local server run, driven in-process with `oneshot`.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use domain::Role;
use edge::auth::{issue_token, Claims};
use edge::ApiState;
use http_body_util::BodyExt;
use platform::config::{Config, DbConfig, JwtConfig};
use serde_json::{json, Value};
use testkit::TestDatabase;
use tower::ServiceExt;

pub const SECRET: &str = "test-secret";

pub struct TestApp {
    pub app: Router,
    pub state: ApiState,
    _db: Option<TestDatabase>,
}

pub struct TestResponse {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Value,
}

impl TestResponse {
    /// The contract's error code of an error response.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("<none>")
    }
    pub fn data(&self) -> &Value {
        &self.body["data"]
    }
    /// The `field`s of a VALIDATION_ERROR's details.
    pub fn fields(&self) -> Vec<String> {
        self.body["error"]["details"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|d| d["field"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(configure: impl FnOnce(&mut Config)) -> Self {
        let db = TestDatabase::create().await;
        let mut app = Self::spawn_on(&db.url, configure).await;
        app._db = Some(db);
        app
    }

    /// The app on a database of the caller's (a private cluster of a fault test).
    pub async fn spawn_on(url: &str, configure: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config {
            db: DbConfig {
                url: url.to_owned(),
                pool_size: 16,
                timeout: std::time::Duration::from_secs(10),
                secret_arn: None,
                max_idle: std::time::Duration::from_secs(240),
                ssl_mode: None,
                ssl_root_cert: None,
            },
            jwt: JwtConfig {
                secret: SECRET.into(),
                issuer: None,
                audience: None,
                is_development_default: false,
            },
            port: 0,
            redis: None,
            limits: Default::default(),
            jwks_url: None,
            webhooks_allow_local: true,
        };
        configure(&mut config);
        let state = ApiState::new(
            config,
            Some(domain::tickets::signing::TicketKeys::generate()),
        )
        .unwrap();
        Self {
            app: local_server::app(state.clone()),
            state,
            _db: None,
        }
    }

    /// The same app with jobs relayed to `queue` after each commit (as in Lambda), which
    /// readiness then checks too.
    pub fn with_queue(mut self, queue: std::sync::Arc<dyn domain::outbox::QueueBackend>) -> Self {
        self.state.queue = Some(queue);
        self.app = local_server::app(self.state.clone());
        self
    }

    /// The local server's real job path (outbox relay → in-process queue → the workers,
    /// sending emails with `mailer`), relaying every 500 ms and after each commit.
    pub fn start_job_path(&self, mailer: jobs::email::Mailer) {
        self.start_job_path_with(mailer, jobs::webhook::WebhookSender::default());
    }

    /// [`TestApp::start_job_path`] with these webhook settings.
    pub fn start_job_path_with(
        &self,
        mailer: jobs::email::Mailer,
        webhooks: jobs::webhook::WebhookSender,
    ) {
        let workers = std::sync::Arc::new(
            jobs::workers::Workers::new(self.state.db.clone(), mailer, None)
                .with_webhooks(webhooks),
        );
        let queue = jobs::queue::InProcessQueue::start(self.state.db.clone(), workers, 5);
        let _ = self.state.delivery_queue.set(queue.clone());
        tokio::spawn(domain::outbox::run_relay(
            self.state.db.clone(),
            queue,
            self.state.outbox_signal.clone(),
            std::time::Duration::from_millis(500),
        ));
    }

    pub fn token(&self, role: Role, sub: &str, organizer_id: Option<&str>) -> String {
        let claims = Claims {
            sub: sub.into(),
            role,
            exp: (chrono::Utc::now().timestamp() + 3600) as u64,
            organizer_id: organizer_id.map(str::to_owned),
            iss: None,
            aud: None,
        };
        issue_token(&self.state.config.jwt, &claims)
    }

    pub fn organizer(&self, sub: &str) -> String {
        self.token(Role::Organizer, sub, None)
    }

    pub fn admin(&self) -> String {
        self.token(Role::Admin, "admin-1", None)
    }

    pub fn scanner(&self, organizer: &str) -> String {
        self.token(Role::Scanner, "scanner-1", Some(organizer))
    }

    /// Status, headers and raw body bytes (for non-JSON answers such as PNG images).
    pub async fn send_raw(
        &self,
        request: Request<Body>,
    ) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, headers, bytes.to_vec())
    }

    pub async fn send(&self, request: Request<Body>) -> TestResponse {
        let (status, headers, bytes) = self.send_raw(request).await;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                panic!(
                    "non-JSON body ({status}): {}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        TestResponse {
            status,
            headers,
            body,
        }
    }

    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> TestResponse {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let body = match body {
            Some(b) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(b.to_string())
            }
            None => Body::empty(),
        };
        self.send(req.body(body).unwrap()).await
    }

    pub async fn get(&self, uri: &str, token: &str) -> TestResponse {
        self.call(Method::GET, uri, Some(token), None).await
    }
    pub async fn post(&self, uri: &str, token: &str, body: Value) -> TestResponse {
        self.call(Method::POST, uri, Some(token), Some(body)).await
    }
    pub async fn patch(&self, uri: &str, token: &str, body: Value) -> TestResponse {
        self.call(Method::PATCH, uri, Some(token), Some(body)).await
    }
    pub async fn delete(&self, uri: &str, token: &str) -> TestResponse {
        self.call(Method::DELETE, uri, Some(token), None).await
    }

    /// Creates an event (asserting 201) and returns it.
    pub async fn create_event(&self, token: &str, overrides: Value) -> Value {
        let mut body = event_body();
        merge(&mut body, overrides);
        let r = self.post("/api/events", token, body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.data().clone()
    }

    /// A direct connection to this test's database, for arranging and checking state.
    pub async fn sql(&self) -> deadpool_postgres::Object {
        self.state.db.get().await.unwrap()
    }
}

/// The seed's example body, with its date in the future.
pub fn event_body() -> Value {
    json!({
        "title": "Tech Conference 2027",
        "description": "La plus grande conférence tech",
        "eventDate": future(30),
        "location": "Paris, La Défense",
        "maxAttendees": 500,
        "ticketTypes": [{"name": "VIP", "price": 299.99, "quantity": 50}]
    })
}

pub fn future(days: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::days(days))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

pub fn merge(base: &mut Value, overrides: Value) {
    if let (Some(b), Value::Object(o)) = (base.as_object_mut(), overrides) {
        for (k, v) in o {
            if v.is_null() {
                b.remove(&k);
            } else {
                b.insert(k, v);
            }
        }
    }
}

impl TestApp {
    /// A published event (asserting each step) with the given overrides.
    pub async fn published_event(&self, token: &str, overrides: Value) -> Value {
        let e = self.create_event(token, overrides).await;
        let r = self
            .patch(
                &format!("/api/events/{}", e["id"]),
                token,
                serde_json::json!({"status": "published"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.data().clone()
    }

    pub async fn register(&self, token: &str, event_id: i64, body: Value) -> TestResponse {
        self.post(&format!("/api/events/{event_id}/guests"), token, body)
            .await
    }

    /// A published event (defaults) with one guest registered through the API:
    /// (event id, guest id).
    pub async fn registered_guest(&self, token: &str, email: &str) -> (i64, i64) {
        let e = self.published_event(token, serde_json::json!({})).await;
        let id = e["id"].as_i64().unwrap();
        let reg = self
            .register(token, id, guest_body(email, &e["ticketTypes"][0]["id"]))
            .await;
        (id, reg.data()["guest"]["id"].as_i64().unwrap())
    }

    pub async fn count(&self, sql: &str) -> i64 {
        self.sql().await.query_one(sql, &[]).await.unwrap().get(0)
    }

    /// The id of the ticket of guest `guest_id`.
    pub async fn ticket_of(&self, guest_id: i64) -> i64 {
        self.count(&format!(
            "SELECT id FROM tickets WHERE guest_id = {guest_id}"
        ))
        .await
    }

    /// Polls `sql` until it counts `expected` (for rows a worker commits after
    /// the test has seen its side effect); answers the last count after 5 s.
    pub async fn count_reaches(&self, sql: &str, expected: i64) -> i64 {
        let mut last = self.count(sql).await;
        for _ in 0..100 {
            if last == expected {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            last = self.count(sql).await;
        }
        last
    }
}

pub fn guest_body(email: &str, ticket_type_id: &Value) -> Value {
    let mut body = serde_json::json!({
        "firstName": "John", "lastName": "Doe", "email": email, "phone": "+33612345678"
    });
    if !ticket_type_id.is_null() {
        body["ticketTypeId"] = ticket_type_id.clone();
    }
    body
}
