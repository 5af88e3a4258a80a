//! CSV guest import (issue 16): the registration rules row by row, the modes, and the
//! capacity holding while registrations race the import.

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

async fn import(app: &TestApp, token: &str, event: i64, query: &str, csv: &str) -> TestResponse {
    app.send(
        Request::post(format!("/api/events/{event}/guests/import{query}"))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "text/csv; charset=utf-8")
            .body(Body::from(csv.to_owned()))
            .unwrap(),
    )
    .await
}

fn failures(r: &TestResponse) -> Vec<(u64, String, String)> {
    r.data()["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["row"].as_u64().unwrap(),
                f["field"].as_str().unwrap_or("-").to_owned(),
                f["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_csv_import_follows_the_registration_rules_in_every_mode() {
    let app = TestApp::spawn().await;
    let org = app.organizer("org-imp");
    let e = app
        .published_event(
            &org,
            json!({"maxAttendees": 1000, "requiresApproval": true, "ticketTypes": [
                {"name": "VIP", "price": 100, "quantity": 3},
                {"name": "Standard", "price": 10, "quantity": 100}]}),
        )
        .await;
    let event = e["id"].as_i64().unwrap();
    let vip = e["ticketTypes"][0]["id"].clone();
    let r = app
        .register(&org, event, guest_body("taken@x.test", &vip))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    // A BOM, columns in another order and spelling, an extra column, quoting, a blank line.
    let csv = "\u{feff}Email,First Name,last_name,TICKETTYPE,phone,notes\n\
        ada@x.test,Ada,Lovelace,vip,+33612345678,first\n\
        \"grace@x.test\",\"Hopper, Grace\",Hopper,Standard,,\"multi\nline\"\n\
        not-an-email,Bad,Email,Standard,,\n\
        nope@x.test,No,Type,Balcony,,\n\
        ADA@x.test,Ada,Again,Standard,,\n\
        taken@x.test,Al,Ready,Standard,,\n\
        vip2@x.test,V,Two,VIP,,\n\
        vip3@x.test,V,Three,VIP,,\n\
        bob@x.test,Bob,,Standard,,\n\
        \n";
    let expected = vec![
        (4, "email".to_owned(), "VALIDATION_ERROR".to_owned()),
        (5, "ticketType".into(), "VALIDATION_ERROR".into()),
        (6, "email".into(), "DUPLICATE_GUEST".into()),
        (7, "email".into(), "DUPLICATE_GUEST".into()),
        (9, "ticketType".into(), "SOLD_OUT".into()),
        (10, "lastName".into(), "VALIDATION_ERROR".into()),
    ];
    let guests = "SELECT count(*) FROM guests";

    // All or nothing (the default): nothing, with every failure reported.
    let r = import(&app, &org, event, "", csv).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.data()["created"], 0);
    // Validation and duplicates are reported before seats are counted.
    let first: Vec<_> = failures(&r);
    assert!(first.iter().all(|f| f.2 != "SOLD_OUT"), "{first:?}");
    assert_eq!(app.count(guests).await, 1);

    // A dry run in best effort: what would happen, nothing written.
    let r = import(&app, &org, event, "?mode=best_effort&dryRun=true", csv).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        (r.data()["created"].as_i64(), r.data()["dryRun"].as_bool()),
        (Some(3), Some(true))
    );
    assert_eq!(failures(&r), expected);
    assert_eq!(app.count(guests).await, 1);
    assert_eq!(
        app.count("SELECT seats_taken(event_id, id)::bigint FROM ticket_types WHERE name = 'VIP'")
            .await,
        1
    );

    // Best effort: the three rows that pass, confirmed, with signed tickets and their jobs.
    let r = import(&app, &org, event, "?mode=best_effort", csv).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.data()["created"], 3);
    assert_eq!(failures(&r), expected);
    assert_eq!(app.count(guests).await, 4);
    let db = app.sql().await;
    let rows = db
        .query(
            "SELECT g.first_name, g.status, t.qr_payload IS NOT NULL, tt.name FROM guests g
               JOIN tickets t ON t.guest_id = g.id JOIN ticket_types tt ON tt.id = g.ticket_type_id
              WHERE g.email <> 'taken@x.test' ORDER BY g.id",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(String, String, bool, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        got,
        vec![
            ("Ada".into(), "confirmed".into(), true, "VIP".into()),
            (
                "Hopper, Grace".into(),
                "confirmed".into(),
                true,
                "Standard".into()
            ),
            ("V".into(), "confirmed".into(), true, "VIP".into()),
        ]
    );
    assert_eq!(
        app.count("SELECT count(*) FROM job_outbox WHERE job_type IN ('registration_confirmation', 'generate_ticket')")
            .await,
        1 + 3 * 2,
        "the first guest is pending (a confirmation, no ticket yet); each imported row: confirmation + ticket"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM audit_log WHERE action = 'guest.imported'")
            .await,
        3
    );
    let stats = app.get(&format!("/api/events/{event}/stats"), &org).await;
    assert_eq!(stats.data()["registered"], 4);
    assert_eq!(stats.data()["byTicketType"][0]["sold"], 3);
    // A ticket of an imported guest scans like any other.
    let payload: String = db
        .query_one("SELECT t.qr_payload FROM tickets t JOIN guests g ON g.id = t.guest_id WHERE g.email = 'ada@x.test'", &[])
        .await
        .unwrap()
        .get(0);
    let scan = app
        .post(
            "/api/tickets/validate",
            &org,
            json!({"code": payload, "scannerId": "s", "location": "Gate"}),
        )
        .await;
    assert_eq!(scan.status, StatusCode::OK, "{}", scan.body);

    // The request itself.
    let r = app
        .send(
            Request::post(format!("/api/events/{event}/guests/import"))
                .header("authorization", format!("Bearer {org}"))
                .header("content-type", "application/json")
                .body(Body::from("{}"))
                .unwrap(),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "VALIDATION_ERROR")
    );
    let r = import(&app, &org, event, "", "name,email\nA,a@x.test\n").await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "VALIDATION_ERROR")
    );
    assert!(r.fields().iter().all(|f| f == "header"), "{}", r.body);
    let r = import(&app, &org, event, "?mode=sometimes", csv).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let big = format!(
        "email,firstName,lastName,ticketType\n{}",
        "a@x.test,A,B,VIP\n".repeat(70_000)
    );
    let r = import(&app, &org, event, "", &big).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE")
    );
    let rows = format!(
        "email,firstName,lastName,ticketType\n{}",
        (0..5001)
            .map(|i| format!("r{i}@x.test,A,B,VIP\n"))
            .collect::<String>()
    );
    let r = import(&app, &org, event, "", &rows).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE")
    );
    // A draft event may be imported into; a cancelled one may not.
    let draft = app.create_event(&org, json!({"ticketTypes": null})).await;
    let r = import(
        &app,
        &org,
        draft["id"].as_i64().unwrap(),
        "",
        "firstName,lastName,email\nA,B,d@x.test\n",
    )
    .await;
    assert_eq!(r.data()["created"], 1, "{}", r.body);
    app.patch(
        &format!("/api/events/{event}"),
        &org,
        json!({"status": "cancelled"}),
    )
    .await;
    let r = import(&app, &org, event, "", csv).await;
    assert_eq!(r.code(), "REGISTRATION_CLOSED");
}

