//! What the benchmarks share: an app on a fresh database, an organizer token, a driver
//! that runs N requests from C concurrent clients and reports throughput and latency.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use domain::tickets::signing::TicketKeys;
use domain::Role;
use edge::auth::{issue_token, Claims};
use edge::ApiState;
use platform::config::{Config, DbConfig, JwtConfig};
use serde_json::{json, Value};
use testkit::TestDatabase;
use tower::ServiceExt;

pub struct Bench {
    pub app: axum::Router,
    pub state: ApiState,
    pub token: String,
    _db: TestDatabase,
}

impl Bench {
    pub async fn new(pool_size: usize) -> Arc<Self> {
        let db = TestDatabase::create().await;
        let jwt = JwtConfig {
            secret: "bench".into(),
            issuer: None,
            audience: None,
            is_development_default: false,
        };
        let config = Config {
            db: DbConfig {
                url: db.url.clone(),
                pool_size,
                timeout: Duration::from_secs(30),
                secret_arn: None,
                max_idle: std::time::Duration::from_secs(240),
                ssl_mode: None,
                ssl_root_cert: None,
            },
            jwt: jwt.clone(),
            port: 0,
            redis: None,
            limits: Default::default(),
            jwks_url: None,
            webhooks_allow_local: true,
        };
        let state = ApiState::new(config, Some(TicketKeys::generate())).unwrap();
        let claims = Claims {
            sub: "bench-org".into(),
            role: Role::Organizer,
            exp: 9_999_999_999,
            organizer_id: None,
            iss: None,
            aud: None,
        };
        Arc::new(Bench {
            app: local_server::app(state.clone()),
            state,
            token: issue_token(&jwt, &claims),
            _db: db,
        })
    }

    pub async fn call(&self, method: &str, uri: &str, body: Value) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let res = self.app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let bytes = http_body_util::BodyExt::collect(res.into_body())
            .await
            .unwrap()
            .to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// A published event with one ticket type of `quantity` seats: (event id, ticket type id).
    pub async fn event(&self, quantity: i64) -> (i64, i64) {
        let date = (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339();
        let (s, e) = self
            .call(
                "POST",
                "/api/events",
                json!({"title": "Bench event", "eventDate": date, "location": "Lyon", "maxAttendees": 100000,
                       "ticketTypes": [{"name": "General", "price": 10, "quantity": quantity}]}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{e}");
        let id = e["data"]["id"].as_i64().unwrap();
        self.call(
            "PATCH",
            &format!("/api/events/{id}"),
            json!({"status": "published"}),
        )
        .await;
        (id, e["data"]["ticketTypes"][0]["id"].as_i64().unwrap())
    }

    pub async fn count(&self, sql: &str) -> i64 {
        self.state
            .db
            .get()
            .await
            .unwrap()
            .query_one(sql, &[])
            .await
            .unwrap()
            .get(0)
    }
}

pub struct Report {
    pub per_second: f64,
    pub p50: Duration,
    pub p99: Duration,
}

/// Runs `total` requests (`request(i)` → whether it had the expected outcome) from
/// `clients` concurrent tasks.
pub async fn drive<F, Fut>(total: usize, clients: usize, request: F) -> Report
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let request = Arc::new(request);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (request, next) = (request.clone(), next.clone());
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return latencies;
                }
                let t = Instant::now();
                assert!(request(i).await, "request {i} had an unexpected outcome");
                latencies.push(t.elapsed());
            }
        });
    }
    let mut latencies = Vec::with_capacity(total);
    while let Some(l) = tasks.join_next().await {
        latencies.extend(l.unwrap());
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    Report {
        per_second: total as f64 / elapsed.as_secs_f64(),
        p50: pct(0.50),
        p99: pct(0.99),
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:>8.0}/s   p50={:>6.2} ms  p99={:>6.2} ms",
            self.per_second,
            self.p50.as_secs_f64() * 1e3,
            self.p99.as_secs_f64() * 1e3
        )
    }
}

pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
