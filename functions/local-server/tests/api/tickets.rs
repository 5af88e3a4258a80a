use axum::body::Body;
use axum::http::{Request, StatusCode};
use domain::tickets::signing::verify_offline;
use serde_json::{json, Value};

use crate::helpers::*;

struct Fixture {
    app: TestApp,
    token: String,
    event: Value,
    ticket: Value,
}

async fn fixture() -> Fixture {
    let app = TestApp::spawn().await;
    let token = app.organizer("alice");
    let event = app.published_event(&token, json!({})).await;
    let r = app
        .register(
            &token,
            event["id"].as_i64().unwrap(),
            guest_body("t@example.com", &event["ticketTypes"][0]["id"]),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let ticket = r.data()["ticket"].clone();
    Fixture {
        app,
        token,
        event,
        ticket,
    }
}

fn decode_qr(png: &[u8]) -> String {
    let img = image::load_from_memory(png).expect("a PNG").to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(img);
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the image");
    grids[0].decode().expect("decodable").1
}

impl Fixture {
    fn ticket_uri(&self, suffix: &str) -> String {
        format!("/api/tickets/{}{suffix}", self.ticket["id"])
    }

    async fn scan(&self, token: &str, scanner: &str) -> TestResponse {
        self.app
            .post(
                &self.ticket_uri("/validate"),
                token,
                json!({"scannerId": scanner, "location": "Entrance A"}),
            )
            .await
    }

    async fn png(&self, token: &str) -> Vec<u8> {
        let req = Request::get(self.ticket_uri("/qr"))
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        let (status, headers, bytes) = self.app.send_raw(req).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["content-type"], "image/png");
        bytes
    }
}

