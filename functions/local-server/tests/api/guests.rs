use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn registering_confirms_issues_a_ticket_and_queues_its_jobs() {
    let app = TestApp::spawn().await;
    let token = app.organizer("alice");
    let e = app.published_event(&token, json!({})).await;
    let vip = &e["ticketTypes"][0]["id"];
    let r = app
        .register(
            &token,
            e["id"].as_i64().unwrap(),
            guest_body("John.Doe@Example.com", vip),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let (guest, ticket) = (&r.data()["guest"], &r.data()["ticket"]);
    assert_eq!(guest["status"], "confirmed");
    assert_eq!(guest["email"], "John.Doe@Example.com");
    assert_eq!(guest["phone"], "+33612345678");
    assert_eq!(guest["ticketTypeId"], *vip);
    assert_eq!(guest["ticketId"], ticket["id"]);
    assert_eq!(guest["eventId"], e["id"]);
    let code = ticket["ticketCode"].as_str().unwrap();
    let year = chrono::Datelike::year(&chrono::Utc::now());
    assert!(
        code.starts_with(&format!("TC-{year}-")) && code.len() >= 16,
        "{code}"
    );
    assert_eq!(ticket["status"], "active");
    assert_eq!(ticket["isValidated"], false);
    assert_eq!(
        ticket["qrCodeData"],
        Value::Null,
        "filled by the ticket-generation job"
    );
    assert_eq!(ticket["guest"]["id"], guest["id"]);
    assert_eq!(ticket["event"]["id"], e["id"]);
    assert_eq!(ticket["ticketType"]["name"], "VIP");

    let event = app.get(&format!("/api/events/{}", e["id"]), &token).await;
    assert_eq!(
        event.data()["stats"],
        json!({"registered": 1, "checkedIn": 0, "held": 0, "waiting": 0, "available": 499})
    );
    assert_eq!(event.data()["ticketTypes"][0]["sold"], 1);

    let jobs: Vec<(String, String, Value)> = app
        .sql()
        .await
        .query(
            "SELECT queue, job_type, payload FROM job_outbox ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        jobs,
        vec![
            (
                "email".into(),
                "registration_confirmation".into(),
                json!({"eventId": e["id"], "guestId": guest["id"]})
            ),
            (
                "ticket-generation".into(),
                "generate_ticket".into(),
                json!({"ticketId": ticket["id"]})
            ),
        ]
    );
}

#[tokio::test]
async fn registration_rules() {
    let app = TestApp::spawn().await;
    let token = app.organizer("alice");
    let e = app.published_event(&token, json!({})).await;
    let id = e["id"].as_i64().unwrap();
    let vip = e["ticketTypes"][0]["id"].clone();
    for (body, field) in [
        (
            json!({"firstName": "", "lastName": "D", "email": "a@b.co", "ticketTypeId": vip}),
            "firstName",
        ),
        (
            json!({"firstName": "J", "lastName": "x".repeat(101), "email": "a@b.co", "ticketTypeId": vip}),
            "lastName",
        ),
        (
            json!({"firstName": "J", "lastName": "D", "email": "not-an-email", "ticketTypeId": vip}),
            "email",
        ),
        (
            json!({"firstName": "J", "lastName": "D", "email": format!("{}@b.co", "a".repeat(250)), "ticketTypeId": vip}),
            "email",
        ),
        (
            json!({"firstName": "J", "lastName": "D", "email": "a@b.co", "phone": "0612345678", "ticketTypeId": vip}),
            "phone",
        ),
        (
            json!({"firstName": "J", "lastName": "D", "email": "a@b.co"}),
            "ticketTypeId",
        ),
        (
            json!({"firstName": "J", "lastName": "D", "email": "a@b.co", "ticketTypeId": 999999}),
            "ticketTypeId",
        ),
        (
            json!({"firstName": "J", "lastName": "D", "email": "a@b.co", "ticketTypeId": "1"}),
            "ticketTypeId",
        ),
        (
            json!({"firstName": "J", "lastName": "D", "email": "a@b.co", "ticketTypeId": vip, "status": "checked_in"}),
            "status",
        ),
        (
            json!({"lastName": "D", "email": "a@b.co", "ticketTypeId": vip}),
            "body",
        ),
    ] {
        let r = app.register(&token, id, body.clone()).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::BAD_REQUEST, "VALIDATION_ERROR"),
            "{body} → {}",
            r.body
        );
        assert!(
            field == "body" || r.fields().contains(&field.to_owned()),
            "{body}: {:?}",
            r.fields()
        );
    }
    // A ticket type of another event is not one of this event's.
    let other = app.published_event(&token, json!({})).await;
    let r = app
        .register(
            &token,
            id,
            guest_body("a@b.co", &other["ticketTypes"][0]["id"]),
        )
        .await;
    assert_eq!(r.fields(), vec!["ticketTypeId"]);
    // An event without ticket types takes no ticketTypeId.
    let plain = app
        .published_event(&token, json!({"ticketTypes": []}))
        .await;
    let pid = plain["id"].as_i64().unwrap();
    assert_eq!(
        app.register(&token, pid, guest_body("a@b.co", &json!(1)))
            .await
            .fields(),
        vec!["ticketTypeId"]
    );
    let ok = app
        .register(&token, pid, guest_body("a@b.co", &Value::Null))
        .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.body);
    assert_eq!(ok.data()["guest"]["ticketTypeId"], Value::Null);
    assert_eq!(ok.data()["ticket"]["ticketType"], Value::Null);
    assert_eq!(
        app.count("SELECT count(*) FROM guests").await,
        1,
        "nothing written by refused requests"
    );
}

