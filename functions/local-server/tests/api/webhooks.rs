//! Webhooks: endpoints, Standard Webhooks signatures (checked with the reference Python
//! library), retries through the outbox, 410, private targets, redelivery, rotation.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;

fn sender(allow_private: bool) -> jobs::webhook::WebhookSender {
    jobs::webhook::WebhookSender {
        allow_private,
        backoff: vec![Duration::from_millis(50)],
        ..jobs::webhook::WebhookSender::default()
    }
}

async fn receiver() -> MockServer {
    MockServer::start().await
}

async fn answer(server: &MockServer, status: u16, times: Option<u64>) {
    let mock = Mock::given(method("POST"))
        .and(path("/hooks"))
        .respond_with(ResponseTemplate::new(status));
    match times {
        Some(n) => mock.up_to_n_times(n).mount(server).await,
        None => mock.mount(server).await,
    }
}

async fn subscribe(app: &TestApp, token: &str, server: &MockServer, types: &[&str]) -> Value {
    let r = app
        .post(
            "/api/webhooks",
            token,
            json!({"url": format!("{}/hooks", server.uri()), "eventTypes": types, "description": "CRM"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.data().clone()
}

/// The requests `server` received, waiting up to 10 s for `n` of them.
async fn received(server: &MockServer, n: usize) -> Vec<wiremock::Request> {
    for _ in 0..200 {
        let got = server.received_requests().await.unwrap_or_default();
        if got.len() >= n {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{n} webhook requests expected, got {}",
        server.received_requests().await.unwrap_or_default().len()
    );
}

/// Verifies a received request with the Standard Webhooks reference library (Python).
fn verify(secret: &str, request: &wiremock::Request) -> Result<(), String> {
    let header = |name: &str| {
        request
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let headers = json!({
        "webhook-id": header("webhook-id"),
        "webhook-timestamp": header("webhook-timestamp"),
        "webhook-signature": header("webhook-signature"),
    });
    let script = r#"
import json, sys
from standardwebhooks.webhooks import Webhook
Webhook(sys.argv[1]).verify(sys.argv[2], json.loads(sys.argv[3]))
"#;
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            script,
            secret,
            std::str::from_utf8(&request.body).unwrap(),
            &headers.to_string(),
        ])
        .output()
        .expect("python3 runs");
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn body(request: &wiremock::Request) -> Value {
    serde_json::from_slice(&request.body).unwrap()
}

async fn deliveries(app: &TestApp, token: &str, webhook: &Value) -> Vec<Value> {
    let r = app
        .get(
            &format!("/api/webhooks/{}/deliveries", webhook["id"]),
            token,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.data()["deliveries"].as_array().unwrap().clone()
}

/// Waits until the webhook's latest delivery satisfies `done`.
async fn delivery_where(
    app: &TestApp,
    token: &str,
    webhook: &Value,
    done: impl Fn(&Value) -> bool,
) -> Value {
    for _ in 0..200 {
        if let Some(d) = deliveries(app, token, webhook).await.first() {
            if done(d) {
                return d.clone();
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{:?}", deliveries(app, token, webhook).await);
}

#[tokio::test]
async fn webhooks_are_managed_by_their_organizer() {
    let app = TestApp::spawn().await;
    let alice = app.organizer("alice");
    let server = receiver().await;
    let created = subscribe(&app, &alice, &server, &["guest.registered"]).await;
    let secret = created["secret"].as_str().unwrap();
    assert!(
        secret.starts_with("whsec_") && secret.len() == 6 + 44,
        "{secret}"
    );
    assert_eq!(created["enabled"], true);
    let one = format!("/api/webhooks/{}", created["id"]);
    // The secret is shown only at creation.
    let r = app.get(&one, &alice).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.data().get("secret").is_none());
    assert_eq!(
        app.get("/api/webhooks", &alice)
            .await
            .data()
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Validation.
    for (body, field) in [
        (
            json!({"url": "http://crm.example.com/h", "eventTypes": ["guest.registered"]}),
            "url",
        ),
        (
            json!({"url": "https://crm.example.com/h", "eventTypes": []}),
            "eventTypes",
        ),
        (
            json!({"url": "https://user:pw@crm.example.com/h", "eventTypes": ["guest.registered"]}),
            "url",
        ),
        (
            json!({"url": "https://crm.example.com/h", "eventTypes": ["guest.registered", "guest.registered"]}),
            "eventTypes[1]",
        ),
    ] {
        let r = app.post("/api/webhooks", &alice, body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(r.fields(), [field], "{body}: {}", r.body);
    }
    let r = app
        .post(
            "/api/webhooks",
            &alice,
            json!({"url": "https://crm.example.com/h", "eventTypes": ["guest.teleported"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // Roles and tenancy.
    let bob = app.organizer("bob");
    assert_eq!(app.get(&one, &bob).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.get("/api/webhooks", &bob).await.data(), &json!([]));
    assert_eq!(
        app.get("/api/webhooks", &app.scanner("alice")).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(app.get(&one, &app.admin()).await.status, StatusCode::OK);

    // Changes, rotation, deletion.
    let r = app
        .patch(
            &one,
            &alice,
            json!({"eventTypes": ["guest.registered", "scan.conflict"], "description": null}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.data()["eventTypes"],
        json!(["guest.registered", "scan.conflict"])
    );
    assert_eq!(r.data()["description"], Value::Null);
    let rotated = app
        .post(&format!("{one}/rotate-secret"), &alice, json!({}))
        .await;
    assert_eq!(rotated.status, StatusCode::OK);
    assert_ne!(rotated.data()["secret"], created["secret"]);
    assert_eq!(app.delete(&one, &bob).await.status, StatusCode::NOT_FOUND);
    // Deleted with its deliveries (no foreign key does it: migrations/V24).
    let id = created["id"].as_i64().unwrap();
    app.sql()
        .await
        .execute(
            "INSERT INTO webhook_deliveries (webhook_id, message_id, event_type, payload)
             VALUES ($1, 'msg_kept_until_deleted', 'guest.registered', '{}')",
            &[&id],
        )
        .await
        .unwrap();
    assert_eq!(
        app.delete(&one, &alice).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.get(&one, &alice).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM webhook_deliveries WHERE webhook_id = {id}"
        ))
        .await,
        0
    );
}

#[tokio::test]
async fn changes_are_delivered_signed_as_standard_webhooks() {
    let app = TestApp::spawn().await;
    app.start_job_path_with(jobs::email::Mailer::Log, sender(true));
    let alice = app.organizer("alice");
    let server = receiver().await;
    answer(&server, 204, None).await;
    let hook = subscribe(
        &app,
        &alice,
        &server,
        &["event.published", "guest.registered", "guest.cancelled"],
    )
    .await;
    let secret = hook["secret"].as_str().unwrap().to_owned();
    // Bob's events never reach alice's webhook.
    let bob = app.organizer("bob");
    app.registered_guest(&bob, "b@example.com").await;

    let e = app.published_event(&alice, json!({})).await;
    let event_id = e["id"].as_i64().unwrap();
    let r = app
        .register(
            &alice,
            event_id,
            guest_body("w@example.com", &e["ticketTypes"][0]["id"]),
        )
        .await;
    let guest = r.data()["guest"].clone();
    let r = app
        .post(
            &format!("/api/events/{event_id}/guests/{}/cancel", guest["id"]),
            &alice,
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    let got = received(&server, 3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got_now = server.received_requests().await.unwrap();
    assert_eq!(got_now.len(), 3, "bob's changes are not alice's");
    let mut types: Vec<String> = got
        .iter()
        .map(|r| body(r)["type"].as_str().unwrap().to_owned())
        .collect();
    types.sort();
    assert_eq!(
        types,
        ["event.published", "guest.cancelled", "guest.registered"]
    );
    for request in &got {
        verify(&secret, request).unwrap_or_else(|e| panic!("{e}"));
        assert!(request
            .headers
            .get("webhook-id")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("msg_"));
        let b = body(request);
        assert!(b["timestamp"].as_str().unwrap().ends_with('Z'));
        match b["type"].as_str().unwrap() {
            "event.published" => {
                assert_eq!(b["data"]["id"], event_id);
                assert_eq!(b["data"]["status"], "published");
            }
            "guest.registered" => {
                assert_eq!(b["data"]["id"], guest["id"]);
                assert_eq!(b["data"]["email"], "w@example.com");
                assert_eq!(b["data"]["status"], "confirmed");
                assert!(b["data"]["ticketId"].is_i64());
            }
            "guest.cancelled" => assert_eq!(b["data"]["status"], "cancelled"),
            other => panic!("{other}"),
        }
    }
    // A tampered body does not verify (the check can fail).
    let mut forged = got[0].clone();
    forged.body = br#"{"type":"guest.registered","data":{}}"#.to_vec();
    assert!(verify(&secret, &forged).is_err());

    let log = delivery_where(&app, &alice, &hook, |d| d["status"] == "delivered").await;
    assert_eq!(log["attempts"], 1);
    assert_eq!(log["lastStatus"], 204);
    // A change that rolls back announces nothing: a duplicate registration.
    let before = app.count("SELECT count(*) FROM webhook_deliveries").await;
    let r = app
        .register(
            &alice,
            event_id,
            guest_body("x@example.com", &e["ticketTypes"][0]["id"]),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = app
        .register(
            &alice,
            event_id,
            guest_body("x@example.com", &e["ticketTypes"][0]["id"]),
        )
        .await;
    assert_eq!(r.code(), "DUPLICATE_GUEST");
    assert_eq!(
        app.count("SELECT count(*) FROM webhook_deliveries").await,
        before + 1
    );
}

#[tokio::test]
async fn failed_attempts_are_retried_then_delivered_and_410_disables() {
    let app = TestApp::spawn().await;
    // A growing back-off (the production one is 5 s, 5 min, 30 min, 2 h, 5 h, 10 h...), scaled down.
    let backoff: Vec<u64> = vec![100, 600, 1200, 1800, 2400];
    app.start_job_path_with(
        jobs::email::Mailer::Log,
        jobs::webhook::WebhookSender {
            allow_private: true,
            backoff: backoff
                .iter()
                .map(|ms| Duration::from_millis(*ms))
                .collect(),
            ..jobs::webhook::WebhookSender::default()
        },
    );
    let alice = app.organizer("alice");
    let server = receiver().await;
    answer(&server, 500, Some(5)).await;
    answer(&server, 200, Some(1)).await;
    answer(&server, 410, None).await;
    let hook = subscribe(&app, &alice, &server, &["event.published"]).await;
    app.published_event(&alice, json!({})).await;
    let d = delivery_where(&app, &alice, &hook, |d| d["status"] == "delivered").await;
    assert_eq!(d["attempts"], 6, "{d}");
    assert_eq!(d["lastStatus"], 200);
    // The success ended the webhook's failure streak (the 3-day auto-disable counts from it).
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM webhooks WHERE id = {} AND failing_since IS NULL",
            hook["id"]
        ))
        .await,
        1
    );
    let got = received(&server, 6).await;
    // Exactly one 2xx; each retry waited at least its back-off, and the waits grew.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.received_requests().await.unwrap().len(), 6);
    // When each attempt started: every attempt is a job of its own (its id derived from the
    // delivery and the attempts before it), claimed when its worker took it. No job row
    // stands for a delivery: the delivery is its own outbox.
    let db = app.sql().await;
    let attempts: Vec<chrono::DateTime<chrono::Utc>> = db
        .query(
            "SELECT processed_at FROM processed_jobs WHERE job_type = 'deliver_webhook' ORDER BY processed_at",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(attempts.len(), 6);
    assert_eq!(
        app.count("SELECT count(*) FROM job_outbox WHERE job_type = 'deliver_webhook'")
            .await,
        0
    );
    let waits: Vec<i64> = attempts
        .windows(2)
        .map(|w| (w[1] - w[0]).num_milliseconds())
        .collect();
    for (wait, planned) in waits.iter().zip(&backoff) {
        assert!(
            *wait >= *planned as i64 - 20,
            "waits {waits:?}, planned {backoff:?}"
        );
    }
    assert!(
        waits[4] > waits[0] + 1500 && waits[3] > waits[1],
        "the waits grow: {waits:?}"
    );
    let ids: Vec<&str> = got
        .iter()
        .map(|r| r.headers.get("webhook-id").unwrap().to_str().unwrap())
        .collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "the same webhook-id on every attempt"
    );
    let w = app
        .get(&format!("/api/webhooks/{}", hook["id"]), &alice)
        .await;
    assert_eq!(
        w.data()["failingSince"],
        Value::Null,
        "a success clears the failure"
    );

    // 410 Gone: the webhook is disabled, the delivery given up.
    app.published_event(&alice, json!({})).await;
    let d = delivery_where(&app, &alice, &hook, |d| d["status"] == "failed").await;
    assert_eq!(d["lastStatus"], 410);
    let w = app
        .get(&format!("/api/webhooks/{}", hook["id"]), &alice)
        .await;
    assert_eq!(w.data()["enabled"], false);
    assert_eq!(w.data()["disabledReason"], "gone");
    // Disabled: nothing more is written for it; redelivery asks to enable it first.
    let before = app.count("SELECT count(*) FROM webhook_deliveries").await;
    app.published_event(&alice, json!({})).await;
    assert_eq!(
        app.count("SELECT count(*) FROM webhook_deliveries").await,
        before
    );
    let r = app
        .post(
            &format!(
                "/api/webhooks/{}/deliveries/{}/redeliver",
                hook["id"], d["id"]
            ),
            &alice,
            json!({}),
        )
        .await;
    assert_eq!(r.code(), "INVALID_STATE");
}

#[tokio::test]
async fn an_endpoint_failing_for_three_days_is_disabled_and_old_deliveries_are_given_up() {
    let app = TestApp::spawn().await;
    app.start_job_path_with(jobs::email::Mailer::Log, sender(true));
    let alice = app.organizer("alice");
    let server = receiver().await;
    answer(&server, 503, None).await;
    let hook = subscribe(&app, &alice, &server, &["event.published"]).await;
    // Its failures began three days ago.
    app.sql()
        .await
        .execute(
            "UPDATE webhooks SET failing_since = now() - interval '3 days 1 minute' WHERE id = $1",
            &[&hook["id"].as_i64().unwrap()],
        )
        .await
        .unwrap();
    app.published_event(&alice, json!({})).await;
    let d = delivery_where(&app, &alice, &hook, |d| d["status"] == "failed").await;
    assert_eq!(d["attempts"], 1);
    let w = app
        .get(&format!("/api/webhooks/{}", hook["id"]), &alice)
        .await;
    assert_eq!(w.data()["disabledReason"], "failing");
}

#[tokio::test]
async fn private_targets_are_refused_outside_development() {
    let app = TestApp::spawn().await;
    app.start_job_path_with(jobs::email::Mailer::Log, sender(false));
    let alice = app.organizer("alice");
    let server = receiver().await;
    answer(&server, 200, None).await;
    let hook = subscribe(&app, &alice, &server, &["event.published"]).await;
    app.published_event(&alice, json!({})).await;
    let d = delivery_where(&app, &alice, &hook, |d| d["attempts"].as_i64() >= Some(2)).await;
    let error = d["lastError"].as_str().unwrap();
    assert!(
        error.contains("refused") && error.contains("127.0.0.1"),
        "{error}"
    );
    assert_eq!(d["lastStatus"], Value::Null);
    assert!(
        server.received_requests().await.unwrap().is_empty(),
        "nothing reached the loopback receiver"
    );
}

#[tokio::test]
async fn redelivery_and_rotation_keep_receivers_verifying() {
    let app = TestApp::spawn().await;
    app.start_job_path_with(jobs::email::Mailer::Log, sender(true));
    let alice = app.organizer("alice");
    let server = receiver().await;
    answer(&server, 200, None).await;
    let hook = subscribe(&app, &alice, &server, &["event.published"]).await;
    let old_secret = hook["secret"].as_str().unwrap().to_owned();
    app.published_event(&alice, json!({})).await;
    let d = delivery_where(&app, &alice, &hook, |d| d["status"] == "delivered").await;

    let rotated = app
        .post(
            &format!("/api/webhooks/{}/rotate-secret", hook["id"]),
            &alice,
            json!({}),
        )
        .await;
    let new_secret = rotated.data()["secret"].as_str().unwrap().to_owned();
    let r = app
        .post(
            &format!(
                "/api/webhooks/{}/deliveries/{}/redeliver",
                hook["id"], d["id"]
            ),
            &alice,
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let got = received(&server, 2).await;
    assert_eq!(
        got[0].headers.get("webhook-id"),
        got[1].headers.get("webhook-id")
    );
    assert_eq!(got[0].body, got[1].body, "the same message");
    // During the grace period both secrets verify the redelivery (two signatures).
    verify(&new_secret, &got[1]).unwrap();
    verify(&old_secret, &got[1]).unwrap();
    assert!(verify(&new_secret, &got[0]).is_err());
    let d = delivery_where(&app, &alice, &hook, |d| d["attempts"] == 2).await;
    assert_eq!(d["status"], "delivered");
    // Another organizer's delivery is not found.
    let r = app
        .post(
            &format!(
                "/api/webhooks/{}/deliveries/{}/redeliver",
                hook["id"], d["id"]
            ),
            &app.organizer("bob"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn offline_conflicts_and_check_ins_are_announced() {
    let app = TestApp::spawn().await;
    app.start_job_path_with(jobs::email::Mailer::Log, sender(true));
    let alice = app.organizer("alice");
    let server = receiver().await;
    answer(&server, 200, None).await;
    let hook = subscribe(
        &app,
        &alice,
        &server,
        &["scan.conflict", "guest.checked_in"],
    )
    .await;
    let (event_id, _) = app.registered_guest(&alice, "c@example.com").await;
    let ticket = app
        .sql()
        .await
        .query_one(
            "SELECT id, qr_payload FROM tickets WHERE event_id = $1",
            &[&event_id],
        )
        .await
        .unwrap();
    let (ticket_id, payload): (i64, String) = (ticket.get(0), ticket.get(1));
    let list = app
        .get(&format!("/api/events/{event_id}/checkin-lists"), &alice)
        .await
        .data()[0]["id"]
        .clone();
    let scanner = app.scanner("alice");
    for device in ["a", "b"] {
        let r = app
            .post(
                &format!("/api/checkin-lists/{list}/scans/batch"),
                &scanner,
                json!({"scans": [{"clientScanId": uuid::Uuid::new_v4(), "code": payload, "scannerId": device,
                                  "location": "Door", "scannedAt": chrono::Utc::now().to_rfc3339()}]}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    // Online, the one-statement check-in announces it too.
    let e = app.get(&format!("/api/events/{event_id}"), &alice).await;
    let r = app
        .register(
            &alice,
            event_id,
            guest_body("d@example.com", &e.data()["ticketTypes"][0]["id"]),
        )
        .await;
    let online = r.data()["ticket"]["id"].as_i64().unwrap();
    let r = app
        .post(
            &format!("/api/tickets/{online}/validate"),
            &scanner,
            json!({"scannerId": "c", "location": "Door"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let got = received(&server, 3).await;
    let bodies: Vec<Value> = got.iter().map(body).collect();
    assert!(
        bodies
            .iter()
            .any(|b| b["type"] == "guest.checked_in" && b["data"]["ticketId"] == online),
        "{bodies:?}"
    );
    let checked_in = bodies
        .iter()
        .find(|b| b["type"] == "guest.checked_in" && b["data"]["ticketId"] == ticket_id)
        .expect("guest.checked_in");
    assert_eq!(checked_in["data"]["status"], "checked_in");
    assert_eq!(checked_in["data"]["ticketId"], ticket_id);
    let conflict = bodies
        .iter()
        .find(|b| b["type"] == "scan.conflict")
        .expect("scan.conflict");
    assert_eq!(conflict["data"]["ticketId"], ticket_id);
    assert_eq!(conflict["data"]["listId"], list);
    assert_eq!(conflict["data"]["code"], "TICKET_ALREADY_VALIDATED");
    assert_eq!(conflict["data"]["scan"]["scannerId"], "b");
    assert_eq!(conflict["data"]["firstScan"]["scannerId"], "a");
    let _ = hook;
}

#[tokio::test]
async fn waiting_list_offers_and_claims_are_announced() {
    let app = TestApp::spawn().await;
    app.start_job_path_with(jobs::email::Mailer::Log, sender(true));
    let alice = app.organizer("alice");
    let server = receiver().await;
    answer(&server, 200, None).await;
    let hook = subscribe(
        &app,
        &alice,
        &server,
        &["waitlist.offered", "waitlist.claimed"],
    )
    .await;
    let e = app
        .published_event(
            &alice,
            json!({"waitlistEnabled": true,
                   "ticketTypes": [{"name": "Only", "price": 1, "quantity": 1}]}),
        )
        .await;
    let (event, tt) = (e["id"].as_i64().unwrap(), e["ticketTypes"][0]["id"].clone());
    // A free seat: the entry is offered at once; the organizer claims it.
    let r = app
        .post(
            &format!("/api/events/{event}/waitlist"),
            &alice,
            guest_body("w@example.com", &tt),
        )
        .await;
    assert_eq!(r.data()["status"], "offered", "{}", r.body);
    let entry = r.data()["id"].clone();
    let r = app
        .post(
            &format!("/api/events/{event}/waitlist/{entry}/claim"),
            &alice,
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let got = received(&server, 2).await;
    for request in &got {
        verify(hook["secret"].as_str().unwrap(), request).expect("Standard Webhooks verifies it");
    }
    let bodies: Vec<Value> = got.iter().map(body).collect();
    let offered = bodies
        .iter()
        .find(|b| b["type"] == "waitlist.offered")
        .expect("waitlist.offered");
    assert_eq!(offered["data"]["id"], entry);
    assert_eq!(offered["data"]["status"], "offered");
    assert!(offered["data"]["offerExpiresAt"].is_string());
    assert!(
        offered["data"].get("token").is_none(),
        "the claim token never leaves in a webhook"
    );
    let claimed = bodies
        .iter()
        .find(|b| b["type"] == "waitlist.claimed")
        .expect("waitlist.claimed");
    assert_eq!(claimed["data"]["status"], "claimed");
    assert_eq!(claimed["data"]["guestId"], r.data()["guest"]["id"]);
}

/// The deliveries of a check-in and a registration are their own outbox (migrations/V20): the
/// change writes the delivery row, due a minute later, and nothing else (no job row); the API
/// sends its message right after the commit, so the receiver has it long before it is due. A
/// message lost after the commit (here: no queue to send to) is sent by the relay once the
/// delivery is due, and delivered once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_is_sent_after_its_commit_and_a_lost_send_is_relayed_once_due() {
    let app = TestApp::spawn().await;
    let alice = app.organizer("alice");
    let server = receiver().await;
    answer(&server, 200, None).await;
    let hook = subscribe(&app, &alice, &server, &["guest.checked_in"]).await;
    let (_, guest) = app.registered_guest(&alice, "lost@example.com").await;
    let ticket = app.ticket_of(guest).await;
    let validate = format!("/api/tickets/{ticket}/validate");
    let scan = json!({"scannerId": "s1", "location": "Gate"});
    // No job path yet: the post-commit send has nowhere to go (a lost message).
    let r = app
        .post(&validate, &app.scanner("alice"), scan.clone())
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let db = app.sql().await;
    let due: bool = db
        .query_one(
            "SELECT next_attempt_at BETWEEN now() + interval '50 seconds' AND now() + interval '61 seconds'
               FROM webhook_deliveries WHERE status = 'pending'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(due, "written due a minute after its commit");
    assert_eq!(
        app.count("SELECT count(*) FROM job_outbox WHERE job_type = 'deliver_webhook'")
            .await,
        0,
        "no job row stands for a delivery"
    );
    app.start_job_path_with(jobs::email::Mailer::Log, sender(true));
    // A second guest checked in with the job path running: its message is sent after the commit
    // and delivered at once, while the first, not due yet, waits.
    let (_, second) = app.registered_guest(&alice, "sent@example.com").await;
    let ticket2 = app.ticket_of(second).await;
    let r = app
        .post(
            &format!("/api/tickets/{ticket2}/validate"),
            &app.scanner("alice"),
            scan,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let got = received(&server, 1).await;
    assert_eq!(body(&got[0])["data"]["id"], second, "the second guest's");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
    // A minute later (simulated), the relay finds the first due and sends it, once.
    db.execute(
        "UPDATE webhook_deliveries SET next_attempt_at = now() WHERE status = 'pending'",
        &[],
    )
    .await
    .unwrap();
    let got = received(&server, 2).await;
    assert_eq!(
        body(&got[1])["data"]["id"],
        guest,
        "the first guest's, relayed"
    );
    let first = format!(
        "SELECT count(*) FROM webhook_deliveries d WHERE webhook_id = {} AND status = 'delivered' AND attempts = 1
            AND delivery_data_id(d) = '{guest}'",
        hook["id"]
    );
    for _ in 0..100 {
        if app.count(&first).await == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        app.count(&first).await,
        1,
        "delivered once, at its first attempt"
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
    // A delivery written by a change that raced its webhook's deletion outlives it (no foreign
    // key: migrations/V24): once due, the relay sends it and the worker drops it, unsent.
    let orphan: i64 = db
        .query_one(
            "INSERT INTO webhook_deliveries (webhook_id, message_id, event_type, payload, next_attempt_at)
             VALUES ($1, 'msg_orphan', 'guest.registered', '{}', now()) RETURNING id",
            &[&(hook["id"].as_i64().unwrap() + 1000)],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        app.count_reaches(
            &format!("SELECT count(*) FROM webhook_deliveries WHERE id = {orphan}"),
            0
        )
        .await,
        0,
        "the orphan delivery is dropped"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

/// A registration's guest.registered and a first entry's guest.checked_in deliveries are written
/// by a call of `webhook_write` until the process has seen the organizer's changes of that kind
/// write some, then by the statement's own insert, and by the call again once none are due:
/// either way exactly the deliveries due, in the same form.
#[tokio::test]
async fn hot_paths_write_the_same_deliveries_whichever_statement_writes_them() {
    use domain::webhooks::emit::writes_inline;
    use domain::webhooks::EventType::{GuestCheckedIn, GuestRegistered};
    let app = TestApp::spawn().await;
    let alice = app.organizer("alice");
    let server = receiver().await;
    let hook = subscribe(
        &app,
        &alice,
        &server,
        &["guest.registered", "guest.checked_in"],
    )
    .await;
    let mut guests = Vec::new();
    for i in 0..6 {
        assert_eq!(writes_inline(GuestRegistered, Some("alice")), i > 0);
        let (_, guest) = app
            .registered_guest(&alice, &format!("door{i}@example.com"))
            .await;
        guests.push(guest);
    }
    let scan = json!({"scannerId": "s1", "location": "Gate"});
    for (i, guest) in guests.iter().enumerate() {
        if i == 3 {
            app.sql()
                .await
                .execute("UPDATE webhooks SET enabled = false", &[])
                .await
                .unwrap();
        }
        let ticket = app.ticket_of(*guest).await;
        let r = app
            .post(
                &format!("/api/tickets/{ticket}/validate"),
                &app.scanner("alice"),
                scan.clone(),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        // The statement of the next entry: inline after an entry that wrote a delivery.
        assert_eq!(
            writes_inline(GuestCheckedIn, Some("alice")),
            i < 3,
            "after entry {i}"
        );
    }
    // A registration with no endpoint left turns its organizer's back to the call.
    app.registered_guest(&alice, "late@example.com").await;
    assert!(!writes_inline(GuestRegistered, Some("alice")));
    let rows = app
        .sql()
        .await
        .query(
            "SELECT d.event_type, delivery_data_id(d)::bigint, delivery_payload(d),
                    d.message_id ~ '^msg_[0-9a-f]{32}$',
                    d.next_attempt_at - d.created_at BETWEEN interval '59 seconds' AND interval '61 seconds',
                    d.webhook_id, d.status, d.payload IS NULL,
                    delivery_payload(d) -> 'data'
                      = webhook_guest(g, t.id, CASE WHEN d.event_type = 'guest.checked_in' THEN t.checked_in_at END)
               FROM webhook_deliveries d
               JOIN guests g ON g.id = delivery_data_id(d)::bigint
               JOIN tickets t ON t.guest_id = g.id
              ORDER BY d.id",
            &[],
        )
        .await
        .unwrap();
    let of = |t: &str| -> Vec<i64> {
        rows.iter()
            .filter(|r| r.get::<_, String>(0) == t)
            .map(|r| r.get(1))
            .collect()
    };
    assert_eq!(of("guest.registered"), guests, "one per registration");
    assert_eq!(
        of("guest.checked_in"),
        guests[..3],
        "one per entry while enabled"
    );
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    let data_keys = keys(&rows[0].get::<_, Value>(2)["data"]);
    for row in &rows {
        let (event_type, payload): (String, Value) = (row.get(0), row.get(2));
        assert!(row.get::<_, bool>(3), "message id {payload}");
        assert!(row.get::<_, bool>(4), "due a minute after the change");
        assert_eq!(row.get::<_, i64>(5), hook["id"].as_i64().unwrap());
        assert_eq!(row.get::<_, String>(6), "pending");
        assert_eq!(keys(&payload), ["data", "timestamp", "type"]);
        assert_eq!(payload["type"], event_type.as_str());
        assert_eq!(keys(&payload["data"]), data_keys, "{payload}");
        let status = if event_type == "guest.registered" {
            "confirmed"
        } else {
            "checked_in"
        };
        assert_eq!(payload["data"]["status"], status);
        assert!(payload["data"]["ticketId"].is_i64(), "{payload}");
        // The guest as `webhook_guest` shows it (what the call stores), whether stored as JSON
        // or rendered from the snapshot the inline insert stores (migrations/V23).
        assert!(row.get::<_, bool>(8), "{payload}");
    }
    // The call wrote the first of each kind, the inline insert the next ones.
    let snapshots: Vec<bool> = rows.iter().map(|r| r.get(7)).collect();
    assert_eq!(
        snapshots,
        [false, true, true, true, true, true, false, true, true],
        "which deliveries store a snapshot"
    );
}
