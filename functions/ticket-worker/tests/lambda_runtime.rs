//! The ticket-worker function driven through the Lambda runtime interface (cargo-lambda's
//! emulator) with a real SQS event, its outbox relayed to (moto's) SQS through the SDK's
//! own `AWS_ENDPOINT_URL` configuration.

use domain::outbox::{self, RelayConfig};
use serde_json::{json, Value};
use testkit::aws::{create_queue, lambda_sqs_event, moto};
use testkit::lambda::Emulator;
use testkit::{fixtures, TestDatabase};
use wiremock::MockServer;

#[tokio::test]
async fn a_batch_renders_the_ticket_relays_its_email_and_reports_the_poison_message() {
    let db = TestDatabase::create().await;
    let state = fixtures::state(&db.url, &[]);
    let registration = fixtures::registration(&state, "ticket@example.com").await;
    let ticket_id = registration["ticket"]["id"].as_i64().unwrap();
    let (_, generate) = outbox::lease(&state.db, &RelayConfig::default())
        .await
        .unwrap()
        .into_iter()
        .find(|(_, job)| job.job_type == "generate_ticket")
        .expect("the ticket job in the outbox");

    let moto = moto();
    let sqs = moto.sqs();
    let email_queue = create_queue(&sqs, "email", 30, 3).await;
    let ticket_queue = create_queue(&sqs, "ticket-generation", 30, 3).await;
    let stub = MockServer::start().await; // required in Lambda; this worker sends no email

    let notification_url = stub.uri();
    let aws_env = moto.env();
    // No JWT_SECRET, no TICKET_SIGNING_KEY: a worker builds only what it uses.
    let mut env = vec![
        ("DATABASE_URL", db.url.as_str()),
        ("NOTIFICATION_SERVICE_URL", notification_url.as_str()),
        ("EMAIL_QUEUE_URL", email_queue.url.as_str()),
        ("TICKET_QUEUE_URL", ticket_queue.url.as_str()),
        ("RUST_LOG", "warn"),
    ];
    env.extend(aws_env.iter().map(|(k, v)| (*k, v.as_str())));
    let mut emulator = Emulator::start();
    emulator.attach("ticket-worker", env!("CARGO_BIN_EXE_ticket-worker"), &env);

    let body = serde_json::to_string(&generate).unwrap();
    let event = lambda_sqs_event(
        &[("poison-1", "{\"not\": \"a job\"}"), ("good-1", &body)],
        &ticket_queue.arn,
    );
    let (status, response) = emulator.invoke("ticket-worker", &event).await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(
        response,
        json!({"batchItemFailures": [{"itemIdentifier": "poison-1"}]})
    );

    // The QR code is stored...
    let conn = state.db.get().await.unwrap();
    let stored: Option<String> = conn
        .query_one(
            "SELECT qr_code_data FROM tickets WHERE id = $1",
            &[&ticket_id],
        )
        .await
        .unwrap()
        .get(0);
    assert!(stored.is_some_and(|png| !png.is_empty()));
    // ...and the ticket_ready email job reached the email queue before the invocation ended.
    let received = sqs
        .receive_message()
        .queue_url(&email_queue.url)
        .wait_time_seconds(1)
        .max_number_of_messages(10)
        .message_attribute_names("All")
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert_eq!(received.len(), 1);
    let job: Value = serde_json::from_str(received[0].body().unwrap()).unwrap();
    assert_eq!(job["type"], "ticket_ready");
    assert_eq!(job["payload"]["ticketId"], ticket_id);
    let attribute = received[0]
        .message_attributes()
        .and_then(|a| a.get("jobType"))
        .and_then(|v| v.string_value());
    assert_eq!(attribute, Some("ticket_ready"));
    let pending: i64 = conn
        .query_one(
            "SELECT count(*) FROM job_outbox WHERE dispatched_at IS NULL AND job_type = 'ticket_ready'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(pending, 0);
}