#[tokio::test]
async fn the_generated_qr_code_decodes_to_a_payload_that_verifies_offline() {
    let f = fixture().await;
    let payload = f.ticket["qrPayload"].as_str().unwrap().to_owned();
    assert!(payload.len() < 200);

    // The image is served before the job ran (rendered on the fly)...
    assert_eq!(decode_qr(&f.png(&f.token).await), payload);
    // ...and the job stores it, once, and queues the ticket email once.
    for _ in 0..2 {
        jobs::ticket::generate_ticket(&f.app.state.db, f.ticket["id"].as_i64().unwrap())
            .await
            .unwrap();
    }
    let t = f.app.get(&f.ticket_uri(""), &f.token).await;
    let stored = t.data()["qrCodeData"]
        .as_str()
        .expect("qrCodeData filled by the job");
    use base64::Engine;
    let png = base64::engine::general_purpose::STANDARD
        .decode(stored)
        .unwrap();
    let decoded = decode_qr(&png);
    assert_eq!(decoded, payload);
    assert_eq!(
        f.app
            .count("SELECT count(*) FROM job_outbox WHERE job_type = 'ticket_ready'")
            .await,
        1
    );
    assert_eq!(decode_qr(&f.png(&f.token).await), payload);

    // The scanner key verifies it offline.
    let key = f
        .app
        .get(
            &format!("/api/events/{}/scanner-key", f.event["id"]),
            &f.app.scanner("alice"),
        )
        .await;
    assert_eq!(key.status, StatusCode::OK, "{}", key.body);
    assert_eq!(key.data()["algorithm"], "Ed25519");
    let public = key.data()["publicKey"].as_str().unwrap();
    let claims =
        verify_offline(&decoded, public).expect("signature verifies with the published key");
    assert_eq!(claims.ticket_id, f.ticket["id"].as_i64().unwrap());
    assert_eq!(claims.event_id, f.event["id"].as_i64().unwrap());
    assert_eq!(claims.code, f.ticket["ticketCode"].as_str().unwrap());
    assert_eq!(claims.kid, key.data()["keyId"].as_str().unwrap());

    // One flipped character: the service refuses it as INVALID_SIGNATURE.
    let mut tampered: Vec<char> = decoded.chars().collect();
    let i = tampered.len() - 5;
    tampered[i] = if tampered[i] == 'A' { 'B' } else { 'A' };
    let tampered: String = tampered.into_iter().collect();
    assert!(verify_offline(&tampered, public).is_err());
    let r = f
        .app
        .post(
            "/api/tickets/validate",
            &f.token,
            json!({"code": tampered, "scannerId": "s1", "location": "Gate"}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "INVALID_SIGNATURE")
    );
    // A changed ticket id with the old signature too.
    let forged = decoded.replacen(
        &format!(".{}.", f.ticket["id"]),
        &format!(".{}.", f.ticket["id"].as_i64().unwrap() + 1),
        1,
    );
    let r = f
        .app
        .post(
            "/api/tickets/validate",
            &f.token,
            json!({"code": forged, "scannerId": "s1", "location": "Gate"}),
        )
        .await;
    assert_eq!(r.code(), "INVALID_SIGNATURE");
    // The genuine payload is accepted.
    let r = f
        .app
        .post(
            "/api/tickets/validate",
            &f.token,
            json!({"code": decoded, "scannerId": "s1", "location": "Gate"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn first_scan_checks_in_later_scans_say_when_and_where() {
    let f = fixture().await;
    let scanner = f.app.scanner("alice");
    let r = f.scan(&scanner, "scanner-1").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.data()["valid"], true);
    assert_eq!(r.data()["ticket"]["isValidated"], true);
    assert_eq!(r.data()["ticket"]["validatedBy"], "scanner-1");
    assert_eq!(r.data()["ticket"]["validationLocation"], "Entrance A");
    assert_eq!(r.data()["ticket"]["guest"]["status"], "checked_in");
    let first_at = r.data()["validatedAt"].clone();

    let again = f
        .app
        .post(
            &f.ticket_uri("/validate"),
            &scanner,
            json!({"scannerId": "scanner-2", "location": "Entrance B"}),
        )
        .await;
    assert_eq!(
        (again.status, again.code()),
        (StatusCode::CONFLICT, "TICKET_ALREADY_VALIDATED")
    );
    let details = &again.body["error"]["details"];
    assert_eq!(details["scannerId"], "scanner-1");
    assert_eq!(details["location"], "Entrance A");
    assert_eq!(details["validatedAt"], first_at);

    // By typed code (any case) it is the same ticket.
    let code = f.ticket["ticketCode"].as_str().unwrap().to_lowercase();
    let r = f
        .app
        .post(
            "/api/tickets/validate",
            &scanner,
            json!({"code": code, "scannerId": "s3", "location": "Gate"}),
        )
        .await;
    assert_eq!(r.code(), "TICKET_ALREADY_VALIDATED");
    let event = f
        .app
        .get(&format!("/api/events/{}", f.event["id"]), &f.token)
        .await;
    assert_eq!(event.data()["stats"]["checkedIn"], 1);
    assert_eq!(f.app.count("SELECT count(*) FROM ticket_scans").await, 3);
    assert_eq!(
        f.app
            .count("SELECT count(*) FROM ticket_scans WHERE result = 'accepted'")
            .await,
        1
    );
}

#[tokio::test]
async fn an_admin_checks_in_any_ticket_and_every_scan_names_its_ticket() {
    let f = fixture().await;
    // Another organizer's scanner is refused before the admin's scan is accepted.
    assert_eq!(f.scan(&f.app.scanner("eve"), "x").await.code(), "NOT_FOUND");
    let r = f.scan(&f.app.admin(), "door-1").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.data()["ticket"]["id"], f.ticket["id"]);
    assert_eq!(r.data()["ticket"]["validatedBy"], "door-1");
    assert_eq!(r.data()["ticket"]["guest"]["status"], "checked_in");
    assert_eq!(r.data()["ticket"]["event"]["id"], f.event["id"]);
    assert_eq!(r.data()["validatedAt"], r.data()["ticket"]["validatedAt"]);
    assert_eq!(
        f.scan(&f.token, "door-2").await.code(),
        "TICKET_ALREADY_VALIDATED"
    );
    let ids = format!(
        "ticket_id = {} AND event_id = {}",
        f.ticket["id"], f.event["id"]
    );
    for (result, which) in [
        ("not_found", "ticket_id IS NULL AND event_id IS NULL"),
        ("accepted", ids.as_str()),
        ("already_validated", ids.as_str()),
    ] {
        let sql =
            format!("SELECT count(*) FROM ticket_scans WHERE result = '{result}' AND {which}");
        assert_eq!(f.app.count(&sql).await, 1, "{result}");
    }
    assert_eq!(f.app.count("SELECT count(*) FROM ticket_scans").await, 3);
}

#[tokio::test]
async fn refused_scans() {
    let f = fixture().await;
    let (scanner, eve) = (f.app.scanner("alice"), f.app.scanner("eve"));
    // Another organizer's scanner cannot tell the ticket exists.
    assert_eq!(f.scan(&eve, "x").await.code(), "NOT_FOUND");
    assert_eq!(f.app.get(&f.ticket_uri(""), &eve).await.code(), "NOT_FOUND");
    assert_eq!(
        f.app
            .get(&f.ticket_uri(""), &f.app.organizer("bob"))
            .await
            .code(),
        "NOT_FOUND"
    );
    assert_eq!(
        f.app
            .get(&format!("/api/events/{}/scanner-key", f.event["id"]), &eve)
            .await
            .code(),
        "NOT_FOUND"
    );
    assert_eq!(
        f.app
            .post(
                "/api/tickets/999999/validate",
                &scanner,
                json!({"scannerId": "s", "location": "l"})
            )
            .await
            .code(),
        "NOT_FOUND"
    );
    for code in ["TC-2027-NOSUCHCODE", "hello", "EP1.garbage"] {
        let r = f
            .app
            .post(
                "/api/tickets/validate",
                &scanner,
                json!({"code": code, "scannerId": "s", "location": "l"}),
            )
            .await;
        assert!(
            matches!(r.code(), "NOT_FOUND" | "INVALID_SIGNATURE"),
            "{code}: {}",
            r.body
        );
    }
    for body in [
        json!({"scannerId": "", "location": "l"}),
        json!({"scannerId": "s"}),
        json!({"scannerId": "s", "location": "x".repeat(101)}),
    ] {
        assert_eq!(f.scan_body(&scanner, body).await.code(), "VALIDATION_ERROR");
    }
    // Scanners may not manage events or read their stats.
    assert_eq!(
        f.app
            .get(&format!("/api/events/{}/stats", f.event["id"]), &scanner)
            .await
            .code(),
        "FORBIDDEN"
    );
    assert_eq!(
        f.app.get(&f.ticket_uri(""), &scanner).await.status,
        StatusCode::OK
    );

    // A cancelled ticket.
    let gid = f.ticket["guest"]["id"].as_i64().unwrap();
    f.app
        .post(
            &format!("/api/events/{}/guests/{gid}/cancel", f.event["id"]),
            &f.token,
            json!({}),
        )
        .await;
    let r = f.scan(&scanner, "s").await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "TICKET_CANCELLED")
    );

    // An event that is no longer published.
    let e2 = f.app.published_event(&f.token, json!({})).await;
    let t2 = f
        .app
        .register(
            &f.token,
            e2["id"].as_i64().unwrap(),
            guest_body("u@example.com", &e2["ticketTypes"][0]["id"]),
        )
        .await
        .data()["ticket"]["id"]
        .clone();
    f.app
        .patch(
            &format!("/api/events/{}", e2["id"]),
            &f.token,
            json!({"status": "completed"}),
        )
        .await;
    let r = f
        .app
        .post(
            &format!("/api/tickets/{t2}/validate"),
            &scanner,
            json!({"scannerId": "s", "location": "l"}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "INVALID_STATE")
    );

    let rows = f.app.count("SELECT count(*) FROM ticket_scans").await;
    assert_eq!(
        rows, 7,
        "every scan attempt is in the scan log (malformed requests are not scans)"
    );
    assert_eq!(
        f.app
            .count("SELECT count(*) FROM ticket_scans WHERE result = 'accepted'")
            .await,
        0
    );
}