/// 100 registrations fired at once with the import, on the same ticket type.
async fn race_import(
    app: &TestApp,
    org: &str,
    event: i64,
    tt: &Value,
    mode: &str,
    tag: &str,
) -> (Value, HashMap<String, usize>, std::time::Duration) {
    let csv = format!(
        "firstName,lastName,email,ticketType\n{}",
        (0..5000)
            .map(|i| format!("First{i},Last{i},{tag}{i}@import.test,Standard\n"))
            .collect::<String>()
    );
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(101));
    let mut regs = tokio::task::JoinSet::new();
    for i in 0..100 {
        let (router, org, barrier, body) = (
            app.app.clone(),
            org.to_owned(),
            barrier.clone(),
            guest_body(&format!("{tag}-reg{i}@x.test"), tt),
        );
        regs.spawn(async move {
            use tower::ServiceExt;
            let req = Request::post(format!("/api/events/{event}/guests"))
                .header("authorization", format!("Bearer {org}"))
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .unwrap();
            barrier.wait().await;
            // Spread over the import's run (a few seconds in a debug build): before it,
            // while it holds the seats, after it.
            tokio::time::sleep(std::time::Duration::from_millis((i * 37) % 3000)).await;
            let res = router.oneshot(req).await.unwrap();
            let status = res.status();
            let bytes = http_body_util::BodyExt::collect(res.into_body())
                .await
                .unwrap()
                .to_bytes();
            let v: Value = serde_json::from_slice(&bytes).unwrap();
            if status == StatusCode::CREATED {
                "201".to_owned()
            } else {
                v["error"]["code"].as_str().unwrap_or("?").to_owned()
            }
        });
    }
    barrier.wait().await;
    let started = std::time::Instant::now();
    let r = import(app, org, event, &format!("?mode={mode}"), &csv).await;
    let took = started.elapsed();
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let mut tally = HashMap::new();
    while let Some(outcome) = regs.join_next().await {
        *tally.entry(outcome.unwrap()).or_insert(0) += 1;
    }
    (r.data().clone(), tally, took)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_import_of_5000_rows_racing_100_registrations_never_oversells() {
    let app = TestApp::spawn().await;
    let org = app.organizer("org-bulk");
    let e = app
        .published_event(
            &org,
            json!({"maxAttendees": 100000, "ticketTypes": [{"name": "Standard", "price": 10, "quantity": 4000}]}),
        )
        .await;
    let event = e["id"].as_i64().unwrap();
    let tt = e["ticketTypes"][0]["id"].clone();
    let sold = || async {
        app.count(&format!(
            "SELECT seats_taken(event_id, id)::bigint FROM ticket_types WHERE id = {tt}"
        ))
        .await
    };
    let rows = |status: &str| {
        format!("SELECT count(*) FROM guests WHERE event_id = {event} AND status = '{status}'")
    };

    // All or nothing: 5 000 rows cannot fit in 4 000 seats: nothing is created.
    let (report, tally, took) = race_import(&app, &org, event, &tt, "all_or_nothing", "a").await;
    eprintln!("all_or_nothing: 5000 rows in {took:?}; registrations {tally:?}");
    assert_eq!(report["created"], 0);
    let registered = tally.get("201").copied().unwrap_or(0) as i64;
    assert_eq!(tally.values().sum::<usize>(), 100);
    assert_eq!(
        registered, 100,
        "with the import rolled back there were seats for all: {tally:?}"
    );
    let sold_out = report["failed"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "SOLD_OUT")
        .count() as i64;
    // The rows that did not fit: 1 000, plus one per registration that came first.
    assert!((1000..=1100).contains(&sold_out), "{sold_out}");
    assert_eq!(app.count(&rows("confirmed")).await, registered);
    assert_eq!(sold().await, registered);

    // Best effort: the import takes every seat it can; with the registrations, exactly the
    // 4 000 seats, never one more.
    let (report, tally, took) = race_import(&app, &org, event, &tt, "best_effort", "b").await;
    eprintln!("best_effort: 5000 rows in {took:?}; registrations {tally:?}");
    let created = report["created"].as_i64().unwrap();
    let registered_now = tally.get("201").copied().unwrap_or(0) as i64;
    assert_eq!(created + registered_now + registered, 4000, "{tally:?}");
    assert_eq!(
        report["failed"].as_array().unwrap().len() as i64,
        5000 - created
    );
    assert_eq!(app.count(&rows("confirmed")).await, 4000);
    assert_eq!(sold().await, 4000);
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM tickets WHERE event_id = {event} AND qr_payload IS NOT NULL"
        ))
        .await,
        4000
    );
}
