use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn creating_the_seed_event_returns_a_draft() {
    let app = TestApp::spawn().await;
    let token = app.organizer("org-1");
    let r = app.post("/api/events", &token, event_body()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["success"], true);
    let e = r.data();
    assert_eq!(e["status"], "draft");
    assert_eq!(e["title"], "Tech Conference 2027");
    assert_eq!(e["organizerId"], "org-1");
    assert_eq!(e["maxAttendees"], 500);
    assert_eq!(e["requiresApproval"], false);
    assert_eq!(
        e["stats"],
        json!({"registered": 0, "checkedIn": 0, "held": 0, "waiting": 0, "available": 500})
    );
    let tt = &e["ticketTypes"][0];
    assert_eq!(tt["name"], "VIP");
    assert_eq!(tt["price"], 299.99);
    assert_eq!(tt["quantity"], 50);
    assert_eq!(tt["sold"], 0);
    assert_eq!(tt["available"], 50);
    assert_eq!(tt["eventId"], e["id"]);
    assert!(e["eventDate"].as_str().unwrap().ends_with('Z'));
    assert!(e["createdAt"].is_string() && e["updatedAt"].is_string());

    let id = e["id"].as_i64().unwrap();
    let again = app.get(&format!("/api/events/{id}"), &token).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.data(), e);
}

