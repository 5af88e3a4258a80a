//! A registration's jobs through SQS into the real workers: the contract's message body,
//! the ticket email with a QR code that decodes to the ticket's payload, retries of a
//! failing notification service, duplicates, permanent and transient failures.

use base64::Engine;
use domain::outbox::{self, RelayConfig};
use jobs::lambda::handle_batch;
use serde_json::Value;
use testkit::fixtures;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;

fn attribute(m: &aws_sdk_sqs::types::Message, name: &str) -> Option<String> {
    m.message_attributes()?
        .get(name)?
        .string_value()
        .map(str::to_owned)
}

#[tokio::test]
async fn a_registration_reaches_the_guest_as_a_ticket_email_through_sqs() {
    let w = World::new(30, 2).await;
    let stub = notification_service().await;
    let workers = w.workers(&stub);
    let registration = fixtures::registration(&w.state, "ada@example.com").await;
    let qr_payload = registration["ticket"]["qrPayload"]
        .as_str()
        .expect("a signed payload at registration")
        .to_owned();

    // The relay hands the two jobs of the registration to their queues.
    let sent = outbox::drain(&w.state.db, &w.queue, &RelayConfig::default())
        .await
        .unwrap();
    assert_eq!((sent.sent, sent.failed), (2, 0));

    // Ticket generation: the contract's body, the jobType attribute.
    let messages = receive_n(&w.sqs, &w.tickets.url, 1).await;
    let body: Value = serde_json::from_str(messages[0].body().unwrap()).unwrap();
    let mut keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(keys, ["createdAt", "jobId", "payload", "type"]);
    assert_eq!(body["type"], "generate_ticket");
    assert_eq!(body["payload"]["ticketId"], registration["ticket"]["id"]);
    assert!(uuid::Uuid::parse_str(body["jobId"].as_str().unwrap()).is_ok());
    assert!(chrono::DateTime::parse_from_rfc3339(body["createdAt"].as_str().unwrap()).is_ok());
    assert_eq!(
        attribute(&messages[0], "jobType").as_deref(),
        Some("generate_ticket")
    );

    let response = handle_batch(&w.state.db, &workers, event(&messages, &w.tickets)).await;
    assert_eq!(failed_ids(&response), Vec::<String>::new());
    delete(&w.sqs, &w.tickets.url, &messages).await;

    // The ticket job queued the ticket_ready email in the outbox; relay it.
    let sent = outbox::drain(&w.state.db, &w.queue, &RelayConfig::default())
        .await
        .unwrap();
    assert_eq!(sent.sent, 1);

    // The email worker gets the confirmation and the ticket email.
    let messages = receive_n(&w.sqs, &w.email.url, 2).await;
    let mut types: Vec<String> = messages
        .iter()
        .map(|m| attribute(m, "jobType").unwrap())
        .collect();
    types.sort();
    assert_eq!(types, ["registration_confirmation", "ticket_ready"]);
    let response = handle_batch(&w.state.db, &workers, event(&messages, &w.email)).await;
    assert_eq!(failed_ids(&response), Vec::<String>::new());
    delete(&w.sqs, &w.email.url, &messages).await;

    let sent = emails(&stub).await;
    assert_eq!(sent.len(), 2, "{sent:#?}");
    assert!(sent.iter().all(|e| e["to"] == "ada@example.com"));
    let ticket_email = sent
        .iter()
        .find(|e| {
            e["subject"]
                .as_str()
                .unwrap()
                .starts_with("Your ticket for")
        })
        .expect("the ticket email");
    let attachment = &ticket_email["attachments"][0];
    assert_eq!(attachment["contentType"], "image/png");
    let png = base64::engine::general_purpose::STANDARD
        .decode(attachment["contentBase64"].as_str().unwrap())
        .unwrap();
    assert_eq!(decode_qr(&png), qr_payload);
    // The event as a calendar file, read by an independent RFC 5545 parser (Python's icalendar).
    let ics = &ticket_email["attachments"][1];
    assert_eq!(ics["filename"], "event.ics");
    assert!(ics["contentType"]
        .as_str()
        .unwrap()
        .starts_with("text/calendar"));
    let ics = base64::engine::general_purpose::STANDARD
        .decode(ics["contentBase64"].as_str().unwrap())
        .unwrap();
    let script = r#"
import sys, icalendar
cal = icalendar.Calendar.from_ical(sys.stdin.buffer.read())
ev = next(c for c in cal.walk() if c.name == "VEVENT")
print(ev.get("summary"), ev.get("location"), ev.decoded("dtstart").isoformat(), ev.get("uid"), sep="|")
"#;
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), &ics).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fields: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .split('|')
        .map(str::to_owned)
        .collect();
    let event: (String, String, chrono::DateTime<chrono::Utc>, i64) = {
        let db = w.state.db.get().await.unwrap();
        let r = db
            .query_one("SELECT title, location, event_date, id FROM events", &[])
            .await
            .unwrap();
        (r.get(0), r.get(1), r.get(2), r.get(3))
    };
    assert_eq!(fields[0], event.0);
    assert_eq!(fields[1], event.1);
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(&fields[2])
            .unwrap()
            .timestamp(),
        event.2.timestamp(),
        "DTSTART is the event's start (to the second)"
    );
    assert_eq!(fields[3], format!("event-{}@event-planner-core", event.3));
    assert_eq!(
        w.count("SELECT count(*) FROM processed_jobs WHERE outcome = 'done'")
            .await,
        3
    );
    assert_eq!(depth(&w.sqs, &w.email.url).await, 0);
    assert_eq!(depth(&w.sqs, &w.tickets.url).await, 0);
}