#[tokio::test]
async fn registration_is_closed_unless_published_and_not_started() {
    let app = TestApp::spawn().await;
    let token = app.organizer("alice");
    let draft = app.create_event(&token, json!({})).await;
    let r = app
        .register(
            &token,
            draft["id"].as_i64().unwrap(),
            guest_body("a@b.co", &draft["ticketTypes"][0]["id"]),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "REGISTRATION_CLOSED")
    );

    for status in ["cancelled", "completed"] {
        let e = app.published_event(&token, json!({})).await;
        app.patch(
            &format!("/api/events/{}", e["id"]),
            &token,
            json!({"status": status}),
        )
        .await;
        let r = app
            .register(
                &token,
                e["id"].as_i64().unwrap(),
                guest_body("a@b.co", &e["ticketTypes"][0]["id"]),
            )
            .await;
        assert_eq!(r.code(), "REGISTRATION_CLOSED", "{status}");
    }
    let started = app.published_event(&token, json!({})).await;
    let sid = started["id"].as_i64().unwrap();
    app.sql()
        .await
        .execute(
            "UPDATE events SET event_date = now() - interval '1 second' WHERE id = $1",
            &[&sid],
        )
        .await
        .unwrap();
    assert_eq!(
        app.register(
            &token,
            sid,
            guest_body("a@b.co", &started["ticketTypes"][0]["id"])
        )
        .await
        .code(),
        "REGISTRATION_CLOSED"
    );
}

