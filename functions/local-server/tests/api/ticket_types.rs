use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::events::insert_guest;
use crate::helpers::*;

#[tokio::test]
async fn ticket_types_can_be_added_changed_and_removed() {
    let app = TestApp::spawn().await;
    let token = app.organizer("alice");
    let e = app.create_event(&token, json!({"maxAttendees": 100})).await;
    let base = format!("/api/events/{}/ticket-types", e["id"]);

    let r = app
        .post(
            &base,
            &token,
            json!({"name": "Early bird", "price": 49.5, "quantity": 20}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let tt = r.data().clone();
    assert_eq!(tt["eventId"], e["id"]);
    assert_eq!(
        (tt["price"].as_f64(), tt["available"].as_i64()),
        (Some(49.5), Some(20))
    );
    let uri = format!("{base}/{}", tt["id"]);

    let r = app
        .patch(&uri, &token, json!({"price": 59, "quantity": 30}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        (r.data()["price"].as_f64(), r.data()["quantity"].as_i64()),
        (Some(59.0), Some(30))
    );
    assert_eq!(r.data()["name"], "Early bird");

    let event = app.get(&format!("/api/events/{}", e["id"]), &token).await;
    assert_eq!(event.data()["ticketTypes"].as_array().unwrap().len(), 2);

    let r = app.delete(&uri, &token).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.patch(&uri, &token, json!({"price": 1})).await.code(),
        "NOT_FOUND"
    );
    assert_eq!(app.delete(&uri, &token).await.code(), "NOT_FOUND");
}

#[tokio::test]
async fn ticket_type_rules() {
    let app = TestApp::spawn().await;
    let token = app.organizer("alice");
    let e = app.create_event(&token, json!({"maxAttendees": 100})).await;
    let id = e["id"].as_i64().unwrap();
    let base = format!("/api/events/{id}/ticket-types");
    let vip = format!("{base}/{}", e["ticketTypes"][0]["id"]);

    // Names are unique per event, case-insensitively: the database's unique index is a 409.
    let r = app
        .post(
            &base,
            &token,
            json!({"name": "vip", "price": 1, "quantity": 1}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "INVALID_STATE"),
        "{}",
        r.body
    );
    let other = app
        .post(
            &base,
            &token,
            json!({"name": "Standard", "price": 1, "quantity": 1}),
        )
        .await;
    let r = app
        .patch(
            &format!("{base}/{}", other.data()["id"]),
            &token,
            json!({"name": "VIP"}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "INVALID_STATE")
    );

    for (body, field) in [
        (
            json!({"name": "A", "price": 1, "quantity": 101}),
            "quantity",
        ),
        (json!({"name": "A", "price": 1.001, "quantity": 1}), "price"),
        (json!({"name": "", "price": 1, "quantity": 1}), "name"),
        (json!({"name": "A", "price": 1}), "body"),
    ] {
        let r = app.post(&base, &token, body.clone()).await;
        assert_eq!(r.code(), "VALIDATION_ERROR", "{body}");
        assert!(
            field == "body" || r.fields().contains(&field.to_owned()),
            "{body}: {:?}",
            r.fields()
        );
    }
    assert_eq!(
        app.patch(&vip, &token, json!({"quantity": 101}))
            .await
            .code(),
        "VALIDATION_ERROR"
    );
    assert_eq!(
        app.patch(&vip, &token, json!({"sold": 3})).await.code(),
        "VALIDATION_ERROR"
    );

    // Quantity never below sold; delete only when nothing is sold.
    for i in 0..3 {
        insert_guest(&app, id, &format!("g{i}@example.com"), "confirmed").await;
    }
    let r = app.patch(&vip, &token, json!({"quantity": 2})).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "INVALID_STATE")
    );
    assert_eq!(
        app.patch(&vip, &token, json!({"quantity": 3})).await.data()["available"],
        0
    );
    assert_eq!(app.delete(&vip, &token).await.code(), "INVALID_STATE");

    // A type whose seats were all released but that past registrations still reference.
    let db = app.sql().await;
    let st_id = other.data()["id"].as_i64().unwrap();
    db.execute("UPDATE guests SET ticket_type_id = $1, status = 'cancelled' WHERE id = (SELECT min(id) FROM guests)", &[&st_id])
        .await
        .unwrap();
    let r = app.delete(&format!("{base}/{st_id}"), &token).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "INVALID_STATE"),
        "{}",
        r.body
    );

    // A ticket type of another event is not found through this one.
    let e2 = app.create_event(&token, json!({})).await;
    let r = app
        .patch(
            &format!(
                "/api/events/{}/ticket-types/{}",
                e2["id"], e["ticketTypes"][0]["id"]
            ),
            &token,
            json!({"price": 1}),
        )
        .await;
    assert_eq!(r.code(), "NOT_FOUND");
}

