//! The Redis cache and rate limits against the real Redis, and what happens when Redis is
//! down or slow: uncached answers, a degraded readiness, never an error.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use platform::config::RedisConfig;
use serde_json::json;

use crate::helpers::*;

fn redis(url: &str, timeout_ms: u64) -> RedisConfig {
    RedisConfig {
        url: url.into(),
        timeout: Duration::from_millis(timeout_ms),
        ttl: Duration::from_secs(60),
        // Tests share one Redis: each gets its own key space.
        prefix: format!("test:{}:", uuid::Uuid::new_v4().simple()),
        root_cert: None,
    }
}

async fn cached_app() -> TestApp {
    TestApp::spawn_with(|c| c.redis = Some(redis("redis://127.0.0.1:6379", 500))).await
}

#[tokio::test]
async fn reads_come_from_the_cache_and_writes_invalidate_them_at_once() {
    let app = cached_app().await;
    let token = app.organizer("alice");
    let e = app.published_event(&token, json!({})).await;
    let id = e["id"].as_i64().unwrap();
    let uri = format!("/api/events/{id}");
    assert_eq!(app.get(&uri, &token).await.data()["title"], e["title"]);

    // Changed behind the API's back: the cached copy is served (proof the cache is used).
    app.sql()
        .await
        .execute(
            "UPDATE events SET title = 'Changed in SQL' WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    assert_eq!(app.get(&uri, &token).await.data()["title"], e["title"]);

    // A write through the API is visible on the very next read.
    let r = app.patch(&uri, &token, json!({"location": "Lyon"})).await;
    assert_eq!(r.status, StatusCode::OK);
    let fresh = app.get(&uri, &token).await;
    assert_eq!(fresh.data()["location"], "Lyon");
    assert_eq!(fresh.data()["title"], "Changed in SQL");

    // Registrations and check-ins change the stats shown by the cached detail and lists.
    assert_eq!(
        app.get("/api/events", &token).await.data()["events"][0]["stats"]["registered"],
        0
    );
    let reg = app
        .register(
            &token,
            id,
            guest_body("c@example.com", &e["ticketTypes"][0]["id"]),
        )
        .await;
    assert_eq!(app.get(&uri, &token).await.data()["stats"]["registered"], 1);
    assert_eq!(
        app.get("/api/events", &token).await.data()["events"][0]["stats"]["registered"],
        1
    );
    let ticket = reg.data()["ticket"]["id"].clone();
    app.post(
        &format!("/api/tickets/{ticket}/validate"),
        &token,
        json!({"scannerId": "s", "location": "A"}),
    )
    .await;
    assert_eq!(app.get(&uri, &token).await.data()["stats"]["checkedIn"], 1);

    // A new event shows in the (cached) list at once; tenancy holds on cached entries.
    app.create_event(&token, json!({"title": "Second one"}))
        .await;
    assert_eq!(
        app.get("/api/events", &token).await.data()["pagination"]["total"],
        2
    );
    assert_eq!(
        app.get(&uri, &app.organizer("bob")).await.code(),
        "NOT_FOUND"
    );
    assert_eq!(
        app.get("/api/events", &app.organizer("bob")).await.data()["pagination"]["total"],
        0
    );
    assert_eq!(
        app.get(&uri, &app.scanner("alice")).await.code(),
        "FORBIDDEN"
    );

    let ready = app.call(Method::GET, "/health/ready", None, None).await;
    assert_eq!(ready.body["status"], "ready");
    assert_eq!(ready.body["dependencies"]["redis"], true);
}

#[tokio::test]
async fn redis_down_means_uncached_answers_and_degraded_readiness() {
    // Nothing listens on port 1.
    let app = TestApp::spawn_with(|c| c.redis = Some(redis("redis://127.0.0.1:1", 100))).await;
    let token = app.organizer("alice");
    let e = app.published_event(&token, json!({})).await;
    let uri = format!("/api/events/{}", e["id"]);
    for _ in 0..3 {
        assert_eq!(app.get(&uri, &token).await.status, StatusCode::OK);
    }
    let r = app
        .register(
            &token,
            e["id"].as_i64().unwrap(),
            guest_body("d@example.com", &e["ticketTypes"][0]["id"]),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "rate limits step aside without Redis"
    );
    let ready = app.call(Method::GET, "/health/ready", None, None).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.body["status"], "degraded");
    assert_eq!(
        ready.body["dependencies"],
        json!({"database": true, "redis": false})
    );
}

#[tokio::test]
async fn a_slow_redis_costs_at_most_its_time_out() {
    // A server that accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(socket);
        }
    });
    let app =
        TestApp::spawn_with(|c| c.redis = Some(redis(&format!("redis://127.0.0.1:{port}"), 100)))
            .await;
    let token = app.organizer("alice");
    let e = app.create_event(&token, json!({})).await;
    for _ in 0..10 {
        let r = app.get(&format!("/api/events/{}", e["id"]), &token).await;
        assert_eq!(r.status, StatusCode::OK);
    }
    // One time-out opened the circuit breaker: the following requests did not even try
    // Redis (each try would be a new connection), so a slow Redis is paid for once.
    assert!(
        accepted.load(std::sync::atomic::Ordering::SeqCst) <= 2,
        "{accepted:?}"
    );
    assert_eq!(
        app.call(Method::GET, "/health/ready", None, None)
            .await
            .body["status"],
        "degraded"
    );
}

