//! Idempotency keys: retried writes change nothing twice, and answer the same.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

fn post(uri: &str, token: &str, key: &str, body: &Value) -> Request<Body> {
    Request::post(uri)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .header("idempotency-key", key)
        .body(Body::from(body.to_string()))
        .unwrap()
}

async fn send(app: &TestApp, req: Request<Body>) -> Answer {
    use tower::ServiceExt;
    let res = app.app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let replayed = res
        .headers()
        .get("idempotent-replayed")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, replayed, bytes)
}

type Answer = (StatusCode, Option<String>, Vec<u8>);

/// `answer` is a first answer (not replayed) with `status`.
fn first_answer(answer: &Answer, status: StatusCode) {
    assert_eq!(
        (answer.0, answer.1.as_deref()),
        (status, None),
        "{}",
        String::from_utf8_lossy(&answer.2)
    );
}

/// `again` replays `first`: its status, the replay header and the same body, byte for byte.
fn replays(again: &Answer, first: &Answer) {
    assert_eq!(
        (again.0, again.1.as_deref()),
        (first.0, Some("true")),
        "{}",
        String::from_utf8_lossy(&again.2)
    );
    assert_eq!(
        String::from_utf8_lossy(&first.2),
        String::from_utf8_lossy(&again.2)
    );
}

