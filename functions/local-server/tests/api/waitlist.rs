//! The waiting list (issue 16): offers hold seats that no registration can take, claims by
//! token or by the organizer, expiry whether or not the sweep has run, and the capacity
//! invariant with every seat-taking path racing at once.

use std::collections::HashMap;

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

/// A published event with one ticket type of `quantity` seats and the waiting list on.
async fn waitlisted_event(app: &TestApp, token: &str, quantity: i64) -> (i64, i64) {
    let e = app
        .published_event(
            token,
            json!({"maxAttendees": 1000, "waitlistEnabled": true, "waitlistOfferMinutes": 30,
                   "ticketTypes": [{"name": "Standard", "price": 10, "quantity": quantity}]}),
        )
        .await;
    assert_eq!(e["waitlistEnabled"], true);
    assert_eq!(e["waitlistOfferMinutes"], 30);
    (
        e["id"].as_i64().unwrap(),
        e["ticketTypes"][0]["id"].as_i64().unwrap(),
    )
}

/// Registers `n` guests `g0@x.test`… on the ticket type (each 201): their ids.
async fn register_guests(app: &TestApp, org: &str, (event, tt): (i64, i64), n: usize) -> Vec<i64> {
    let mut guests = Vec::new();
    for i in 0..n {
        let r = app
            .register(org, event, guest_body(&format!("g{i}@x.test"), &json!(tt)))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        guests.push(r.data()["guest"]["id"].as_i64().unwrap());
    }
    guests
}

/// Adds `n` entries `w0@x.test`… to the event's waiting list (each 201): their ids.
async fn join_entries(app: &TestApp, org: &str, (event, tt): (i64, i64), n: usize) -> Vec<i64> {
    let mut entries = Vec::new();
    for i in 0..n {
        let r = app
            .post(
                &format!("/api/events/{event}/waitlist"),
                org,
                guest_body(&format!("w{i}@x.test"), &json!(tt)),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        entries.push(r.data()["id"].as_i64().unwrap());
    }
    entries
}

/// The claim token of `entry`'s offer, as the `waitlist_offer` email job carries it.
async fn token_of(app: &TestApp, entry: i64) -> String {
    app.sql()
        .await
        .query_one(
            "SELECT payload->>'token' FROM job_outbox
              WHERE job_type = 'waitlist_offer' AND (payload->>'entryId')::bigint = $1",
            &[&entry],
        )
        .await
        .unwrap()
        .get(0)
}

async fn entry(app: &TestApp, token: &str, event: i64, id: i64) -> Value {
    let r = app
        .get(&format!("/api/events/{event}/waitlist?limit=100"), token)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.data()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == id)
        .cloned()
        .unwrap_or(Value::Null)
}

