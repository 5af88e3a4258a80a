//! Optimistic concurrency: ETags (row versions) and If-Match on events, ticket types, guests
//! and check-in lists, checked inside the write's transaction.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

fn etag(r: &TestResponse) -> String {
    r.headers
        .get("etag")
        .unwrap_or_else(|| panic!("an ETag: {:?}", r.headers))
        .to_str()
        .unwrap()
        .to_owned()
}

async fn with_if_match(
    app: &TestApp,
    method: Method,
    uri: &str,
    token: &str,
    if_match: &str,
    body: Option<Value>,
) -> TestResponse {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {token}"))
        .header("if-match", if_match);
    let body = match body {
        Some(b) => {
            req = req.header("content-type", "application/json");
            Body::from(b.to_string())
        }
        None => Body::empty(),
    };
    app.send(req.body(body).unwrap()).await
}

/// The same PATCH with the same If-Match from many clients at once: one 200, the rest 412.
async fn racing_patches(
    app: &TestApp,
    uri: &str,
    token: &str,
    tag: &str,
    bodies: Vec<Value>,
) -> (usize, usize) {
    let barrier = Arc::new(tokio::sync::Barrier::new(bodies.len()));
    let mut tasks = Vec::new();
    for body in bodies {
        let (router, barrier) = (app.app.clone(), barrier.clone());
        let req = Request::builder()
            .method(Method::PATCH)
            .uri(uri)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .header("if-match", tag)
            .body(Body::from(body.to_string()))
            .unwrap();
        tasks.push(tokio::spawn(async move {
            use tower::ServiceExt;
            barrier.wait().await;
            router.oneshot(req).await.unwrap().status()
        }));
    }
    let (mut ok, mut stale) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            StatusCode::OK => ok += 1,
            StatusCode::PRECONDITION_FAILED => stale += 1,
            other => panic!("{other}"),
        }
    }
    (ok, stale)
}

