//! The outbox-sweep function driven through the Lambda runtime interface (cargo-lambda's
//! emulator) with an EventBridge scheduled event; the queues are moto's SQS.

use serde_json::Value;
use testkit::aws::{create_queue, moto};
use testkit::lambda::Emulator;
use testkit::{fixtures, TestDatabase};

async fn receive_types(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<String> {
    let out = sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .send()
        .await
        .expect("ReceiveMessage");
    out.messages
        .unwrap_or_default()
        .iter()
        .map(|m| {
            let job: Value = serde_json::from_str(m.body().unwrap()).expect("a job body");
            assert!(
                job["jobId"].is_string() && job["createdAt"].is_string(),
                "{job}"
            );
            job["type"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[tokio::test]
async fn due_jobs_reach_their_queues_and_the_backlog_is_measured() {
    let db = TestDatabase::create().await;
    let state = fixtures::state(&db.url, &[]);
    fixtures::registration(&state, "sweep@example.com").await;
    let written: i64 = state
        .db
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT count(*) FROM job_outbox WHERE dispatched_at IS NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        written >= 2,
        "a registration writes its email and its ticket job"
    );

    let moto = moto();
    let sqs = moto.sqs();
    let email = create_queue(&sqs, "email", 30, 5).await;
    let tickets = create_queue(&sqs, "ticket-generation", 30, 5).await;
    let aws_env = moto.env();
    let mut env = vec![
        ("DATABASE_URL", db.url.as_str()),
        ("EMAIL_QUEUE_URL", email.url.as_str()),
        ("TICKET_QUEUE_URL", tickets.url.as_str()),
        ("SERVICE_NAME", "epc-test"),
        ("RUST_LOG", "warn"),
    ];
    env.extend(aws_env.iter().map(|(k, v)| (*k, v.as_str())));
    let mut emulator = Emulator::start();
    emulator.attach("outbox-sweep", env!("CARGO_BIN_EXE_outbox-sweep"), &env);

    let event: Value = serde_json::from_str(include_str!(
        "../../../infra/fixtures/eventbridge-scheduled-event.json"
    ))
    .unwrap();
    let (status, report) = emulator.invoke("outbox-sweep", &event).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["sent"], written, "{report}");
    assert_eq!(report["failed"], 0);
    assert_eq!(report["pending"], 0);
    assert_eq!(report["outOfTime"], false);

    assert_eq!(receive_types(&sqs, &tickets.url).await, ["generate_ticket"]);
    let emails = receive_types(&sqs, &email.url).await;
    assert!(
        !emails.is_empty() && emails.iter().all(|t| t != "generate_ticket"),
        "{emails:?}"
    );

    // Nothing is due any more.
    let (_, report) = emulator.invoke("outbox-sweep", &event).await;
    assert_eq!(report["sent"], 0, "{report}");
    assert_eq!(report["oldestPendingAgeSeconds"], 0.0);
}
