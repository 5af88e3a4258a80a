//! The tickets function driven through the Lambda runtime interface (cargo-lambda's emulator)
//! with real API Gateway HTTP API v2 payloads; the webhooks queue is moto's SQS.

use domain::Role;
use serde_json::Value;
use testkit::aws::{create_queue, moto};
use testkit::lambda::{apigw_v2, Emulator};
use testkit::{fixtures, TestDatabase};

/// A check-in writes its guest.checked_in delivery and, as in AWS, the function sends the
/// delivery's `deliver_webhook` message to the webhooks queue right after its commit
/// (`WEBHOOKS_QUEUE_URL` alone: it relays no other job), long before the delivery is due to a
/// relay; the message names the delivery, with the job id of its first attempt.
#[tokio::test]
async fn a_check_in_sends_its_webhook_delivery_to_the_queue_after_its_commit() {
    let db = TestDatabase::create().await;
    let state = fixtures::state(&db.url, &[]);
    let registration = fixtures::registration(&state, "door@example.com").await;
    let ticket = registration["ticket"]["id"].as_i64().expect("a ticket");
    let pg = state.db.get().await.unwrap();
    pg.execute(
        "INSERT INTO webhooks (organizer_id, url, event_types, secret)
              VALUES ('org-1', 'https://crm.example.com/hooks', '{guest.checked_in}', 'whsec_x')",
        &[],
    )
    .await
    .unwrap();

    let moto = moto();
    let sqs = moto.sqs();
    let webhooks = create_queue(&sqs, "webhooks", 30, 5).await;
    let secret = "lambda-test-secret";
    let seed = domain::tickets::signing::TicketKeys::generate().seed_base64();
    let aws_env = moto.env();
    let mut env = vec![
        ("DATABASE_URL", db.url.as_str()),
        ("JWT_SECRET", secret),
        ("TICKET_SIGNING_KEY", seed.as_str()),
        ("WEBHOOKS_QUEUE_URL", webhooks.url.as_str()),
        ("RUST_LOG", "warn"),
    ];
    env.extend(aws_env.iter().map(|(k, v)| (*k, v.as_str())));
    let mut emulator = Emulator::start();
    emulator.attach("tickets", env!("CARGO_BIN_EXE_tickets"), &env);

    let token = testkit::lambda::token(secret, "org-1", Role::Organizer);
    let scan = serde_json::json!({"scannerId": "gate-1", "location": "North gate"});
    let (status, res) = emulator
        .invoke(
            "tickets",
            &apigw_v2(
                "POST",
                &format!("/api/tickets/{ticket}/validate"),
                Some(&token),
                Some(&scan),
            ),
        )
        .await;
    assert_eq!(status, 200, "{res}");
    assert_eq!(res["statusCode"], 200, "{res}");

    let delivery = pg
        .query_one(
            "SELECT id, status, next_attempt_at > now() + interval '30 seconds' FROM webhook_deliveries",
            &[],
        )
        .await
        .unwrap();
    let (delivery_id, pending, not_due): (i64, String, bool) =
        (delivery.get(0), delivery.get(1), delivery.get(2));
    assert_eq!((pending.as_str(), not_due), ("pending", true));
    let received = sqs
        .receive_message()
        .queue_url(&webhooks.url)
        .max_number_of_messages(10)
        .wait_time_seconds(2)
        .send()
        .await
        .expect("ReceiveMessage")
        .messages
        .unwrap_or_default();
    assert_eq!(received.len(), 1, "one message: {received:?}");
    let job: Value = serde_json::from_str(received[0].body().unwrap()).unwrap();
    assert_eq!(job["type"], "deliver_webhook");
    assert_eq!(job["payload"]["deliveryId"], delivery_id);
    assert_eq!(
        job["jobId"],
        domain::outbox::delivery_message(delivery_id, 0)
            .job_id
            .to_string()
    );
    let outbox: i64 = pg
        .query_one(
            "SELECT count(*) FROM job_outbox WHERE job_type = 'deliver_webhook'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(outbox, 0, "no job row stands for the delivery");
}
