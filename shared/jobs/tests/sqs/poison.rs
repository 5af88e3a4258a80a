//! A message that is not a job fails every delivery and ends in the dead-letter queue
//! after `maxReceiveCount` receives, while a good message of the same batch is done.

use std::time::Duration;

use domain::outbox::{self, RelayConfig};
use jobs::lambda::handle_batch;
use testkit::fixtures;

use crate::helpers::*;

#[tokio::test]
async fn a_poison_message_ends_in_the_dead_letter_queue() {
    // Visible again 1 s after a receive; to the DLQ after 2 receives.
    let w = World::new(1, 2).await;
    let stub = notification_service().await;
    let workers = w.workers(&stub);
    fixtures::registration(&w.state, "poison@example.com").await;
    outbox::drain(&w.state.db, &w.queue, &RelayConfig::default())
        .await
        .unwrap();
    let poison_id = w
        .sqs
        .send_message()
        .queue_url(&w.email.url)
        .message_body("not json")
        .send()
        .await
        .unwrap()
        .message_id
        .unwrap();

    let mut poison_deliveries = 0;
    let mut good_deliveries = 0;
    // Receive, report, let the visibility timeout expire, repeat: until SQS moves the
    // poison message to the dead-letter queue (at the receive after the 2nd delivery).
    for _ in 0..10 {
        if depth(&w.sqs, &w.email.dlq_url).await > 0 {
            break;
        }
        let messages = receive(&w.sqs, &w.email.url, 2).await;
        let response = handle_batch(&w.state.db, &workers, event(&messages, &w.email)).await;
        let failed = failed_ids(&response);
        for m in &messages {
            let id = m.message_id().unwrap().to_owned();
            if id == poison_id {
                poison_deliveries += 1;
                assert_eq!(failed, [id], "only the poison message fails");
            } else {
                good_deliveries += 1;
                // Lambda deletes what the batch did not report.
                delete(&w.sqs, &w.email.url, std::slice::from_ref(m)).await;
            }
        }
        if !messages.is_empty() {
            tokio::time::sleep(Duration::from_millis(1100)).await;
        }
    }
    assert_eq!(poison_deliveries, 2, "delivered maxReceiveCount times");
    assert_eq!(good_deliveries, 1);
    assert_eq!(emails(&stub).await.len(), 1, "the confirmation was sent");

    let dead = receive(&w.sqs, &w.email.dlq_url, 2).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body(), Some("not json"));
    assert_eq!(depth(&w.sqs, &w.email.url).await, 0);
}
