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
