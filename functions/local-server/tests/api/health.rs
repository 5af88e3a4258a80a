use axum::http::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn health_needs_no_token() {
    let app = TestApp::spawn().await;
    let r = app.call(Method::GET, "/health", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    // Flat, as the contract says: no success/data envelope (probes read it directly).
    let h = &r.body;
    assert!(h.get("success").is_none() && h.get("data").is_none(), "{h}");
    assert_eq!(h["status"], "healthy");
    assert_eq!(h["service"], "core-service");
    assert!(h["uptime"].is_u64());
    assert_eq!(h["version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn readiness_pings_the_database() {
    let app = TestApp::spawn().await;
    let r = app.call(Method::GET, "/health/ready", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.get("success").is_none(), "{}", r.body);
    assert_eq!(r.body["status"], "ready");
    assert_eq!(
        r.body["dependencies"],
        serde_json::json!({"database": true})
    );

    // The same app pointed at a port where no database listens.
    let down = TestApp::spawn_with(|c| {
        c.db.url = "postgres://postgres@127.0.0.1:1/nothing".into();
        c.db.timeout = std::time::Duration::from_millis(500);
    })
    .await;
    let r = down.call(Method::GET, "/health/ready", None, None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    // The same flat shape as the 200, with the status that says why.
    assert!(r.body.get("error").is_none(), "{}", r.body);
    assert_eq!(r.body["status"], "not_ready");
    assert_eq!(r.body["dependencies"]["database"], false);
    // And the API answers 503, never 500, while the database is down.
    let r = down.get("/api/events", &down.organizer("alice")).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE")
    );
    assert_eq!(
        down.call(Method::GET, "/health", None, None).await.status,
        StatusCode::OK,
        "liveness stays up"
    );
}

#[tokio::test]
async fn the_openapi_document_matches_the_routes() {
    let app = TestApp::spawn().await;
    let r = app.call(Method::GET, "/api/openapi.json", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    let doc = &r.body;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let expected = [
        ("/api/events", "get"),
        ("/api/events", "post"),
        ("/api/events/{id}", "get"),
        ("/api/events/{id}", "patch"),
        ("/api/events/{id}", "delete"),
        ("/api/events/{id}/ticket-types", "post"),
        ("/api/events/{id}/ticket-types/{ticketTypeId}", "patch"),
        ("/api/events/{id}/ticket-types/{ticketTypeId}", "delete"),
        ("/api/events/{eventId}/guests", "get"),
        ("/api/events/{eventId}/guests", "post"),
        ("/api/events/{eventId}/guests/{guestId}", "get"),
        ("/api/events/{eventId}/guests/{guestId}", "patch"),
        ("/api/events/{eventId}/guests/{guestId}", "delete"),
        ("/api/events/{eventId}/guests/{guestId}/approve", "post"),
        ("/api/events/{eventId}/guests/{guestId}/cancel", "post"),
        (
            "/api/events/{eventId}/guests/{guestId}/resend-ticket",
            "post",
        ),
        ("/api/tickets/{ticketId}", "get"),
        ("/api/tickets/{ticketId}/qr", "get"),
        ("/api/tickets/{ticketId}/validate", "post"),
        ("/api/tickets/validate", "post"),
        ("/api/events/{eventId}/scanner-key", "get"),
        ("/api/events/{eventId}/stats", "get"),
        ("/health", "get"),
        ("/health/ready", "get"),
        ("/api/openapi.json", "get"),
    ];
    for (path, method) in expected {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} is not documented"
        );
    }
    // Every documented operation is served (never the router's 404/405 fallback).
    let token = app.admin();
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            let uri: Vec<&str> = path
                .split('/')
                .map(|seg| if seg.starts_with('{') { "1" } else { seg })
                .collect();
            let uri = uri.join("/");
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let body = matches!(m, Method::POST | Method::PATCH)
                .then(|| Value::Object(Default::default()));
            let r = app.call(m.clone(), &uri, Some(&token), body).await;
            assert!(
                r.status != StatusCode::METHOD_NOT_ALLOWED
                    && !(r.status == StatusCode::NOT_FOUND
                        && r.body["error"]["message"] == "no such route"),
                "{m} {uri} is documented but not routed: {}",
                r.body
            );
        }
    }
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for s in [
        "Event",
        "TicketType",
        "CreateEvent",
        "UpdateEvent",
        "ErrorBody",
        "ErrorCode",
    ] {
        assert!(schemas.contains_key(s), "schema {s} missing");
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

#[test]
fn the_served_openapi_document_is_generated_from_the_routes() {
    let generated = serde_json::to_value(local_server::openapi()).unwrap();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../health/openapi.json");
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        let text = serde_json::to_string_pretty(&generated).unwrap() + "\n";
        std::fs::write(&path, text).unwrap();
        return;
    }
    let served: Value = serde_json::from_str(health::OPENAPI_JSON).unwrap();
    assert!(
        served == generated,
        "functions/health/openapi.json is not the document the routes generate: \
         run `UPDATE_OPENAPI=1 cargo test -p local-server --test api openapi` and commit it"
    );
}

/// Issue 14, F3: with a queue configured, readiness checks it: 503 `not_ready` with
/// `queue: false` while it is down, `ready` with `queue: true` when it answers.
#[tokio::test]
async fn readiness_checks_the_queue_when_one_is_configured() {
    use platform::sqs::{QueueUrls, SqsQueue};
    let down = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::Config::builder()
            .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .region(aws_sdk_sqs::config::Region::new("eu-west-1"))
            .endpoint_url("http://127.0.0.1:1")
            .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                "t", "t", None, None, "test",
            ))
            .build(),
    );
    let urls = QueueUrls {
        email: "http://127.0.0.1:1/000000000000/email".into(),
        ticket_generation: "http://127.0.0.1:1/000000000000/tickets".into(),
        webhooks: None,
    };
    let app = TestApp::spawn()
        .await
        .with_queue(std::sync::Arc::new(SqsQueue::new(down, urls)));
    let r = app.call(Method::GET, "/health/ready", None, None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
    assert_eq!(r.body["status"], "not_ready");
    assert_eq!(r.body["dependencies"]["queue"], false);
    assert_eq!(r.body["dependencies"]["database"], true);

    let moto = testkit::aws::moto();
    let sqs = moto.sqs();
    let email = testkit::aws::create_queue(&sqs, "ready-email", 30, 3).await;
    let tickets = testkit::aws::create_queue(&sqs, "ready-tickets", 30, 3).await;
    let urls = QueueUrls {
        email: email.url.clone(),
        ticket_generation: tickets.url.clone(),
        webhooks: None,
    };
    let app = TestApp::spawn()
        .await
        .with_queue(std::sync::Arc::new(SqsQueue::new(sqs, urls)));
    let r = app.call(Method::GET, "/health/ready", None, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["status"], "ready");
    assert_eq!(r.body["dependencies"]["queue"], true);
}