async fn stats(app: &TestApp, token: &str, event: i64) -> Value {
    let r = app.get(&format!("/api/events/{event}/stats"), token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.data().clone()
}

#[tokio::test]
async fn a_freed_seat_is_held_for_the_first_entry_and_claimed_by_its_token() {
    let app = TestApp::spawn().await;
    let org = app.organizer("org-w1");
    let (event, tt) = waitlisted_event(&app, &org, 2).await;
    let guests = register_guests(&app, &org, (event, tt), 2).await;
    let full = app
        .register(&org, event, guest_body("late@x.test", &json!(tt)))
        .await;
    assert_eq!(full.code(), "SOLD_OUT");

    let join = |email: &str| {
        let body = guest_body(email, &json!(tt));
        let uri = format!("/api/events/{event}/waitlist");
        let (app, org) = (&app, org.clone());
        async move { app.post(&uri, &org, body).await }
    };
    let mut entries = Vec::new();
    for i in 0..3 {
        let r = join(&format!("w{i}@x.test")).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert_eq!(r.data()["status"], "waiting");
        assert_eq!(r.data()["position"], i + 1);
        entries.push(r.data()["id"].as_i64().unwrap());
    }
    assert_eq!(join("W0@x.test").await.code(), "DUPLICATE_GUEST");
    assert_eq!(join("g0@x.test").await.code(), "DUPLICATE_GUEST");
    let s = stats(&app, &org, event).await;
    assert_eq!(
        (s["waiting"].as_i64(), s["held"].as_i64()),
        (Some(3), Some(0))
    );

    // A cancellation hands the seat to entry 1: held, not on sale.
    let r = app
        .post(
            &format!("/api/events/{event}/guests/{}/cancel", guests[0]),
            &org,
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let first = entry(&app, &org, event, entries[0]).await;
    assert_eq!(first["status"], "offered", "{first}");
    assert!(first["offerExpiresAt"].is_string());
    let s = stats(&app, &org, event).await;
    assert_eq!(
        (s["waiting"].as_i64(), s["held"].as_i64()),
        (Some(2), Some(1))
    );
    assert_eq!(s["registered"], 1);
    let e = app.get(&format!("/api/events/{event}"), &org).await;
    assert_eq!(e.data()["ticketTypes"][0]["sold"], 1);
    assert_eq!(e.data()["ticketTypes"][0]["held"], 1);
    assert_eq!(e.data()["ticketTypes"][0]["available"], 0);
    let r = app
        .register(&org, event, guest_body("sneaky@x.test", &json!(tt)))
        .await;
    assert_eq!(r.code(), "SOLD_OUT", "a registration took the held seat");

    // The public claim: no JWT, the token is the authority.
    let token = token_of(&app, entries[0]).await;
    assert_eq!(token.len(), 43);
    let r = app
        .call(
            axum::http::Method::POST,
            "/api/waitlist/claim",
            None,
            Some(json!({"token": "nope"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    let r = app
        .call(
            axum::http::Method::POST,
            "/api/waitlist/claim",
            None,
            Some(json!({"token": token})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.data()["guest"]["status"], "confirmed");
    assert_eq!(r.data()["guest"]["email"], "w0@x.test");
    assert!(r.data()["ticket"]["id"].is_i64());
    let guest = r.data()["guest"]["id"].clone();
    let claimed = entry(&app, &org, event, entries[0]).await;
    assert_eq!(
        (&claimed["status"], &claimed["guestId"]),
        (&json!("claimed"), &guest)
    );
    let again = app
        .call(
            axum::http::Method::POST,
            "/api/waitlist/claim",
            None,
            Some(json!({"token": token})),
        )
        .await;
    assert_eq!(
        again.code(),
        "INVALID_STATE",
        "a token is single use: {}",
        again.body
    );
    let s = stats(&app, &org, event).await;
    assert_eq!(
        (s["registered"].as_i64(), s["held"].as_i64()),
        (Some(2), Some(0))
    );

    // Removing a waiting entry; a raised quantity offers to the next one, then sells the rest.
    let r = app
        .delete(
            &format!("/api/events/{event}/waitlist/{}", entries[1]),
            &org,
        )
        .await;
    assert_eq!(
        (r.status, &r.data()["status"]),
        (StatusCode::OK, &json!("removed"))
    );
    let r = app
        .patch(
            &format!("/api/events/{event}/ticket-types/{tt}"),
            &org,
            json!({"quantity": 4}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        entry(&app, &org, event, entries[2]).await["status"],
        "offered"
    );
    let r = app
        .register(&org, event, guest_body("now@x.test", &json!(tt)))
        .await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "one seat was left after the offer"
    );
    assert_eq!(
        app.register(&org, event, guest_body("now2@x.test", &json!(tt)))
            .await
            .code(),
        "SOLD_OUT"
    );
    // The organizer claims for entry 3.
    let r = app
        .post(
            &format!("/api/events/{event}/waitlist/{}/claim", entries[2]),
            &org,
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    // Another organizer sees nothing.
    let other = app.organizer("org-other");
    let r = app
        .post(
            &format!("/api/events/{event}/waitlist/{}/claim", entries[2]),
            &other,
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM audit_log WHERE event_id = {event} AND action LIKE 'waitlist.%'"
        ))
        .await,
        3 + 1 + 2,
        "joined ×3, removed, claimed ×2"
    );
}

#[tokio::test]
async fn an_expired_offer_is_refused_before_the_sweep_and_handed_on_by_it() {
    let app = TestApp::spawn().await;
    let org = app.organizer("org-w2");
    let (event, tt) = waitlisted_event(&app, &org, 1).await;
    let g = app
        .register(&org, event, guest_body("g@x.test", &json!(tt)))
        .await;
    let guest = g.data()["guest"]["id"].as_i64().unwrap();
    let entries = join_entries(&app, &org, (event, tt), 2).await;
    app.post(
        &format!("/api/events/{event}/guests/{guest}/cancel"),
        &org,
        json!({}),
    )
    .await;
    let token = token_of(&app, entries[0]).await;
    // The offer's time passes; the sweep has not run yet.
    app.sql()
        .await
        .execute(
            "UPDATE waitlist_entries SET offer_expires_at = now() - interval '1 second' WHERE id = $1",
            &[&entries[0]],
        )
        .await
        .unwrap();
    let r = app
        .call(
            axum::http::Method::POST,
            "/api/waitlist/claim",
            None,
            Some(json!({"token": token})),
        )
        .await;
    assert_eq!(r.code(), "OFFER_EXPIRED", "{}", r.body);
    assert_eq!(
        entry(&app, &org, event, entries[0]).await["status"],
        "offered"
    );
    // The sweep expires it and hands the seat to entry 2 (never free in between).
    let expired = domain::waitlist::offers::sweep_expired(&app.state.db)
        .await
        .unwrap();
    assert_eq!(expired, 1);
    assert_eq!(
        entry(&app, &org, event, entries[0]).await["status"],
        "expired"
    );
    assert_eq!(
        entry(&app, &org, event, entries[1]).await["status"],
        "offered"
    );
    let s = stats(&app, &org, event).await;
    assert_eq!(
        (s["held"].as_i64(), s["waiting"].as_i64()),
        (Some(1), Some(0))
    );
    // Removing that offer gives the seat back (nobody waits): a registration gets it.
    app.delete(
        &format!("/api/events/{event}/waitlist/{}", entries[1]),
        &org,
    )
    .await;
    let r = app
        .register(&org, event, guest_body("next@x.test", &json!(tt)))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    // A ticket type holding a seat for an offer cannot be deleted (the seat would leak).
    let extra = app
        .post(
            &format!("/api/events/{event}/ticket-types"),
            &org,
            json!({"name": "Extra", "price": 5, "quantity": 1}),
        )
        .await;
    assert_eq!(extra.status, StatusCode::CREATED, "{}", extra.body);
    let extra = extra.data()["id"].clone();
    let r = app
        .post(
            &format!("/api/events/{event}/waitlist"),
            &org,
            guest_body("x@x.test", &extra),
        )
        .await;
    assert_eq!(r.data()["status"], "offered", "{}", r.body);
    let r = app
        .delete(&format!("/api/events/{event}/ticket-types/{extra}"), &org)
        .await;
    assert_eq!(r.code(), "INVALID_STATE", "{}", r.body);
    // A disabled waiting list takes no entries.
    app.patch(
        &format!("/api/events/{event}"),
        &org,
        json!({"waitlistEnabled": false}),
    )
    .await;
    let r = app
        .post(
            &format!("/api/events/{event}/waitlist"),
            &org,
            guest_body("z@x.test", &json!(tt)),
        )
        .await;
    assert_eq!(r.code(), "INVALID_STATE");
}

/// What the race's invariant query sees in one snapshot: seats taken in the shards, the
/// guests holding seats plus the offers holding seats, the quantity, the entries waiting.
const INVARIANT: &str = "
    SELECT seats_taken(t.event_id, t.id)::bigint,
           (SELECT count(*) FROM guests g WHERE g.ticket_type_id = t.id AND g.status <> 'cancelled')
         + (SELECT count(*) FROM waitlist_entries w WHERE w.ticket_type_id = t.id AND w.status = 'offered'),
           t.quantity::bigint,
           (SELECT count(*) FROM waitlist_entries w WHERE w.ticket_type_id = t.id AND w.status = 'waiting')
      FROM ticket_types t WHERE t.id = $1";

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn every_seat_taking_path_racing_never_sells_past_the_capacity() {
    let app = TestApp::spawn().await;
    let org = app.organizer("org-race");
    let (event, tt) = waitlisted_event(&app, &org, 50).await;
    let guests = register_guests(&app, &org, (event, tt), 50).await;
    let entries = join_entries(&app, &org, (event, tt), 30).await;
    // Ten cancellations before the race: entries 1–10 hold offers; 1–4 are past their time
    // (not swept yet).
    for g in &guests[..10] {
        let r = app
            .post(
                &format!("/api/events/{event}/guests/{g}/cancel"),
                &org,
                json!({}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let mut tokens = Vec::new();
    for e in &entries[..10] {
        tokens.push(token_of(&app, *e).await);
    }
    app.sql()
        .await
        .execute(
            "UPDATE waitlist_entries SET offer_expires_at = now() - interval '1 second' WHERE id = ANY($1)",
            &[&entries[..4].to_vec()],
        )
        .await
        .unwrap();

    // 200 operations at once: 30 cancellations, 100 registrations, 10 token claims (4 of
    // them expired), 20 organizer claims of entries 11–30, 39 sweeps, 1 quantity raise.
    #[derive(Debug)]
    enum Op {
        Cancel(i64),
        Register(usize),
        ClaimToken(usize, String),
        ClaimEntry(i64),
        Sweep,
        Raise,
    }
    let mut ops: Vec<Op> = Vec::new();
    ops.extend(guests[10..40].iter().map(|g| Op::Cancel(*g)));
    ops.extend((0..100).map(Op::Register));
    ops.extend(
        tokens
            .into_iter()
            .enumerate()
            .map(|(i, t)| Op::ClaimToken(i, t)),
    );
    ops.extend(entries[10..30].iter().map(|e| Op::ClaimEntry(*e)));
    ops.extend((0..39).map(|_| Op::Sweep));
    ops.push(Op::Raise);
    assert_eq!(ops.len(), 200);

    // A sampler checks the invariant in one snapshot while the race runs.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (pool, stop) = (app.state.db.clone(), stop.clone());
        tokio::spawn(async move {
            let mut samples = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let db = pool.get().await.unwrap();
                let row = db.query_one(INVARIANT, &[&tt]).await.unwrap();
                let (taken, holders, quantity, waiting): (i64, i64, i64, i64) =
                    (row.get(0), row.get(1), row.get(2), row.get(3));
                assert!(
                    taken <= quantity,
                    "sold + held {taken} > quantity {quantity}"
                );
                assert_eq!(taken, holders, "the shards disagree with the rows");
                // A free seat is offered in the transaction that frees it: never a free
                // seat (that a registration could take) while an entry waits.
                assert!(
                    taken == quantity || waiting == 0,
                    "{} free seats while {waiting} entries wait",
                    quantity - taken
                );
                samples += 1;
            }
            samples
        })
    };

    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(ops.len()));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, op) in ops.into_iter().enumerate() {
        let (router, state, org, barrier) = (
            app.app.clone(),
            app.state.clone(),
            org.clone(),
            barrier.clone(),
        );
        // Spread over 300 ms (a scrambled order), so that every kind of operation meets
        // every other.
        let jitter = std::time::Duration::from_millis((i as u64 * 7919) % 300);
        tasks.spawn(async move {
            use tower::ServiceExt;
            let (method, uri, auth, body) = match &op {
                Op::Cancel(g) => (
                    "POST",
                    format!("/api/events/{event}/guests/{g}/cancel"),
                    true,
                    json!({}),
                ),
                Op::Register(i) => (
                    "POST",
                    format!("/api/events/{event}/guests"),
                    true,
                    guest_body(&format!("r{i}@x.test"), &json!(tt)),
                ),
                Op::ClaimToken(_, t) => (
                    "POST",
                    "/api/waitlist/claim".to_owned(),
                    false,
                    json!({"token": t}),
                ),
                Op::ClaimEntry(e) => (
                    "POST",
                    format!("/api/events/{event}/waitlist/{e}/claim"),
                    true,
                    json!({}),
                ),
                Op::Raise => (
                    "PATCH",
                    format!("/api/events/{event}/ticket-types/{tt}"),
                    true,
                    json!({"quantity": 60}),
                ),
                Op::Sweep => {
                    barrier.wait().await;
                    tokio::time::sleep(jitter).await;
                    domain::waitlist::offers::sweep_expired(&state.db)
                        .await
                        .unwrap();
                    return (op, "swept".to_owned());
                }
            };
            let mut req = axum::http::Request::builder()
                .method(method)
                .uri(&uri)
                .header("content-type", "application/json")
                .header("x-forwarded-for", "10.1.2.3");
            if auth {
                req = req.header("authorization", format!("Bearer {org}"));
            }
            let req = req.body(axum::body::Body::from(body.to_string())).unwrap();
            barrier.wait().await;
            tokio::time::sleep(jitter).await;
            let res = router.oneshot(req).await.unwrap();
            let status = res.status();
            let bytes = http_body_util::BodyExt::collect(res.into_body())
                .await
                .unwrap()
                .to_bytes();
            let v: Value = serde_json::from_slice(&bytes).unwrap();
            let outcome = if status.is_success() {
                status.as_u16().to_string()
            } else {
                v["error"]["code"].as_str().unwrap_or("?").to_owned()
            };
            (op, outcome)
        });
    }
    let mut outcomes: HashMap<String, HashMap<String, usize>> = HashMap::new();
    let mut token_claims: HashMap<usize, String> = HashMap::new();
    while let Some(done) = tasks.join_next().await {
        let (op, outcome) = done.unwrap();
        assert!(
            !outcome.starts_with('5')
                && outcome != "INTERNAL_ERROR"
                && outcome != "SERVICE_UNAVAILABLE",
            "{op:?}: {outcome}"
        );
        let kind = format!("{op:?}").split('(').next().unwrap().to_owned();
        if let Op::ClaimToken(i, _) = &op {
            token_claims.insert(*i, outcome.clone());
        }
        *outcomes
            .entry(kind)
            .or_default()
            .entry(outcome)
            .or_insert(0) += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let samples = sampler.await.unwrap();
    assert!(samples > 0);
    // The claims racing the rate limit must not be limited (20 per minute per IP).
    eprintln!("outcomes: {outcomes:?} ({samples} invariant samples)");

    // Every claim after expiry refused; every live token claim accepted.
    for i in 0..4 {
        assert_eq!(
            token_claims[&i], "OFFER_EXPIRED",
            "expired offer {i} claimed"
        );
    }
    for i in 4..10 {
        assert_eq!(
            token_claims[&i], "201",
            "live offer {i}: {}",
            token_claims[&i]
        );
    }
    assert_eq!(outcomes["Cancel"].get("200"), Some(&30));
    assert_eq!(outcomes["Raise"].get("200"), Some(&1));

    // One last sweep (none left due), then the counts.
    domain::waitlist::offers::sweep_expired(&app.state.db)
        .await
        .unwrap();
    let db = app.sql().await;
    let row = db.query_one(INVARIANT, &[&tt]).await.unwrap();
    let (taken, holders, quantity): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(quantity, 60);
    assert_eq!(taken, holders);
    assert!(taken <= quantity);
    // No entry offered twice (one offer email each), and offers in position order: no
    // entry still waiting sits before one that got an offer.
    let twice = app
        .count(
            "SELECT count(*) FROM (SELECT payload->>'entryId' FROM job_outbox WHERE job_type = 'waitlist_offer'
                                    GROUP BY 1 HAVING count(*) > 1) x",
        )
        .await;
    assert_eq!(twice, 0, "an entry got two offers");
    let out_of_order = app
        .count(
            "SELECT count(*) FROM waitlist_entries w JOIN waitlist_entries o ON o.event_id = w.event_id
              WHERE w.status = 'waiting' AND o.offered_at IS NOT NULL AND o.position > w.position",
        )
        .await;
    assert_eq!(out_of_order, 0, "an entry was passed over");
    let offers = app
        .count("SELECT count(*) FROM waitlist_entries WHERE offered_at IS NOT NULL")
        .await;
    assert_eq!(
        offers,
        app.count("SELECT count(*) FROM job_outbox WHERE job_type = 'waitlist_offer'")
            .await
    );
    // Each freed seat went to the waiting list while anyone waited: a free seat and a
    // waiting entry never coexist.
    let waiting = app
        .count("SELECT count(*) FROM waitlist_entries WHERE status = 'waiting'")
        .await;
    if waiting > 0 {
        assert_eq!(taken, quantity, "{waiting} entries wait beside a free seat");
    }
    // Seats freed: 30 cancellations, 10 raised, 4 expired offers; each went to a waiting
    // entry while one waited, so registrations got only what was left after every entry
    // had an offer.
    let registered = outcomes["Register"].get("201").copied().unwrap_or(0) as i64;
    let claims = app
        .count("SELECT count(*) FROM waitlist_entries WHERE status = 'claimed'")
        .await;
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM guests WHERE event_id = {event} AND status <> 'cancelled'"
        ))
        .await,
        10 + registered + claims,
        "guests = the 10 never cancelled + registrations + claims"
    );
    if registered > 0 {
        assert_eq!(
            waiting, 0,
            "a registration took a seat while entries waited"
        );
    }
}

#[tokio::test]
async fn a_claimed_entry_is_in_the_guests_personal_data_and_erased_with_it() {
    let app = TestApp::spawn().await;
    let org = app.organizer("org-w3");
    let (event, tt) = waitlisted_event(&app, &org, 1).await;
    // A seat is free: the entry is offered at once, then claimed by the organizer.
    let r = app
        .post(
            &format!("/api/events/{event}/waitlist"),
            &org,
            guest_body("ada@x.test", &json!(tt)),
        )
        .await;
    assert_eq!(r.data()["status"], "offered", "{}", r.body);
    let entry_id = r.data()["id"].as_i64().unwrap();
    let r = app
        .post(
            &format!("/api/events/{event}/waitlist/{entry_id}/claim"),
            &org,
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let guest = r.data()["guest"]["id"].as_i64().unwrap();
    let uri = format!("/api/events/{event}/guests/{guest}");
    let d = app.get(&format!("{uri}/personal-data"), &org).await;
    assert_eq!(d.data()["waitlistEntries"][0]["id"], entry_id, "{}", d.body);
    assert_eq!(d.data()["waitlistEntries"][0]["email"], "ada@x.test");
    let r = app.post(&format!("{uri}/erase"), &org, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let e = entry(&app, &org, event, entry_id).await;
    assert_ne!(e["email"], "ada@x.test");
    assert_ne!(e["firstName"], "John");
    assert_eq!(
        app.count("SELECT count(*) FROM waitlist_entries WHERE email ILIKE '%ada@x.test%' OR phone IS NOT NULL")
            .await,
        0
    );
}

#[tokio::test]
async fn the_offer_email_goes_to_the_entry_with_its_claim_link() {
    use jobs::clients::notification::{ClientConfig, NotificationClient};
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let app = TestApp::spawn().await;
    let notifications = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/notifications/email"))
        .respond_with(ResponseTemplate::new(202).set_body_json(json!({"id": "n-1"})))
        .mount(&notifications)
        .await;
    let config = ClientConfig {
        timeout: std::time::Duration::from_secs(5),
        max_attempts: 2,
        backoff: std::time::Duration::from_millis(10),
    };
    let mailer = jobs::email::Mailer::Notification(Box::new(
        NotificationClient::new(&notifications.uri(), config).unwrap(),
    ));
    let workers = std::sync::Arc::new(
        jobs::workers::Workers::new(app.state.db.clone(), mailer, None)
            .with_claim_url(Some("https://tickets.example.com/claim?t={token}".into())),
    );
    let queue = jobs::queue::InProcessQueue::start(app.state.db.clone(), workers, 5);
    tokio::spawn(domain::outbox::run_relay(
        app.state.db.clone(),
        queue,
        app.state.outbox_signal.clone(),
        std::time::Duration::from_millis(200),
    ));
    let org = app.organizer("org-w4");
    let (event, tt) = waitlisted_event(&app, &org, 1).await;
    let r = app
        .post(
            &format!("/api/events/{event}/waitlist"),
            &org,
            guest_body("lucky@x.test", &json!(tt)),
        )
        .await;
    let entry = r.data()["id"].as_i64().unwrap();
    let token = token_of(&app, entry).await;
    let mut email = None;
    for _ in 0..100 {
        let got = notifications.received_requests().await.unwrap_or_default();
        if let Some(req) = got.first() {
            email = Some(serde_json::from_slice::<Value>(&req.body).unwrap());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let email = email.expect("the waitlist_offer email was sent");
    assert_eq!(email["to"], "lucky@x.test");
    assert!(email["subject"]
        .as_str()
        .unwrap()
        .starts_with("A seat is free for you"));
    let text = email["text"].as_str().unwrap();
    assert!(
        text.contains(&format!("https://tickets.example.com/claim?t={token}")),
        "{text}"
    );
    assert!(text.contains("held for you until"), "{text}");
}
