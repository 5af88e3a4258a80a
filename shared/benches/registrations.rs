//! Registrations per second through the real router and a real PostgreSQL, with the
//! seat counts checked afterwards. Run: `cargo bench -p shared --bench registrations`
//! (figures recorded in infra/benchmarks/README.md).
//!
//! Two loads: every request on ONE hot ticket type (the worst case: all transactions
//! queue on the same counter rows), and requests spread over 50 events.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use shared::api::{router, Group};
use shared::auth::{issue_token, Claims, Role};
use shared::config::{Config, JwtConfig};
use shared::testing::TestDatabase;
use shared::AppState;
use tower::ServiceExt;

struct Bench {
    app: axum::Router,
    state: AppState,
    token: String,
}

impl Bench {
    async fn call(&self, method: &str, uri: &str, body: Value) -> (StatusCode, Value) {
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

    async fn event(&self, quantity: i64) -> (i64, i64) {
        let date = (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339();
        let (s, e) = self
            .call(
                "POST",
                "/api/events",
                json!({"title": "Bench event", "eventDate": date, "location": "Lyon", "maxAttendees": 100000,
                       "ticketTypes": [{"name": "General", "price": 10, "quantity": quantity}]}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED);
        let id = e["data"]["id"].as_i64().unwrap();
        self.call(
            "PATCH",
            &format!("/api/events/{id}"),
            json!({"status": "published"}),
        )
        .await;
        (id, e["data"]["ticketTypes"][0]["id"].as_i64().unwrap())
    }
}

async fn run(
    bench: Arc<Bench>,
    label: &str,
    targets: Vec<(i64, i64)>,
    total: usize,
    clients: usize,
) {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (bench, next, targets) = (bench.clone(), next.clone(), targets.clone());
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= total {
                    return latencies;
                }
                let (event, tt) = targets[i % targets.len()];
                let body = json!({"firstName": "Bench", "lastName": format!("Guest{i}"),
                                  "email": format!("guest{i}@bench.example"), "ticketTypeId": tt});
                let t = Instant::now();
                let (s, _) = bench
                    .call("POST", &format!("/api/events/{event}/guests"), body)
                    .await;
                assert_eq!(s, StatusCode::CREATED);
                latencies.push(t.elapsed());
            }
        });
    }
    let mut latencies: Vec<Duration> = Vec::new();
    while let Some(l) = tasks.join_next().await {
        latencies.extend(l.unwrap());
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    let db = bench.state.db.get().await.unwrap();
    let sold: i64 = db
        .query_one("SELECT sum(sold)::bigint FROM ticket_types", &[])
        .await
        .unwrap()
        .get(0);
    let guests: i64 = db
        .query_one(
            "SELECT count(*) FROM guests WHERE status <> 'cancelled'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(sold, guests, "seat counters match the guest rows");
    println!(
        "{label:<34} clients={clients:<3} n={total:<6} {:>8.0} registrations/s   p50={:>6.2} ms  p99={:>6.2} ms   seats: sold={sold} guests={guests} ✓",
        total as f64 / elapsed.as_secs_f64(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let total: usize = std::env::var("BENCH_REGISTRATIONS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(4000);
        for clients in [16, 64] {
            let db = TestDatabase::create().await;
            let jwt = JwtConfig {
                secret: "bench".into(),
                issuer: None,
                audience: None,
                is_development_default: false,
            };
            let config = Config {
                database_url: db.url.clone(),
                db_pool_size: clients.min(32),
                db_timeout: Duration::from_secs(30),
                jwt: jwt.clone(),
                port: 0,
            };
            let state =
                AppState::new(config, shared::tickets::signing::TicketKeys::generate()).unwrap();
            let claims = Claims {
                sub: "bench-org".into(),
                role: Role::Organizer,
                exp: 9_999_999_999,
                organizer_id: None,
                iss: None,
                aud: None,
            };
            let bench = Arc::new(Bench {
                app: router(state.clone(), Group::ALL),
                state,
                token: issue_token(&jwt, &claims),
            });
            let hot = bench.event(100_000).await;
            run(
                bench.clone(),
                "one hot ticket type",
                vec![hot],
                total,
                clients,
            )
            .await;
            let mut spread = Vec::new();
            for _ in 0..50 {
                spread.push(bench.event(100_000).await);
            }
            run(
                bench.clone(),
                "spread over 50 events",
                spread,
                total,
                clients,
            )
            .await;
        }
    });
}
