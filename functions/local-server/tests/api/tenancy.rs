//! Every route behind the one tenancy gate and the role check: another organizer's
//! resource answers 404 exactly like a missing one, and a scanner on an organizer-only
//! route gets 403 before its (here deliberately invalid) input is even parsed. The table
//! must name every operation of the OpenAPI document, so a new route cannot skip it.

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

/// Who may call a route besides organizers and admins.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Scanners {
    /// 403 for every scanner, before any input is read.
    Refused,
    /// Allowed on their own organizer's data; another organizer's is 404.
    OwnOrganizer,
}

/// (method, documented path, concrete uri, a valid body for another organizer, scanners, has an owner)
type Route<'a> = (Method, &'a str, String, Option<Value>, Scanners, bool);

#[tokio::test]
async fn every_route_refuses_other_tenants_and_checks_roles_before_input() {
    let app = TestApp::spawn().await;
    let alice = app.organizer("alice");
    let bob = app.organizer("bob");
    let e = app.published_event(&alice, json!({})).await;
    let id = e["id"].as_i64().unwrap();
    let tt = e["ticketTypes"][0]["id"].as_i64().unwrap();
    let reg = app
        .register(&alice, id, guest_body("g@example.com", &json!(tt)))
        .await;
    assert_eq!(reg.status, StatusCode::CREATED, "{}", reg.body);
    let g = reg.data()["guest"]["id"].as_i64().unwrap();
    let t = reg.data()["ticket"]["id"].as_i64().unwrap();
    let code = reg.data()["ticket"]["ticketCode"]
        .as_str()
        .unwrap()
        .to_owned();

    let list = app
        .get(&format!("/api/events/{id}/checkin-lists"), &alice)
        .await
        .data()[0]["id"]
        .as_i64()
        .unwrap();
    let offline = json!({"scans": [{"clientScanId": uuid::Uuid::new_v4(), "ticketId": t, "scannerId": "s-1",
        "location": "Gate A", "scannedAt": chrono::Utc::now().to_rfc3339()}]});

    let hook = app
        .post(
            "/api/webhooks",
            &alice,
            json!({"url": "https://crm.example.com/hooks", "eventTypes": ["guest.registered"]}),
        )
        .await
        .data()["id"]
        .as_i64()
        .unwrap();

    let export = app
        .post(
            &format!("/api/events/{id}/exports"),
            &alice,
            json!({"kind": "guests"}),
        )
        .await
        .data()["id"]
        .as_i64()
        .unwrap();

    let r = app
        .patch(
            &format!("/api/events/{id}"),
            &alice,
            json!({"waitlistEnabled": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let entry = app
        .post(
            &format!("/api/events/{id}/waitlist"),
            &alice,
            guest_body("w@example.com", &json!(tt)),
        )
        .await
        .data()["id"]
        .as_i64()
        .unwrap();

    let invalid = json!({"title": 1, "firstName": 2, "scannerId": 3});
    let scan = json!({"scannerId": "s-1", "location": "Gate A"});
    let routes: Vec<Route> = vec![
        (
            Method::GET,
            "/api/events",
            "/api/events".into(),
            None,
            Scanners::Refused,
            false,
        ),
        (
            Method::POST,
            "/api/events",
            "/api/events".into(),
            Some(event_body()),
            Scanners::Refused,
            false,
        ),
        (
            Method::GET,
            "/api/events/{id}",
            format!("/api/events/{id}"),
            None,
            Scanners::Refused,
            true,
        ),
        (
            Method::PATCH,
            "/api/events/{id}",
            format!("/api/events/{id}"),
            Some(json!({"title": "Mine now"})),
            Scanners::Refused,
            true,
        ),
        (
            Method::DELETE,
            "/api/events/{id}",
            format!("/api/events/{id}"),
            None,
            Scanners::Refused,
            true,
        ),
        (
            Method::POST,
            "/api/events/{id}/ticket-types",
            format!("/api/events/{id}/ticket-types"),
            Some(json!({"name": "Late", "price": 1, "quantity": 1})),
            Scanners::Refused,
            true,
        ),
        (
            Method::GET,
            "/api/events/{id}/ticket-types/{ticketTypeId}",
            format!("/api/events/{id}/ticket-types/{tt}"),
            None,
            Scanners::Refused,
            true,
        ),
        (
            Method::PATCH,
            "/api/events/{id}/ticket-types/{ticketTypeId}",
            format!("/api/events/{id}/ticket-types/{tt}"),
            Some(json!({"quantity": 40})),
            Scanners::Refused,
            true,
        ),
        (
            Method::DELETE,
            "/api/events/{id}/ticket-types/{ticketTypeId}",
            format!("/api/events/{id}/ticket-types/{tt}"),
            None,
            Scanners::Refused,
            true,
        ),
        (
            Method::GET,
            "/api/events/{eventId}/guests",
            format!("/api/events/{id}/guests"),
            None,
            Scanners::Refused,
            true,
        ),
        (
            Method::POST,
            "/api/events/{eventId}/guests",
            format!("/api/events/{id}/guests"),
            Some(guest_body("bob@example.com", &json!(tt))),
            Scanners::Refused,
            true,
        ),
        (
            Method::GET,
            "/api/events/{eventId}/guests/{guestId}",
            format!("/api/events/{id}/guests/{g}"),
            None,
            Scanners::Refused,
            true,
        ),
        (
            Method::PATCH,
            "/api/events/{eventId}/guests/{guestId}",
            format!("/api/events/{id}/guests/{g}"),
            Some(json!({"firstName": "Eve"})),
            Scanners::Refused,
            true,
        ),
        (
            Method::DELETE,
            "/api/events/{eventId}/guests/{guestId}",
            format!("/api/events/{id}/guests/{g}"),
            None,
            Scanners::Refused,
            true,
        ),
        (
            Method::POST,
            "/api/events/{eventId}/guests/{guestId}/approve",
            format!("/api/events/{id}/guests/{g}/approve"),
            None,
            Scanners::Refused,
            true,
        ),
        (
            Method::POST,
            "/api/events/{eventId}/guests/{guestId}/cancel",
            format!("/api/events/{id}/guests/{g}/cancel"),
            None,
            Scanners::Refused,
            true,
        ),
        (
            Method::POST,
            "/api/events/{eventId}/guests/{guestId}/resend-ticket",
            format!("/api/events/{id}/guests/{g}/resend-ticket"),
            None,
            Scanners::Refused,
            true,
        ),
        (
            Method::GET,
            "/api/events/{eventId}/stats",
            format!("/api/events/{id}/stats"),
            None,
            Scanners::Refused,
            true,
        ),
        (
            Method::GET,
            "/api/events/{eventId}/scanner-key",
            format!("/api/events/{id}/scanner-key"),
            None,
            Scanners::OwnOrganizer,
            true,
        ),
        (
            Method::GET,
            "/api/tickets/{ticketId}",
            format!("/api/tickets/{t}"),
            None,
            Scanners::OwnOrganizer,
            true,
        ),
        (
            Method::GET,
            "/api/tickets/{ticketId}/qr",
            format!("/api/tickets/{t}/qr"),
            None,
            Scanners::OwnOrganizer,
            true,
        ),
        (
            Method::POST,
            "/api/tickets/{ticketId}/validate",
            format!("/api/tickets/{t}/validate"),
            Some(scan.clone()),
            Scanners::OwnOrganizer,
            true,
        ),
        (
            Method::POST,
            "/api/tickets/validate",
            "/api/tickets/validate".into(),
            Some(json!({"code": code, "scannerId": "s-1", "location": "Gate A"})),
            Scanners::OwnOrganizer,
            true,
        ),
        (
            Method::POST,
            "/api/events/{eventId}/checkin-lists",
            format!("/api/events/{id}/checkin-lists"),
            Some(json!({"name": "Mine"})),
            Scanners::Refused,
            true,
        ),
        (
            Method::GET,
            "/api/events/{eventId}/checkin-lists",
            format!("/api/events/{id}/checkin-lists"),
            None,
            Scanners::OwnOrganizer,
            true,
        ),
        (
            Method::GET,
            "/api/checkin-lists/{listId}",
            format!("/api/checkin-lists/{list}"),
            None,
            Scanners::OwnOrganizer,
            true,
        ),
        (
            Method::PATCH,
            "/api/checkin-lists/{listId}",
            format!("/api/checkin-lists/{list}"),
            Some(json!({"name": "Mine"})),
            Scanners::Refused,
            true,
        ),
        (
            Method::DELETE,
            "/api/checkin-lists/{listId}",
            format!("/api/checkin-lists/{list}"),
            None,
            Scanners::Refused,
            true,
        ),
        (
            Method::POST,
            "/api/checkin-lists/{listId}/scans",
            format!("/api/checkin-lists/{list}/scans"),
            Some(json!({"ticketId": t, "scannerId": "s-1", "location": "Gate A"})),
            Scanners::OwnOrganizer,
            true,
        ),
        (
            Method::GET,
            "/api/checkin-lists/{listId}/scans",
            format!("/api/checkin-lists/{list}/scans"),
            None,
            Scanners::OwnOrganizer,
            true,
        ),
        (
            Method::POST,
            "/api/checkin-lists/{listId}/scans/{scanId}/revert",
            format!("/api/checkin-lists/{list}/scans/1/revert"),
            Some(json!({})),
            Scanners::Refused,
            true,
        ),
        (
            Method::POST,
            "/api/checkin-lists/{listId}/scans/batch",
            format!("/api/checkin-lists/{list}/scans/batch"),
            Some(offline),
            Scanners::OwnOrganizer,
            true,
        ),
        (
            Method::GET,
            "/api/checkin-lists/{listId}/conflicts",
            format!("/api/checkin-lists/{list}/conflicts"),
            None,
            Scanners::OwnOrganizer,
            true,
        ),
        (
            Method::GET,
            "/api/events/{eventId}/audit",
            format!("/api/events/{id}/audit"),
            None,
            Scanners::Refused,
            true,
        ),
        (
            Method::GET,
            "/api/events/{eventId}/guests/{guestId}/personal-data",
            format!("/api/events/{id}/guests/{g}/personal-data"),
            None,
            Scanners::Refused,
            true,
        ),
        (
            Method::POST,
            "/api/events/{eventId}/guests/{guestId}/erase",
            format!("/api/events/{id}/guests/{g}/erase"),
            Some(json!({})),
            Scanners::Refused,
            true,
        ),
        (
            Method::POST,
            "/api/webhooks",
            "/api/webhooks".into(),
            Some(json!({"url": "https://crm.example.com/h", "eventTypes": ["guest.registered"]})),
            Scanners::Refused,
            false,
        ),
        (
            Method::GET,
            "/api/webhooks",
            "/api/webhooks".into(),
            None,
            Scanners::Refused,
            false,
        ),
        (
            Method::GET,
            "/api/webhooks/{id}",
            format!("/api/webhooks/{hook}"),
            None,
            Scanners::Refused,
            true,
        ),
        (
            Method::PATCH,
            "/api/webhooks/{id}",
            format!("/api/webhooks/{hook}"),
            Some(json!({"enabled": false})),
            Scanners::Refused,
            true,
        ),
        (
            Method::DELETE,
            "/api/webhooks/{id}",
            format!("/api/webhooks/{hook}"),
            None,
            Scanners::Refused,
            true,
        ),
        (
            Method::POST,
            "/api/webhooks/{id}/rotate-secret",
            format!("/api/webhooks/{hook}/rotate-secret"),
            Some(json!({})),
            Scanners::Refused,
            true,
        ),
        (
            Method::GET,
            "/api/webhooks/{id}/deliveries",
            format!("/api/webhooks/{hook}/deliveries"),
            None,
            Scanners::Refused,
            true,
        ),
        (
            Method::POST,
            "/api/webhooks/{id}/deliveries/{deliveryId}/redeliver",
            format!("/api/webhooks/{hook}/deliveries/1/redeliver"),
            Some(json!({})),
            Scanners::Refused,
            true,
        ),
        (
            Method::GET,
            "/api/checkin-lists/{listId}/offline-data",
            format!("/api/checkin-lists/{list}/offline-data"),
            None,
            Scanners::OwnOrganizer,
            true,
        ),
        (
            Method::POST,
            "/api/events/{eventId}/exports",
            format!("/api/events/{id}/exports"),
            Some(json!({"kind": "scans"})),
            Scanners::Refused,
            true,
        ),
        (
            Method::GET,
            "/api/exports/{exportId}",
            format!("/api/exports/{export}"),
            None,
            Scanners::Refused,
            true,
        ),
        (
            Method::GET,
            "/api/events/{eventId}/waitlist",
            format!("/api/events/{id}/waitlist"),
            None,
            Scanners::Refused,
            true,
        ),
        (
            Method::POST,
            "/api/events/{eventId}/waitlist",
            format!("/api/events/{id}/waitlist"),
            Some(guest_body("w2@example.com", &json!(tt))),
            Scanners::Refused,
            true,
        ),
        (
            Method::DELETE,
            "/api/events/{eventId}/waitlist/{entryId}",
            format!("/api/events/{id}/waitlist/{entry}"),
            None,
            Scanners::Refused,
            true,
        ),
        (
            Method::POST,
            "/api/events/{eventId}/waitlist/{entryId}/claim",
            format!("/api/events/{id}/waitlist/{entry}/claim"),
            Some(json!({})),
            Scanners::Refused,
            true,
        ),
        (
            Method::POST,
            "/api/events/{eventId}/guests/import",
            format!("/api/events/{id}/guests/import"),
            Some(json!({})),
            Scanners::Refused,
            true,
        ),
    ];

    // The table covers the whole API (health and the document itself need no token).
    let doc = app.get("/api/openapi.json", &alice).await.body;
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            // The waiting-list claim is public (its token is the authority: waitlist.rs).
            if !path.starts_with("/health")
                && path != "/api/openapi.json"
                && path != "/api/waitlist/claim"
            {
                documented.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    let tested: BTreeSet<String> = routes.iter().map(|(m, p, ..)| format!("{m} {p}")).collect();
    assert_eq!(
        tested, documented,
        "every documented operation is in this table"
    );

    for (method, _, uri, body, scanners, owned) in &routes {
        let with_body =
            |b: &Value| matches!(*method, Method::POST | Method::PATCH).then(|| b.clone());
        if *owned {
            let r = app
                .call(method.clone(), uri, Some(&bob), body.clone())
                .await;
            assert_eq!(
                r.status,
                StatusCode::NOT_FOUND,
                "another organizer: {method} {uri}: {}",
                r.body
            );
            assert_eq!(r.code(), "NOT_FOUND");
            if body.is_some() && *uri != "/api/tickets/validate" {
                // Another organizer's resource is 404 before its body is even opened.
                let r = app
                    .call(method.clone(), uri, Some(&bob), with_body(&invalid))
                    .await;
                assert_eq!(
                    r.status,
                    StatusCode::NOT_FOUND,
                    "another organizer, invalid body: {method} {uri}: {}",
                    r.body
                );
            }
            let r = app
                .call(method.clone(), uri, Some(&app.scanner("bob")), body.clone())
                .await;
            let expected = match scanners {
                Scanners::Refused => StatusCode::FORBIDDEN,
                Scanners::OwnOrganizer => StatusCode::NOT_FOUND,
            };
            assert_eq!(
                r.status, expected,
                "another organizer's scanner: {method} {uri}: {}",
                r.body
            );
        }
        if *scanners == Scanners::Refused {
            // Invalid input, and still 403: the role is checked first.
            let r = app
                .call(
                    method.clone(),
                    uri,
                    Some(&app.scanner("alice")),
                    with_body(&invalid),
                )
                .await;
            assert_eq!(
                r.status,
                StatusCode::FORBIDDEN,
                "scanner: {method} {uri}: {}",
                r.body
            );
            assert_eq!(r.code(), "FORBIDDEN");
            let r = app
                .send(
                    axum::http::Request::builder()
                        .method(method.clone())
                        .uri(format!("{uri}?page=not-a-number"))
                        .header("authorization", format!("Bearer {}", app.scanner("alice")))
                        .body(axum::body::Body::empty())
                        .unwrap(),
                )
                .await;
            assert_eq!(
                r.status,
                StatusCode::FORBIDDEN,
                "scanner with a bad query: {method} {uri}"
            );
        }
    }

    // Nothing of alice's changed.
    assert_eq!(
        app.count("SELECT count(*) FROM guests WHERE status <> 'cancelled'")
            .await,
        1
    );
    assert_eq!(
        app.count("SELECT count(*) FROM tickets WHERE validated_at IS NOT NULL")
            .await,
        0
    );
    assert_eq!(app.count("SELECT count(*) FROM events").await, 1);
    assert_eq!(app.count("SELECT count(*) FROM checkin_lists").await, 1);
    assert_eq!(
        app.count("SELECT count(*) FROM guests WHERE erased_at IS NOT NULL")
            .await,
        0
    );
    assert_eq!(
        app.count("SELECT count(*) FROM webhooks WHERE enabled")
            .await,
        1
    );
    assert_eq!(
        app.count("SELECT count(*) FROM ticket_scans WHERE result = 'accepted'")
            .await,
        0
    );
    let title = app.get(&format!("/api/events/{id}"), &alice).await.data()["title"].clone();
    assert_eq!(title, e["title"]);
}
