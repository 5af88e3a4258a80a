//! Personal-data rights: the export of everything about a guest, and its erasure.

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn a_guest_is_exported_then_erased_without_losing_its_seat() {
    let app = TestApp::spawn().await;
    let token = app.organizer("alice");
    let r = app
        .post(
            "/api/webhooks",
            &token,
            json!({"url": "https://crm.example.com/hooks", "eventTypes": ["guest.registered", "guest.checked_in"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    // Another guest's registration and check-in first: the process then writes the organizer's
    // next deliveries of both kinds inline, as guest snapshots (migrations/V23), which the
    // export renders and the erasure clears.
    let other = app.published_event(&token, json!({})).await;
    let r = app
        .register(
            &token,
            other["id"].as_i64().unwrap(),
            json!({"firstName": "Grace", "lastName": "Hopper", "email": "grace@example.com",
                   "ticketTypeId": other["ticketTypes"][0]["id"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let first_ticket = r.data()["ticket"]["id"].as_i64().unwrap();
    let r = app
        .post(
            &format!("/api/tickets/{first_ticket}/validate"),
            &token,
            json!({"scannerId": "s", "location": "Gate"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let e = app.published_event(&token, json!({})).await;
    let event_id = e["id"].as_i64().unwrap();
    // Registered by an integration, under an Idempotency-Key (its stored answer holds the guest).
    let reg = app
        .send(
            axum::http::Request::post(format!("/api/events/{event_id}/guests"))
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/json")
                .header("idempotency-key", "crm-import-1")
                .body(axum::body::Body::from(
                    guest_body("ada@example.com", &e["ticketTypes"][0]["id"]).to_string(),
                ))
                .unwrap(),
        )
        .await;
    assert_eq!(reg.status, StatusCode::CREATED, "{}", reg.body);
    assert_eq!(app.count("SELECT count(*) FROM idempotency_keys").await, 1);
    let guest_id = reg.data()["guest"]["id"].as_i64().unwrap();
    let ticket = reg.data()["ticket"].clone();
    let payload = ticket["qrPayload"].as_str().unwrap().to_owned();
    // Checked in under a key too (its stored answer row holds the guest).
    let r = app
        .send(
            axum::http::Request::post(format!("/api/tickets/{}/validate", ticket["id"]))
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/json")
                .header("idempotency-key", "door-1")
                .body(axum::body::Body::from(
                    json!({"scannerId": "s", "location": "Gate"}).to_string(),
                ))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        app.count("SELECT count(*) FROM idempotency_keys WHERE (answer_row).first_name = 'John'")
            .await,
        1
    );
    let list = app
        .get(&format!("/api/events/{event_id}/checkin-lists"), &token)
        .await
        .data()[0]["id"]
        .clone();
    let before = app
        .get(
            &format!("/api/checkin-lists/{list}/offline-data"),
            &app.scanner("alice"),
        )
        .await;
    let cursor = before.data()["cursor"].as_str().unwrap().to_owned();
    let stats_before = app
        .get(&format!("/api/events/{event_id}/stats"), &token)
        .await
        .data()
        .clone();

    // Everything about the guest.
    let uri = format!("/api/events/{event_id}/guests/{guest_id}");
    let data = app.get(&format!("{uri}/personal-data"), &token).await;
    assert_eq!(data.status, StatusCode::OK, "{}", data.body);
    let d = data.data();
    assert_eq!(d["guest"]["email"], "ada@example.com");
    assert_eq!(d["ticket"]["id"], ticket["id"]);
    assert_eq!(d["scans"].as_array().unwrap().len(), 1);
    assert_eq!(d["scans"][0]["result"], "accepted");
    assert!(d["emails"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["type"] == "registration_confirmation"));
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM webhook_deliveries WHERE payload IS NULL AND (guest).id = {guest_id}"
        ))
        .await,
        2,
        "Ada's deliveries store her as a snapshot"
    );
    let deliveries = d["webhookDeliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 2, "{deliveries:?}");
    for (delivery, (kind, status)) in deliveries.iter().zip([
        ("guest.registered", "confirmed"),
        ("guest.checked_in", "checked_in"),
    ]) {
        assert_eq!(delivery["eventType"], kind);
        assert_eq!(delivery["payload"]["type"], kind);
        assert_eq!(delivery["payload"]["data"]["email"], "ada@example.com");
        assert_eq!(delivery["payload"]["data"]["status"], status);
    }
    assert_eq!(d["waitlistEntries"], json!([]));
    // Roles and tenancy.
    assert_eq!(
        app.get(&format!("{uri}/personal-data"), &app.organizer("bob"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.post(&format!("{uri}/erase"), &app.scanner("alice"), json!({}))
            .await
            .status,
        StatusCode::FORBIDDEN
    );

    // Erasure.
    let r = app.post(&format!("{uri}/erase"), &token, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.data()["firstName"], "Erased");
    assert_eq!(r.data()["lastName"], "Guest");
    assert_eq!(r.data()["phone"], Value::Null);
    assert!(r.data()["email"]
        .as_str()
        .unwrap()
        .ends_with("@erased.invalid"));
    assert_eq!(
        r.data()["status"],
        "checked_in",
        "the guest keeps its state"
    );
    let again = app.post(&format!("{uri}/erase"), &token, json!({})).await;
    assert_eq!(again.data(), r.data(), "erasing twice answers the same");

    // Seat and counts as they were.
    let stats_after = app
        .get(&format!("/api/events/{event_id}/stats"), &token)
        .await
        .data()
        .clone();
    assert_eq!(stats_after["registered"], stats_before["registered"]);
    assert_eq!(stats_after["checkedIn"], stats_before["checkedIn"]);
    assert_eq!(stats_after["byTicketType"], stats_before["byTicketType"]);

    // Nothing readable is left anywhere in the database: every row of every table, as text.
    let db = app.sql().await;
    let tables: Vec<String> = db
        .query(
            "SELECT quote_ident(table_name) FROM information_schema.tables
              WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for table in &tables {
        let sql = format!(
            "SELECT count(*) FROM {table} t
              WHERE t::text ILIKE '%ada@example.com%' OR t::text LIKE '%Doe%'
                 OR t::text LIKE '%' || encode(convert_to('ada@example.com', 'UTF8'), 'hex') || '%'"
        );
        let n: i64 = db.query_one(&sql, &[]).await.unwrap().get(0);
        assert_eq!(n, 0, "the erased guest is still in {table}");
    }
    // Its deliveries still go out (same id, type and time), about an erased guest.
    let bodies: Vec<Value> = db
        .query(
            "SELECT delivery_payload(d) FROM webhook_deliveries d
              WHERE delivery_data_id(d) = $1::bigint::text ORDER BY d.id",
            &[&guest_id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(bodies.len(), 2);
    for body in &bodies {
        assert_eq!(
            body["data"],
            json!({"id": guest_id, "erased": true}),
            "{body}"
        );
        assert!(body["timestamp"].is_string(), "{body}");
    }
    // The audit row names who erased, not what.
    let audit = app.get(&format!("{uri}/personal-data"), &token).await;
    let entries = audit.data()["audit"].as_array().unwrap().clone();
    let erased: Vec<&Value> = entries
        .iter()
        .filter(|a| a["action"] == "guest.erased")
        .collect();
    assert_eq!(erased.len(), 1);
    assert_eq!(
        erased[0]["actor"],
        json!({"sub": "alice", "role": "organizer"})
    );
    assert_eq!(erased[0]["changes"], json!({}));

    // The QR code the guest holds no longer verifies at the door...
    let r = app
        .post(
            "/api/tickets/validate",
            &token,
            json!({"code": payload, "scannerId": "s", "location": "Gate"}),
        )
        .await;
    assert_eq!(r.code(), "TICKET_CANCELLED", "{}", r.body);
    // Its QR image is gone too (a 409 that says why, not a 500).
    let r = app
        .get(&format!("/api/tickets/{}/qr", ticket["id"]), &token)
        .await;
    assert_eq!(r.code(), "TICKET_CANCELLED", "{}", r.body);
    // ... nor offline: the next sync carries the ticket without the old payload's hash.
    let delta = app
        .get(
            &format!("/api/checkin-lists/{list}/offline-data?cursor={cursor}"),
            &app.scanner("alice"),
        )
        .await;
    let items = delta.data()["items"].as_array().unwrap();
    let item = items
        .iter()
        .find(|i| i["ticketId"] == ticket["id"])
        .expect("the erased ticket in the delta");
    assert_ne!(
        item["payloadHash"],
        domain::checkin::offline::payload_hash(&payload)
    );
    assert_eq!(item["sealed"], Value::Null);
}
