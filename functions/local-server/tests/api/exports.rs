//! Exports (contract part 2, "Exports") through the real job path: the request, the
//! `build_export` job streaming rows into moto's S3 (a bucket per test), the presigned link
//! downloaded with a plain HTTP client, the CSV read back with Python's `csv` module, the
//! `export_ready` email (addressed through the auth service) and the `export.done` webhook.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use jobs::clients::auth::AuthClient;
use jobs::clients::notification::{ClientConfig, NotificationClient};
use jobs::email::Mailer;
use platform::config::S3Config;
use platform::s3::ObjectStore;
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;

/// A bucket of its own on the test process's moto.
async fn bucket() -> ObjectStore {
    let moto = testkit::aws::moto();
    let store = ObjectStore::new(&S3Config {
        bucket: format!("exports-{}", uuid::Uuid::new_v4().simple()),
        region: testkit::aws::REGION.into(),
        endpoint: Some(moto.url.clone()),
        access_key_id: "test".into(),
        secret_access_key: "test".into(),
        session_token: None,
        link_ttl: Duration::from_secs(3600),
    })
    .unwrap();
    store.create_bucket().await.expect("CreateBucket on moto");
    store
}

struct Services {
    notifications: MockServer,
    _auth: MockServer,
}

/// The app with the exports bucket, and the real job path (outbox relay → in-process queue →
/// workers) sending emails to a notification stub and reading users from an auth stub.
async fn app_with_exports(store: Option<ObjectStore>) -> (TestApp, Services) {
    let mut app = TestApp::spawn().await;
    app.state.exports = store.clone();
    app.app = local_server::app(app.state.clone());
    let notifications = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/notifications/email"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "m"})))
        .mount(&notifications)
        .await;
    let auth = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/users/alice"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "alice", "email": "alice@organizer.example", "firstName": "Alice", "lastName": "Martin"})))
        .mount(&auth)
        .await;
    let config = ClientConfig {
        timeout: Duration::from_secs(5),
        max_attempts: 2,
        backoff: Duration::from_millis(10),
    };
    let mailer = Mailer::Notification(Box::new(
        NotificationClient::new(&notifications.uri(), config).unwrap(),
    ));
    let users = AuthClient::new()
        .with_user_service(&auth.uri(), None, config)
        .unwrap();
    let workers = Arc::new(
        jobs::workers::Workers::new(app.state.db.clone(), mailer, Some(Arc::new(users)))
            .with_exports(store),
    );
    let queue = jobs::queue::InProcessQueue::start(app.state.db.clone(), workers, 5);
    tokio::spawn(domain::outbox::run_relay(
        app.state.db.clone(),
        queue,
        app.state.outbox_signal.clone(),
        Duration::from_millis(200),
    ));
    (
        app,
        Services {
            notifications,
            _auth: auth,
        },
    )
}

/// Polls the export until it is no longer pending.
async fn finished(app: &TestApp, token: &str, id: i64) -> Value {
    for _ in 0..200 {
        let r = app.get(&format!("/api/exports/{id}"), token).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        if r.data()["status"] != "pending" {
            return r.data().clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("export {id} still pending after 20 s");
}

/// The file behind a download link, fetched like a browser would (no token), and its rows
/// as Python's `csv.DictReader` reads them.
async fn download(url: &str) -> (reqwest::header::HeaderMap, Vec<Value>) {
    let response = reqwest::get(url).await.unwrap();
    assert_eq!(response.status(), 200, "GET {url}");
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap();
    let file = std::env::temp_dir().join(format!("export-{}.csv", uuid::Uuid::new_v4()));
    std::fs::write(&file, &bytes).unwrap();
    let script = r#"
import csv, json, sys
with open(sys.argv[1], newline='', encoding='utf-8') as f:
    print(json.dumps(list(csv.DictReader(f))))
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script, file.to_str().unwrap()])
        .output()
        .expect("python3 runs (export PATH=$PWD/.venv/bin:$PATH)");
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (headers, serde_json::from_slice(&out.stdout).unwrap())
}