#[tokio::test]
async fn tenancy_and_roles() {
    let app = TestApp::spawn().await;
    let (alice, bob) = (app.organizer("alice"), app.organizer("bob"));
    let e = app.published_event(&alice, json!({})).await;
    let id = e["id"].as_i64().unwrap();
    let vip = e["ticketTypes"][0]["id"].clone();
    let g = app
        .register(&alice, id, guest_body("a@b.co", &vip))
        .await
        .data()["guest"]["id"]
        .as_i64()
        .unwrap();
    let base = format!("/api/events/{id}/guests");
    let one = format!("{base}/{g}");
    for (m, uri) in [
        (Method::GET, base.clone()),
        (Method::POST, base.clone()),
        (Method::GET, one.clone()),
        (Method::PATCH, one.clone()),
        (Method::DELETE, one.clone()),
        (Method::POST, format!("{one}/approve")),
        (Method::POST, format!("{one}/cancel")),
        (Method::POST, format!("{one}/resend-ticket")),
    ] {
        let body = matches!(m, Method::POST | Method::PATCH).then(|| guest_body("b@b.co", &vip));
        let r = app.call(m.clone(), &uri, Some(&bob), body.clone()).await;
        assert_eq!(r.code(), "NOT_FOUND", "bob {m} {uri}");
        let r = app
            .call(m.clone(), &uri, Some(&app.scanner("alice")), body)
            .await;
        assert_eq!(r.code(), "FORBIDDEN", "scanner {m} {uri}");
    }
    assert_eq!(app.get(&one, &app.admin()).await.status, StatusCode::OK);
    assert_eq!(
        app.get(&format!("{base}/999999"), &alice).await.code(),
        "NOT_FOUND"
    );
    // A guest of another event is not found through this one.
    let e2 = app.published_event(&alice, json!({})).await;
    assert_eq!(
        app.get(&format!("/api/events/{}/guests/{g}", e2["id"]), &alice)
            .await
            .code(),
        "NOT_FOUND"
    );
}

#[tokio::test]
async fn the_same_email_cannot_register_twice_but_may_after_cancelling() {
    let app = TestApp::spawn().await;
    let token = app.organizer("alice");
    let e = app.published_event(&token, json!({})).await;
    let id = e["id"].as_i64().unwrap();
    let vip = e["ticketTypes"][0]["id"].clone();
    let first = app
        .register(&token, id, guest_body("ada@example.com", &vip))
        .await;
    let r = app
        .register(&token, id, guest_body("ADA@Example.COM", &vip))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "DUPLICATE_GUEST")
    );
    // Another event is another registration.
    let e2 = app.published_event(&token, json!({})).await;
    assert_eq!(
        app.register(
            &token,
            e2["id"].as_i64().unwrap(),
            guest_body("ada@example.com", &e2["ticketTypes"][0]["id"])
        )
        .await
        .status,
        StatusCode::CREATED
    );

    let gid = first.data()["guest"]["id"].as_i64().unwrap();
    let c = app
        .post(
            &format!("/api/events/{id}/guests/{gid}/cancel"),
            &token,
            json!({}),
        )
        .await;
    assert_eq!(c.status, StatusCode::OK, "{}", c.body);
    assert_eq!(c.data()["status"], "cancelled");
    let again = app
        .register(&token, id, guest_body("ada@example.com", &vip))
        .await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM guests WHERE event_id = {id}"
        ))
        .await,
        2
    );
}