#[tokio::test]
async fn registrations_and_validations_are_rate_limited() {
    let app = TestApp::spawn_with(|c| {
        c.redis = Some(redis("redis://127.0.0.1:6379", 500));
        c.limits.registrations_per_minute = 3;
        c.limits.validations_per_minute = 2;
    })
    .await;
    let token = app.organizer("alice");
    let e = app.published_event(&token, json!({})).await;
    let id = e["id"].as_i64().unwrap();
    let tt = e["ticketTypes"][0]["id"].clone();
    let mut tickets = Vec::new();
    for i in 0..3 {
        let r = app
            .register(&token, id, guest_body(&format!("r{i}@example.com"), &tt))
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
        tickets.push(r.data()["ticket"]["id"].clone());
    }
    let r = app
        .register(&token, id, guest_body("r4@example.com", &tt))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED")
    );
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=61).contains(&retry), "{retry}");
    // Another token has its own budget; reads are not limited.
    assert_eq!(
        app.register(&app.admin(), id, guest_body("r5@example.com", &tt))
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.get(&format!("/api/events/{id}/guests"), &token)
            .await
            .status,
        StatusCode::OK
    );

    let scanner = app.scanner("alice");
    for t in &tickets[..2] {
        let r = app
            .post(
                &format!("/api/tickets/{t}/validate"),
                &scanner,
                json!({"scannerId": "s", "location": "A"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let r = app
        .post(
            &format!("/api/tickets/{}/validate", tickets[2]),
            &scanner,
            json!({"scannerId": "s", "location": "A"}),
        )
        .await;
    assert_eq!(r.code(), "RATE_LIMITED");

    // Without a token, requests are counted per client IP (and still refused as 401 below the limit).
    let anonymous = |ip: &'static str| {
        let app = &app;
        async move {
            let req = axum::http::Request::post("/api/tickets/validate")
                .header("x-forwarded-for", ip)
                .header("content-type", "application/json")
                .body(axum::body::Body::from(
                    r#"{"code":"x","scannerId":"s","location":"A"}"#,
                ))
                .unwrap();
            app.send(req).await.status
        }
    };
    assert_eq!(anonymous("203.0.113.7").await, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous("203.0.113.7").await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        anonymous("203.0.113.7").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(anonymous("203.0.113.8").await, StatusCode::UNAUTHORIZED);
}

/// ElastiCache with in-transit encryption and AUTH: the cache over `rediss://`, trusting
/// the server's CA, with the AUTH token as the URL's password (what `REDIS_AUTH_SECRET_ARN`
/// resolves to); a wrong token or an untrusted server is a Redis that is down (uncached
/// answers), never an error.
#[tokio::test]
async fn the_cache_works_over_tls_with_auth_and_refuses_what_it_cannot_trust() {
    let redis = testkit::private::PrivateRedis::start_tls("elasticache-auth-token");
    let env = |token: &str, ca: Option<&std::path::Path>| {
        let mut pairs = vec![
            (
                "REDIS_URL".to_owned(),
                format!("rediss://127.0.0.1:{}", redis.port),
            ),
            ("REDIS_AUTH_TOKEN".to_owned(), token.to_owned()),
            ("REDIS_TIMEOUT_MS".to_owned(), "2000".to_owned()),
        ];
        if let Some(ca) = ca {
            pairs.push(("REDIS_TLS_ROOT_CERT".to_owned(), ca.display().to_string()));
        }
        platform::config::Env::from_pairs(pairs)
    };
    let ca = redis.ca_file().unwrap();
    let config = env("elasticache-auth-token", Some(&ca))
        .redis()
        .unwrap()
        .unwrap();
    let cache = platform::cache::Cache::from_config(&config).unwrap();
    assert_eq!(cache.ping().await, Some(true));
    cache.put("tls-key", &json!({"over": "tls"})).await;
    assert_eq!(
        cache.get::<serde_json::Value>("tls-key").await,
        Some(json!({"over": "tls"}))
    );

    let wrong = env("not-the-token", Some(&ca)).redis().unwrap().unwrap();
    let cache = platform::cache::Cache::from_config(&wrong).unwrap();
    assert_eq!(cache.ping().await, Some(false), "a wrong AUTH token");
    let untrusted = env("elasticache-auth-token", None)
        .redis()
        .unwrap()
        .unwrap();
    let cache = platform::cache::Cache::from_config(&untrusted).unwrap();
    assert_eq!(
        cache.ping().await,
        Some(false),
        "a server certificate from an unknown CA"
    );
}