/// The registration's confirmation email job, received from the email queue.
async fn confirmation_message(w: &World) -> Vec<aws_sdk_sqs::types::Message> {
    fixtures::registration(&w.state, "grace@example.com").await;
    outbox::drain(&w.state.db, &w.queue, &RelayConfig::default())
        .await
        .unwrap();
    receive_n(&w.sqs, &w.email.url, 1).await
}

#[tokio::test]
async fn a_notification_service_failing_once_still_delivers_exactly_one_email() {
    let w = World::new(30, 2).await;
    let stub = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/notifications/email"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&stub)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/notifications/email"))
        .respond_with(ResponseTemplate::new(200))
        .with_priority(2)
        .expect(1)
        .mount(&stub)
        .await;
    let workers = w.workers(&stub);
    let messages = confirmation_message(&w).await;

    let response = handle_batch(&w.state.db, &workers, event(&messages, &w.email)).await;
    assert_eq!(failed_ids(&response), Vec::<String>::new());
    let requests = emails(&stub).await;
    assert_eq!(requests.len(), 2, "one 500, then one accepted");
    assert_eq!(
        requests[0]["idempotencyKey"], requests[1]["idempotencyKey"],
        "the retry carries the same idempotency key"
    );
    // A redelivery of the same message sends nothing more.
    let response = handle_batch(&w.state.db, &workers, event(&messages, &w.email)).await;
    assert_eq!(failed_ids(&response), Vec::<String>::new());
    assert_eq!(emails(&stub).await.len(), 2);
    stub.verify().await;
}

#[tokio::test]
async fn the_same_message_delivered_twice_sends_one_email() {
    let w = World::new(30, 2).await;
    let stub = notification_service().await;
    let workers = w.workers(&stub);
    let messages = confirmation_message(&w).await;
    let body = messages[0].body().unwrap().to_owned();

    // Two deliveries of one body, as SQS's at-least-once delivery may produce (different
    // message ids and receipt handles).
    for delivery in ["delivery-1", "delivery-2"] {
        let event: aws_lambda_events::event::sqs::SqsEvent = serde_json::from_value(serde_json::json!({
            "Records": [{"messageId": delivery, "receiptHandle": format!("handle-{delivery}"), "body": body,
                         "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
                         "eventSource": "aws:sqs", "eventSourceARN": w.email.arn, "awsRegion": "eu-west-1"}]
        }))
        .unwrap();
        let response = handle_batch(&w.state.db, &workers, event).await;
        assert_eq!(failed_ids(&response), Vec::<String>::new());
    }
    assert_eq!(emails(&stub).await.len(), 1);
    assert_eq!(
        w.count("SELECT count(*) FROM processed_jobs").await,
        1,
        "one record per jobId"
    );
}

#[tokio::test]
async fn transient_failures_are_redelivered_and_permanent_ones_are_not() {
    let w = World::new(30, 2).await;
    let messages = confirmation_message(&w).await;

    // The notification service is down (503 on every attempt): the record fails and is
    // not recorded as processed, so SQS redelivers it.
    let down = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&down)
        .await;
    let response = handle_batch(&w.state.db, &w.workers(&down), event(&messages, &w.email)).await;
    assert_eq!(
        failed_ids(&response),
        [messages[0].message_id().unwrap().to_owned()]
    );
    assert_eq!(emails(&down).await.len(), 3, "the client's own 3 attempts");
    assert_eq!(w.count("SELECT count(*) FROM processed_jobs").await, 0);

    // It refuses the message (400): permanent, recorded, the record is a success (no retry).
    let refuses = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_string("bad address"))
        .mount(&refuses)
        .await;
    let workers = w.workers(&refuses);
    let response = handle_batch(&w.state.db, &workers, event(&messages, &w.email)).await;
    assert_eq!(failed_ids(&response), Vec::<String>::new());
    assert_eq!(emails(&refuses).await.len(), 1);
    assert_eq!(
        w.count("SELECT count(*) FROM processed_jobs WHERE outcome = 'failed_permanently'")
            .await,
        1
    );
    // And it is not tried again.
    let response = handle_batch(&w.state.db, &workers, event(&messages, &w.email)).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(emails(&refuses).await.len(), 1);
}