#[tokio::test]
async fn every_field_rule_is_a_validation_error_naming_the_field() {
    let app = TestApp::spawn().await;
    let token = app.organizer("org-1");
    let long = |n: usize| "x".repeat(n);
    let cases: Vec<(Value, &str)> = vec![
        (json!({"title": "ab"}), "title"),
        (json!({"title": long(256)}), "title"),
        (json!({"title": "   "}), "title"),
        (json!({"title": null}), "title"),
        (json!({"title": 42}), "title"),
        (json!({"description": long(10_001)}), "description"),
        (json!({"eventDate": "2001-01-01T00:00:00Z"}), "eventDate"),
        (json!({"eventDate": "2099-01-01T00:00:00"}), "eventDate"),
        (json!({"eventDate": "next friday"}), "eventDate"),
        (json!({"eventDate": null}), "eventDate"),
        (json!({"location": ""}), "location"),
        (json!({"location": long(256)}), "location"),
        (json!({"maxAttendees": 0}), "maxAttendees"),
        (json!({"maxAttendees": 100_001}), "maxAttendees"),
        (json!({"maxAttendees": 1.5}), "maxAttendees"),
        (json!({"maxAttendees": "500"}), "maxAttendees"),
        (json!({"maxAttendees": 1e300}), "maxAttendees"),
        (json!({"requiresApproval": "yes"}), "requiresApproval"),
        (json!({"ticketTypes": {"name": "VIP"}}), "ticketTypes"),
        (
            json!({"ticketTypes": [{"name": "", "price": 1, "quantity": 1}]}),
            "ticketTypes[0].name",
        ),
        (
            json!({"ticketTypes": [{"name": long(101), "price": 1, "quantity": 1}]}),
            "ticketTypes[0].name",
        ),
        (
            json!({"ticketTypes": [{"name": "A", "price": -1, "quantity": 1}]}),
            "ticketTypes[0].price",
        ),
        (
            json!({"ticketTypes": [{"name": "A", "price": 1_000_000.01, "quantity": 1}]}),
            "ticketTypes[0].price",
        ),
        (
            json!({"ticketTypes": [{"name": "A", "price": 9.999, "quantity": 1}]}),
            "ticketTypes[0].price",
        ),
        (
            json!({"ticketTypes": [{"name": "A", "price": 1, "quantity": 0}]}),
            "ticketTypes[0].quantity",
        ),
        (
            json!({"ticketTypes": [{"name": "A", "price": 1, "quantity": 501}]}),
            "ticketTypes[0].quantity",
        ),
        (
            json!({"ticketTypes": [{"name": "A", "price": 1}]}),
            "ticketTypes[0]",
        ),
        (
            json!({"ticketTypes": [{"name": "A", "price": 1, "quantity": 1, "color": "red"}]}),
            "ticketTypes[0]",
        ),
        (
            json!({"ticketTypes": [{"name": "Vip", "price": 1, "quantity": 1}, {"name": "VIP", "price": 1, "quantity": 1}]}),
            "ticketTypes[1].name",
        ),
        (json!({"status": "published"}), "body"),
        (json!({"organizerId": "someone-else"}), "body"),
    ];
    for (overrides, field) in cases {
        let mut body = event_body();
        let explicit_null = overrides.as_object().unwrap().values().any(Value::is_null);
        merge(&mut body, overrides.clone());
        if explicit_null {
            let key = overrides
                .as_object()
                .unwrap()
                .keys()
                .next()
                .unwrap()
                .clone();
            body[key] = Value::Null;
        }
        let r = app.post("/api/events", &token, body).await;
        assert_eq!(
            r.status,
            StatusCode::BAD_REQUEST,
            "{overrides} → {}",
            r.body
        );
        assert_eq!(r.code(), "VALIDATION_ERROR", "{overrides}");
        let fields = r.fields();
        assert!(
            fields
                .iter()
                .any(|f| f == field || (field == "body" && !f.is_empty()) || f.starts_with(field)),
            "{overrides}: expected field {field}, got {fields:?}"
        );
    }
    let ticket_types: Vec<Value> = (0..51)
        .map(|i| json!({"name": format!("T{i}"), "price": 0, "quantity": 1}))
        .collect();
    let mut body = event_body();
    body["ticketTypes"] = Value::Array(ticket_types);
    let r = app.post("/api/events", &token, body).await;
    assert_eq!(r.code(), "VALIDATION_ERROR");
    assert_eq!(r.fields(), vec!["ticketTypes"]);

    let count: i64 = app
        .sql()
        .await
        .query_one("SELECT count(*) FROM events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 0, "no invalid event was written");
}

#[tokio::test]
async fn limits_of_the_field_rules_are_accepted() {
    let app = TestApp::spawn().await;
    let token = app.organizer("org-1");
    let body = json!({
        "title": "abc", "eventDate": "2099-06-01T10:00:00+02:00", "location": "x",
        "maxAttendees": 100_000, "description": "d".repeat(10_000), "requiresApproval": true,
        "ticketTypes": [{"name": "F", "price": 0, "quantity": 100_000}, {"name": "M", "price": 1_000_000, "quantity": 1}]
    });
    let r = app.post("/api/events", &token, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(
        r.data()["eventDate"],
        "2099-06-01T08:00:00Z",
        "stored and returned in UTC"
    );
    assert_eq!(r.data()["requiresApproval"], true);
    let r = app.post("/api/events", &token, json!({"title": "No types", "eventDate": future(1), "location": "L", "maxAttendees": 1})).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.data()["ticketTypes"], json!([]));
    assert_eq!(r.data()["description"], Value::Null);
}

#[tokio::test]
async fn events_of_other_organizers_are_not_found_and_admins_see_all() {
    let app = TestApp::spawn().await;
    let (alice, bob, admin) = (app.organizer("alice"), app.organizer("bob"), app.admin());
    let e = app.create_event(&alice, json!({})).await;
    let uri = format!("/api/events/{}", e["id"]);
    assert_eq!(app.get(&uri, &alice).await.status, StatusCode::OK);
    for r in [
        app.get(&uri, &bob).await,
        app.patch(&uri, &bob, json!({"title": "Hijacked"})).await,
        app.delete(&uri, &bob).await,
        app.post(
            &format!("{uri}/ticket-types"),
            &bob,
            json!({"name": "X", "price": 1, "quantity": 1}),
        )
        .await,
    ] {
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
        assert_eq!(r.code(), "NOT_FOUND");
    }
    assert_eq!(app.get(&uri, &admin).await.status, StatusCode::OK);
    let r = app
        .patch(&uri, &admin, json!({"title": "Edited by admin"}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.data()["organizerId"],
        "alice",
        "the owner does not change"
    );
    assert_eq!(
        app.get("/api/events/999999", &alice).await.code(),
        "NOT_FOUND"
    );
    assert_eq!(app.get("/api/events/-1", &alice).await.code(), "NOT_FOUND");
    let bad = app.get("/api/events/abc", &alice).await;
    assert_eq!(
        (bad.status, bad.code()),
        (StatusCode::BAD_REQUEST, "VALIDATION_ERROR")
    );
    let huge = app.get("/api/events/99999999999999999999999", &alice).await;
    assert_eq!(huge.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn scanners_may_not_use_the_events_endpoints() {
    let app = TestApp::spawn().await;
    let alice = app.organizer("alice");
    let e = app.create_event(&alice, json!({})).await;
    let scanner = app.scanner("alice");
    let uri = format!("/api/events/{}", e["id"]);
    for r in [
        app.get("/api/events", &scanner).await,
        app.post("/api/events", &scanner, event_body()).await,
        app.get(&uri, &scanner).await,
        app.patch(&uri, &scanner, json!({"title": "Nope!"})).await,
        app.delete(&uri, &scanner).await,
        app.post(
            &format!("{uri}/ticket-types"),
            &scanner,
            json!({"name": "X", "price": 1, "quantity": 1}),
        )
        .await,
        app.patch(
            &format!("{uri}/ticket-types/1"),
            &scanner,
            json!({"price": 2}),
        )
        .await,
        app.delete(&format!("{uri}/ticket-types/1"), &scanner).await,
    ] {
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::FORBIDDEN, "FORBIDDEN"),
            "{}",
            r.body
        );
    }
}

async fn seed_list(app: &TestApp, token: &str) -> Vec<i64> {
    let specs = [
        ("Rust Meetup", "Lyon", 10, None),
        ("Tech Conference", "Paris", 20, Some("published")),
        ("Jazz Night", "Paris, Le Marais", 5, Some("published")),
        ("Board games", "Techno Park", 40, Some("cancelled")),
        ("100% Cotton fair", "Lille", 50, None),
    ];
    let mut ids = Vec::new();
    for (title, location, days, status) in specs {
        let e = app
            .create_event(
                token,
                json!({"title": title, "location": location, "eventDate": future(days)}),
            )
            .await;
        let id = e["id"].as_i64().unwrap();
        if let Some(s) = status {
            let r = app
                .patch(&format!("/api/events/{id}"), token, json!({"status": s}))
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        }
        ids.push(id);
    }
    ids
}

fn titles(r: &crate::helpers::TestResponse) -> Vec<String> {
    r.data()["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["title"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn listing_filters_searches_sorts_and_paginates() {
    let app = TestApp::spawn().await;
    let token = app.organizer("alice");
    let ids = seed_list(&app, &token).await;
    // A started event: move one into the past behind the API's back.
    app.sql()
        .await
        .execute(
            "UPDATE events SET event_date = now() - interval '1 hour' WHERE id = $1",
            &[&ids[0]],
        )
        .await
        .unwrap();
    app.create_event(&app.organizer("bob"), json!({"title": "Bob's tech party"}))
        .await;

    let r = app.get("/api/events", &token).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        titles(&r),
        [
            "Rust Meetup",
            "Jazz Night",
            "Tech Conference",
            "Board games",
            "100% Cotton fair"
        ]
    );
    assert_eq!(
        r.data()["pagination"],
        json!({"page": 1, "limit": 20, "total": 5, "totalPages": 1})
    );

    let q = |query: &str| format!("/api/events?{query}");
    assert_eq!(
        titles(&app.get(&q("search=TECH"), &token).await),
        ["Tech Conference", "Board games"]
    );
    assert_eq!(
        titles(&app.get(&q("search=paris"), &token).await),
        ["Jazz Night", "Tech Conference"]
    );
    assert_eq!(
        titles(&app.get(&q("search=100%25"), &token).await),
        ["100% Cotton fair"]
    );
    assert!(
        titles(&app.get(&q("search=%25%25"), &token).await).is_empty(),
        "% is literal, not a wildcard"
    );
    assert!(
        titles(&app.get(&q("search=_"), &token).await).is_empty(),
        "_ is literal, not a wildcard"
    );
    assert_eq!(
        titles(&app.get(&q("status=published"), &token).await),
        ["Jazz Night", "Tech Conference"]
    );
    assert_eq!(
        titles(&app.get(&q("status=upcoming"), &token).await),
        ["Jazz Night", "Tech Conference"]
    );
    assert_eq!(
        titles(&app.get(&q("status=past"), &token).await),
        ["Rust Meetup"]
    );
    assert_eq!(
        titles(&app.get(&q("status=cancelled"), &token).await),
        ["Board games"]
    );
    assert_eq!(
        titles(&app.get(&q("status=draft"), &token).await),
        ["Rust Meetup", "100% Cotton fair"]
    );
    assert!(titles(&app.get(&q("status=completed"), &token).await).is_empty());
    assert_eq!(
        titles(&app.get(&q("status=published&search=jazz"), &token).await),
        ["Jazz Night"]
    );
    assert_eq!(
        titles(&app.get(&q("sort=-eventDate"), &token).await),
        [
            "100% Cotton fair",
            "Board games",
            "Tech Conference",
            "Jazz Night",
            "Rust Meetup"
        ]
    );
    assert_eq!(
        titles(&app.get(&q("sort=title"), &token).await),
        [
            "100% Cotton fair",
            "Board games",
            "Jazz Night",
            "Rust Meetup",
            "Tech Conference"
        ]
    );
    assert_eq!(
        titles(&app.get(&q("sort=createdAt"), &token).await),
        [
            "Rust Meetup",
            "Tech Conference",
            "Jazz Night",
            "Board games",
            "100% Cotton fair"
        ]
    );
    assert_eq!(
        titles(&app.get(&q("sort=-createdAt"), &token).await),
        [
            "100% Cotton fair",
            "Board games",
            "Jazz Night",
            "Tech Conference",
            "Rust Meetup"
        ]
    );

    // Pagination edges.
    let p = app.get(&q("limit=2&page=2&sort=title"), &token).await;
    assert_eq!(titles(&p), ["Jazz Night", "Rust Meetup"]);
    assert_eq!(
        p.data()["pagination"],
        json!({"page": 2, "limit": 2, "total": 5, "totalPages": 3})
    );
    let last = app.get(&q("limit=2&page=3&sort=title"), &token).await;
    assert_eq!(titles(&last), ["Tech Conference"]);
    let beyond = app.get(&q("limit=2&page=4"), &token).await;
    assert_eq!(beyond.status, StatusCode::OK);
    assert!(titles(&beyond).is_empty());
    assert_eq!(beyond.data()["pagination"]["total"], 5);
    assert_eq!(
        app.get(&q("limit=1"), &token).await.data()["pagination"]["totalPages"],
        5
    );
    assert_eq!(
        app.get(&q("limit=100"), &token).await.status,
        StatusCode::OK
    );
    let empty = app.get("/api/events", &app.organizer("nobody")).await;
    assert_eq!(
        empty.data()["pagination"],
        json!({"page": 1, "limit": 20, "total": 0, "totalPages": 0})
    );

    // Admins see every organizer's events.
    assert_eq!(
        app.get("/api/events", &app.admin()).await.data()["pagination"]["total"],
        6
    );
    assert_eq!(
        titles(&app.get(&q("search=party"), &token).await),
        Vec::<String>::new(),
        "bob's event stays hidden"
    );
}

#[tokio::test]
async fn bad_query_parameters_are_validation_errors() {
    let app = TestApp::spawn().await;
    let token = app.organizer("alice");
    for (query, field) in [
        ("page=0", "page"),
        ("page=-1", "page"),
        ("page=abc", "page"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=1.5", "limit"),
        ("status=upcomingx", "status"),
        ("sort=location", "sort"),
        ("sort=-title", "sort"),
        ("search=", "search"),
        ("limit=99999999999999999999", "limit"),
        ("colour=red", "colour"),
    ] {
        let r = app.get(&format!("/api/events?{query}"), &token).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::BAD_REQUEST, "VALIDATION_ERROR"),
            "{query}: {}",
            r.body
        );
        assert!(
            r.fields().iter().any(|f| f == field),
            "{query}: {:?}",
            r.fields()
        );
    }
    let long = format!("/api/events?search={}", "a".repeat(101));
    assert_eq!(app.get(&long, &token).await.code(), "VALIDATION_ERROR");
}

#[tokio::test]
async fn patch_changes_only_the_given_fields() {
    let app = TestApp::spawn().await;
    let token = app.organizer("alice");
    let e = app.create_event(&token, json!({})).await;
    let uri = format!("/api/events/{}", e["id"]);
    let r = app
        .patch(
            &uri,
            &token,
            json!({"title": "Renamed", "maxAttendees": 50, "requiresApproval": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let u = r.data();
    assert_eq!(u["title"], "Renamed");
    assert_eq!(u["maxAttendees"], 50);
    assert_eq!(u["requiresApproval"], true);
    assert_eq!(u["location"], e["location"]);
    assert_eq!(u["description"], e["description"]);
    assert_eq!(u["stats"]["available"], 50);
    assert!(u["updatedAt"].as_str() >= e["updatedAt"].as_str());

    let cleared = app.patch(&uri, &token, json!({"description": null})).await;
    assert_eq!(cleared.data()["description"], Value::Null);
    let unchanged = app.patch(&uri, &token, json!({})).await;
    assert_eq!(unchanged.status, StatusCode::OK);
    assert_eq!(unchanged.data()["title"], "Renamed");

    for (body, field) in [
        (json!({"title": "x"}), "title"),
        (json!({"eventDate": "2000-01-01T00:00:00Z"}), "eventDate"),
        (json!({"maxAttendees": 0}), "maxAttendees"),
        (json!({"status": "archived"}), "status"),
        (json!({"organizerId": "bob"}), "body"),
        (json!({"id": 5}), "body"),
    ] {
        let r = app.patch(&uri, &token, body.clone()).await;
        assert_eq!(r.code(), "VALIDATION_ERROR", "{body}");
        assert!(
            !r.fields().is_empty() && (field == "body" || r.fields().contains(&field.to_owned())),
            "{body}: {:?}",
            r.fields()
        );
    }
}

#[tokio::test]
async fn status_follows_the_lifecycle() {
    let app = TestApp::spawn().await;
    let token = app.organizer("alice");
    let status = |e: &Value| e["status"].as_str().unwrap().to_owned();
    let mk = || async {
        app.create_event(&token, json!({})).await["id"]
            .as_i64()
            .unwrap()
    };
    let set = |id: i64, s: &'static str| {
        let (app, token) = (&app, &token);
        async move {
            app.patch(&format!("/api/events/{id}"), token, json!({"status": s}))
                .await
        }
    };

    let a = mk().await;
    assert_eq!(
        set(a, "completed").await.code(),
        "INVALID_STATE",
        "draft → completed"
    );
    assert_eq!(status(set(a, "published").await.data()), "published");
    assert_eq!(
        set(a, "draft").await.code(),
        "INVALID_STATE",
        "published → draft"
    );
    assert_eq!(
        status(set(a, "published").await.data()),
        "published",
        "same status is a no-op"
    );
    assert_eq!(status(set(a, "completed").await.data()), "completed");
    for s in ["draft", "published", "cancelled", "completed"] {
        let r = set(a, s).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::CONFLICT, "INVALID_STATE"),
            "completed → {s}"
        );
    }
    assert_eq!(
        app.patch(
            &format!("/api/events/{a}"),
            &token,
            json!({"title": "Too late"})
        )
        .await
        .code(),
        "INVALID_STATE"
    );

    let b = mk().await;
    assert_eq!(
        status(set(b, "cancelled").await.data()),
        "cancelled",
        "draft → cancelled"
    );
    assert_eq!(
        set(b, "published").await.code(),
        "INVALID_STATE",
        "cancelled is final"
    );

    let c = mk().await;
    set(c, "published").await;
    assert_eq!(
        status(set(c, "cancelled").await.data()),
        "cancelled",
        "published → cancelled"
    );

    // An event that has started cannot be published.
    let d = mk().await;
    app.sql()
        .await
        .execute(
            "UPDATE events SET event_date = now() - interval '1 minute' WHERE id = $1",
            &[&d],
        )
        .await
        .unwrap();
    assert_eq!(set(d, "published").await.code(), "INVALID_STATE");
}

#[tokio::test]
async fn max_attendees_cannot_drop_below_registered() {
    let app = TestApp::spawn().await;
    let token = app.organizer("alice");
    let id = app.create_event(&token, json!({"maxAttendees": 100})).await["id"]
        .as_i64()
        .unwrap();
    app.sql()
        .await
        .execute(
            "SELECT seat_shards_set(id, NULL, max_attendees, 30) FROM events WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    let uri = format!("/api/events/{id}");
    let r = app.patch(&uri, &token, json!({"maxAttendees": 29})).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "INVALID_STATE")
    );
    let r = app.patch(&uri, &token, json!({"maxAttendees": 30})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.data()["stats"],
        json!({"registered": 30, "checkedIn": 0, "held": 0, "waiting": 0, "available": 0})
    );
}

