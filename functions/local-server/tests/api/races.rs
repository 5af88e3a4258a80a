//! Concurrency guarantees, proven by really racing: hundreds of requests in flight at
//! once on a multi-threaded runtime against the real database, then the database's own
//! counts checked.

use std::collections::HashMap;

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

/// Fires all `bodies` at once and tallies the answers by status code / error code.
async fn race(
    app: &TestApp,
    token: &str,
    event_id: i64,
    bodies: Vec<Value>,
) -> HashMap<String, usize> {
    let uri = format!("/api/events/{event_id}/guests");
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(bodies.len()));
    let mut tasks = tokio::task::JoinSet::new();
    for body in bodies {
        let (router, token, uri, barrier) = (
            app.app.clone(),
            token.to_owned(),
            uri.clone(),
            barrier.clone(),
        );
        tasks.spawn(async move {
            use tower::ServiceExt;
            let req = axum::http::Request::post(&uri)
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/json")
                .body(axum::body::Body::from(body.to_string()))
                .unwrap();
            barrier.wait().await;
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
    let mut tally = HashMap::new();
    while let Some(outcome) = tasks.join_next().await {
        *tally.entry(outcome.unwrap()).or_insert(0) += 1;
    }
    tally
}

fn n(tally: &HashMap<String, usize>, key: &str) -> usize {
    tally.get(key).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_hundred_racing_registrations_never_oversell_a_ticket_type() {
    let app = TestApp::spawn().await;
    let token = app.organizer("alice");
    let e = app.published_event(&token, json!({"maxAttendees": 1000, "ticketTypes": [{"name": "Hot", "price": 10, "quantity": 50}]})).await;
    let id = e["id"].as_i64().unwrap();
    let tt = e["ticketTypes"][0]["id"].clone();
    let bodies = (0..300)
        .map(|i| guest_body(&format!("g{i}@example.com"), &tt))
        .collect();
    let tally = race(&app, &token, id, bodies).await;
    assert_eq!(
        (n(&tally, "201"), n(&tally, "SOLD_OUT")),
        (50, 250),
        "{tally:?}"
    );

    assert_eq!(
        app.count("SELECT count(*) FROM guests WHERE status <> 'cancelled'")
            .await,
        50
    );
    assert_eq!(app.count("SELECT count(*) FROM tickets").await, 50);
    assert_eq!(
        app.count("SELECT seats_taken(event_id, id)::bigint FROM ticket_types")
            .await,
        50
    );
    assert_eq!(
        app.count("SELECT seats_taken(id, NULL)::bigint FROM events")
            .await,
        50
    );
    assert_eq!(
        app.count("SELECT count(*) FROM job_outbox WHERE job_type = 'generate_ticket'")
            .await,
        50
    );
    assert_eq!(
        app.count("SELECT count(*) FROM job_outbox WHERE job_type = 'registration_confirmation'")
            .await,
        50
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_registrations_across_ticket_types_never_exceed_max_attendees() {
    let app = TestApp::spawn().await;
    let token = app.organizer("alice");
    let e = app
        .published_event(
            &token,
            json!({"maxAttendees": 60, "ticketTypes": [
                {"name": "A", "price": 1, "quantity": 40}, {"name": "B", "price": 1, "quantity": 40}, {"name": "C", "price": 1, "quantity": 40}
            ]}),
        )
        .await;
    let id = e["id"].as_i64().unwrap();
    let types: Vec<Value> = (0..3).map(|i| e["ticketTypes"][i]["id"].clone()).collect();
    let bodies = (0..300)
        .map(|i| guest_body(&format!("g{i}@example.com"), &types[i % 3]))
        .collect();
    let tally = race(&app, &token, id, bodies).await;
    assert_eq!(n(&tally, "201"), 60, "{tally:?}");
    assert_eq!(
        n(&tally, "EVENT_FULL") + n(&tally, "SOLD_OUT"),
        240,
        "{tally:?}"
    );
    assert!(n(&tally, "EVENT_FULL") > 0, "{tally:?}");

    assert_eq!(
        app.count("SELECT count(*) FROM guests WHERE status <> 'cancelled'")
            .await,
        60
    );
    assert_eq!(
        app.count("SELECT seats_taken(id, NULL)::bigint FROM events")
            .await,
        60
    );
    assert_eq!(
        app.count("SELECT sum(seats_taken(event_id, id))::bigint FROM ticket_types")
            .await,
        60
    );
    assert!(
        app.count("SELECT max(seats_taken(event_id, id))::bigint FROM ticket_types")
            .await
            <= 40
    );
    // Every counter equals the rows it counts.
    assert_eq!(
        app.count("SELECT count(*) FROM ticket_types t WHERE seats_taken(t.event_id, t.id) <> (SELECT count(*) FROM guests g WHERE g.ticket_type_id = t.id AND g.status <> 'cancelled')").await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_racing_registrations_of_one_email_give_exactly_one_guest() {
    let app = TestApp::spawn().await;
    let token = app.organizer("alice");
    let e = app.published_event(&token, json!({})).await;
    let id = e["id"].as_i64().unwrap();
    let tt = e["ticketTypes"][0]["id"].clone();
    let bodies = (0..20)
        .map(|i| {
            guest_body(
                if i % 2 == 0 {
                    "Same.Person@Example.com"
                } else {
                    "same.person@example.com"
                },
                &tt,
            )
        })
        .collect();
    let tally = race(&app, &token, id, bodies).await;
    assert_eq!(
        (n(&tally, "201"), n(&tally, "DUPLICATE_GUEST")),
        (1, 19),
        "{tally:?}"
    );
    assert_eq!(app.count("SELECT count(*) FROM guests").await, 1);
    assert_eq!(
        app.count("SELECT seats_taken(event_id, id)::bigint FROM ticket_types")
            .await,
        1
    );
    assert_eq!(
        app.count("SELECT seats_taken(id, NULL)::bigint FROM events")
            .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancellations_racing_registrations_keep_the_counts_exact() {
    let app = TestApp::spawn().await;
    let token = app.organizer("alice");
    let e = app
        .published_event(
            &token,
            json!({"maxAttendees": 30, "ticketTypes": [{"name": "A", "price": 1, "quantity": 30}]}),
        )
        .await;
    let id = e["id"].as_i64().unwrap();
    let tt = e["ticketTypes"][0]["id"].clone();
    let mut guests = Vec::new();
    for i in 0..30 {
        guests.push(
            app.register(
                &token,
                id,
                guest_body(&format!("first{i}@example.com"), &tt),
            )
            .await
            .data()["guest"]["id"]
                .as_i64()
                .unwrap(),
        );
    }
    let mut tasks = tokio::task::JoinSet::new();
    for g in guests.iter().take(10) {
        let (router, token, uri) = (
            app.app.clone(),
            token.clone(),
            format!("/api/events/{id}/guests/{g}/cancel"),
        );
        tasks.spawn(async move {
            use tower::ServiceExt;
            let req = axum::http::Request::post(&uri)
                .header("authorization", format!("Bearer {token}"))
                .body(axum::body::Body::empty())
                .unwrap();
            router.oneshot(req).await.unwrap().status()
        });
    }
    let bodies = (0..40)
        .map(|i| guest_body(&format!("second{i}@example.com"), &tt))
        .collect();
    let tally = race(&app, &token, id, bodies).await;
    while let Some(s) = tasks.join_next().await {
        assert_eq!(s.unwrap(), StatusCode::OK);
    }
    assert!(n(&tally, "201") <= 10, "{tally:?}");
    let holding = app
        .count("SELECT count(*) FROM guests WHERE status <> 'cancelled'")
        .await;
    assert!(holding <= 30);
    assert_eq!(
        app.count("SELECT seats_taken(id, NULL)::bigint FROM events")
            .await,
        holding
    );
    assert_eq!(
        app.count("SELECT seats_taken(event_id, id)::bigint FROM ticket_types")
            .await,
        holding
    );
    assert_eq!(holding, 20 + n(&tally, "201") as i64);
}

/// The shards of every capacity add up to it, and each holds at most its quota.
async fn assert_shards_consistent(app: &TestApp) {
    assert_eq!(
        app.count(
            "SELECT count(*) FROM events e
              WHERE (SELECT sum(quota) FROM seat_shards s WHERE s.event_id = e.id AND s.ticket_type_id IS NULL)
                    <> e.max_attendees"
        )
        .await,
        0,
        "event shards must add up to maxAttendees"
    );
    assert_eq!(
        app.count(
            "SELECT count(*) FROM ticket_types t
              WHERE (SELECT sum(quota) FROM seat_shards s WHERE s.ticket_type_id = t.id) <> t.quantity"
        )
        .await,
        0,
        "ticket type shards must add up to the quantity"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM seat_shards WHERE taken > quota OR taken < 0")
            .await,
        0
    );
}

/// 400 racing registrations on 200 seats split over 16 shards: the last seats of every
/// shard go, and "full" is only answered when all of them are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_registrations_fill_every_shard_exactly() {
    let app = TestApp::spawn().await;
    let token = app.organizer("alice");
    let e = app
        .published_event(&token, json!({"maxAttendees": 200, "ticketTypes": []}))
        .await;
    let id = e["id"].as_i64().unwrap();
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM seat_shards WHERE event_id = {id}"
        ))
        .await,
        16
    );
    let bodies = (0..400)
        .map(|i| guest_body(&format!("g{i}@example.com"), &Value::Null))
        .collect();
    let tally = race(&app, &token, id, bodies).await;
    assert_eq!(
        (n(&tally, "201"), n(&tally, "EVENT_FULL")),
        (200, 200),
        "{tally:?}"
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM seat_shards WHERE event_id = {id} AND taken < quota"
        ))
        .await,
        0,
        "every shard is full"
    );
    assert_eq!(
        app.count("SELECT seats_taken(id, NULL)::bigint FROM events")
            .await,
        200
    );
    assert_shards_consistent(&app).await;
}

/// An organizer raises maxAttendees and a ticket type's quantity while registrations race
/// on the sold-out type: the shards are laid out again under the event lock, no seat is
/// lost or sold twice, and exactly the new capacity can be sold.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn capacity_changes_racing_registrations_lose_no_seat() {
    let app = TestApp::spawn().await;
    let token = app.organizer("alice");
    let e = app
        .published_event(
            &token,
            json!({"maxAttendees": 100, "ticketTypes": [{"name": "A", "price": 1, "quantity": 60}]}),
        )
        .await;
    let id = e["id"].as_i64().unwrap();
    let tt = e["ticketTypes"][0]["id"].clone();
    let raise = {
        let (router, token) = (app.app.clone(), token.clone());
        let (event_uri, type_uri) = (
            format!("/api/events/{id}"),
            format!("/api/events/{id}/ticket-types/{tt}"),
        );
        tokio::spawn(async move {
            use tower::ServiceExt;
            tokio::time::sleep(std::time::Duration::from_millis(30)).await;
            let mut statuses = Vec::new();
            for (uri, body) in [
                (event_uri, json!({"maxAttendees": 150})),
                (type_uri, json!({"quantity": 130})),
            ] {
                let req = axum::http::Request::patch(&uri)
                    .header("authorization", format!("Bearer {token}"))
                    .header("content-type", "application/json")
                    .body(axum::body::Body::from(body.to_string()))
                    .unwrap();
                statuses.push(router.clone().oneshot(req).await.unwrap().status());
            }
            statuses
        })
    };
    let bodies = (0..300)
        .map(|i| guest_body(&format!("g{i}@example.com"), &tt))
        .collect();
    let tally = race(&app, &token, id, bodies).await;
    assert_eq!(raise.await.unwrap(), vec![StatusCode::OK, StatusCode::OK]);
    let sold = n(&tally, "201") as i64;
    assert!((60..=130).contains(&sold), "{tally:?}");
    assert_eq!(
        sold + (n(&tally, "SOLD_OUT") + n(&tally, "EVENT_FULL")) as i64,
        300,
        "{tally:?}"
    );
    assert_eq!(
        app.count("SELECT seats_taken(event_id, id)::bigint FROM ticket_types")
            .await,
        sold
    );
    assert_eq!(
        app.count("SELECT seats_taken(id, NULL)::bigint FROM events")
            .await,
        sold
    );
    assert_shards_consistent(&app).await;
    // What is left can be sold, to the seat: no capacity was lost in the new layout.
    let mut more = 0;
    for i in 0..(130 - sold + 3) {
        let r = app
            .register(&token, id, guest_body(&format!("late{i}@example.com"), &tt))
            .await;
        if r.status == StatusCode::CREATED {
            more += 1;
        } else {
            assert_eq!(r.code(), "SOLD_OUT", "{}", r.body);
        }
    }
    assert_eq!(sold + more, 130);
    assert_shards_consistent(&app).await;
}

/// Issue 14, F2: a check-in and a cancellation of the same guest, 200 pairs at once. Both
/// take the ticket before the guest, so none deadlocks: no 503, every validation attempt is
/// in the scan log, and each guest ends either checked in or cancelled, never both.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn check_ins_racing_cancellations_of_the_same_guests_never_deadlock() {
    const PAIRS: usize = 200;
    // Enough connections for many pairs to be in flight at the same moment.
    let app = TestApp::spawn_with(|c| c.db.pool_size = 40).await;
    let alice = app.organizer("alice");
    let scanner = app.scanner("alice");
    let e = app
        .published_event(&alice, json!({"maxAttendees": 500, "ticketTypes": []}))
        .await;
    let event_id = e["id"].as_i64().unwrap();
    let mut pairs = Vec::new();
    for i in 0..PAIRS {
        let r = app
            .register(
                &alice,
                event_id,
                guest_body(&format!("g{i}@example.com"), &Value::Null),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        pairs.push((
            r.data()["guest"]["id"].as_i64().unwrap(),
            r.data()["ticket"]["id"].as_i64().unwrap(),
        ));
    }
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(PAIRS * 2));
    let mut tasks = tokio::task::JoinSet::new();
    for (guest, ticket) in pairs {
        for (uri, token, body) in [
            (
                format!("/api/tickets/{ticket}/validate"),
                scanner.clone(),
                json!({"scannerId": "s-1", "location": "Gate A"}),
            ),
            (
                format!("/api/events/{event_id}/guests/{guest}/cancel"),
                alice.clone(),
                Value::Null,
            ),
        ] {
            let (router, barrier) = (app.app.clone(), barrier.clone());
            tasks.spawn(async move {
                use tower::ServiceExt;
                let mut req = axum::http::Request::post(&uri)
                    .header("authorization", format!("Bearer {token}"));
                let body = if body.is_null() {
                    axum::body::Body::empty()
                } else {
                    req = req.header("content-type", "application/json");
                    axum::body::Body::from(body.to_string())
                };
                let req = req.body(body).unwrap();
                barrier.wait().await;
                let res = router.oneshot(req).await.unwrap();
                (uri.ends_with("/validate"), res.status())
            });
        }
    }
    let mut statuses: HashMap<(bool, u16), usize> = HashMap::new();
    while let Some(r) = tasks.join_next().await {
        let (is_scan, status) = r.unwrap();
        *statuses.entry((is_scan, status.as_u16())).or_insert(0) += 1;
    }
    assert!(
        statuses.keys().all(|(_, s)| *s < 500),
        "no 5xx (no deadlock, no 503): {statuses:?}"
    );
    // Every scan attempt is in the log, with its result.
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM ticket_scans WHERE event_id = {event_id} OR event_id IS NULL"
        ))
        .await,
        PAIRS as i64,
        "{statuses:?}"
    );
    let accepted = app
        .count(&format!(
            "SELECT count(*) FROM ticket_scans WHERE event_id = {event_id} AND result = 'accepted'"
        ))
        .await;
    assert_eq!(
        accepted as usize,
        statuses.get(&(true, 200)).copied().unwrap_or(0)
    );
    // Each guest: checked in (ticket validated and active) or cancelled (ticket cancelled, not validated).
    let checked_in = app
        .count(&format!(
            "SELECT count(*) FROM guests g JOIN tickets t ON t.guest_id = g.id WHERE g.event_id = {event_id}
               AND {} AND t.status = 'active' AND t.validated_at IS NOT NULL",
            domain::guests::model::GUEST_CHECKED_IN
        ))
        .await;
    let cancelled = app
        .count(&format!(
            "SELECT count(*) FROM guests g JOIN tickets t ON t.guest_id = g.id WHERE g.event_id = {event_id}
               AND g.status = 'cancelled' AND t.status = 'cancelled' AND t.validated_at IS NULL"
        ))
        .await;
    assert_eq!(checked_in + cancelled, PAIRS as i64, "{statuses:?}");
    assert_eq!(checked_in, accepted);
    assert_eq!(
        cancelled as usize,
        statuses.get(&(false, 200)).copied().unwrap_or(0),
        "{statuses:?}"
    );
}