#[tokio::test]
async fn at_most_fifty_ticket_types_and_none_on_final_events() {
    let app = TestApp::spawn().await;
    let token = app.organizer("alice");
    let types: Vec<Value> = (0..50)
        .map(|i| json!({"name": format!("T{i}"), "price": 0, "quantity": 1}))
        .collect();
    let e = app
        .create_event(&token, json!({"ticketTypes": types}))
        .await;
    let base = format!("/api/events/{}/ticket-types", e["id"]);
    let r = app
        .post(
            &base,
            &token,
            json!({"name": "One more", "price": 0, "quantity": 1}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "INVALID_STATE")
    );

    let e = app.create_event(&token, json!({})).await;
    app.patch(
        &format!("/api/events/{}", e["id"]),
        &token,
        json!({"status": "cancelled"}),
    )
    .await;
    let base = format!("/api/events/{}/ticket-types", e["id"]);
    assert_eq!(
        app.post(
            &base,
            &token,
            json!({"name": "Late", "price": 0, "quantity": 1})
        )
        .await
        .code(),
        "INVALID_STATE"
    );
    let vip = format!("{base}/{}", e["ticketTypes"][0]["id"]);
    assert_eq!(
        app.patch(&vip, &token, json!({"price": 1})).await.code(),
        "INVALID_STATE"
    );
}

#[tokio::test]
async fn patching_ticket_types_replaces_the_list_by_name() {
    let app = TestApp::spawn().await;
    let token = app.organizer("alice");
    let e = app
        .create_event(
            &token,
            json!({"ticketTypes": [
                {"name": "VIP", "price": 100, "quantity": 10},
                {"name": "Standard", "price": 20, "quantity": 100},
                {"name": "Student", "price": 5, "quantity": 50}
            ]}),
        )
        .await;
    let id = e["id"].as_i64().unwrap();
    let uri = format!("/api/events/{id}");
    let vip_id = e["ticketTypes"][0]["id"].clone();
    let r = app
        .patch(
            &uri,
            &token,
            json!({"ticketTypes": [
                {"name": "vip", "price": 150, "quantity": 12},
                {"name": "Standard", "price": 20, "quantity": 100},
                {"name": "Press", "price": 0, "quantity": 5}
            ]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let names: Vec<&str> = r.data()["ticketTypes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["vip", "Standard", "Press"]);
    assert_eq!(
        r.data()["ticketTypes"][0]["id"],
        vip_id,
        "matched by name, kept its id"
    );
    assert_eq!(r.data()["ticketTypes"][0]["price"], 150.0);

    // A type with sold seats cannot disappear, and the whole PATCH is refused.
    insert_guest(&app, id, "a@example.com", "confirmed").await; // takes a VIP seat
    let r = app.patch(&uri, &token, json!({"title": "Changed", "ticketTypes": [{"name": "Press", "price": 0, "quantity": 5}]})).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "INVALID_STATE")
    );
    assert_eq!(
        app.get(&uri, &token).await.data()["title"],
        e["title"],
        "nothing half-written"
    );
    let r = app
        .patch(
            &uri,
            &token,
            json!({"ticketTypes": [{"name": "VIP", "price": 1, "quantity": 0}]}),
        )
        .await;
    assert_eq!(r.code(), "VALIDATION_ERROR");
}
