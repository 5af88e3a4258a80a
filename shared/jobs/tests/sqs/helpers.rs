//! A test's world: its own database and state, queues with dead-letter queues in moto,
//! the real [`Workers`] sending to a notification-service stub.

use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use edge::ApiState;
use jobs::clients::notification::{ClientConfig, NotificationClient};
use jobs::email::Mailer;
use jobs::workers::Workers;
use platform::sqs::{QueueUrls, SqsQueue};
use serde_json::Value;
use testkit::aws::{create_queue, moto, TestQueue};
use testkit::{fixtures, TestDatabase};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

pub struct World {
    pub state: ApiState,
    pub sqs: aws_sdk_sqs::Client,
    pub email: TestQueue,
    pub tickets: TestQueue,
    pub queue: SqsQueue,
    _db: TestDatabase,
}

impl World {
    /// Queues whose messages become visible again `visibility` seconds after a receive,
    /// and move to their DLQ after `max_receive` receives.
    pub async fn new(visibility: u32, max_receive: u32) -> Self {
        let db = TestDatabase::create().await;
        let state = fixtures::state(&db.url, &[]);
        let sqs = moto().sqs();
        let email = create_queue(&sqs, "email", visibility, max_receive).await;
        let tickets = create_queue(&sqs, "ticket-generation", visibility, max_receive).await;
        let webhooks = create_queue(&sqs, "webhooks", visibility, max_receive).await;
        let queue = SqsQueue::new(
            sqs.clone(),
            QueueUrls {
                email: email.url.clone(),
                ticket_generation: tickets.url.clone(),
                webhooks: Some(webhooks.url.clone()),
            },
        );
        Self {
            state,
            sqs,
            email,
            tickets,
            queue,
            _db: db,
        }
    }

    /// The real job handlers, sending emails to `notification` (quick retries).
    pub fn workers(&self, notification: &MockServer) -> Workers {
        let client = NotificationClient::new(
            &notification.uri(),
            ClientConfig {
                timeout: Duration::from_secs(5),
                max_attempts: 3,
                backoff: Duration::from_millis(20),
            },
        )
        .unwrap();
        Workers::new(
            self.state.db.clone(),
            Mailer::Notification(Box::new(client)),
            None,
        )
    }

    pub async fn count(&self, sql: &str) -> i64 {
        let db = self.state.db.get().await.unwrap();
        db.query_one(sql, &[]).await.unwrap().get(0)
    }
}

/// A notification service that accepts every email.
pub async fn notification_service() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/notifications/email"))
        .respond_with(ResponseTemplate::new(202).set_body_json(serde_json::json!({"id": "n-1"})))
        .mount(&server)
        .await;
    server
}

/// The emails the stub received (request bodies), in order.
pub async fn emails(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r: &&Request| r.url.path() == "/api/notifications/email")
        .map(|r| serde_json::from_slice(&r.body).expect("a JSON email"))
        .collect()
}

/// One ReceiveMessage (long poll of `wait` seconds), with the attributes Lambda's event
/// source mapping asks for.
pub async fn receive(sqs: &aws_sdk_sqs::Client, url: &str, wait: i32) -> Vec<Message> {
    sqs.receive_message()
        .queue_url(url)
        .wait_time_seconds(wait)
        .max_number_of_messages(10)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .message_attribute_names("All")
        .send()
        .await
        .expect("ReceiveMessage")
        .messages
        .unwrap_or_default()
}

/// Receives until `n` messages were collected (SQS may hand out fewer per call).
pub async fn receive_n(sqs: &aws_sdk_sqs::Client, url: &str, n: usize) -> Vec<Message> {
    let mut all = Vec::new();
    for _ in 0..10 {
        all.extend(receive(sqs, url, 1).await);
        if all.len() >= n {
            break;
        }
    }
    assert_eq!(all.len(), n, "messages on {url}");
    all
}

/// What Lambda would hand the function for these messages.
pub fn event(messages: &[Message], queue: &TestQueue) -> SqsEvent {
    jobs::lambda::to_lambda_event(messages, Some(&queue.arn))
}

/// Deletes messages, as Lambda does for the records a batch did not report as failed.
pub async fn delete(sqs: &aws_sdk_sqs::Client, url: &str, messages: &[Message]) {
    for m in messages {
        sqs.delete_message()
            .queue_url(url)
            .receipt_handle(m.receipt_handle().unwrap())
            .send()
            .await
            .expect("DeleteMessage");
    }
}

/// The `ApproximateNumberOfMessages` + `…NotVisible` of a queue.
pub async fn depth(sqs: &aws_sdk_sqs::Client, url: &str) -> i64 {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap_or_default();
    [
        A::ApproximateNumberOfMessages,
        A::ApproximateNumberOfMessagesNotVisible,
    ]
    .iter()
    .map(|k| {
        attrs
            .get(k)
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0)
    })
    .sum()
}

pub fn decode_qr(png: &[u8]) -> String {
    let img = image::load_from_memory(png).expect("a PNG").to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(img);
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the image");
    grids[0].decode().expect("decodable").1
}

pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

/// The ids of a batch response's failed items.
pub fn failed_ids(response: &aws_lambda_events::event::sqs::SqsBatchResponse) -> Vec<String> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}