/// `n` copies of one POST under one key, released together; their answers.
async fn race(
    app: &Arc<TestApp>,
    n: usize,
    uri: &str,
    token: &str,
    key: &str,
    body: &Value,
) -> Vec<Answer> {
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let mut tasks = Vec::new();
    for _ in 0..n {
        let (app, barrier, req) = (app.clone(), barrier.clone(), post(uri, token, key, body));
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            send(&app, req).await
        }));
    }
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_retries_of_one_registration_register_once() {
    let app = Arc::new(TestApp::spawn().await);
    let token = app.organizer("alice");
    let e = app.published_event(&token, json!({})).await;
    let uri = format!("/api/events/{}/guests", e["id"]);
    let body = guest_body("retry@example.com", &e["ticketTypes"][0]["id"]);
    let answers = race(&app, 20, &uri, &token, "reg-1", &body).await;
    assert_eq!(
        app.count("SELECT count(*) FROM guests").await,
        1,
        "exactly one guest"
    );
    let first = &answers[0];
    for a in &answers {
        assert_eq!(
            a.0,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&a.2)
        );
        assert_eq!(a.2, first.2, "every answer identical");
    }
    let replayed = answers
        .iter()
        .filter(|a| a.1.as_deref() == Some("true"))
        .count();
    assert_eq!(replayed, 19);
    // The key was written once, by the registration's own transaction, with the final answer:
    // the row's version is the one that transaction created (an update after it, such as
    // storing the answer once sent, would carry another transaction id).
    let db = app.sql().await;
    let row = db
        .query_one(
            "SELECT k.status, k.xmin::text = g.xmin::text, k.body = $1
               FROM idempotency_keys k, guests g WHERE k.key = 'reg-1'",
            &[&first.2],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            row.get::<_, Option<i32>>(0),
            row.get::<_, bool>(1),
            row.get::<_, bool>(2)
        ),
        (Some(201), true, true),
        "the answer committed with the guest, and not rewritten"
    );
    // Later, the same retry still replays; with another body the key is refused.
    let again = send(&app, post(&uri, &token, "reg-1", &body)).await;
    assert_eq!(
        (again.0, again.1.as_deref()),
        (StatusCode::CREATED, Some("true"))
    );
    assert_eq!(again.2, first.2);
    let other = guest_body("other@example.com", &e["ticketTypes"][0]["id"]);
    let r = send(&app, post(&uri, &token, "reg-1", &other)).await;
    assert_eq!(r.0, StatusCode::UNPROCESSABLE_ENTITY);
    let v: Value = serde_json::from_slice(&r.2).unwrap();
    assert_eq!(v["error"]["code"], "IDEMPOTENCY_KEY_REUSED");
    // Keys are per caller: bob's "reg-1" is his own (and 404 on alice's event).
    let r = send(&app, post(&uri, &app.organizer("bob"), "reg-1", &body)).await;
    assert_eq!(r.0, StatusCode::NOT_FOUND);
    assert_eq!(app.count("SELECT count(*) FROM guests").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_killed_after_its_commit_then_retried_registers_once() {
    let app = Arc::new(TestApp::spawn().await);
    let token = app.organizer("alice");
    let e = app.published_event(&token, json!({})).await;
    let uri = format!("/api/events/{}/guests", e["id"]);
    let body = guest_body("crash@example.com", &e["ticketTypes"][0]["id"]);
    // The request dies as soon as its guest is committed (or earlier): the task is aborted,
    // so nothing after that point (the answer, the stored status) happens.
    let task = {
        let (app, req) = (app.clone(), post(&uri, &token, "crash-1", &body));
        tokio::spawn(async move { send(&app, req).await })
    };
    let db = app.sql().await;
    for _ in 0..400 {
        let n: i64 = db
            .query_one("SELECT count(*) FROM guests", &[])
            .await
            .unwrap()
            .get(0);
        if n > 0 || task.is_finished() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    task.abort();
    let _ = task.await;
    // The retry: one guest, whatever the moment of the crash, and a success.
    let (status, _, bytes) = send(&app, post(&uri, &token, "crash-1", &body)).await;
    assert!(
        status.is_success(),
        "{status} {}",
        String::from_utf8_lossy(&bytes)
    );
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["success"], true);
    assert_eq!(app.count("SELECT count(*) FROM guests").await, 1);
    // The registration committed its final answer with itself: whatever the moment of the
    // crash, the key holds the 201 and the guest.
    let key_rows = app
        .count(
            "SELECT count(*) FROM idempotency_keys k JOIN guests g
                 ON (convert_from(k.body, 'UTF8')::jsonb -> 'data' -> 'guest' ->> 'id')::bigint = g.id
              WHERE k.key = 'crash-1' AND k.status = 201",
        )
        .await;
    assert_eq!(key_rows, 1);
    // A route that stores only its result with the change (the layer adds the status once it
    // answered) and died before that: simulated.
    db.execute(
        "UPDATE idempotency_keys SET status = NULL WHERE key = 'crash-1'",
        &[],
    )
    .await
    .unwrap();
    let (status, replayed, bytes) = send(&app, post(&uri, &token, "crash-1", &body)).await;
    assert_eq!(
        (status, replayed.as_deref()),
        (StatusCode::OK, Some("true")),
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    // The result stored with the change.
    assert!(
        v["data"]["guest"]["id"].is_i64(),
        "the committed result: {v}"
    );
    assert_eq!(app.count("SELECT count(*) FROM guests").await, 1);
}

#[tokio::test]
async fn refusals_are_replayed_and_keys_are_checked() {
    let app = TestApp::spawn().await;
    let token = app.organizer("alice");
    let bad = json!({"title": "x"});
    let first = send(&app, post("/api/events", &token, "evt-1", &bad)).await;
    assert_eq!(first.0, StatusCode::BAD_REQUEST);
    let again = send(&app, post("/api/events", &token, "evt-1", &bad)).await;
    assert_eq!(
        (again.0, again.1.as_deref()),
        (StatusCode::BAD_REQUEST, Some("true"))
    );
    let (a, b): (Value, Value) = (
        serde_json::from_slice(&first.2).unwrap(),
        serde_json::from_slice(&again.2).unwrap(),
    );
    assert_eq!(a["error"]["code"], b["error"]["code"]);
    assert_eq!(a["error"]["details"], b["error"]["details"]);
    // A key that is not printable ASCII, or too long.
    for key in ["", &"k".repeat(256)] {
        let r = send(&app, post("/api/events", &token, key, &event_body())).await;
        assert_eq!(r.0, StatusCode::BAD_REQUEST, "{key:?}");
    }
    // A PATCH under a key: applied once, replayed after.
    let e = app.create_event(&token, json!({})).await;
    let uri = format!("/api/events/{}", e["id"]);
    let patch = |key: &str| {
        Request::patch(&uri)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .header("idempotency-key", key)
            .body(Body::from(json!({"maxAttendees": 321}).to_string()))
            .unwrap()
    };
    let one = send(&app, patch("p-1")).await;
    assert_eq!(one.0, StatusCode::OK);
    let two = send(&app, patch("p-1")).await;
    assert_eq!((two.0, two.1.as_deref()), (StatusCode::OK, Some("true")));
    assert_eq!(one.2, two.2);
    assert_eq!(
        app.count("SELECT count(*) FROM events WHERE max_attendees = 321")
            .await,
        1
    );
}

/// The check-in is not a unit of work (one statement): under a used key it must not scan
/// again (`edge::statement!`), and the replay is the first answer, not "already validated".
#[tokio::test]
async fn a_retried_check_in_replays_its_answer_and_scans_once() {
    let app = TestApp::spawn().await;
    let token = app.organizer("alice");
    let (_, guest) = app.registered_guest(&token, "door@example.com").await;
    let ticket = app.ticket_of(guest).await;
    let uri = format!("/api/tickets/{ticket}/validate");
    let scan = json!({"scannerId": "s1", "location": "Gate"});
    let first = send(&app, post(&uri, &token, "scan-1", &scan)).await;
    first_answer(&first, StatusCode::OK);
    let again = send(&app, post(&uri, &token, "scan-1", &scan)).await;
    replays(&again, &first);
    let scans = format!("SELECT count(*) FROM ticket_scans WHERE ticket_id = {ticket}");
    assert_eq!(app.count(&scans).await, 1);
    // The same key with another body is refused, and scans nothing.
    let other = json!({"scannerId": "s2", "location": "Gate"});
    let reused = send(&app, post(&uri, &token, "scan-1", &other)).await;
    assert_eq!(reused.0, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.count(&scans).await, 1);
    // Another key is another scan: refused as already validated, and logged.
    let second = send(&app, post(&uri, &token, "scan-2", &scan)).await;
    assert_eq!(second.0, StatusCode::CONFLICT);
    assert_eq!(app.count(&scans).await, 2);
    // The refusal was stored with its logged attempt: a retry replays it and logs nothing.
    let again = send(&app, post(&uri, &token, "scan-2", &scan)).await;
    assert_eq!(
        (again.0, again.1.as_deref()),
        (StatusCode::CONFLICT, Some("true"))
    );
    // The same error (the replay carries no request id of its own).
    let (a, b): (Value, Value) = (
        serde_json::from_slice(&second.2).unwrap(),
        serde_json::from_slice(&again.2).unwrap(),
    );
    assert_eq!(a["error"]["code"], "TICKET_ALREADY_VALIDATED");
    assert_eq!(a["error"]["code"], b["error"]["code"]);
    assert_eq!(a["error"]["details"], b["error"]["details"]);
    assert_eq!(app.count(&scans).await, 2);
}

/// Concurrent duplicates of one check-in under one key: the first admits the ticket and
/// commits its answer with its scan; each other one blocks on the ticket, is refused, then
/// finds the key taken when it writes its own, rolls back (its refused attempt with it) and
/// replays the admission. One scan in the log, ten identical answers, nine replayed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_duplicates_of_a_check_in_admit_once_and_all_get_the_admission() {
    let app = Arc::new(TestApp::spawn().await);
    let token = app.organizer("alice");
    let (_, guest) = app.registered_guest(&token, "race@example.com").await;
    let ticket = app.ticket_of(guest).await;
    let uri = format!("/api/tickets/{ticket}/validate");
    let scan = json!({"scannerId": "s1", "location": "Gate"});
    let answers = race(&app, 10, &uri, &token, "race-1", &scan).await;
    for (status, _, body) in &answers {
        assert_eq!(*status, StatusCode::OK, "{}", String::from_utf8_lossy(body));
        assert_eq!(*body, answers[0].2, "every answer the admission");
    }
    let replayed = answers
        .iter()
        .filter(|a| a.1.as_deref() == Some("true"))
        .count();
    assert_eq!(replayed, 9);
    let scans = format!("SELECT count(*) FROM ticket_scans WHERE ticket_id = {ticket}");
    assert_eq!(
        app.count(&scans).await,
        1,
        "one scan logged, no refused duplicate"
    );
    // The answer was committed by the scan's own transaction.
    let same_tx = app
        .count(&format!(
            "SELECT count(*) FROM idempotency_keys k, ticket_scans s
              WHERE k.key = 'race-1' AND k.status = 200 AND s.ticket_id = {ticket}
                AND k.xmin::text = s.xmin::text"
        ))
        .await;
    assert_eq!(same_tx, 1);
    let retry = send(&app, post(&uri, &token, "race-1", &scan)).await;
    assert_eq!(
        (retry.0, retry.1.as_deref()),
        (StatusCode::OK, Some("true")),
        "{}",
        String::from_utf8_lossy(&retry.2)
    );
    assert_eq!(retry.2, answers[0].2);
}

/// The rules of an answer stored after it was sent (`idempotency_answer`, migrations/V19),
/// in the orders a race can produce: an answer no transaction recorded never replaces a stored
/// one, and completing a result touches only its own request's row without a status.
#[tokio::test]
async fn an_answer_stored_late_never_replaces_another() {
    let app = TestApp::spawn().await;
    let db = app.sql().await;
    let answer = |status: i32, fingerprint: &'static str, complete: bool| {
        let db = &db;
        async move {
            db.query_one(
                "SELECT idempotency_answer('organizer:alice', 'k-1', $1, $2, $3, $4)",
                &[
                    &fingerprint,
                    &status,
                    &format!("{status}").into_bytes(),
                    &complete,
                ],
            )
            .await
            .unwrap()
            .get::<_, bool>(0)
        }
    };
    let stored = || async {
        let r = db
            .query_one(
                "SELECT status, fingerprint FROM idempotency_keys WHERE key = 'k-1'",
                &[],
            )
            .await
            .unwrap();
        (r.get::<_, Option<i32>>(0), r.get::<_, String>(1))
    };
    assert!(
        answer(409, "fp-a", false).await,
        "the first answer is stored"
    );
    assert!(!answer(409, "fp-a", false).await, "a second is not");
    assert!(!answer(201, "fp-a", false).await, "not even a success");
    assert!(!answer(200, "fp-b", false).await, "nor another request's");
    assert_eq!(stored().await, (Some(409), "fp-a".to_owned()));
    // Completing a result its own transaction stored: only a row without a status.
    assert!(!answer(200, "fp-a", true).await);
    db.execute(
        "UPDATE idempotency_keys SET status = NULL WHERE key = 'k-1'",
        &[],
    )
    .await
    .unwrap();
    assert!(!answer(201, "fp-b", true).await, "not another request's");
    assert!(answer(201, "fp-a", true).await);
    assert_eq!(stored().await, (Some(201), "fp-a".to_owned()));
}

