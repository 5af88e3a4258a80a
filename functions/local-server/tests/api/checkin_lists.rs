//! Door operations: check-in lists, entry and exit, supervised undo, offline scanning.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

/// An event with two ticket types (General, VIP), its default list, a VIP lounge list that
/// admits VIP tickets only, and a re-entry hall list; `tickets[i]` registered with type i % 2.
struct Door {
    app: TestApp,
    token: String,
    event_id: i64,
    general: i64,
    vip: i64,
    default_list: i64,
    lounge: i64,
    hall: i64,
    tickets: Vec<Value>,
}

async fn door(guests: usize) -> Door {
    let app = TestApp::spawn().await;
    let token = app.organizer("alice");
    let e = app
        .published_event(
            &token,
            json!({"ticketTypes": [
                {"name": "General", "price": 10, "quantity": 200},
                {"name": "VIP", "price": 99, "quantity": 50}
            ]}),
        )
        .await;
    let event_id = e["id"].as_i64().unwrap();
    let types: Vec<i64> = e["ticketTypes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_i64().unwrap())
        .collect();
    let lists = app
        .get(&format!("/api/events/{event_id}/checkin-lists"), &token)
        .await;
    assert_eq!(lists.status, StatusCode::OK, "{}", lists.body);
    let default_list = lists.data()[0]["id"].as_i64().unwrap();
    assert_eq!(lists.data()[0]["isDefault"], true);
    assert_eq!(lists.data()[0]["name"], "Default");
    let lounge = app
        .post(
            &format!("/api/events/{event_id}/checkin-lists"),
            &token,
            json!({"name": "VIP lounge", "ticketTypeIds": [types[1]]}),
        )
        .await;
    assert_eq!(lounge.status, StatusCode::CREATED, "{}", lounge.body);
    let hall = app
        .post(
            &format!("/api/events/{event_id}/checkin-lists"),
            &token,
            json!({"name": "Hall", "allowReentry": true}),
        )
        .await;
    assert_eq!(hall.status, StatusCode::CREATED, "{}", hall.body);
    let mut tickets = Vec::new();
    for i in 0..guests {
        let r = app
            .register(
                &token,
                event_id,
                guest_body(&format!("g{i}@example.com"), &json!(types[i % 2])),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        tickets.push(r.data()["ticket"].clone());
    }
    Door {
        token,
        event_id,
        general: types[0],
        vip: types[1],
        default_list,
        lounge: lounge.data()["id"].as_i64().unwrap(),
        hall: hall.data()["id"].as_i64().unwrap(),
        tickets,
        app,
    }
}

fn scan_body(ticket: &Value, scanner: &str, kind: &str) -> Value {
    json!({"ticketId": ticket["id"], "scannerId": scanner, "location": "Gate", "type": kind})
}

impl Door {
    async fn scan(&self, list: i64, ticket: &Value, kind: &str) -> TestResponse {
        self.app
            .post(
                &format!("/api/checkin-lists/{list}/scans"),
                &self.token,
                scan_body(ticket, "s-1", kind),
            )
            .await
    }

    async fn list(&self, list: i64) -> Value {
        let r = self
            .app
            .get(&format!("/api/checkin-lists/{list}"), &self.token)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.data().clone()
    }

    async fn guest_status(&self, ticket: &Value) -> String {
        let db = self.app.sql().await;
        db.query_one(
            &format!(
                "SELECT {} FROM guests g JOIN tickets t ON t.guest_id = g.id WHERE t.id = $1",
                domain::guests::model::GUEST_STATUS
            ),
            &[&ticket["id"].as_i64().unwrap()],
        )
        .await
        .unwrap()
        .get(0)
    }
}

/// Sends every request at the same moment (a barrier), answers in request order.
async fn race(
    app: &TestApp,
    requests: Vec<(Method, String, String, Value)>,
) -> Vec<(StatusCode, Value)> {
    let barrier = Arc::new(tokio::sync::Barrier::new(requests.len()));
    let mut tasks = Vec::new();
    for (method, uri, token, body) in requests {
        let (router, barrier) = (app.app.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            use tower::ServiceExt;
            let req = Request::builder()
                .method(method)
                .uri(&uri)
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .unwrap();
            barrier.wait().await;
            let res = router.oneshot(req).await.unwrap();
            let status = res.status();
            let bytes = http_body_util::BodyExt::collect(res.into_body())
                .await
                .unwrap()
                .to_bytes();
            (
                status,
                serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null),
            )
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test]
async fn lists_are_managed_by_organizers_and_read_by_their_scanners() {
    let d = door(0).await;
    let uri = format!("/api/events/{}/checkin-lists", d.event_id);
    // Validation.
    let r = d
        .app
        .post(&uri, &d.token, json!({"name": "vip lounge"}))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "INVALID_STATE"),
        "names are unique per event"
    );
    let other = d.app.published_event(&d.token, json!({})).await;
    let r = d
        .app
        .post(
            &uri,
            &d.token,
            json!({"name": "X", "ticketTypeIds": [other["ticketTypes"][0]["id"]]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.fields(), ["ticketTypeIds[0]"]);
    let r = d
        .app
        .post(
            &uri,
            &d.token,
            json!({"name": "X", "opensAt": future(2), "closesAt": future(1)}),
        )
        .await;
    assert_eq!(r.fields(), ["closesAt"]);
    let r = d
        .app
        .post(&uri, &d.token, json!({"name": "X", "opensAt": "tomorrow"}))
        .await;
    assert_eq!(r.fields(), ["opensAt"]);

    // Roles and tenancy.
    let scanner = d.app.scanner("alice");
    let r = d.app.get(&uri, &scanner).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.data().as_array().unwrap().len(), 3);
    let r = d.app.post(&uri, &scanner, json!({"name": "Y"})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let bob = d.app.organizer("bob");
    assert_eq!(d.app.get(&uri, &bob).await.status, StatusCode::NOT_FOUND);
    let one = format!("/api/checkin-lists/{}", d.lounge);
    assert_eq!(d.app.get(&one, &bob).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        d.app.get(&one, &d.app.scanner("bob")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        d.app
            .patch(&one, &bob, json!({"name": "mine"}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // Changes.
    let r = d
        .app
        .patch(
            &one,
            &d.token,
            json!({"name": "Lounge", "closesAt": future(3)}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.data()["name"], "Lounge");
    assert_eq!(r.data()["ticketTypeIds"], json!([d.vip]));
    let r = d.app.patch(&one, &d.token, json!({"closesAt": null})).await;
    assert_eq!(r.data()["closesAt"], Value::Null);
    let default_uri = format!("/api/checkin-lists/{}", d.default_list);
    let r = d
        .app
        .patch(&default_uri, &d.token, json!({"allowReentry": true}))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "INVALID_STATE")
    );
    let r = d
        .app
        .patch(&default_uri, &d.token, json!({"name": "Main gate"}))
        .await;
    assert_eq!(r.status, StatusCode::OK);

    // A ticket type a list names cannot be deleted (the list would admit every type).
    let r = d
        .app
        .delete(
            &format!("/api/events/{}/ticket-types/{}", d.event_id, d.vip),
            &d.token,
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "INVALID_STATE"),
        "{}",
        r.body
    );

    // Deletion: never the default list.
    let r = d.app.delete(&default_uri, &d.token).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "INVALID_STATE")
    );
    assert_eq!(
        d.app.delete(&one, &scanner).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        d.app.delete(&one, &d.token).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        d.app.get(&one, &d.token).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn entries_and_exits_follow_each_list_rules() {
    let d = door(5).await;
    let (general, vip) = (&d.tickets[0], &d.tickets[1]);

    // The lounge admits VIP tickets only.
    let r = d.scan(d.lounge, general, "entry").await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "NOT_ON_LIST"));
    let r = d.scan(d.lounge, vip, "entry").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.data()["result"], "accepted");
    assert_eq!(r.data()["type"], "entry");
    assert_eq!(
        r.data()["ticket"]["isValidated"],
        true,
        "the first entry on any list validates the ticket"
    );
    assert_eq!(d.guest_status(vip).await, "checked_in");
    let first = r.data()["scanId"].clone();
    let r = d.scan(d.lounge, vip, "entry").await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "TICKET_ALREADY_VALIDATED")
    );
    assert_eq!(r.body["error"]["details"]["scanId"], first);
    assert_eq!(r.body["error"]["details"]["scannerId"], "s-1");
    // No re-entry on the lounge: out, then never in again.
    assert_eq!(d.scan(d.lounge, vip, "exit").await.status, StatusCode::OK);
    let r = d.scan(d.lounge, vip, "exit").await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "NOT_INSIDE"));
    let r = d.scan(d.lounge, vip, "entry").await;
    assert_eq!(r.code(), "TICKET_ALREADY_VALIDATED");

    // Lists are independent: the lounge did not use up the main entrance (part 1's endpoint).
    let r = d
        .app
        .post(
            &format!("/api/tickets/{}/validate", vip["id"]),
            &d.token,
            json!({"scannerId": "gate-1", "location": "Main"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.data()["valid"], true);

    // The hall lets people out and back in.
    for kind in ["entry", "exit", "entry", "exit", "entry"] {
        let r = d.scan(d.hall, general, kind).await;
        assert_eq!(r.status, StatusCode::OK, "{kind}: {}", r.body);
    }
    let hall = d.list(d.hall).await;
    assert_eq!(
        hall["stats"],
        json!({"entered": 3, "inside": 1, "exits": 2, "conflicts": 0})
    );
    let lounge = d.list(d.lounge).await;
    assert_eq!(
        lounge["stats"],
        json!({"entered": 1, "inside": 0, "exits": 1, "conflicts": 0})
    );

    // By code: the signed payload, or the typed ticket code.
    let r = d
        .app
        .post(
            &format!("/api/checkin-lists/{}/scans", d.hall),
            &d.token,
            json!({"code": d.tickets[2]["qrPayload"], "scannerId": "s", "location": "l"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = d
        .app
        .post(
            &format!("/api/checkin-lists/{}/scans", d.hall),
            &d.token,
            json!({"code": d.tickets[3]["ticketCode"].as_str().unwrap().to_lowercase(), "scannerId": "s", "location": "l"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // One character of the signature flipped (not the last: its low bits may be padding).
    let mut forged: Vec<char> = d.tickets[0]["qrPayload"]
        .as_str()
        .unwrap()
        .chars()
        .collect();
    let i = forged.len() - 5;
    forged[i] = if forged[i] == 'A' { 'B' } else { 'A' };
    let forged: String = forged.into_iter().collect();
    let r = d
        .app
        .post(
            &format!("/api/checkin-lists/{}/scans", d.hall),
            &d.token,
            json!({"code": forged, "scannerId": "s", "location": "l"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "INVALID_SIGNATURE");
    // A ticket of another event is not found on this list.
    let (other_event, _) = d.app.registered_guest(&d.token, "x@example.com").await;
    let other_ticket: i64 = d
        .app
        .count(&format!(
            "SELECT id FROM tickets WHERE event_id = {other_event}"
        ))
        .await;
    let r = d.scan(d.hall, &json!({"id": other_ticket}), "entry").await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "NOT_FOUND"));
    // Input.
    let r = d
        .app
        .post(
            &format!("/api/checkin-lists/{}/scans", d.hall),
            &d.token,
            json!({"scannerId": "s", "location": "l"}),
        )
        .await;
    assert_eq!(r.fields(), ["code"]);
    let r = d
        .app
        .post(
            &format!("/api/checkin-lists/{}/scans", d.hall),
            &d.token,
            json!({"ticketId": 1, "scannerId": "s", "location": "l", "type": "sideways"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // Another organizer's list: 404 whatever the body.
    let r = d
        .app
        .post(
            &format!("/api/checkin-lists/{}/scans", d.hall),
            &d.app.scanner("bob"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // A cancelled ticket is refused; a closed list too.
    let guest_id = d.tickets[4]["guest"]["id"].clone();
    let r = d
        .app
        .post(
            &format!("/api/events/{}/guests/{guest_id}/cancel", d.event_id),
            &d.token,
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = d.scan(d.default_list, &d.tickets[4], "entry").await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "TICKET_CANCELLED")
    );
    let closed = d
        .app
        .post(
            &format!("/api/events/{}/checkin-lists", d.event_id),
            &d.token,
            json!({"name": "Workshop", "opensAt": future(1)}),
        )
        .await;
    let r = d
        .scan(
            closed.data()["id"].as_i64().unwrap(),
            &d.tickets[2],
            "entry",
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "LIST_CLOSED"));

    // Every attempt is in the scan log, with its result.
    let log = d
        .app
        .get(
            &format!("/api/checkin-lists/{}/scans?limit=100", d.lounge),
            &d.token,
        )
        .await;
    assert_eq!(log.status, StatusCode::OK, "{}", log.body);
    let results: Vec<&str> = log.data()["scans"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|s| s["result"].as_str().unwrap())
        .collect();
    assert_eq!(
        results,
        [
            "not_on_list",
            "accepted",
            "already_validated",
            "accepted",
            "not_inside",
            "already_validated"
        ]
    );
    assert_eq!(log.data()["pagination"]["total"], 6);
    let refused = d
        .app
        .get(
            &format!("/api/checkin-lists/{}/scans?result=rejected", d.lounge),
            &d.token,
        )
        .await;
    assert_eq!(refused.data()["pagination"]["total"], 4);
    let hall_log = d
        .app
        .get(
            &format!(
                "/api/checkin-lists/{}/scans?ticketId={}",
                d.hall, general["id"]
            ),
            &d.token,
        )
        .await;
    assert_eq!(hall_log.data()["pagination"]["total"], 5);

    // The event's stats gain each list's counts.
    let stats = d
        .app
        .get(&format!("/api/events/{}/stats", d.event_id), &d.token)
        .await;
    let by_list = stats.data()["byList"].as_array().unwrap().clone();
    assert_eq!(by_list[0]["listId"], d.default_list);
    assert_eq!(by_list[0]["entered"], 1);
    let hall_counts = by_list.iter().find(|l| l["listId"] == d.hall).unwrap();
    assert_eq!(hall_counts["entered"], 5);
    assert_eq!(hall_counts["inside"], 3);
    let _ = d.general;
}

#[tokio::test]
async fn organizers_revert_scans_and_the_ticket_goes_back() {
    let d = door(2).await;
    let t = &d.tickets[0];
    let r = d.scan(d.default_list, t, "entry").await;
    let scan_id = r.data()["scanId"].as_i64().unwrap();
    let uri = format!(
        "/api/checkin-lists/{}/scans/{scan_id}/revert",
        d.default_list
    );
    // Door staff cannot undo; another organizer does not see the scan.
    assert_eq!(
        d.app
            .post(&uri, &d.app.scanner("alice"), json!({}))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        d.app
            .post(&uri, &d.app.organizer("bob"), json!({}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let r = d.app.post(&uri, &d.token, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.data()["revertedBy"], "alice");
    assert!(r.data()["revertedAt"].is_string());
    // Twice: the same answer, nothing changes.
    let again = d.app.post(&uri, &d.token, json!({})).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.data(), r.data());
    // The only entry is undone: the ticket is no longer validated, the guest no longer in.
    assert_eq!(d.guest_status(t).await, "confirmed");
    let ticket = d
        .app
        .get(&format!("/api/tickets/{}", t["id"]), &d.token)
        .await;
    assert_eq!(ticket.data()["isValidated"], false);
    assert_eq!(d.list(d.default_list).await["stats"]["entered"], 0);
    // ... and it may enter again.
    let r = d.scan(d.default_list, t, "entry").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let audit = d
        .app
        .count(&format!("SELECT count(*) FROM audit_log WHERE action = 'scan.reverted' AND entity_id = {scan_id} AND actor_sub = 'alice'"))
        .await;
    assert_eq!(audit, 1, "one audit entry, however many reverts");

    // Only the latest accepted scan of a ticket on a list; never a refusal.
    let hall: Vec<i64> = {
        let mut ids = Vec::new();
        for kind in ["entry", "exit"] {
            ids.push(
                d.scan(d.hall, t, kind).await.data()["scanId"]
                    .as_i64()
                    .unwrap(),
            );
        }
        ids
    };
    let r = d
        .app
        .post(
            &format!("/api/checkin-lists/{}/scans/{}/revert", d.hall, hall[0]),
            &d.token,
            json!({}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "INVALID_STATE")
    );
    // Reverting the exit puts the ticket back inside.
    let r = d
        .app
        .post(
            &format!("/api/checkin-lists/{}/scans/{}/revert", d.hall, hall[1]),
            &d.token,
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        d.list(d.hall).await["stats"],
        json!({"entered": 1, "inside": 1, "exits": 0, "conflicts": 0})
    );
    let refused = d.scan(d.hall, t, "entry").await;
    assert_eq!(refused.code(), "TICKET_ALREADY_VALIDATED");
    let log = d
        .app
        .get(
            &format!("/api/checkin-lists/{}/scans?result=rejected", d.hall),
            &d.token,
        )
        .await;
    let refused_id = log.data()["scans"][0]["id"].as_i64().unwrap();
    let r = d
        .app
        .post(
            &format!("/api/checkin-lists/{}/scans/{refused_id}/revert", d.hall),
            &d.token,
            json!({}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "INVALID_STATE")
    );
    // A scan of another list is not found under this one.
    let r = d
        .app
        .post(
            &format!("/api/checkin-lists/{}/scans/{}/revert", d.lounge, hall[1]),
            &d.token,
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

fn scan_requests(
    d: &Door,
    list: i64,
    ticket: &Value,
    kinds: &[&str],
) -> Vec<(Method, String, String, Value)> {
    let scanner = d.app.scanner("alice");
    kinds
        .iter()
        .enumerate()
        .map(|(i, kind)| {
            (
                Method::POST,
                format!("/api/checkin-lists/{list}/scans"),
                scanner.clone(),
                scan_body(ticket, &format!("scanner-{i}"), kind),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_scanners_entering_one_ticket_on_a_list_admit_it_once() {
    let d = door(2).await;
    let answers = race(
        &d.app,
        scan_requests(&d, d.lounge, &d.tickets[1], &["entry"; 50]),
    )
    .await;
    let accepted = answers.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    let refused = answers
        .iter()
        .filter(|(s, b)| {
            *s == StatusCode::CONFLICT && b["error"]["code"] == "TICKET_ALREADY_VALIDATED"
        })
        .count();
    assert_eq!((accepted, refused), (1, 49), "{answers:?}");
    let list = format!("list_id = {}", d.lounge);
    assert_eq!(
        d.app
            .count(&format!("SELECT count(*) FROM ticket_scans WHERE {list}"))
            .await,
        50
    );
    assert_eq!(
        d.app
            .count(&format!(
                "SELECT count(*) FROM ticket_scans WHERE {list} AND result = 'accepted'"
            ))
            .await,
        1
    );
    assert_eq!(
        d.app
            .count(&format!(
                "SELECT entries::bigint FROM checkin_states WHERE {list}"
            ))
            .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_entries_and_exits_on_a_reentry_list_stay_consistent() {
    let d = door(1).await;
    let kinds: Vec<&str> = (0..50)
        .map(|i| if i % 2 == 0 { "entry" } else { "exit" })
        .collect();
    let t = &d.tickets[0];
    let answers = race(&d.app, scan_requests(&d, d.hall, t, &kinds)).await;
    for (s, b) in &answers {
        assert!(
            *s == StatusCode::OK
                || (*s == StatusCode::CONFLICT
                    && ["TICKET_ALREADY_VALIDATED", "NOT_INSIDE"]
                        .contains(&b["error"]["code"].as_str().unwrap())),
            "{s} {b}"
        );
    }
    let ok = |kind: &str| {
        answers
            .iter()
            .zip(&kinds)
            .filter(|((s, _), k)| *s == StatusCode::OK && **k == kind)
            .count() as i64
    };
    let (entries, exits) = (ok("entry"), ok("exit"));
    assert!(entries >= 1);
    // The accepted sequence alternates, starting with an entry: in the log's order each
    // accepted scan is the other kind than the one before.
    let db = d.app.sql().await;
    let rows = db
        .query(
            "SELECT direction FROM ticket_scans WHERE list_id = $1 AND result = 'accepted' ORDER BY id",
            &[&d.hall],
        )
        .await
        .unwrap();
    let seq: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    for (i, kind) in seq.iter().enumerate() {
        assert_eq!(kind, if i % 2 == 0 { "entry" } else { "exit" }, "{seq:?}");
    }
    let state = db
        .query_one(
            "SELECT inside, entries::bigint, exits::bigint FROM checkin_states WHERE list_id = $1",
            &[&d.hall],
        )
        .await
        .unwrap();
    let (inside, e, x): (bool, i64, i64) = (state.get(0), state.get(1), state.get(2));
    assert_eq!((e, x), (entries, exits));
    assert_eq!(inside, entries == exits + 1);
    assert!(entries == exits || entries == exits + 1);
    assert_eq!(
        d.app
            .count(&format!(
                "SELECT count(*) FROM ticket_scans WHERE list_id = {}",
                d.hall
            ))
            .await,
        50
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_lists_admit_the_same_ticket_once_each() {
    let d = door(2).await;
    let vip = &d.tickets[1];
    let mut requests = scan_requests(&d, d.lounge, vip, &["entry"; 20]);
    requests.extend(scan_requests(&d, d.default_list, vip, &["entry"; 20]));
    let answers = race(&d.app, requests).await;
    let accepted_on = |range: std::ops::Range<usize>| {
        answers[range]
            .iter()
            .filter(|(s, _)| *s == StatusCode::OK)
            .count()
    };
    assert_eq!((accepted_on(0..20), accepted_on(20..40)), (1, 1));
    assert_eq!(d.guest_status(vip).await, "checked_in");
    assert_eq!(
        d.app
            .count("SELECT count(*) FROM ticket_scans WHERE result = 'accepted'")
            .await,
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revert_racing_new_entries_never_leaves_two_admissions() {
    let d = door(1).await;
    let t = &d.tickets[0];
    for round in 0..5 {
        let first = d.scan(d.default_list, t, "entry").await;
        assert_eq!(
            first.status,
            StatusCode::OK,
            "round {round}: {}",
            first.body
        );
        let scan_id = first.data()["scanId"].as_i64().unwrap();
        let mut requests = vec![(
            Method::POST,
            format!(
                "/api/checkin-lists/{}/scans/{scan_id}/revert",
                d.default_list
            ),
            d.token.clone(),
            json!({}),
        )];
        requests.extend(scan_requests(&d, d.default_list, t, &["entry"; 10]));
        let answers = race(&d.app, requests).await;
        assert_eq!(answers[0].0, StatusCode::OK, "{:?}", answers[0]);
        let accepted = answers[1..]
            .iter()
            .filter(|(s, _)| *s == StatusCode::OK)
            .count();
        assert!(accepted <= 1, "round {round}: {accepted} entries accepted");
        // Outstanding (accepted, not reverted) entries: at most one, and the state agrees.
        let outstanding = d
            .app
            .count(&format!(
                "SELECT count(*) FROM ticket_scans WHERE list_id = {} AND result = 'accepted' AND reverted_at IS NULL",
                d.default_list
            ))
            .await;
        let entries = d
            .app
            .count(&format!(
                "SELECT entries::bigint FROM checkin_states WHERE list_id = {}",
                d.default_list
            ))
            .await;
        assert_eq!(outstanding, accepted as i64);
        assert_eq!(entries, outstanding);
        if accepted == 1 {
            // Leave it outside for the next round.
            let log = d
                .app
                .get(
                    &format!(
                        "/api/checkin-lists/{}/scans?result=accepted&limit=1",
                        d.default_list
                    ),
                    &d.token,
                )
                .await;
            let last = log.data()["scans"][0]["id"].as_i64().unwrap();
            let r = d
                .app
                .post(
                    &format!("/api/checkin-lists/{}/scans/{last}/revert", d.default_list),
                    &d.token,
                    json!({}),
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        }
    }
}

fn offline_scan(ticket: &Value, device: &str, minutes_ago: i64) -> Value {
    json!({
        "clientScanId": uuid::Uuid::new_v4(),
        "code": ticket["qrPayload"],
        "scannerId": device,
        "location": format!("{device} door"),
        "type": "entry",
        "scannedAt": (chrono::Utc::now() - chrono::Duration::minutes(minutes_ago)).to_rfc3339(),
    })
}

async fn upload(d: &Door, list: i64, scans: &[Value]) -> Vec<Value> {
    let r = d
        .app
        .post(
            &format!("/api/checkin-lists/{list}/scans/batch"),
            &d.app.scanner("alice"),
            json!({"scans": scans}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.data()["results"].as_array().unwrap().clone()
}

#[tokio::test]
async fn two_offline_devices_admitting_one_ticket_give_one_entry_and_one_conflict() {
    for a_first in [true, false] {
        let d = door(3).await;
        let list = d.default_list;
        let t = &d.tickets[0];
        // Both devices admitted the ticket offline; device A earlier.
        let a = vec![
            offline_scan(t, "device-a", 10),
            offline_scan(&d.tickets[1], "device-a", 9),
        ];
        let b = vec![offline_scan(t, "device-b", 5)];
        let (first, second) = if a_first { (&a, &b) } else { (&b, &a) };
        let r1 = upload(&d, list, first).await;
        let r2 = upload(&d, list, second).await;
        // Each device uploads twice: the same answers, nothing written again.
        assert_eq!(upload(&d, list, first).await, r1);
        assert_eq!(upload(&d, list, second).await, r2);
        let (ra, rb) = if a_first { (&r1, &r2) } else { (&r2, &r1) };
        let results: Vec<&str> = [&ra[0], &rb[0]]
            .iter()
            .map(|r| r["result"].as_str().unwrap())
            .collect();
        // Whoever uploads first holds the ticket; the other admission is the conflict.
        if a_first {
            assert_eq!(results, ["accepted", "conflict"]);
        } else {
            assert_eq!(results, ["conflict", "accepted"]);
        }
        let conflict = if a_first { &rb[0] } else { &ra[0] };
        assert_eq!(conflict["code"], "TICKET_ALREADY_VALIDATED");
        assert_eq!(ra[1]["result"], "accepted");
        assert_eq!(
            d.app.count("SELECT count(*) FROM ticket_scans").await,
            3,
            "no duplicate on re-upload"
        );

        let c = d
            .app
            .get(&format!("/api/checkin-lists/{list}/conflicts"), &d.token)
            .await;
        assert_eq!(c.status, StatusCode::OK, "{}", c.body);
        let items = c.data().as_array().unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["ticketId"], t["id"]);
        let (conflict_device, first_device) = if a_first {
            ("device-a", "device-b")
        } else {
            ("device-b", "device-a")
        };
        assert_eq!(items[0]["scan"]["scannerId"], first_device);
        assert_eq!(items[0]["firstScan"]["scannerId"], conflict_device);
        assert!(items[0]["firstScan"]["scannedAt"].is_string());
        assert!(items[0]["scan"]["receivedAt"].is_string());
        assert_eq!(
            d.list(list).await["stats"],
            json!({"entered": 2, "inside": 2, "exits": 0, "conflicts": 1})
        );
        // The ticket is validated when the accepted admission happened on the device.
        let ticket = d
            .app
            .get(&format!("/api/tickets/{}", t["id"]), &d.token)
            .await;
        assert_eq!(ticket.data()["isValidated"], true);
        assert_eq!(ticket.data()["validatedBy"], conflict_device);
    }
}

#[tokio::test]
async fn a_ticket_cancelled_after_the_download_is_refused_online_and_a_conflict_offline() {
    let d = door(2).await;
    let list = d.default_list;
    let scanner = d.app.scanner("alice");
    let data = d
        .app
        .get(&format!("/api/checkin-lists/{list}/offline-data"), &scanner)
        .await;
    assert_eq!(data.status, StatusCode::OK, "{}", data.body);
    assert_eq!(data.data()["items"].as_array().unwrap().len(), 2);
    assert_eq!(data.data()["full"], true);
    let cursor = data.data()["cursor"].as_str().unwrap().to_owned();

    let t = &d.tickets[0];
    let guest = &t["guest"]["id"];
    let r = d
        .app
        .post(
            &format!("/api/events/{}/guests/{guest}/cancel", d.event_id),
            &d.token,
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // Online: refused.
    let r = d.scan(list, t, "entry").await;
    assert_eq!(r.code(), "TICKET_CANCELLED");
    // A guest deleted after the download: its ticket goes too.
    let gone = &d.tickets[1];
    let r = d
        .app
        .delete(
            &format!("/api/events/{}/guests/{}", d.event_id, gone["guest"]["id"]),
            &d.token,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    // The next sync carries the cancellation and the deletion, and only them.
    let delta = d
        .app
        .get(
            &format!("/api/checkin-lists/{list}/offline-data?cursor={cursor}"),
            &scanner,
        )
        .await;
    assert_eq!(delta.status, StatusCode::OK, "{}", delta.body);
    let items = delta.data()["items"].as_array().unwrap();
    assert_eq!(delta.data()["full"], false);
    assert_eq!(items.len(), 2, "{}", delta.body);
    assert_eq!(items[0]["ticketId"], t["id"]);
    assert_eq!(items[0]["status"], "cancelled");
    assert_eq!(items[0]["deleted"], false);
    assert_eq!(items[1]["ticketId"], gone["id"]);
    assert_eq!(items[1]["deleted"], true);
    assert_eq!(items[1]["status"], "cancelled");
    assert_eq!(items[1]["sealed"], Value::Null);
    // Hashed by PostgreSQL when the ticket went; the same as the service's hash of live items.
    let hash = domain::checkin::offline::payload_hash(gone["qrPayload"].as_str().unwrap());
    assert_eq!(
        items[1]["payloadHash"], hash,
        "found by the payload a device reads"
    );
    // A device that had not synced admitted it offline: a conflict, with no first scan.
    let r = upload(&d, list, &[offline_scan(t, "device-c", 1)]).await;
    assert_eq!(r[0]["result"], "conflict");
    assert_eq!(r[0]["code"], "TICKET_CANCELLED");
    let c = d
        .app
        .get(&format!("/api/checkin-lists/{list}/conflicts"), &d.token)
        .await;
    assert_eq!(c.data()[0]["firstScan"], Value::Null);
    assert_eq!(d.list(list).await["stats"]["conflicts"], 1);
    // Other offline refusals are rejected with their code; bad batches are refused whole.
    let r = upload(&d, d.lounge, &[offline_scan(&d.tickets[0], "device-c", 1)]).await;
    assert_eq!(
        (r[0]["result"].as_str(), r[0]["code"].as_str()),
        (Some("rejected"), Some("NOT_ON_LIST"))
    );
    let mut future_scan = offline_scan(&d.tickets[1], "device-c", 0);
    future_scan["scannedAt"] = json!(future(1));
    let old_scan = offline_scan(&d.tickets[1], "device-c", 8 * 24 * 60);
    let r = d
        .app
        .post(
            &format!("/api/checkin-lists/{list}/scans/batch"),
            &scanner,
            json!({"scans": [future_scan, old_scan]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.fields(), ["scans[0].scannedAt", "scans[1].scannedAt"]);
    let r = d
        .app
        .post(
            &format!("/api/checkin-lists/{list}/scans/batch"),
            &scanner,
            json!({"scans": []}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // A cursor of another list is refused.
    let r = d
        .app
        .get(
            &format!("/api/checkin-lists/{}/offline-data?cursor={cursor}", d.hall),
            &scanner,
        )
        .await;
    assert_eq!(r.fields(), ["cursor"]);
}

#[tokio::test]
async fn the_offline_dataset_pages_and_seals_guest_details() {
    let d = door(5).await;
    let scanner = d.app.scanner("alice");
    // The lounge admits the VIP tickets (1 and 3) only; pages of one.
    let mut cursor: Option<String> = None;
    let mut ids = Vec::new();
    loop {
        let uri = match &cursor {
            Some(c) => format!(
                "/api/checkin-lists/{}/offline-data?limit=1&cursor={c}",
                d.lounge
            ),
            None => format!("/api/checkin-lists/{}/offline-data?limit=1", d.lounge),
        };
        let r = d.app.get(&uri, &scanner).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        for item in r.data()["items"].as_array().unwrap() {
            ids.push(item["ticketId"].clone());
            // The sealed details are ciphertext in base64url, which spells any three letters
            // now and then ("Doe" once): they are opened and checked below. The rest is clear.
            let mut clear = item.clone();
            clear.as_object_mut().unwrap().remove("sealed");
            let text = clear.to_string();
            assert!(
                !text.contains("John") && !text.contains("Doe") && !text.contains("TC-"),
                "no readable personal data: {text}"
            );
        }
        cursor = Some(r.data()["cursor"].as_str().unwrap().to_owned());
        if r.data()["hasMore"] == false {
            break;
        }
    }
    assert_eq!(
        ids,
        [d.tickets[1]["id"].clone(), d.tickets[3]["id"].clone()]
    );
    // Nothing changed since: an empty delta.
    let r = d
        .app
        .get(
            &format!(
                "/api/checkin-lists/{}/offline-data?cursor={}",
                d.lounge,
                cursor.unwrap()
            ),
            &scanner,
        )
        .await;
    assert_eq!(r.data()["items"], json!([]));

    // An entry shows up in the next delta, inside.
    let r = d
        .app
        .get(
            &format!("/api/checkin-lists/{}/offline-data", d.hall),
            &scanner,
        )
        .await;
    let cursor = r.data()["cursor"].as_str().unwrap().to_owned();
    let item = r.data()["items"][0].clone();
    assert_eq!(
        d.scan(d.hall, &d.tickets[0], "entry").await.status,
        StatusCode::OK
    );
    let r = d
        .app
        .get(
            &format!("/api/checkin-lists/{}/offline-data?cursor={cursor}", d.hall),
            &scanner,
        )
        .await;
    let items = r.data()["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(
        (items[0]["inside"].clone(), items[0]["entries"].clone()),
        (json!(true), json!(1))
    );

    // An independent implementation (Python's `cryptography`) finds the item by the payload's
    // hash and opens it with the QR payload alone.
    let payload = d.tickets[0]["qrPayload"].as_str().unwrap();
    let script = r#"
import base64, hashlib, json, sys
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
payload, item = sys.argv[1], json.loads(sys.argv[2])
assert item["payloadHash"] == hashlib.sha256(payload.encode()).hexdigest(), "payloadHash"
raw = base64.urlsafe_b64decode(item["sealed"] + "=" * (-len(item["sealed"]) % 4))
key = hashlib.sha256(b"EP-SEAL-1" + payload.encode()).digest()
print(AESGCM(key).decrypt(raw[:12], raw[12:], None).decode())
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script, payload, &item.to_string()])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let opened: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        opened,
        json!({"firstName": "John", "lastName": "Doe", "ticketCode": d.tickets[0]["ticketCode"], "ticketTypeName": "General"})
    );
    // Another ticket's payload does not open it.
    let other = std::process::Command::new("python3")
        .args([
            "-c",
            script,
            d.tickets[2]["qrPayload"].as_str().unwrap(),
            &item.to_string(),
        ])
        .output()
        .unwrap();
    assert!(!other.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_uploads_of_the_same_batch_record_it_once() {
    let d = door(4).await;
    let scans: Vec<Value> = d
        .tickets
        .iter()
        .map(|t| offline_scan(t, "device-a", 3))
        .collect();
    let scanner = d.app.scanner("alice");
    let uri = format!("/api/checkin-lists/{}/scans/batch", d.hall);
    let answers = race(
        &d.app,
        (0..8)
            .map(|_| {
                (
                    Method::POST,
                    uri.clone(),
                    scanner.clone(),
                    json!({"scans": scans}),
                )
            })
            .collect(),
    )
    .await;
    for (s, b) in &answers {
        assert_eq!(*s, StatusCode::OK, "{b}");
        assert_eq!(b["data"], answers[0].1["data"]);
    }
    assert_eq!(d.app.count("SELECT count(*) FROM ticket_scans").await, 4);
    assert_eq!(d.list(d.hall).await["stats"]["entered"], 4);
}