#[tokio::test]
async fn approval_holds_a_seat_then_issues_the_ticket() {
    let app = TestApp::spawn().await;
    let token = app.organizer("alice");
    let e = app
        .published_event(&token, json!({"requiresApproval": true}))
        .await;
    let id = e["id"].as_i64().unwrap();
    let r = app
        .register(
            &token,
            id,
            guest_body("p@example.com", &e["ticketTypes"][0]["id"]),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.data()["guest"]["status"], "pending");
    assert_eq!(r.data()["ticket"], Value::Null);
    assert_eq!(r.data()["guest"]["ticketId"], Value::Null);
    let gid = r.data()["guest"]["id"].as_i64().unwrap();
    let event = app.get(&format!("/api/events/{id}"), &token).await;
    assert_eq!(
        event.data()["stats"]["registered"],
        1,
        "a pending guest holds a seat"
    );
    assert_eq!(event.data()["ticketTypes"][0]["sold"], 1);
    assert_eq!(
        app.count("SELECT count(*) FROM job_outbox WHERE job_type = 'generate_ticket'")
            .await,
        0
    );
    let resend = app
        .post(
            &format!("/api/events/{id}/guests/{gid}/resend-ticket"),
            &token,
            json!({}),
        )
        .await;
    assert_eq!(resend.code(), "INVALID_STATE", "no ticket yet");

    let a = app
        .post(
            &format!("/api/events/{id}/guests/{gid}/approve"),
            &token,
            json!({}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.data()["guest"]["status"], "confirmed");
    assert!(a.data()["ticket"]["ticketCode"].is_string());
    assert_eq!(a.data()["guest"]["ticketId"], a.data()["ticket"]["id"]);
    assert_eq!(
        app.count("SELECT count(*) FROM job_outbox WHERE job_type = 'generate_ticket'")
            .await,
        1
    );
    let again = app
        .post(
            &format!("/api/events/{id}/guests/{gid}/approve"),
            &token,
            json!({}),
        )
        .await;
    assert_eq!(
        (again.status, again.code()),
        (StatusCode::CONFLICT, "INVALID_STATE")
    );
    let event = app.get(&format!("/api/events/{id}"), &token).await;
    assert_eq!(
        event.data()["stats"]["registered"],
        1,
        "approval does not take a second seat"
    );
}

#[tokio::test]
async fn cancelling_and_deleting_free_the_seat() {
    let app = TestApp::spawn().await;
    let token = app.organizer("alice");
    let e = app.published_event(&token, json!({"maxAttendees": 2, "ticketTypes": [{"name": "Only", "price": 0, "quantity": 2}]})).await;
    let id = e["id"].as_i64().unwrap();
    let tt = e["ticketTypes"][0]["id"].clone();
    let a = app
        .register(&token, id, guest_body("a@example.com", &tt))
        .await
        .data()["guest"]["id"]
        .as_i64()
        .unwrap();
    let b = app
        .register(&token, id, guest_body("b@example.com", &tt))
        .await
        .data()["guest"]["id"]
        .as_i64()
        .unwrap();
    assert_eq!(
        app.register(&token, id, guest_body("c@example.com", &tt))
            .await
            .code(),
        "EVENT_FULL"
    );

    let r = app
        .post(
            &format!("/api/events/{id}/guests/{a}/cancel"),
            &token,
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let ticket_status: String = app
        .sql()
        .await
        .query_one("SELECT status FROM tickets WHERE guest_id = $1", &[&a])
        .await
        .unwrap()
        .get(0);
    assert_eq!(ticket_status, "cancelled");
    assert_eq!(
        app.count("SELECT count(*) FROM job_outbox WHERE job_type = 'guest_cancelled'")
            .await,
        1
    );
    assert_eq!(
        app.post(
            &format!("/api/events/{id}/guests/{a}/cancel"),
            &token,
            json!({})
        )
        .await
        .code(),
        "INVALID_STATE"
    );
    assert_eq!(
        app.register(&token, id, guest_body("c@example.com", &tt))
            .await
            .status,
        StatusCode::CREATED,
        "the seat was freed"
    );
    assert_eq!(
        app.register(&token, id, guest_body("d@example.com", &tt))
            .await
            .code(),
        "EVENT_FULL"
    );

    let r = app
        .delete(&format!("/api/events/{id}/guests/{b}"), &token)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get(&format!("/api/events/{id}/guests/{b}"), &token)
            .await
            .code(),
        "NOT_FOUND"
    );
    assert_eq!(
        app.register(&token, id, guest_body("d@example.com", &tt))
            .await
            .status,
        StatusCode::CREATED
    );
    // Deleting a cancelled guest frees nothing more.
    assert_eq!(
        app.delete(&format!("/api/events/{id}/guests/{a}"), &token)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let event = app.get(&format!("/api/events/{id}"), &token).await;
    assert_eq!(event.data()["stats"]["registered"], 2);
    assert_eq!(event.data()["ticketTypes"][0]["sold"], 2);

    // Checked-in guests stay.
    let c: i64 = app
        .sql()
        .await
        .query_one("SELECT id FROM guests WHERE email = 'c@example.com'", &[])
        .await
        .unwrap()
        .get(0);
    app.sql()
        .await
        .execute(
            "UPDATE tickets SET validated_at = now(), validated_by = 'door', checked_in_at = now() WHERE guest_id = $1",
            &[&c],
        )
        .await
        .unwrap();
    assert_eq!(
        app.post(
            &format!("/api/events/{id}/guests/{c}/cancel"),
            &token,
            json!({})
        )
        .await
        .code(),
        "INVALID_STATE"
    );
    assert_eq!(
        app.delete(&format!("/api/events/{id}/guests/{c}"), &token)
            .await
            .code(),
        "INVALID_STATE"
    );
    assert_eq!(
        app.delete(&format!("/api/events/{id}"), &token)
            .await
            .code(),
        "INVALID_STATE",
        "the event had guests"
    );
}

#[tokio::test]
async fn listing_guests_filters_and_paginates() {
    let app = TestApp::spawn().await;
    let token = app.organizer("alice");
    let e = app
        .published_event(&token, json!({"ticketTypes": [{"name": "A", "price": 1, "quantity": 10}, {"name": "B", "price": 2, "quantity": 10}]}))
        .await;
    let id = e["id"].as_i64().unwrap();
    let (a, b) = (
        e["ticketTypes"][0]["id"].clone(),
        e["ticketTypes"][1]["id"].clone(),
    );
    for (first, last, email, tt) in [
        ("Ada", "Lovelace", "ada@math.org", &a),
        ("Alan", "Turing", "alan@bletchley.uk", &a),
        ("Grace", "Hopper", "grace@navy.mil", &b),
        ("Linus", "Torvalds", "linus@kernel.org", &b),
        ("Katherine", "Johnson", "kj@nasa.gov", &a),
    ] {
        let body =
            json!({"firstName": first, "lastName": last, "email": email, "ticketTypeId": tt});
        assert_eq!(
            app.register(&token, id, body).await.status,
            StatusCode::CREATED
        );
    }
    let grace: i64 = app
        .sql()
        .await
        .query_one("SELECT id FROM guests WHERE first_name = 'Grace'", &[])
        .await
        .unwrap()
        .get(0);
    app.post(
        &format!("/api/events/{id}/guests/{grace}/cancel"),
        &token,
        json!({}),
    )
    .await;

    let names = |r: &TestResponse| -> Vec<String> {
        r.data()["guests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["firstName"].as_str().unwrap().to_owned())
            .collect()
    };
    let q = |query: &str| format!("/api/events/{id}/guests?{query}");
    let all = app.get(&q(""), &token).await;
    assert_eq!(names(&all), ["Ada", "Alan", "Grace", "Linus", "Katherine"]);
    assert_eq!(
        all.data()["pagination"],
        json!({"page": 1, "limit": 20, "total": 5, "totalPages": 1})
    );
    assert_eq!(names(&app.get(&q("search=TUR"), &token).await), ["Alan"]);
    assert_eq!(
        names(&app.get(&q("search=.org"), &token).await),
        ["Ada", "Linus"]
    );
    assert_eq!(
        names(&app.get(&q("search=ada%20lovelace"), &token).await),
        ["Ada"]
    );
    assert_eq!(
        names(&app.get(&q("status=cancelled"), &token).await),
        ["Grace"]
    );
    assert_eq!(
        names(
            &app.get(&q(&format!("status=confirmed&ticketTypeId={b}")), &token)
                .await
        ),
        ["Linus"]
    );
    let page = app.get(&q("limit=2&page=3"), &token).await;
    assert_eq!(names(&page), ["Katherine"]);
    assert_eq!(
        page.data()["pagination"],
        json!({"page": 3, "limit": 2, "total": 5, "totalPages": 3})
    );
    for bad in [
        "status=gone",
        "limit=0",
        "page=x",
        "ticketTypeId=abc",
        "sort=name",
    ] {
        assert_eq!(
            app.get(&q(bad), &token).await.code(),
            "VALIDATION_ERROR",
            "{bad}"
        );
    }
}

#[tokio::test]
async fn patching_a_guest() {
    let app = TestApp::spawn().await;
    let token = app.organizer("alice");
    let e = app
        .published_event(&token, json!({"ticketTypes": [{"name": "A", "price": 1, "quantity": 5}, {"name": "B", "price": 2, "quantity": 1}]}))
        .await;
    let id = e["id"].as_i64().unwrap();
    let (a, b) = (
        e["ticketTypes"][0]["id"].clone(),
        e["ticketTypes"][1]["id"].clone(),
    );
    let g1 = app
        .register(&token, id, guest_body("one@example.com", &a))
        .await
        .data()["guest"]["id"]
        .as_i64()
        .unwrap();
    let g2 = app
        .register(&token, id, guest_body("two@example.com", &a))
        .await
        .data()["guest"]["id"]
        .as_i64()
        .unwrap();
    let uri = format!("/api/events/{id}/guests/{g1}");

    let r = app
        .patch(&uri, &token, json!({"firstName": "Uno", "phone": null}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        (r.data()["firstName"].as_str(), r.data()["phone"].clone()),
        (Some("Uno"), Value::Null)
    );
    assert_eq!(r.data()["lastName"], "Doe");
    assert_eq!(
        app.patch(&uri, &token, json!({"email": "TWO@example.com"}))
            .await
            .code(),
        "DUPLICATE_GUEST"
    );
    assert_eq!(
        app.patch(&uri, &token, json!({"email": "bad"}))
            .await
            .code(),
        "VALIDATION_ERROR"
    );
    assert_eq!(
        app.patch(&uri, &token, json!({"phone": "12"})).await.code(),
        "VALIDATION_ERROR"
    );
    assert_eq!(
        app.patch(&uri, &token, json!({"status": "confirmed"}))
            .await
            .code(),
        "VALIDATION_ERROR"
    );

    // Moving to another ticket type moves the seat.
    let r = app.patch(&uri, &token, json!({"ticketTypeId": b})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.data()["ticketTypeId"], b);
    let sold = |i: usize| {
        let app = &app;
        let token = &token;
        async move {
            app.get(&format!("/api/events/{id}"), token).await.data()["ticketTypes"][i]["sold"]
                .as_i64()
                .unwrap()
        }
    };
    assert_eq!((sold(0).await, sold(1).await), (1, 1));
    let r = app
        .patch(
            &format!("/api/events/{id}/guests/{g2}"),
            &token,
            json!({"ticketTypeId": b}),
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "SOLD_OUT"));
    assert_eq!((sold(0).await, sold(1).await), (1, 1), "nothing half-moved");
    let tt_of_ticket: Option<i64> = app
        .sql()
        .await
        .query_one(
            "SELECT ticket_type_id FROM tickets WHERE guest_id = $1",
            &[&g1],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tt_of_ticket, b.as_i64());
    assert_eq!(
        app.patch(&uri, &token, json!({"ticketTypeId": 999999}))
            .await
            .code(),
        "VALIDATION_ERROR"
    );
}

#[tokio::test]
async fn resending_a_ticket_queues_an_email() {
    let app = TestApp::spawn().await;
    let token = app.organizer("alice");
    let (id, gid) = app.registered_guest(&token, "r@example.com").await;
    let r = app
        .post(
            &format!("/api/events/{id}/guests/{gid}/resend-ticket"),
            &token,
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let job_id = r.data()["jobId"].as_str().unwrap().to_owned();
    let row = app
        .sql()
        .await
        .query_one(
            "SELECT job_type, payload FROM job_outbox WHERE job_id::text = $1",
            &[&job_id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "ticket_resend");
    assert_eq!(
        row.get::<_, Value>(1)["ticketId"],
        app.count(&format!("SELECT id FROM tickets WHERE guest_id = {gid}"))
            .await
    );
}
