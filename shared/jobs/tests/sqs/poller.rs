//! The local server's SQS path: the outbox relay sends to SQS, long-polling loops feed
//! the workers, successes are deleted and failures come back with a backoff until the
//! dead-letter queue takes them.

use std::sync::Arc;
use std::time::Duration;

use domain::outbox::Queue;
use jobs::dispatch::JobHandler;
use jobs::lambda::{poll_forever, poll_once, PollConfig};
use testkit::fixtures;

use crate::helpers::*;

#[tokio::test]
async fn the_pollers_run_a_registration_to_its_ticket_email() {
    let w = World::new(30, 2).await;
    let stub = notification_service().await;
    let workers: Arc<dyn JobHandler> = Arc::new(w.workers(&stub));
    let config = PollConfig {
        wait_time_seconds: 1,
        ..PollConfig::default()
    };
    let mut tasks = Vec::new();
    for q in Queue::ALL {
        tasks.push(tokio::spawn(poll_forever(
            w.sqs.clone(),
            w.queue
                .urls()
                .url(q)
                .expect("every queue configured")
                .to_owned(),
            w.state.db.clone(),
            workers.clone(),
            config.clone(),
        )));
    }
    tasks.push(tokio::spawn(domain::outbox::run_relay(
        w.state.db.clone(),
        Arc::new(w.queue.clone()),
        w.state.outbox_signal.clone(),
        Duration::from_millis(200),
    )));
    assert!(w.queue.ping().await);

    fixtures::registration(&w.state, "poller@example.com").await;
    w.state.outbox_signal.notify_one();
    wait_for("the two emails", Duration::from_secs(30), || async {
        emails(&stub).await.len() >= 2
    })
    .await;
    wait_for("empty queues", Duration::from_secs(10), || async {
        depth(&w.sqs, &w.email.url).await + depth(&w.sqs, &w.tickets.url).await == 0
    })
    .await;
    for t in &tasks {
        t.abort();
    }
    assert_eq!(emails(&stub).await.len(), 2);
    assert_eq!(
        w.count("SELECT count(*) FROM processed_jobs WHERE outcome = 'done'")
            .await,
        3
    );
}

#[tokio::test]
async fn the_poller_backs_off_failures_until_the_dead_letter_queue_takes_them() {
    // The queue's own visibility timeout is long: only the poller's backoff (1 s, then 2 s)
    // brings the message back this quickly.
    let w = World::new(60, 2).await;
    let stub = notification_service().await;
    let workers = w.workers(&stub);
    w.sqs
        .send_message()
        .queue_url(&w.email.url)
        .message_body("{\"jobId\": 42}")
        .send()
        .await
        .unwrap();
    let config = PollConfig {
        wait_time_seconds: 1,
        retry_backoff: Some(Duration::from_secs(1)),
        ..PollConfig::default()
    };
    let mut failed = 0;
    let started = std::time::Instant::now();
    // Far less than the queue's 60 s visibility timeout: the backoff did it.
    while started.elapsed() < Duration::from_secs(30) {
        let report = poll_once(&w.sqs, &w.email.url, &w.state.db, &workers, &config)
            .await
            .unwrap();
        assert_eq!(report.deleted, 0);
        failed += report.failed;
        if !receive(&w.sqs, &w.email.dlq_url, 0).await.is_empty() {
            break;
        }
    }
    assert_eq!(failed, 2, "two deliveries, then the dead-letter queue");
    assert_eq!(depth(&w.sqs, &w.email.url).await, 0);
}

#[tokio::test]
async fn the_local_server_path_runs_jobs_through_sqs() {
    // What `workers::start_local` starts when the queue URLs are set (emails are logged:
    // NOTIFICATION_SERVICE_URL is unset in tests).
    let w = World::new(30, 2).await;
    let config = PollConfig {
        wait_time_seconds: 1,
        ..PollConfig::default()
    };
    local_server::runner::start_with_sqs(
        &testkit::fixtures::env(&w.state.config.db.url, &[]),
        &w.state,
        w.queue.clone(),
        config,
    )
    .await
    .unwrap();
    fixtures::registration(&w.state, "local@example.com").await;
    w.state.outbox_signal.notify_one();
    wait_for("the three jobs", Duration::from_secs(30), || async {
        w.count("SELECT count(*) FROM processed_jobs WHERE outcome = 'done'")
            .await
            == 3
    })
    .await;
    wait_for("empty queues", Duration::from_secs(10), || async {
        depth(&w.sqs, &w.email.url).await + depth(&w.sqs, &w.tickets.url).await == 0
    })
    .await;
    assert_eq!(
        w.count("SELECT count(*) FROM job_outbox WHERE dispatched_at IS NULL")
            .await,
        0
    );
}
