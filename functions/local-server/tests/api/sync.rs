//! Incremental sync: `updatedSince` on the event, guest and scan lists.

use axum::http::StatusCode;
use serde_json::json;

use crate::helpers::*;

async fn db_now(app: &TestApp) -> String {
    let t: chrono::DateTime<chrono::Utc> = app
        .sql()
        .await
        .query_one("SELECT clock_timestamp()", &[])
        .await
        .unwrap()
        .get(0);
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn enc(t: &str) -> String {
    t.replace('+', "%2B").replace(':', "%3A")
}

#[tokio::test]
async fn lists_return_what_changed_since() {
    let app = TestApp::spawn().await;
    let token = app.organizer("alice");
    let a = app.create_event(&token, json!({"title": "Event A"})).await;
    let b = app
        .published_event(&token, json!({"title": "Event B"}))
        .await;
    let c = app.create_event(&token, json!({"title": "Event C"})).await;
    let bob = app.organizer("bob");
    app.create_event(&bob, json!({})).await;
    let reg = app
        .register(
            &token,
            b["id"].as_i64().unwrap(),
            guest_body("one@example.com", &b["ticketTypes"][0]["id"]),
        )
        .await;
    let one = reg.data()["guest"]["id"].clone();
    let reg = app
        .register(
            &token,
            b["id"].as_i64().unwrap(),
            guest_body("two@example.com", &b["ticketTypes"][0]["id"]),
        )
        .await;
    let two = reg.data()["guest"]["id"].clone();
    let ticket_two = reg.data()["ticket"]["id"].clone();
    let since = db_now(&app).await;

    // Events: C then A changed, listed in update order; B (registrations do not change it) and
    // bob's events are not.
    assert_eq!(
        app.patch(
            &format!("/api/events/{}", c["id"]),
            &token,
            json!({"location": "Lyon"})
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(
        app.patch(
            &format!("/api/events/{}", a["id"]),
            &token,
            json!({"location": "Lille"})
        )
        .await
        .status,
        StatusCode::OK
    );
    let r = app
        .get(&format!("/api/events?updatedSince={}", enc(&since)), &token)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let ids: Vec<_> = r.data()["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].clone())
        .collect();
    assert_eq!(ids, [c["id"].clone(), a["id"].clone()]);
    assert_eq!(r.data()["pagination"]["total"], 2);
    let r = app.get("/api/events?updatedSince=yesterday", &token).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.fields(), ["updatedSince"]);

    // Guests: only the one cancelled since.
    let event_b = b["id"].as_i64().unwrap();
    let r = app
        .post(
            &format!("/api/events/{event_b}/guests/{one}/cancel"),
            &token,
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app
        .get(
            &format!("/api/events/{event_b}/guests?updatedSince={}", enc(&since)),
            &token,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let guests = r.data()["guests"].as_array().unwrap();
    assert_eq!(guests.len(), 1);
    assert_eq!(guests[0]["id"], one);
    let all = app
        .get(&format!("/api/events/{event_b}/guests"), &token)
        .await;
    assert_eq!(all.data()["guests"].as_array().unwrap().len(), 2);
    let _ = two;

    // Scans: a scan, and later its revert.
    let list = app
        .get(&format!("/api/events/{event_b}/checkin-lists"), &token)
        .await
        .data()[0]["id"]
        .clone();
    let scan = app
        .post(
            &format!("/api/checkin-lists/{list}/scans"),
            &token,
            json!({"ticketId": ticket_two, "scannerId": "s", "location": "l"}),
        )
        .await;
    assert_eq!(scan.status, StatusCode::OK, "{}", scan.body);
    let scan_id = scan.data()["scanId"].clone();
    let after_scan = db_now(&app).await;
    let r = app
        .get(
            &format!(
                "/api/checkin-lists/{list}/scans?updatedSince={}",
                enc(&after_scan)
            ),
            &token,
        )
        .await;
    assert_eq!(r.data()["scans"], json!([]));
    let r = app
        .post(
            &format!("/api/checkin-lists/{list}/scans/{scan_id}/revert"),
            &token,
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app
        .get(
            &format!(
                "/api/checkin-lists/{list}/scans?updatedSince={}",
                enc(&after_scan)
            ),
            &token,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let scans = r.data()["scans"].as_array().unwrap();
    assert_eq!(scans.len(), 1);
    assert_eq!(scans[0]["id"], scan_id);
    assert!(scans[0]["revertedAt"].is_string());
    assert_eq!(r.data()["pagination"]["total"], 1);
}

/// The guest row's `xmin`: the transaction that last wrote it.
async fn guest_xmin(app: &TestApp, guest: &serde_json::Value) -> String {
    app.sql()
        .await
        .query_one(
            "SELECT xmin::text FROM guests WHERE id = $1",
            &[&guest.as_i64().unwrap()],
        )
        .await
        .unwrap()
        .get(0)
}

/// A check-in writes no guest row (migrations/V22): the guest still reads as checked in, with
/// the check-in's time as updatedAt and a new ETag, and a sync since then finds it, whether
/// the entry came online or from an offline upload dated before the sync's time.
#[tokio::test]
async fn a_check_in_changes_the_guest_without_writing_its_row() {
    let app = TestApp::spawn().await;
    let token = app.organizer("alice");
    let event = app.published_event(&token, json!({})).await;
    let event_id = event["id"].as_i64().unwrap();
    let tt = &event["ticketTypes"][0]["id"];
    let mut guests = Vec::new();
    for i in 0..4 {
        let r = app
            .register(
                &token,
                event_id,
                guest_body(&format!("g{i}@example.com"), tt),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        guests.push((r.data()["guest"].clone(), r.data()["ticket"].clone()));
    }
    let list = app
        .get(&format!("/api/events/{event_id}/checkin-lists"), &token)
        .await
        .data()[0]["id"]
        .clone();
    let enter = |ticket: &serde_json::Value| {
        let (app, token, list) = (&app, &token, &list);
        let body = json!({"ticketId": ticket["id"], "scannerId": "s", "location": "Gate"});
        async move {
            let r = app
                .post(&format!("/api/checkin-lists/{list}/scans"), token, body)
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            r.data().clone()
        }
    };
    // Guest 0 came in before the sync's time.
    enter(&guests[0].1).await;
    let since = db_now(&app).await;

    // Guest 1 online, guest 2 from an offline upload whose scan is dated an hour back.
    let uri1 = format!("/api/events/{event_id}/guests/{}", guests[1].0["id"]);
    let before = app.get(&uri1, &token).await;
    let old_tag = before.headers["etag"].to_str().unwrap().to_owned();
    let (xmin1, xmin2) = (
        guest_xmin(&app, &guests[1].0["id"]).await,
        guest_xmin(&app, &guests[2].0["id"]).await,
    );
    let entry = enter(&guests[1].1).await;
    let r = app
        .post(
            &format!("/api/checkin-lists/{list}/scans/batch"),
            &app.scanner("alice"),
            json!({"scans": [{
                "clientScanId": uuid::Uuid::new_v4(),
                "code": guests[2].1["qrPayload"],
                "scannerId": "device-1",
                "location": "Gate",
                "type": "entry",
                "scannedAt": (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339(),
            }]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.data()["results"][0]["result"], "accepted", "{}", r.body);
    assert_eq!(guest_xmin(&app, &guests[1].0["id"]).await, xmin1);
    assert_eq!(guest_xmin(&app, &guests[2].0["id"]).await, xmin2);

    // What the API shows: checked in, updated at the check-in, a new ETag.
    let after = app.get(&uri1, &token).await;
    assert_eq!(after.data()["status"], "checked_in");
    assert_eq!(after.data()["updatedAt"], entry["scannedAt"]);
    assert_eq!(entry["ticket"]["guest"]["status"], "checked_in");
    let new_tag = after.headers["etag"].to_str().unwrap().to_owned();
    assert_ne!(new_tag, old_tag);
    let patch = |tag: String| {
        let req = axum::http::Request::builder()
            .method(axum::http::Method::PATCH)
            .uri(&uri1)
            .header("authorization", format!("Bearer {token}"))
            .header("if-match", tag)
            .header("content-type", "application/json")
            .body(axum::body::Body::from(
                json!({"phone": "+33612345678"}).to_string(),
            ))
            .unwrap();
        app.send(req)
    };
    assert_eq!(patch(old_tag).await.status, StatusCode::PRECONDITION_FAILED);
    let r = patch(new_tag).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.data()["status"], "checked_in");

    // The sync: guests 1 and 2, in the order the server learnt of them; not guest 0 nor 3.
    let sync = |since: String| {
        let (app, token) = (&app, &token);
        async move {
            let r = app
                .get(
                    &format!("/api/events/{event_id}/guests?updatedSince={}", enc(&since)),
                    token,
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            let ids: Vec<_> = r.data()["guests"]
                .as_array()
                .unwrap()
                .iter()
                .map(|g| (g["id"].clone(), g["status"].clone()))
                .collect();
            assert_eq!(r.data()["pagination"]["total"], ids.len());
            ids
        }
    };
    assert_eq!(
        sync(since.clone()).await,
        [
            (guests[2].0["id"].clone(), json!("checked_in")),
            (guests[1].0["id"].clone(), json!("checked_in")),
        ],
        "guest 1 was patched after guest 2's upload"
    );
    // Filters and counts follow the derived status.
    let r = app
        .get(
            &format!("/api/events/{event_id}/guests?status=checked_in"),
            &token,
        )
        .await;
    assert_eq!(r.data()["pagination"]["total"], 3);
    let r = app
        .get(
            &format!("/api/events/{event_id}/guests?status=confirmed"),
            &token,
        )
        .await;
    assert_eq!(r.data()["guests"][0]["id"], guests[3].0["id"]);
    assert_eq!(r.data()["pagination"]["total"], 1);
    let stats = app
        .get(&format!("/api/events/{event_id}/stats"), &token)
        .await;
    assert_eq!(stats.data()["checkedIn"], 3, "{}", stats.body);
    assert_eq!(stats.data()["confirmed"], 1, "{}", stats.body);
    assert_eq!(
        app.get(&format!("/api/events/{event_id}"), &token)
            .await
            .data()["stats"]["checkedIn"],
        3
    );

    // Reverting guest 0's entry makes it confirmed again, and a change for the sync.
    let since = db_now(&app).await;
    let scans = app
        .get(
            &format!(
                "/api/checkin-lists/{list}/scans?ticketId={}",
                guests[0].1["id"]
            ),
            &token,
        )
        .await;
    let first = scans.data()["scans"][0]["id"].clone();
    let r = app
        .post(
            &format!("/api/checkin-lists/{list}/scans/{first}/revert"),
            &token,
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        sync(since).await,
        [(guests[0].0["id"].clone(), json!("confirmed"))]
    );
}