#[tokio::test]
async fn delete_only_while_no_guest_ever_registered() {
    let app = TestApp::spawn().await;
    let token = app.organizer("alice");
    let id = app.create_event(&token, json!({})).await["id"]
        .as_i64()
        .unwrap();
    let uri = format!("/api/events/{id}");
    let r = app.delete(&uri, &token).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.body, Value::Null);
    assert_eq!(app.get(&uri, &token).await.code(), "NOT_FOUND");
    assert_eq!(app.delete(&uri, &token).await.code(), "NOT_FOUND");
    let types: i64 = app
        .sql()
        .await
        .query_one("SELECT count(*) FROM ticket_types", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(types, 0, "ticket types go with their event");

    let id = app.create_event(&token, json!({})).await["id"]
        .as_i64()
        .unwrap();
    insert_guest(&app, id, "guest@example.com", "cancelled").await;
    let r = app.delete(&format!("/api/events/{id}"), &token).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "INVALID_STATE"),
        "a cancelled guest was registered once"
    );

    // A guest registered through the API, then deleted: no guest row is left, but the
    // event had one.
    let (id, guest) = app.registered_guest(&token, "gone@example.com").await;
    let r = app
        .delete(&format!("/api/events/{id}/guests/{guest}"), &token)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let r = app.delete(&format!("/api/events/{id}"), &token).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "INVALID_STATE"),
        "a deleted guest was registered once"
    );
}