/// One crossing of two units of work that take the same two row locks in opposite orders:
/// PostgreSQL must break the deadlock (40P01) by rolling one of them back.
async fn crossing_units(
    app: &TestApp,
    first: i32,
    second: i32,
    meet: &tokio::sync::Barrier,
) -> Result<(), edge::ApiError> {
    let state = &app.state;
    let met = std::sync::atomic::AtomicBool::new(false);
    let met = &met;
    let run = async {
        let units: u32 = edge::unit_of_work!(state, |tx| async move {
            tx.execute("UPDATE crossing SET n = n + 1 WHERE id = $1", &[&first])
                .await?;
            // Both hold their first lock before either asks for its second: on each unit's
            // first attempt only. A retry runs alone, and may take its first row before the
            // other unit, woken by the rollback, does (so its count alone cannot tell it is a
            // retry: once it read 1 and waited here for a unit blocked on that row).
            if !met.swap(true, std::sync::atomic::Ordering::SeqCst) {
                meet.wait().await;
            }
            tx.execute("UPDATE crossing SET n = n + 1 WHERE id = $1", &[&second])
                .await?;
            Ok::<_, domain::DomainError>(domain::work::Done::new(1, Default::default()))
        });
        Ok::<_, edge::ApiError>(units)
    };
    run.await.map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_unit_of_work_rolled_back_by_a_deadlock_runs_again() {
    let app = TestApp::spawn().await;
    app.sql()
        .await
        .batch_execute(
            "CREATE TABLE crossing (id int PRIMARY KEY, n int NOT NULL);
             INSERT INTO crossing VALUES (1, 0), (2, 0);",
        )
        .await
        .unwrap();
    let meet = tokio::sync::Barrier::new(2);
    let (a, b) = tokio::join!(
        crossing_units(&app, 1, 2, &meet),
        crossing_units(&app, 2, 1, &meet)
    );
    // Without the retry one of the two answers 503 (SERVICE_UNAVAILABLE, "transaction conflict").
    assert!(a.is_ok(), "{:?}", a.err().map(|e| e.0));
    assert!(b.is_ok(), "{:?}", b.err().map(|e| e.0));
    // Both units are whole: each row was raised once by each unit.
    assert_eq!(app.count("SELECT sum(n) FROM crossing").await, 4);
    assert_eq!(
        app.count("SELECT count(*) FROM crossing WHERE n = 2").await,
        2
    );
}
