//! Issue 14, item 3: the service under faults of its dependencies, each against instances
//! the test starts for itself (a PostgreSQL cluster and a Redis server on free ports, a
//! gate in front of moto's SQS, a notification stub), never the shared ones.
//!
//! - PostgreSQL restarted twice under registration load: no 500, recovery without a
//!   restart of the service, every 201 in the database, every job done exactly once (the
//!   F1 reproduction: no job `failed_permanently` for a transient cause, no email missing
//!   or sent twice).
//! - Redis killed under reads: every read 200, readiness degraded, then ready again as soon
//!   as Redis answers.
//! - SQS cut off and back: registrations go on, every job waits in the outbox and is
//!   delivered once when SQS is back.
//! - The notification service failing, hanging and refusing: one 2xx per email, a refusal
//!   not retried, and a hanging call holds up no other email.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use jobs::clients::notification::{ClientConfig, NotificationClient};
use jobs::email::Mailer;
use serde_json::{json, Value};
use testkit::private::{PrivatePostgres, PrivateRedis, TcpGate};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::helpers::*;

/// The real job path of the local server (outbox relay → in-process queue → the workers),
/// with emails sent to `notification`.
fn start_jobs(app: &TestApp, notification: &MockServer, timeout: Duration) {
    let client = NotificationClient::new(
        &notification.uri(),
        ClientConfig {
            timeout,
            max_attempts: 3,
            backoff: Duration::from_millis(50),
        },
    )
    .unwrap();
    app.start_job_path(Mailer::Notification(Box::new(client)));
}

async fn notification_ok() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/notifications/email"))
        .respond_with(ResponseTemplate::new(202).set_body_json(json!({"id": "n-1"})))
        .mount(&server)
        .await;
    server
}

/// The `Idempotency-Key` (the job id) of every email request `server` received, counted.
async fn emails_by_job(server: &MockServer) -> HashMap<String, usize> {
    let mut by_job = HashMap::new();
    for r in server.received_requests().await.unwrap_or_default() {
        let key = r
            .headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("<none>")
            .to_owned();
        *by_job.entry(key).or_insert(0) += 1;
    }
    by_job
}