/// Arranges a guest row directly (the guests API arrives with its own issue).
pub async fn insert_guest(app: &TestApp, event_id: i64, email: &str, status: &str) -> i64 {
    let db = app.sql().await;
    let tt: Option<i64> = db
        .query_opt(
            "SELECT id FROM ticket_types WHERE event_id = $1 ORDER BY id LIMIT 1",
            &[&event_id],
        )
        .await
        .unwrap()
        .map(|r| r.get(0));
    let held = status != "cancelled";
    let id: i64 = db
        .query_one(
            "INSERT INTO guests (event_id, ticket_type_id, first_name, last_name, email, status)
             VALUES ($1, $2, 'Ada', 'Lovelace', $3, $4) RETURNING id",
            &[&event_id, &tt, &email, &status],
        )
        .await
        .unwrap()
        .get(0);
    if held {
        let took: bool = db
            .query_one(
                "SELECT seat_shards_add($1, NULL, 1, $3) AND ($2::bigint IS NULL OR seat_shards_add($1, $2, 1, $3))",
                &[&event_id, &tt, &id],
            )
            .await
            .unwrap()
            .get(0);
        assert!(took, "the fixture guest found no seat");
    }
    let code = format!(
        "TC-2027-{}",
        uuid::Uuid::new_v4().simple().to_string()[..10].to_uppercase()
    );
    db.execute(
        "INSERT INTO tickets (guest_id, event_id, ticket_type_id, ticket_code, status) VALUES ($1, $2, $3, $4, $5)",
        &[&id, &event_id, &tt, &code, &(if held { "active" } else { "cancelled" })],
    )
    .await
    .unwrap();
    id
}