/// A keyed check-in stores its answer in its own statement, as the row it was rendered from
/// (`scan_answer`): committed with the scan (same transaction id), no rendered body. Its
/// replay is the first answer byte for byte, even after the guest, the event and the ticket
/// type changed.
#[tokio::test]
async fn a_keyed_check_in_stores_its_answer_row_with_the_scan_and_replays_it_unchanged() {
    let app = TestApp::spawn().await;
    let token = app.organizer("alice");
    let (event_id, guest) = app.registered_guest(&token, "row@example.com").await;
    let ticket = app.ticket_of(guest).await;
    let uri = format!("/api/tickets/{ticket}/validate");
    let scan = json!({"scannerId": "s1", "location": "Gate"});
    let first = send(&app, post(&uri, &token, "row-1", &scan)).await;
    first_answer(&first, StatusCode::OK);
    let stored = format!(
        "SELECT count(*) FROM idempotency_keys k JOIN ticket_scans s ON s.id = (k.answer_row).scan_id
          WHERE k.key = 'row-1' AND k.status = 200 AND k.body IS NULL AND s.ticket_id = {ticket}
            AND k.xmin = s.xmin AND (k.answer_row).first_name = 'John'"
    );
    assert_eq!(app.count(&stored).await, 1, "the answer row, with the scan");

    let db = app.sql().await;
    db.batch_execute(&format!(
        "UPDATE guests SET first_name = 'Changed', updated_at = now() WHERE id = {guest};
         UPDATE events SET title = 'Renamed' WHERE id = {event_id};
         UPDATE ticket_types SET name = 'Renamed' WHERE event_id = {event_id}"
    ))
    .await
    .unwrap();
    let again = send(&app, post(&uri, &token, "row-1", &scan)).await;
    replays(&again, &first);
    let now = app.get(&format!("/api/tickets/{ticket}"), &token).await;
    assert_eq!(now.data()["guest"]["firstName"], "Changed", "{}", now.body);
    let scans = format!("SELECT count(*) FROM ticket_scans WHERE ticket_id = {ticket}");
    assert_eq!(app.count(&scans).await, 1);
}

