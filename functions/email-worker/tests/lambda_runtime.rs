//! The email-worker function driven through the Lambda runtime interface (cargo-lambda's
//! emulator) with a real SQS event: a real job and a poison message in one batch.

use domain::outbox::{self, RelayConfig};
use serde_json::json;
use testkit::aws::lambda_sqs_event;
use testkit::lambda::Emulator;
use testkit::{fixtures, TestDatabase};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const QUEUE_ARN: &str = "arn:aws:sqs:eu-west-1:123456789012:event-planner-core-test-email";

#[tokio::test]
async fn a_batch_reports_exactly_its_poison_message() {
    let db = TestDatabase::create().await;
    let state = fixtures::state(&db.url, &[]);
    fixtures::registration(&state, "lambda@example.com").await;
    let (_, confirmation) = outbox::lease(&state.db, &RelayConfig::default())
        .await
        .unwrap()
        .into_iter()
        .find(|(_, job)| job.job_type == "registration_confirmation")
        .expect("the confirmation job in the outbox");
    let stub = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/notifications/email"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "n-1"})))
        .mount(&stub)
        .await;

    let notification_url = stub.uri();
    // No JWT_SECRET, no TICKET_SIGNING_KEY: a worker builds only what it uses.
    let env = [
        ("DATABASE_URL", db.url.as_str()),
        ("NOTIFICATION_SERVICE_URL", notification_url.as_str()),
        ("RUST_LOG", "warn"),
    ];
    let mut emulator = Emulator::start();
    emulator.attach("email-worker", env!("CARGO_BIN_EXE_email-worker"), &env);

    let body = serde_json::to_string(&confirmation).unwrap();
    let event = lambda_sqs_event(
        &[
            ("0c7a1f6e-good-message", &body),
            ("5b1d9c2a-poison-message", "not json"),
        ],
        QUEUE_ARN,
    );
    let (status, response) = emulator.invoke("email-worker", &event).await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(
        response,
        json!({"batchItemFailures": [{"itemIdentifier": "5b1d9c2a-poison-message"}]})
    );
    let sent = stub.received_requests().await.unwrap();
    assert_eq!(sent.len(), 1);
    let email: serde_json::Value = serde_json::from_slice(&sent[0].body).unwrap();
    assert_eq!(email["to"], "lambda@example.com");
    assert_eq!(email["idempotencyKey"], confirmation.job_id.to_string());

    // The same batch again (SQS redelivers): the job is a duplicate, nothing is sent.
    let (status, response) = emulator.invoke("email-worker", &event).await;
    assert_eq!(status, 200);
    assert_eq!(
        response["batchItemFailures"],
        json!([{"itemIdentifier": "5b1d9c2a-poison-message"}])
    );
    assert_eq!(stub.received_requests().await.unwrap().len(), 1);
}