/// Waits (bounded) until every outbox job was dispatched and has an outcome; then the
/// outcomes, counted.
async fn settled_jobs(app: &TestApp, within: Duration) -> HashMap<String, i64> {
    let deadline = Instant::now() + within;
    loop {
        let open = app
            .count(
                "SELECT count(*) FROM job_outbox o
                  WHERE o.dispatched_at IS NULL
                     OR NOT EXISTS (SELECT 1 FROM processed_jobs p
                                     WHERE p.job_id = o.job_id AND p.outcome <> 'in_progress')",
            )
            .await;
        if open == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{open} jobs still open after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let rows = app
        .sql()
        .await
        .query(
            "SELECT outcome, count(*) FROM processed_jobs GROUP BY outcome",
            &[],
        )
        .await
        .unwrap();
    rows.iter().map(|r| (r.get(0), r.get(1))).collect()
}

/// The email jobs of the outbox (their ids: the notification service's idempotency keys).
async fn email_jobs(app: &TestApp) -> Vec<String> {
    app.sql()
        .await
        .query(
            "SELECT job_id::text FROM job_outbox WHERE queue = 'email' ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgresql_restart_under_registration_load_loses_nothing() {
    let pg = Arc::new(PrivatePostgres::start());
    let url = pg.migrated_database("faults").await;
    let app = Arc::new(
        TestApp::spawn_on(&url, |c| {
            c.db.pool_size = 12;
            c.db.timeout = Duration::from_secs(3);
        })
        .await,
    );
    let mail = notification_ok().await;
    start_jobs(&app, &mail, Duration::from_secs(5));
    let alice = app.organizer("alice");
    let event = app
        .published_event(
            &alice,
            json!({"maxAttendees": 5000, "ticketTypes": [{"name": "GA", "price": 0, "quantity": 5000}]}),
        )
        .await;
    let (eid, tt) = (
        event["id"].as_i64().unwrap(),
        event["ticketTypes"][0]["id"].clone(),
    );

    // 4 clients register for 7 s (a pause between requests keeps the job backlog, QR codes
    // rendered one at a time in a debug build, to a few seconds); PostgreSQL restarts (fast
    // shutdown: every session is closed) at 1.5 s and at 4 s.
    let statuses: Arc<Mutex<HashMap<u16, usize>>> = Arc::default();
    let created: Arc<Mutex<Vec<i64>>> = Arc::default();
    let last_created = Arc::new(Mutex::new(Instant::now()));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(7);
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..4 {
        let (app, alice, tt) = (app.clone(), alice.clone(), tt.clone());
        let (statuses, created, last_created) =
            (statuses.clone(), created.clone(), last_created.clone());
        clients.spawn(async move {
            let mut n = 0;
            while Instant::now() < deadline {
                n += 1;
                let r = app
                    .register(
                        &alice,
                        eid,
                        guest_body(&format!("c{c}-{n}@example.com"), &tt),
                    )
                    .await;
                assert!(
                    r.status == StatusCode::CREATED || r.status == StatusCode::SERVICE_UNAVAILABLE,
                    "{} {}",
                    r.status,
                    r.body
                );
                *statuses
                    .lock()
                    .unwrap()
                    .entry(r.status.as_u16())
                    .or_insert(0) += 1;
                if r.status == StatusCode::CREATED {
                    created
                        .lock()
                        .unwrap()
                        .push(r.data()["guest"]["id"].as_i64().unwrap());
                    *last_created.lock().unwrap() = Instant::now();
                } else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        });
    }
    let mut restarts = Vec::new();
    for at in [1500u64, 4000] {
        tokio::time::sleep_until((start + Duration::from_millis(at)).into()).await;
        let pg = pg.clone();
        let began = Instant::now();
        tokio::task::spawn_blocking(move || pg.restart())
            .await
            .unwrap();
        restarts.push(began.elapsed());
    }
    let restarted_at = Instant::now();
    while let Some(r) = clients.join_next().await {
        r.unwrap();
    }
    let statuses = statuses.lock().unwrap().clone();
    eprintln!("registrations: {statuses:?}; restarts took {restarts:?}");
    // The restarts hit the load (refused requests), and the service recovered by itself.
    assert!(statuses.get(&503).copied().unwrap_or(0) > 0, "{statuses:?}");
    assert!(
        *last_created.lock().unwrap() > restarted_at,
        "no registration succeeded after the second restart: {statuses:?}"
    );

    // Every 201 is in the database, and nothing else is.
    let ids = created.lock().unwrap().clone();
    let db = app.sql().await;
    let stored: i64 = db
        .query_one("SELECT count(*) FROM guests WHERE id = ANY($1)", &[&ids])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored as usize, ids.len());
    assert_eq!(
        app.count("SELECT count(*) FROM guests").await as usize,
        ids.len()
    );

    // Every job done exactly once: none failed for a transient cause (F1), and each email
    // reached the notification service once.
    let outcomes = settled_jobs(&app, Duration::from_secs(90)).await;
    assert_eq!(
        outcomes.keys().collect::<Vec<_>>(),
        vec!["done"],
        "{outcomes:?}"
    );
    let jobs = app.count("SELECT count(*) FROM job_outbox").await;
    assert_eq!(outcomes["done"], jobs);
    let sent = emails_by_job(&mail).await;
    let expected = email_jobs(&app).await;
    assert!(!expected.is_empty());
    for job in &expected {
        assert_eq!(sent.get(job), Some(&1), "email of job {job}: {sent:?}");
    }
    assert_eq!(sent.len(), expected.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_killed_under_reads_costs_no_read_and_readiness_follows_it() {
    let mut redis = PrivateRedis::start();
    let redis_url = redis.url();
    let app = Arc::new(
        TestApp::spawn_with(|c| {
            c.redis = Some(platform::config::RedisConfig {
                url: redis_url,
                timeout: Duration::from_millis(100),
                ttl: Duration::from_secs(60),
                prefix: "faults:".into(),
                root_cert: None,
            })
        })
        .await,
    );
    let alice = app.organizer("alice");
    let event = app.published_event(&alice, json!({})).await;
    let eid = event["id"].as_i64().unwrap();
    let ready = |app: Arc<TestApp>| async move {
        let r = app.call(Method::GET, "/health/ready", None, None).await;
        (r.status, r.body["status"].as_str().unwrap_or("").to_owned())
    };
    assert_eq!(ready(app.clone()).await, (StatusCode::OK, "ready".into()));

    let reads: Arc<Mutex<HashMap<u16, usize>>> = Arc::default();
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut readers = tokio::task::JoinSet::new();
    for i in 0..8 {
        let (app, alice, reads) = (app.clone(), alice.clone(), reads.clone());
        readers.spawn(async move {
            while Instant::now() < deadline {
                let uri = if i % 2 == 0 {
                    "/api/events?limit=20".to_owned()
                } else {
                    format!("/api/events/{eid}")
                };
                let r = app.get(&uri, &alice).await;
                *reads.lock().unwrap().entry(r.status.as_u16()).or_insert(0) += 1;
            }
        });
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    redis.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        ready(app.clone()).await,
        (StatusCode::OK, "degraded".into()),
        "Redis down: degraded, still serving"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    redis.start_again();
    // Ready again at the first check after Redis answers (the cache's circuit breaker,
    // which spares the requests a dead Redis, does not decide what readiness reports).
    assert_eq!(ready(app.clone()).await, (StatusCode::OK, "ready".into()));
    while let Some(r) = readers.join_next().await {
        r.unwrap();
    }
    let reads = reads.lock().unwrap().clone();
    eprintln!("reads: {reads:?}");
    assert_eq!(reads.keys().collect::<Vec<_>>(), vec![&200], "{reads:?}");
    assert!(reads[&200] > 100, "{reads:?}");
}

/// An SQS client of moto's reached through `gate`.
fn sqs_through(gate: &TcpGate) -> aws_sdk_sqs::Client {
    use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("eu-west-1"))
        .endpoint_url(format!("http://127.0.0.1:{}", gate.port))
        .credentials_provider(Credentials::new("test", "test", None, None, "moto"))
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqs_cut_off_and_back_delivers_every_job_once() {
    let moto = testkit::aws::moto();
    let admin = moto.sqs();
    let email = testkit::aws::create_queue(&admin, "email", 5, 5).await;
    let tickets = testkit::aws::create_queue(&admin, "ticket-generation", 5, 5).await;
    let gate = TcpGate::start(moto.url.trim_start_matches("http://")).await;
    let queue = platform::sqs::SqsQueue::new(
        sqs_through(&gate),
        platform::sqs::QueueUrls {
            email: email.url.clone(),
            ticket_generation: tickets.url.clone(),
            webhooks: None,
        },
    );
    let app = TestApp::spawn().await;
    let mail = notification_ok().await;
    let env = testkit::fixtures::env(
        &app.state.config.db.url,
        &[("NOTIFICATION_SERVICE_URL", &mail.uri())],
    );
    local_server::runner::start_with_sqs(
        &env,
        &app.state,
        queue,
        jobs::lambda::PollConfig {
            wait_time_seconds: 1,
            retry_backoff: Some(Duration::from_millis(500)),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let alice = app.organizer("alice");
    let event = app.published_event(&alice, json!({})).await;
    let (eid, tt) = (
        event["id"].as_i64().unwrap(),
        event["ticketTypes"][0]["id"].clone(),
    );
    let register = |n: usize| guest_body(&format!("sqs-{n}@example.com"), &tt);

    for n in 0..3 {
        assert_eq!(
            app.register(&alice, eid, register(n)).await.status,
            StatusCode::CREATED
        );
    }
    gate.close();
    // SQS unreachable: registrations still succeed, their jobs wait in the outbox.
    for n in 3..8 {
        assert_eq!(
            app.register(&alice, eid, register(n)).await.status,
            StatusCode::CREATED
        );
    }
    app.state.outbox_signal.notify_one();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let waiting = app
        .count("SELECT count(*) FROM job_outbox WHERE dispatched_at IS NULL")
        .await;
    assert!(
        waiting >= 5,
        "the jobs of the 5 registrations made while SQS was cut off wait: {waiting}"
    );
    gate.open().await;
    app.state.outbox_signal.notify_one();
    let outcomes = settled_jobs(&app, Duration::from_secs(60)).await;
    assert_eq!(
        outcomes.keys().collect::<Vec<_>>(),
        vec!["done"],
        "{outcomes:?}"
    );
    // Each registration: its ticket generated and its email sent, once.
    assert_eq!(
        app.count("SELECT count(*) FROM tickets WHERE qr_code_data IS NOT NULL")
            .await,
        8
    );
    let sent = emails_by_job(&mail).await;
    let expected = email_jobs(&app).await;
    assert_eq!(
        expected.len(),
        16,
        "a confirmation and a ticket email per registration"
    );
    for job in &expected {
        assert_eq!(sent.get(job), Some(&1), "email of job {job}: {sent:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_hanging_or_refusing_notification_service_costs_one_email_each() {
    let app = TestApp::spawn().await;
    // Per recipient: `flaky` answers 503 twice then 202, `refused` 422, `hangs` does not
    // answer for 8 s (past the client's 1 s time-out, every attempt), the others 202.
    let server = MockServer::start().await;
    let calls: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let seen = calls.clone();
    Mock::given(method("POST"))
        .and(path("/api/notifications/email"))
        .respond_with(move |r: &Request| {
            let body: Value = serde_json::from_slice(&r.body).unwrap_or_default();
            let to = body["to"].as_str().unwrap_or("").to_owned();
            let n = {
                let mut calls = seen.lock().unwrap();
                let n = calls.entry(to.clone()).or_insert(0);
                *n += 1;
                *n
            };
            match to.split('@').next().unwrap_or("") {
                "flaky" if n <= 2 => ResponseTemplate::new(503),
                "refused" => {
                    ResponseTemplate::new(422).set_body_json(json!({"error": "bad address"}))
                }
                "hangs" => ResponseTemplate::new(202).set_delay(Duration::from_secs(8)),
                _ => ResponseTemplate::new(202).set_body_json(json!({"id": "n"})),
            }
        })
        .mount(&server)
        .await;
    start_jobs(&app, &server, Duration::from_secs(1));
    let alice = app.organizer("alice");
    let event = app.published_event(&alice, json!({})).await;
    let (eid, tt) = (
        event["id"].as_i64().unwrap(),
        event["ticketTypes"][0]["id"].clone(),
    );
    // The hanging one first: the others queue behind it.
    let mut recipients = vec!["hangs".to_owned(), "flaky".into(), "refused".into()];
    recipients.extend((0..6).map(|i| format!("ok{i}")));
    let mut guests = HashMap::new();
    for who in &recipients {
        let r = app
            .register(&alice, eid, guest_body(&format!("{who}@example.com"), &tt))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        guests.insert(who.clone(), r.data()["guest"]["id"].as_i64().unwrap());
    }
    // Everything but the hanging emails is settled while they still hang (no head-of-line
    // stall): each guest gets a confirmation and a ticket email; those of the six plain
    // guests and of the flaky one are sent, the refused one's failed.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let done = app
            .count(
                "SELECT count(*) FROM processed_jobs p JOIN job_outbox o USING (job_id)
                  WHERE o.queue = 'email' AND p.outcome <> 'in_progress'",
            )
            .await;
        if done >= 16 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {done} of 16 emails settled while two hang"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let calls = calls.lock().unwrap().clone();
    for i in 0..6 {
        assert_eq!(
            calls.get(&format!("ok{i}@example.com")),
            Some(&2),
            "{calls:?}"
        );
    }
    assert_eq!(
        calls.get("flaky@example.com"),
        Some(&4),
        "two 503s, then two 202s: {calls:?}"
    );
    assert_eq!(
        calls.get("refused@example.com"),
        Some(&2),
        "a refusal is not retried: {calls:?}"
    );
    let outcome = |who: &str| {
        let gid = guests[who];
        let app = &app;
        async move {
            app.sql()
                .await
                .query_opt(
                    "SELECT p.outcome FROM processed_jobs p JOIN job_outbox o USING (job_id)
                      WHERE o.job_type = 'registration_confirmation'
                        AND (o.payload->>'guestId')::bigint = $1",
                    &[&gid],
                )
                .await
                .unwrap()
                .map(|r| r.get::<_, String>(0))
        }
    };
    assert_eq!(
        outcome("refused").await.as_deref(),
        Some("failed_permanently")
    );
    assert_eq!(outcome("flaky").await.as_deref(), Some("done"));
    assert_eq!(outcome("ok0").await.as_deref(), Some("done"));
    // The hanging one is still being retried, not given up after one time-out.
    assert_ne!(
        outcome("hangs").await.as_deref(),
        Some("failed_permanently")
    );
}