/// A keyed check-in of a ticket with its QR image (as every ticket has once its generation job
/// ran: a base64 PNG of a few KB) answers the image and stores no copy of it: the answer row
/// says "the ticket's image", and the replay reads it from the ticket, byte for byte the first
/// answer. A ticket without an image yet answers null, and its replay stays null after the image
/// is rendered.
#[tokio::test]
async fn a_keyed_check_in_replays_the_tickets_image_without_storing_a_copy() {
    let app = TestApp::spawn().await;
    let token = app.organizer("alice");
    let db = app.sql().await;
    let scan = json!({"scannerId": "s1", "location": "Gate"});
    let image_of = |payload: &str| domain::tickets::qr::png_base64(payload).unwrap();

    let (_, guest) = app.registered_guest(&token, "image@example.com").await;
    let ticket = app.ticket_of(guest).await;
    let payload: String = db
        .query_one("SELECT qr_payload FROM tickets WHERE id = $1", &[&ticket])
        .await
        .unwrap()
        .get(0);
    let image = image_of(&payload);
    assert!(image.len() > 2000, "a real image: {} bytes", image.len());
    set_image(&db, ticket, Some(&image)).await;
    let uri = format!("/api/tickets/{ticket}/validate");
    let first = send(&app, post(&uri, &token, "image-1", &scan)).await;
    first_answer(&first, StatusCode::OK);
    let body: Value = serde_json::from_slice(&first.2).unwrap();
    assert_eq!(body["data"]["ticket"]["qrCodeData"], image.as_str());
    let row: (String, i32) = {
        let r = db
            .query_one(
                "SELECT (answer_row).qr_code_data, pg_column_size(answer_row)
                   FROM idempotency_keys WHERE key = 'image-1'",
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(row.0, "", "the row points at the ticket's image");
    assert!(row.1 < 1000, "no copy of the image: {} bytes", row.1);
    let again = send(&app, post(&uri, &token, "image-1", &scan)).await;
    replays(&again, &first);

    // No image yet: null, and null again after it is rendered.
    let (_, guest) = app.registered_guest(&token, "noimage@example.com").await;
    let ticket = app.ticket_of(guest).await;
    set_image(&db, ticket, None).await;
    let uri = format!("/api/tickets/{ticket}/validate");
    let first = send(&app, post(&uri, &token, "image-2", &scan)).await;
    first_answer(&first, StatusCode::OK);
    let body: Value = serde_json::from_slice(&first.2).unwrap();
    assert_eq!(body["data"]["ticket"]["qrCodeData"], Value::Null);
    set_image(&db, ticket, Some(&image)).await;
    let again = send(&app, post(&uri, &token, "image-2", &scan)).await;
    replays(&again, &first);
}

/// Sets the ticket's QR image, as the ticket-generation job does (`None`: not rendered yet).
async fn set_image(db: &deadpool_postgres::Object, ticket: i64, image: Option<&str>) {
    db.execute(
        "UPDATE tickets SET qr_code_data = $2 WHERE id = $1",
        &[&ticket, &image],
    )
    .await
    .unwrap();
}

/// Entries and exits on a list with re-entry, each under its own key: each replay is its own
/// first answer (direction included), and nothing is scanned again.
#[tokio::test]
async fn keyed_entries_and_exits_on_a_list_replay_their_own_answers() {
    let app = TestApp::spawn().await;
    let token = app.organizer("alice");
    let (event_id, guest) = app.registered_guest(&token, "gate@example.com").await;
    let ticket = app.ticket_of(guest).await;
    let list = app
        .post(
            &format!("/api/events/{event_id}/checkin-lists"),
            &token,
            json!({"name": "Hall", "allowReentry": true}),
        )
        .await;
    assert_eq!(list.status, StatusCode::CREATED);
    let uri = format!("/api/checkin-lists/{}/scans", list.data()["id"]);
    let mut firsts = Vec::new();
    for (key, direction) in [("in-1", "entry"), ("out-1", "exit"), ("in-2", "entry")] {
        let body =
            json!({"ticketId": ticket, "scannerId": "s1", "location": "Hall", "type": direction});
        let first = send(&app, post(&uri, &token, key, &body)).await;
        first_answer(&first, StatusCode::OK);
        firsts.push((key, body, first));
    }
    for (key, body, first) in &firsts {
        let again = send(&app, post(&uri, &token, key, body)).await;
        replays(&again, first);
        let answer: Value = serde_json::from_slice(&first.2).unwrap();
        assert_eq!(answer["data"]["type"], body["type"], "{answer}");
    }
    let scans = format!("SELECT count(*) FROM ticket_scans WHERE ticket_id = {ticket}");
    assert_eq!(app.count(&scans).await, 3);
    let rows = "SELECT count(*) FROM idempotency_keys WHERE (answer_row).scan_id IS NOT NULL";
    assert_eq!(app.count(rows).await, 3);
}

/// The type a keyed check-in stores its answer as (migrations/V21) has the columns of every
/// online scan statement, by name, type and order (`hooks` aside, which is not answered).
#[tokio::test]
async fn the_stored_answer_row_has_the_columns_of_the_scan_statements() {
    let app = TestApp::spawn().await;
    let db = app.sql().await;
    let attributes: Vec<(String, u32)> = db
        .query(
            "SELECT a.attname::text, a.atttypid FROM pg_attribute a JOIN pg_type t ON t.typrelid = a.attrelid
              WHERE t.typname = 'scan_answer' AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let names: Vec<&str> = attributes.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, domain::checkin::scan::ANSWER_COLUMNS);
    for sql in domain::checkin::scan::statements() {
        let stmt = db.prepare(sql).await.unwrap();
        let columns: Vec<(String, u32)> = stmt
            .columns()
            .iter()
            .filter(|c| c.name() != "hooks")
            .map(|c| (c.name().to_owned(), c.type_().oid()))
            .collect();
        assert_eq!(columns, attributes, "{sql}");
    }
}

/// A key past its 24 hours that the prune has not removed yet is free again: a check-in (one
/// statement) and a registration (a unit of work) under it run as new requests.
#[tokio::test]
async fn a_key_past_its_24_hours_is_used_again() {
    let app = TestApp::spawn().await;
    let token = app.organizer("alice");
    let (event_id, first_guest) = app.registered_guest(&token, "old@example.com").await;
    let (_, second_guest) = app.registered_guest(&token, "new@example.com").await;
    let scan = json!({"scannerId": "s1", "location": "Gate"});
    let age =
        "UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = 'reused'";
    for guest in [first_guest, second_guest] {
        let ticket = app.ticket_of(guest).await;
        let uri = format!("/api/tickets/{ticket}/validate");
        let answer = send(&app, post(&uri, &token, "reused", &scan)).await;
        first_answer(&answer, StatusCode::OK);
        let scanned = format!(
            "SELECT count(*) FROM idempotency_keys WHERE key = 'reused' AND (answer_row).tk_id = {ticket}"
        );
        assert_eq!(app.count(&scanned).await, 1);
        app.sql().await.batch_execute(age).await.unwrap();
    }
    let event = app.get(&format!("/api/events/{event_id}"), &token).await;
    let ticket_type = &event.data()["ticketTypes"][0]["id"];
    let uri = format!("/api/events/{event_id}/guests");
    let registered = send(
        &app,
        post(
            &uri,
            &token,
            "reused",
            &guest_body("third@example.com", ticket_type),
        ),
    )
    .await;
    first_answer(&registered, StatusCode::CREATED);
    assert_eq!(
        app.count("SELECT count(*) FROM idempotency_keys WHERE key = 'reused' AND body IS NOT NULL AND (answer_row).scan_id IS NULL")
            .await,
        1
    );
}

/// A keyed check-in by what the scanner read (`POST /api/tickets/validate`, its signed QR
/// payload: checked against the ticket first, then the one statement): replayed as answered.
#[tokio::test]
async fn a_keyed_check_in_by_code_replays_its_answer() {
    let app = TestApp::spawn().await;
    let token = app.organizer("alice");
    let (_, guest) = app.registered_guest(&token, "qr@example.com").await;
    let ticket = app.ticket_of(guest).await;
    let shown = app.get(&format!("/api/tickets/{ticket}"), &token).await;
    let payload = shown.data()["qrPayload"].as_str().unwrap().to_owned();
    let scan = json!({"code": payload, "scannerId": "s1", "location": "Gate"});
    let first = send(&app, post("/api/tickets/validate", &token, "qr-1", &scan)).await;
    first_answer(&first, StatusCode::OK);
    let again = send(&app, post("/api/tickets/validate", &token, "qr-1", &scan)).await;
    replays(&again, &first);
    let rows = "SELECT count(*) FROM idempotency_keys WHERE key = 'qr-1' AND (answer_row).scan_id IS NOT NULL";
    assert_eq!(app.count(rows).await, 1, "stored by the scan's statement");
    let scans = format!("SELECT count(*) FROM ticket_scans WHERE ticket_id = {ticket}");
    assert_eq!(app.count(&scans).await, 1);
}