#[tokio::test]
async fn guest_and_scan_exports_are_built_by_the_job_and_downloaded_from_s3() {
    let store = bucket().await;
    let (app, services) = app_with_exports(Some(store.clone())).await;
    let alice = app.organizer("alice");
    let e = app.published_event(&alice, json!({})).await;
    let id = e["id"].as_i64().unwrap();
    let tt = e["ticketTypes"][0]["id"].clone();
    // A webhook subscribed to export.done (its deliveries are written with the export).
    let hook = app
        .post(
            "/api/webhooks",
            &alice,
            json!({"url": "https://crm.example.com/hooks", "eventTypes": ["export.done"]}),
        )
        .await;
    assert_eq!(hook.status, StatusCode::CREATED, "{}", hook.body);

    // Guests, some of whose cells a spreadsheet would run as formulas.
    let names = [
        ("=HYPERLINK(\"http://evil.example\",\"x\")", "Doe"),
        ("+Ada", "-Lovelace"),
        ("@Grace", "Hopper, \"Amazing\""),
        ("Zoé", "Ünïcode"),
        ("Plain", "Guest"),
    ];
    let mut guests = Vec::new();
    for (i, (first, last)) in names.iter().enumerate() {
        let mut body = guest_body(&format!("g{i}@example.com"), &tt);
        body["firstName"] = json!(first);
        body["lastName"] = json!(last);
        let r = app.register(&alice, id, body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        guests.push(r.data().clone());
    }
    let cancelled = guests[4]["guest"]["id"].as_i64().unwrap();
    let r = app
        .post(
            &format!("/api/events/{id}/guests/{cancelled}/cancel"),
            &alice,
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // Scans: two accepted, one refused (already validated), from a scanner named like a formula.
    for g in [&guests[0], &guests[1], &guests[0]] {
        let t = g["ticket"]["id"].as_i64().unwrap();
        app.post(
            &format!("/api/tickets/{t}/validate"),
            &alice,
            json!({"scannerId": "=cmd|' /C calc'!A0", "location": "Gate A"}),
        )
        .await;
    }

    let r = app
        .post(
            &format!("/api/events/{id}/exports"),
            &alice,
            json!({"kind": "guests", "format": "csv"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(r.data()["status"], "pending");
    assert_eq!(r.data()["downloadUrl"], Value::Null);
    let guests_export = r.data()["id"].as_i64().unwrap();
    let r = app
        .post(
            &format!("/api/events/{id}/exports"),
            &alice,
            json!({"kind": "scans"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let scans_export = r.data()["id"].as_i64().unwrap();

    // Guests: every guest, cancelled too, formulas escaped, quoting and UTF-8 intact.
    let x = finished(&app, &alice, guests_export).await;
    assert_eq!(x["status"], "done", "{x}");
    assert_eq!(x["kind"], "guests");
    assert_eq!(x["rows"], 5);
    let expires = chrono::DateTime::parse_from_rfc3339(x["expiresAt"].as_str().unwrap()).unwrap();
    let left = expires.with_timezone(&chrono::Utc) - chrono::Utc::now();
    assert!(left > chrono::Duration::minutes(55) && left <= chrono::Duration::hours(1));
    let (headers, rows) = download(x["downloadUrl"].as_str().unwrap()).await;
    assert!(
        headers["content-disposition"]
            .to_str()
            .unwrap()
            .contains(&format!("event-{id}-guests-{guests_export}.csv")),
        "{headers:?}"
    );
    assert_eq!(rows.len(), 5);
    assert_eq!(
        x["sizeBytes"].as_i64().unwrap() as usize,
        reqwest::get(x["downloadUrl"].as_str().unwrap())
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .len()
    );
    for (row, (g, (first, last))) in rows.iter().zip(guests.iter().zip(names)) {
        let escape = |s: &str| match s.chars().next() {
            Some('=' | '+' | '-' | '@') => format!("'{s}"),
            _ => s.to_owned(),
        };
        assert_eq!(
            row["guestId"],
            g["guest"]["id"].as_i64().unwrap().to_string()
        );
        assert_eq!(row["firstName"], escape(first), "{row}");
        assert_eq!(row["lastName"], escape(last), "{row}");
        assert_eq!(row["phone"], "'+33612345678");
        assert_eq!(row["ticketCode"], g["ticket"]["ticketCode"]);
        assert_eq!(row["ticketType"], "VIP");
    }
    assert_eq!(rows[4]["status"], "cancelled");
    assert_eq!(rows[0]["status"], "checked_in");
    assert_ne!(rows[0]["checkedInAt"], "");
    assert_eq!(rows[2]["checkedInAt"], "");

    // Scans: every attempt on the event's lists, the scanner's formula escaped.
    let x = finished(&app, &alice, scans_export).await;
    assert_eq!(x["status"], "done", "{x}");
    assert_eq!(x["rows"], 3);
    let (_, rows) = download(x["downloadUrl"].as_str().unwrap()).await;
    assert_eq!(rows.len(), 3);
    let results: Vec<&str> = rows.iter().map(|r| r["result"].as_str().unwrap()).collect();
    assert_eq!(
        results.iter().filter(|r| **r == "accepted").count(),
        2,
        "{rows:?}"
    );
    for r in &rows {
        assert_eq!(r["scannerId"], "'=cmd|' /C calc'!A0");
        assert_eq!(r["list"], "Default");
        assert_eq!(r["type"], "entry");
    }
    assert_eq!(rows[0]["ticketCode"], guests[0]["ticket"]["ticketCode"]);

    // In the job's transaction: one export_ready email each (to the asker's address, from the
    // auth service) and one export.done webhook each.
    app.count_reaches(
        "SELECT count(*) FROM processed_jobs WHERE job_type = 'export_ready' AND outcome = 'done'",
        2,
    )
    .await;
    let emails: Vec<Value> = services
        .notifications
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .filter(|b: &Value| b["subject"].as_str().unwrap_or("").contains("export"))
        .collect();
    assert_eq!(emails.len(), 2, "{emails:?}");
    assert!(emails.iter().all(|m| m["to"] == "alice@organizer.example"));
    assert!(emails[0]["text"]
        .as_str()
        .unwrap()
        .contains("GET /api/exports/"));
    let hooks = app
        .count(&format!(
            "SELECT count(*) FROM webhook_deliveries WHERE event_type = 'export.done'
              AND payload->'data'->>'status' = 'done'
              AND (payload->'data'->>'id')::bigint IN ({guests_export}, {scans_export})"
        ))
        .await;
    assert_eq!(hooks, 2);
    assert_eq!(
        app.count("SELECT count(*) FROM audit_log WHERE action = 'export.requested'")
            .await,
        2
    );

    // Redelivery: the job of a done export does nothing again (no second email job), and a
    // run of the job always writes the same object.
    jobs::export::build(&app.state.db, Some(&store), guests_export)
        .await
        .unwrap();
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM job_outbox WHERE job_type = 'export_ready' AND payload->>'exportId' = '{guests_export}'"
        ))
        .await,
        1
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM exports WHERE id = {guests_export} AND object_key = 'exports/{id}/{guests_export}.csv' AND attempts = 1"
        ))
        .await,
        1
    );

    // Seven days after completion the file is gone (the bucket's lifecycle rule): no link.
    app.sql()
        .await
        .execute(
            "UPDATE exports SET completed_at = now() - interval '8 days', created_at = now() - interval '8 days' WHERE id = $1",
            &[&guests_export],
        )
        .await
        .unwrap();
    let x = app
        .get(&format!("/api/exports/{guests_export}"), &alice)
        .await;
    assert_eq!(x.data()["downloadUrl"], Value::Null);
    let deleted =
        chrono::DateTime::parse_from_rfc3339(x.data()["expiresAt"].as_str().unwrap()).unwrap();
    assert!(deleted < chrono::Utc::now());
}

#[tokio::test]
async fn a_retried_run_overwrites_the_same_object() {
    let store = bucket().await;
    let app = TestApp::spawn().await;
    let alice = app.organizer("alice");
    let e = app.published_event(&alice, json!({})).await;
    let id = e["id"].as_i64().unwrap();
    let tt = e["ticketTypes"][0]["id"].clone();
    for i in 0..3 {
        let r = app
            .register(&alice, id, guest_body(&format!("r{i}@example.com"), &tt))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    let r = app
        .post(
            &format!("/api/events/{id}/exports"),
            &alice,
            json!({"kind": "guests"}),
        )
        .await;
    let export = r.data()["id"].as_i64().unwrap();
    // A first run that died after writing its object (status left pending), then the retry.
    let key = domain::exports::object_key(id, export);
    let mut stale = platform::s3::ObjectUpload::new(&store, key.clone(), "text/csv");
    stale
        .part(vec![b'x'; platform::s3::PART_SIZE])
        .await
        .unwrap();
    stale.finish(b"stale".to_vec()).await.unwrap();
    jobs::export::build(&app.state.db, Some(&store), export)
        .await
        .unwrap();
    let mut with_store = app;
    with_store.state.exports = Some(store);
    with_store.app = local_server::app(with_store.state.clone());
    let x = with_store
        .get(&format!("/api/exports/{export}"), &alice)
        .await;
    assert_eq!(x.data()["status"], "done", "{}", x.body);
    let (_, rows) = download(x.data()["downloadUrl"].as_str().unwrap()).await;
    assert_eq!(rows.len(), 3);
}

#[tokio::test]
async fn without_storage_an_export_fails_with_a_reason() {
    let (app, _services) = app_with_exports(None).await;
    let alice = app.organizer("alice");
    let e = app.published_event(&alice, json!({})).await;
    let r = app
        .post(
            &format!("/api/events/{}/exports", e["id"]),
            &alice,
            json!({"kind": "scans"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let x = finished(&app, &alice, r.data()["id"].as_i64().unwrap()).await;
    assert_eq!(x["status"], "failed");
    assert!(
        x["error"].as_str().unwrap().contains("EXPORTS_BUCKET"),
        "{x}"
    );
    assert_eq!(x["downloadUrl"], Value::Null);
    assert_eq!(
        app.count("SELECT count(*) FROM job_outbox WHERE job_type = 'export_ready'")
            .await,
        0
    );
}

#[tokio::test]
async fn exports_belong_to_their_organizer() {
    let (app, _services) = app_with_exports(Some(bucket().await)).await;
    let alice = app.organizer("alice");
    let bob = app.organizer("bob");
    let e = app.published_event(&alice, json!({})).await;
    let uri = format!("/api/events/{}/exports", e["id"]);
    let r = app.post(&uri, &alice, json!({"kind": "guests"})).await;
    let export = format!("/api/exports/{}", r.data()["id"]);

    // Another organizer: 404, whatever the body; scanners: 403, even their own organizer's.
    assert_eq!(
        app.post(&uri, &bob, json!({"kind": "guests"})).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.post(&uri, &bob, json!({"kind": 1})).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.get(&export, &bob).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.get("/api/exports/999999", &alice).await.status,
        StatusCode::NOT_FOUND
    );
    let scanner = app.scanner("alice");
    assert_eq!(
        app.get(&export, &scanner).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.post(&uri, &scanner, json!({"kind": "guests"}))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    // An admin sees every organizer's.
    assert_eq!(app.get(&export, &app.admin()).await.status, StatusCode::OK);
    // Input: the kinds and the one format.
    for body in [
        json!({"kind": "orders"}),
        json!({"kind": "guests", "format": "xlsx"}),
        json!({}),
    ] {
        let r = app.post(&uri, &alice, body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.body);
        assert_eq!(r.code(), "VALIDATION_ERROR");
    }
    assert_eq!(app.count("SELECT count(*) FROM exports").await, 1);
}