#[tokio::test]
async fn cancelling_an_event_cancels_tickets_and_queues_one_email_per_guest() {
    let app = TestApp::spawn().await;
    let token = app.organizer("alice");
    let id = app.create_event(&token, json!({})).await["id"]
        .as_i64()
        .unwrap();
    let uri = format!("/api/events/{id}");
    app.patch(&uri, &token, json!({"status": "published"}))
        .await;
    let mut guests = Vec::new();
    for (i, status) in [
        "confirmed",
        "confirmed",
        "pending",
        "checked_in",
        "cancelled",
    ]
    .iter()
    .enumerate()
    {
        guests.push(insert_guest(&app, id, &format!("g{i}@example.com"), status).await);
    }
    let r = app
        .patch(&uri, &token, json!({"status": "cancelled"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.data()["status"], "cancelled");
    assert_eq!(
        r.data()["stats"],
        json!({"registered": 1, "checkedIn": 1, "held": 0, "waiting": 0, "available": 499})
    );
    assert_eq!(
        r.data()["ticketTypes"][0]["sold"],
        1,
        "only the checked-in guest still holds a seat"
    );

    let db = app.sql().await;
    let active: i64 = db
        .query_one("SELECT count(*) FROM tickets WHERE status = 'active'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(active, 0);
    let statuses: Vec<String> = db
        .query(
            &format!(
                "SELECT {} FROM guests g LEFT JOIN tickets t ON t.guest_id = g.id ORDER BY g.id",
                domain::guests::model::GUEST_STATUS
            ),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        statuses,
        [
            "cancelled",
            "cancelled",
            "cancelled",
            "checked_in",
            "cancelled"
        ]
    );
    let jobs = db
        .query(
            "SELECT queue, job_type, payload FROM job_outbox ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    let emailed: Vec<i64> = jobs
        .iter()
        .map(|j| j.get::<_, Value>(2)["guestId"].as_i64().unwrap())
        .collect();
    assert_eq!(
        emailed,
        guests[..4].to_vec(),
        "every guest who held a place, nobody twice"
    );
    assert!(jobs
        .iter()
        .all(|j| j.get::<_, String>(0) == "email" && j.get::<_, String>(1) == "event_cancelled"));
}

/// `pagination.total` of `GET /api/events?{query}` for `token`, next to the same count done
/// directly in SQL (`tenant` = None for an admin: every organizer).
async fn total_and_truth(
    app: &TestApp,
    token: &str,
    tenant: Option<&str>,
    query: &str,
) -> (i64, i64) {
    let r = app
        .get(&format!("/api/events?limit=1&{query}"), token)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.body);
    let total = r.data()["pagination"]["total"].as_i64().unwrap();
    let mut conditions = vec!["true".to_owned()];
    if let Some(t) = tenant {
        conditions.push(format!("organizer_id = '{t}'"));
    }
    for part in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap();
        conditions.push(match (k, v) {
            ("status", "upcoming") => "status = 'published' AND event_date > now()".into(),
            ("status", "past") => "event_date <= now()".into(),
            ("status", s) => format!("status = '{s}'"),
            ("search", term) => format!("(title ILIKE '%{term}%' OR location ILIKE '%{term}%')"),
            _ => unreachable!("{part}"),
        });
    }
    let truth = app
        .count(&format!(
            "SELECT count(*) FROM events WHERE {}",
            conditions.join(" AND ")
        ))
        .await;
    (total, truth)
}

/// Every filter's total, for two organizers and an admin, equals a count in SQL.
async fn assert_totals_exact(app: &TestApp, step: &str) {
    let filters = [
        "",
        "status=draft",
        "status=published",
        "status=cancelled",
        "status=completed",
        "status=upcoming",
        "status=past",
        "search=conf",
        "search=lyon",
        "search=conf&status=published",
        "search=nothing-matches",
    ];
    let who = [
        (app.organizer("alice"), Some("alice")),
        (app.organizer("bob"), Some("bob")),
        (app.admin(), None),
    ];
    for (token, tenant) in &who {
        for f in filters {
            let (total, truth) = total_and_truth(app, token, *tenant, f).await;
            assert_eq!(total, truth, "{step}: total of ?{f} for {tenant:?}");
        }
    }
}

#[tokio::test]
async fn list_totals_stay_exact_after_creates_status_changes_and_deletes() {
    let app = TestApp::spawn().await;
    let (alice, bob) = (app.organizer("alice"), app.organizer("bob"));
    assert_totals_exact(&app, "empty").await;

    let mut ids = Vec::new();
    for (token, title, location) in [
        (&alice, "Rust Conference", "Lyon"),
        (&alice, "Jazz Night", "Paris"),
        (&alice, "Data Summit", "Lyon, Conference Center"),
        (&bob, "Wine Fair", "Bordeaux"),
        (&bob, "Cloud Conference", "Lille"),
    ] {
        let e = app
            .create_event(token, json!({"title": title, "location": location}))
            .await;
        ids.push((token, e["id"].as_i64().unwrap()));
    }
    assert_totals_exact(&app, "after creates").await;
    let (total, _) = total_and_truth(&app, &alice, Some("alice"), "status=draft").await;
    assert_eq!(total, 3, "alice's three drafts");

    for (i, status) in [
        (0, "published"),
        (1, "published"),
        (3, "published"),
        (4, "cancelled"),
    ] {
        let (token, id) = ids[i];
        let r = app
            .patch(
                &format!("/api/events/{id}"),
                token,
                json!({"status": status}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    // An edit that names the same status, and one without a status, change no total.
    let (token, id) = ids[0];
    let r = app
        .patch(
            &format!("/api/events/{id}"),
            token,
            json!({"status": "published", "title": "Rust Conf 2"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_totals_exact(&app, "after status changes").await;
    let (total, _) = total_and_truth(&app, &alice, Some("alice"), "status=published").await;
    assert_eq!(total, 2);

    let (token, id) = ids[2];
    assert_eq!(
        app.delete(&format!("/api/events/{id}"), token).await.status,
        StatusCode::NO_CONTENT
    );
    assert_totals_exact(&app, "after a delete").await;

    // Writes that do not go through the API (bulk, past dates, several statuses in one
    // statement) keep the totals exact too.
    let db = app.sql().await;
    db.batch_execute(
        "INSERT INTO events (organizer_id, title, event_date, location, max_attendees, status)
         SELECT CASE WHEN g % 2 = 0 THEN 'alice' ELSE 'bob' END, 'Past Conference ' || g,
                now() - g * interval '1 day', 'Lyon', 10,
                (ARRAY['completed', 'published', 'cancelled', 'draft'])[1 + g % 4]
           FROM generate_series(1, 40) g;
         UPDATE events SET status = 'completed' WHERE status = 'published' AND event_date < now() - interval '20 days';
         DELETE FROM events WHERE title LIKE 'Past Conference 1%';",
    )
    .await
    .unwrap();
    assert_totals_exact(&app, "after bulk SQL writes").await;
    let drift = app
        .count(
            "SELECT count(*)
               FROM (SELECT organizer_id, status, count(*) AS n FROM events GROUP BY 1, 2) e
               FULL JOIN event_counts c USING (organizer_id, status)
              WHERE COALESCE(e.n, 0) <> COALESCE(c.n, 0)",
        )
        .await;
    assert_eq!(drift, 0, "every counter equals its count");
}

#[tokio::test]
async fn lists_answer_with_a_pool_of_one_or_two_connections_under_concurrency() {
    for size in [1, 2] {
        let app = TestApp::spawn_with(|c| c.db.pool_size = size).await;
        let token = app.organizer("alice");
        for i in 0..3 {
            app.create_event(&token, json!({"title": format!("Conference {i}")}))
                .await;
        }
        // Drafts: 3 of each filter but upcoming (published only).
        let filters = [
            ("", 3),
            ("&search=conf", 3),
            ("&status=draft", 3),
            ("&status=upcoming", 0),
        ];
        let lists = (0..8).map(|i| {
            let (app, token) = (&app, &token);
            async move {
                let (q, expected) = filters[i % 4];
                (
                    app.get(&format!("/api/events?limit=2{q}"), token).await,
                    q,
                    expected,
                )
            }
        });
        let answers = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            futures_util::future::join_all(lists),
        )
        .await
        .unwrap_or_else(|_| panic!("lists with a pool of {size} did not answer (deadlock?)"));
        for (r, q, expected) in answers {
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            assert_eq!(
                r.data()["pagination"]["total"],
                expected,
                "?{q}, pool of {size}"
            );
        }
    }
}

/// A cold Lambda environment (a pool of 2, nothing open yet): its first list opens one
/// connection, not one for the page and one for the count.
#[tokio::test]
async fn a_first_list_opens_one_connection() {
    let app = TestApp::spawn_with(|c| c.db.pool_size = 2).await;
    let token = app.organizer("alice");
    assert_eq!(app.state.db.status().size, 0);
    let r = app.get("/api/events?limit=5", &token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        app.state.db.status().size,
        1,
        "connections opened by the first list"
    );
    // With one idle connection, page and count run side by side, still correct.
    app.create_event(&token, json!({})).await;
    let r = app.get("/api/events?limit=5", &token).await;
    assert_eq!(r.data()["pagination"]["total"], 1);
}
