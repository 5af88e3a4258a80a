//! The audit log: every change through the API, in its transaction, listed per event.

use axum::http::StatusCode;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn every_change_is_audited_without_personal_data() {
    let app = TestApp::spawn().await;
    let token = app.organizer("alice");
    let e = app.published_event(&token, json!({})).await;
    let event_id = e["id"].as_i64().unwrap();
    let reg = app
        .register(
            &token,
            event_id,
            guest_body("private@example.com", &e["ticketTypes"][0]["id"]),
        )
        .await;
    let guest = reg.data()["guest"]["id"].clone();
    let r = app
        .patch(
            &format!("/api/events/{event_id}/guests/{guest}"),
            &app.admin(),
            json!({"firstName": "Secret"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = app
        .post(
            &format!("/api/events/{event_id}/guests/{guest}/cancel"),
            &token,
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app
        .post(
            &format!("/api/events/{event_id}/checkin-lists"),
            &token,
            json!({"name": "VIP"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    // A refused change writes nothing: its transaction rolled back.
    let r = app
        .patch(
            &format!("/api/events/{event_id}"),
            &token,
            json!({"maxAttendees": 0}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    let log = app
        .get(&format!("/api/events/{event_id}/audit"), &token)
        .await;
    assert_eq!(log.status, StatusCode::OK, "{}", log.body);
    let actions: Vec<String> = log.data()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        actions,
        [
            "event.created",
            "event.published",
            "guest.registered",
            "guest.updated",
            "guest.cancelled",
            "checkin_list.created"
        ]
    );
    let text = log.body.to_string();
    assert!(
        !text.contains("private@example.com") && !text.contains("Secret"),
        "no personal data: {text}"
    );
    let entries = log.data()["entries"].as_array().unwrap();
    let updated = entries
        .iter()
        .find(|e| e["action"] == "guest.updated")
        .unwrap();
    assert_eq!(updated["actor"], json!({"sub": "admin-1", "role": "admin"}));
    assert_eq!(updated["changes"], json!({"fields": ["firstName"]}));
    assert_eq!(updated["entity"], "guest");
    assert_eq!(updated["entityId"], guest);
    let published = entries
        .iter()
        .find(|e| e["action"] == "event.published")
        .unwrap();
    assert_eq!(published["changes"]["status"], "published");
    assert_eq!(published["actor"]["sub"], "alice");

    // Filters.
    let guests = app
        .get(
            &format!("/api/events/{event_id}/audit?entity=guest"),
            &token,
        )
        .await;
    assert_eq!(guests.data()["pagination"]["total"], 3);
    let cancelled = app
        .get(
            &format!("/api/events/{event_id}/audit?action=guest.cancelled&limit=1"),
            &token,
        )
        .await;
    assert_eq!(cancelled.data()["entries"].as_array().unwrap().len(), 1);
    assert_eq!(
        app.get(&format!("/api/events/{event_id}/audit?limit=0"), &token)
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
}