#[tokio::test]
async fn events_and_ticket_types_honour_if_match() {
    let app = TestApp::spawn().await;
    let token = app.organizer("alice");
    let e = app.create_event(&token, json!({})).await;
    let uri = format!("/api/events/{}", e["id"]);
    let r = app.get(&uri, &token).await;
    let tag = etag(&r);
    assert!(tag.starts_with('"') && tag.ends_with('"'), "{tag}");
    // Reading again: the same version.
    assert_eq!(etag(&app.get(&uri, &token).await), tag);

    let r = with_if_match(
        &app,
        Method::PATCH,
        &uri,
        &token,
        "\"1\"",
        Some(json!({"title": "Stale write"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED, "{}", r.body);
    assert_eq!(r.code(), "PRECONDITION_FAILED");
    assert_eq!(r.body["error"]["details"]["etag"], tag);
    let r = with_if_match(
        &app,
        Method::PATCH,
        &uri,
        &token,
        &tag,
        Some(json!({"title": "Fresh write"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let new_tag = etag(&r);
    assert_ne!(new_tag, tag);
    assert_eq!(etag(&app.get(&uri, &token).await), new_tag);
    // The old ETag no longer deletes; `*` and no If-Match do not check.
    let r = with_if_match(&app, Method::DELETE, &uri, &token, &tag, None).await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
    let r = with_if_match(
        &app,
        Method::PATCH,
        &uri,
        &token,
        "*",
        Some(json!({"location": "Lyon"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        app.patch(&uri, &token, json!({"location": "Nantes"}))
            .await
            .status,
        StatusCode::OK
    );

    // Ticket types.
    let tt = format!("{uri}/ticket-types/{}", e["ticketTypes"][0]["id"]);
    let r = app.get(&tt, &token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let tt_tag = etag(&r);
    let r = with_if_match(
        &app,
        Method::PATCH,
        &tt,
        &token,
        &tt_tag,
        Some(json!({"price": 10})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = with_if_match(
        &app,
        Method::PATCH,
        &tt,
        &token,
        &tt_tag,
        Some(json!({"price": 12})),
    )
    .await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
    let r = with_if_match(&app, Method::DELETE, &tt, &token, &tt_tag, None).await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(
        app.get(&tt, &app.organizer("bob")).await.status,
        StatusCode::NOT_FOUND
    );

    let current = etag(&app.get(&uri, &token).await);
    let r = with_if_match(&app, Method::DELETE, &uri, &token, &current, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_concurrent_patches_with_one_etag_give_one_200_and_one_412() {
    let app = TestApp::spawn().await;
    let token = app.organizer("alice");
    let (event_id, guest_id) = app.registered_guest(&token, "r@example.com").await;
    let event = format!("/api/events/{event_id}");
    let tag = etag(&app.get(&event, &token).await);
    let (ok, stale) = racing_patches(
        &app,
        &event,
        &token,
        &tag,
        vec![
            json!({"title": "From the CRM"}),
            json!({"title": "From the web app"}),
        ],
    )
    .await;
    assert_eq!((ok, stale), (1, 1));

    let guest = format!("/api/events/{event_id}/guests/{guest_id}");
    let tag = etag(&app.get(&guest, &token).await);
    let bodies = (0..10)
        .map(|i| json!({"firstName": format!("Name{i}")}))
        .collect();
    assert_eq!(
        racing_patches(&app, &guest, &token, &tag, bodies).await,
        (1, 9)
    );
}

#[tokio::test]
async fn guests_and_lists_carry_their_version() {
    let app = TestApp::spawn().await;
    let token = app.organizer("alice");
    let (event_id, guest_id) = app.registered_guest(&token, "g@example.com").await;
    let guest = format!("/api/events/{event_id}/guests/{guest_id}");
    let tag = etag(&app.get(&guest, &token).await);
    // A check-in changes the guest: the ETag moves.
    let ticket: i64 = app
        .count(&format!(
            "SELECT id FROM tickets WHERE guest_id = {guest_id}"
        ))
        .await;
    let r = app
        .post(
            &format!("/api/tickets/{ticket}/validate"),
            &token,
            json!({"scannerId": "s", "location": "l"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let after = etag(&app.get(&guest, &token).await);
    assert_ne!(after, tag);
    let r = with_if_match(
        &app,
        Method::PATCH,
        &guest,
        &token,
        &tag,
        Some(json!({"lastName": "Late"})),
    )
    .await;
    assert_eq!(r.code(), "PRECONDITION_FAILED");
    let r = with_if_match(&app, Method::DELETE, &guest, &token, &tag, None).await;
    assert_eq!(r.code(), "PRECONDITION_FAILED");
    let r = with_if_match(
        &app,
        Method::PATCH,
        &guest,
        &token,
        &after,
        Some(json!({"lastName": "OnTime"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_ne!(etag(&r), after);

    // Check-in lists.
    let r = app
        .post(
            &format!("/api/events/{event_id}/checkin-lists"),
            &token,
            json!({"name": "Side door"}),
        )
        .await;
    let list = format!("/api/checkin-lists/{}", r.data()["id"]);
    let tag = etag(&app.get(&list, &token).await);
    let r = with_if_match(
        &app,
        Method::PATCH,
        &list,
        &token,
        &tag,
        Some(json!({"name": "Back door"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let fresh = etag(&r);
    let r = with_if_match(&app, Method::DELETE, &list, &token, &tag, None).await;
    assert_eq!(r.code(), "PRECONDITION_FAILED");
    let r = with_if_match(&app, Method::DELETE, &list, &token, &fresh, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn a_cached_event_keeps_its_etag() {
    let app = TestApp::spawn_with(|c| {
        c.redis = Some(platform::config::RedisConfig {
            url: "redis://127.0.0.1:6379".into(),
            timeout: std::time::Duration::from_millis(500),
            ttl: std::time::Duration::from_secs(60),
            prefix: format!("etag-test-{}:", uuid::Uuid::new_v4()),
            root_cert: None,
        })
    })
    .await;
    let token = app.organizer("alice");
    let e = app.create_event(&token, json!({})).await;
    let uri = format!("/api/events/{}", e["id"]);
    let first = etag(&app.get(&uri, &token).await);
    let cached = app.get(&uri, &token).await;
    assert_eq!(etag(&cached), first, "from the cache");
    let r = with_if_match(
        &app,
        Method::PATCH,
        &uri,
        &token,
        &first,
        Some(json!({"title": "Changed"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        etag(&app.get(&uri, &token).await),
        etag(&r),
        "the cache follows the change"
    );
}