impl Fixture {
    async fn scan_body(&self, token: &str, body: Value) -> TestResponse {
        self.app
            .post(&self.ticket_uri("/validate"), token, body)
            .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_scanners_racing_on_one_ticket_give_exactly_one_check_in() {
    let f = fixture().await;
    let scanner = f.app.scanner("alice");
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(50));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        let (router, uri, token, barrier) = (
            f.app.app.clone(),
            f.ticket_uri("/validate"),
            scanner.clone(),
            barrier.clone(),
        );
        tasks.spawn(async move {
            use tower::ServiceExt;
            let req = Request::post(&uri)
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/json")
                .body(Body::from(json!({"scannerId": format!("scanner-{i}"), "location": format!("Gate {}", i % 4)}).to_string()))
                .unwrap();
            barrier.wait().await;
            let res = router.oneshot(req).await.unwrap();
            let status = res.status();
            let bytes = http_body_util::BodyExt::collect(res.into_body()).await.unwrap().to_bytes();
            let body: Value = serde_json::from_slice(&bytes).unwrap();
            (status, body["error"]["code"].as_str().unwrap_or("").to_owned())
        });
    }
    let (mut ok, mut already) = (0, 0);
    while let Some(r) = tasks.join_next().await {
        match r.unwrap() {
            (StatusCode::OK, _) => ok += 1,
            (StatusCode::CONFLICT, code) if code == "TICKET_ALREADY_VALIDATED" => already += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((ok, already), (1, 49));
    assert_eq!(f.app.count("SELECT count(*) FROM ticket_scans").await, 50);
    assert_eq!(
        f.app
            .count("SELECT count(*) FROM ticket_scans WHERE result = 'accepted'")
            .await,
        1
    );
    assert_eq!(
        f.app
            .count(&format!(
                "SELECT count(*) FROM guests g JOIN tickets t ON t.guest_id = g.id WHERE {}",
                domain::guests::model::GUEST_CHECKED_IN
            ))
            .await,
        1
    );
}

#[tokio::test]
async fn stats_count_registrations_check_ins_and_scans() {
    let app = TestApp::spawn().await;
    let token = app.organizer("alice");
    let e = app
        .published_event(&token, json!({"maxAttendees": 100, "ticketTypes": [{"name": "A", "price": 1, "quantity": 10}, {"name": "B", "price": 2, "quantity": 20}]}))
        .await;
    let id = e["id"].as_i64().unwrap();
    let (a, b) = (
        e["ticketTypes"][0]["id"].clone(),
        e["ticketTypes"][1]["id"].clone(),
    );
    let mut tickets = Vec::new();
    for (i, tt) in [&a, &a, &b, &b, &b].iter().enumerate() {
        let r = app
            .register(&token, id, guest_body(&format!("s{i}@example.com"), tt))
            .await;
        tickets.push((
            r.data()["ticket"]["id"].clone(),
            r.data()["guest"]["id"].clone(),
        ));
    }
    app.post(
        &format!("/api/events/{id}/guests/{}/cancel", tickets[4].1),
        &token,
        json!({}),
    )
    .await;
    let scan = |t: &Value, loc: &'static str| {
        let (app, token, uri) = (&app, &token, format!("/api/tickets/{t}/validate"));
        async move {
            app.post(&uri, token, json!({"scannerId": "s", "location": loc}))
                .await
        }
    };
    scan(&tickets[0].0, "North").await;
    scan(&tickets[2].0, "South").await;
    scan(&tickets[3].0, "North").await;
    scan(&tickets[3].0, "South").await; // rejected: already validated
    scan(&tickets[4].0, "South").await; // rejected: cancelled
    let s = app.get(&format!("/api/events/{id}/stats"), &token).await;
    assert_eq!(s.status, StatusCode::OK, "{}", s.body);
    assert_eq!(
        *s.data(),
        json!({
            "capacity": 100, "registered": 4, "pending": 0, "confirmed": 1, "checkedIn": 3, "cancelled": 1,
            "held": 0, "waiting": 0,
            "byTicketType": [
                {"ticketTypeId": a, "name": "A", "quantity": 10, "sold": 2, "held": 0, "checkedIn": 1},
                {"ticketTypeId": b, "name": "B", "quantity": 20, "sold": 2, "held": 0, "checkedIn": 2}
            ],
            "scans": {"accepted": 3, "rejected": 2, "byLocation": [{"location": "North", "accepted": 2}, {"location": "South", "accepted": 1}]},
            "byList": [{"listId": s.data()["byList"][0]["listId"], "name": "Default", "entered": 3, "inside": 3, "exits": 0, "conflicts": 0}]
        })
    );
    assert_eq!(
        app.get(&format!("/api/events/{id}/stats"), &app.organizer("bob"))
            .await
            .code(),
        "NOT_FOUND"
    );
}
