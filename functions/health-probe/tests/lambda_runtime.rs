//! The health-probe function driven through the Lambda runtime interface (cargo-lambda's
//! emulator): the returned document is the EMF line it prints.

use serde_json::Value;
use testkit::aws::{create_queue, moto};
use testkit::lambda::Emulator;
use testkit::TestDatabase;

fn scheduled_event() -> Value {
    serde_json::from_str(include_str!(
        "../../../infra/fixtures/eventbridge-scheduled-event.json"
    ))
    .unwrap()
}

#[tokio::test]
async fn every_dependency_up_is_healthy() {
    let db = TestDatabase::create().await;
    let moto = moto();
    let sqs = moto.sqs();
    let email = create_queue(&sqs, "email", 30, 5).await;
    let tickets = create_queue(&sqs, "ticket-generation", 30, 5).await;
    let redis = std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let aws_env = moto.env();
    let mut env = vec![
        ("DATABASE_URL", db.url.as_str()),
        ("REDIS_URL", redis.as_str()),
        ("EMAIL_QUEUE_URL", email.url.as_str()),
        ("TICKET_QUEUE_URL", tickets.url.as_str()),
        ("SERVICE_NAME", "epc-test"),
        ("RUST_LOG", "warn"),
    ];
    env.extend(aws_env.iter().map(|(k, v)| (*k, v.as_str())));
    let mut emulator = Emulator::start();
    emulator.attach("health-probe", env!("CARGO_BIN_EXE_health-probe"), &env);

    let (status, doc) = emulator.invoke("health-probe", &scheduled_event()).await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(
        doc["_aws"]["CloudWatchMetrics"][0]["Namespace"],
        "EventPlannerCore"
    );
    assert_eq!(doc["Service"], "epc-test");
    assert_eq!(doc["Healthy"], 1, "{doc}");
    for metric in ["DatabaseUp", "RedisUp", "QueueUp"] {
        assert_eq!(doc[metric], 1, "{metric}: {doc}");
    }
    assert!(doc["DatabaseLatency"].as_f64().unwrap() >= 0.0);
}

#[tokio::test]
async fn a_database_outage_is_unhealthy_not_a_failed_invocation() {
    let mut emulator = Emulator::start();
    emulator.attach(
        "health-probe",
        env!("CARGO_BIN_EXE_health-probe"),
        &[
            ("DATABASE_URL", "postgres://postgres@127.0.0.1:9/none"),
            ("RUST_LOG", "off"),
        ],
    );
    let (status, doc) = emulator.invoke("health-probe", &scheduled_event()).await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["Healthy"], 0, "{doc}");
    assert_eq!(doc["DatabaseUp"], 0);
    // Not configured: not measured.
    assert!(
        doc.get("RedisUp").is_none() && doc.get("QueueUp").is_none(),
        "{doc}"
    );
}
