//! The SQS backend of the outbox relay: one standard queue per [`Queue`], each with its
//! dead-letter queue (configured on the queue: `RedrivePolicy`).
//!
//! A message body is the contract's job JSON, `{"jobId", "type", "payload", "createdAt"}`
//! (the serde form of [`Job`]), with a `jobType` string message attribute so that
//! subscriptions and operators can filter without parsing bodies. The SDK retries
//! throttling and transient errors itself (standard retry mode, 3 attempts); a send that
//! still fails returns `Err`, and the outbox keeps the job for the next relay round.
//!
//! Configuration: `EMAIL_QUEUE_URL` and `TICKET_QUEUE_URL` (both or neither),
//! `WEBHOOKS_QUEUE_URL` (the webhooks queue; without it `deliver_webhook` jobs wait in the
//! outbox and readiness says so in the log), the usual
//! AWS variables (`AWS_REGION`, credentials from the Lambda role), and `AWS_ENDPOINT_URL`
//! for a local SQS-compatible server (moto), which the SDK honours by itself.

use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName};
use aws_sdk_sqs::Client;

use domain::outbox::{Message, Queue, QueueBackend};

use crate::config::Env;

/// The message attribute that carries the job type.
pub const JOB_TYPE_ATTRIBUTE: &str = "jobType";
/// How long [`SqsQueue::ping`] waits for SQS before calling it down.
pub const PING_TIMEOUT: Duration = Duration::from_secs(3);
/// Bound of one `SendMessage` (all of the SDK's attempts): an unreachable SQS endpoint
/// must not hold the relay (or a Lambda invocation) for long; the job waits in the outbox.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// The URL of each queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueUrls {
    pub email: String,
    pub ticket_generation: String,
    pub webhooks: Option<String>,
}

impl QueueUrls {
    /// `EMAIL_QUEUE_URL` and `TICKET_QUEUE_URL`: `None` when neither is set, an error when
    /// only one is (a half-configured deployment would lose one kind of job).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<Option<Self>> {
        let non_empty = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        match (non_empty("EMAIL_QUEUE_URL"), non_empty("TICKET_QUEUE_URL")) {
            (Some(email), Some(ticket_generation)) => Ok(Some(Self {
                email,
                ticket_generation,
                webhooks: non_empty("WEBHOOKS_QUEUE_URL"),
            })),
            (None, None) => Ok(None),
            (Some(_), None) => anyhow::bail!("EMAIL_QUEUE_URL is set but TICKET_QUEUE_URL is not"),
            (None, Some(_)) => anyhow::bail!("TICKET_QUEUE_URL is set but EMAIL_QUEUE_URL is not"),
        }
    }

    /// The queue's URL; `None` for the webhooks queue when `WEBHOOKS_QUEUE_URL` is unset.
    pub fn url(&self, queue: Queue) -> Option<&str> {
        match queue {
            Queue::Email => Some(&self.email),
            Queue::TicketGeneration => Some(&self.ticket_generation),
            Queue::Webhooks => self.webhooks.as_deref(),
        }
    }
}

/// Sends jobs to SQS. Cheap to clone (the SDK client is a handle).
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    urls: QueueUrls,
}

impl SqsQueue {
    /// With an SDK client built by the caller (tests build one pointing at moto).
    pub fn new(client: Client, urls: QueueUrls) -> Self {
        Self { client, urls }
    }

    /// `None` when the queue URLs are unset; otherwise a client configured from the
    /// environment the usual AWS way (region, credentials, `AWS_ENDPOINT_URL`).
    pub async fn from_env(env: &Env) -> anyhow::Result<Option<Self>> {
        let Some(urls) = QueueUrls::from_lookup(env.lookup())? else {
            return Ok(None);
        };
        // Boxed: the loader's future is large and deeply nested (it would bloat every caller's).
        let config = Box::pin(aws_config::load_defaults(
            aws_config::BehaviorVersion::latest(),
        ))
        .await;
        Ok(Some(Self::new(Client::new(&config), urls)))
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn urls(&self) -> &QueueUrls {
        &self.urls
    }

    /// Readiness: both queues answer `GetQueueAttributes` within [`PING_TIMEOUT`].
    pub async fn ping(&self) -> bool {
        let check = async {
            for queue in Queue::ALL {
                let Some(url) = self.urls.url(queue) else {
                    continue;
                };
                self.client
                    .get_queue_attributes()
                    .queue_url(url)
                    .attribute_names(QueueAttributeName::QueueArn)
                    .send()
                    .await
                    .with_context(|| format!("the {} queue", queue.name()))?;
            }
            anyhow::Ok(())
        };
        match tokio::time::timeout(PING_TIMEOUT, check).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::warn!(error = %format!("{e:#}"), "SQS is not ready");
                false
            }
            Err(_) => {
                tracing::warn!(
                    timeout_ms = PING_TIMEOUT.as_millis() as u64,
                    "SQS did not answer in time"
                );
                false
            }
        }
    }
}

/// One `SendMessage` of `job` to `url`, bounded by `within` (all of the SDK's attempts).
async fn send_to(
    client: &Client,
    url: &str,
    queue: Queue,
    job: &Message,
    within: Duration,
) -> anyhow::Result<()> {
    let body = serde_json::to_string(job)?;
    let job_type = MessageAttributeValue::builder()
        .data_type("String")
        .string_value(&job.job_type)
        .build()?;
    let timeout = aws_sdk_sqs::config::timeout::TimeoutConfig::builder()
        .operation_timeout(within)
        .build();
    client
        .send_message()
        .queue_url(url)
        .message_body(body)
        .message_attributes(JOB_TYPE_ATTRIBUTE, job_type)
        .customize()
        .config_override(aws_sdk_sqs::config::Builder::default().timeout_config(timeout))
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "sending job {} to the {} queue: {}",
                job.job_id,
                queue.name(),
                aws_sdk_sqs::error::DisplayErrorContext(e)
            )
        })?;
    Ok(())
}

#[async_trait]
impl QueueBackend for SqsQueue {
    async fn send(&self, queue: Queue, job: &Message) -> anyhow::Result<()> {
        let Some(url) = self.urls.url(queue) else {
            anyhow::bail!(
                "job {} waits in the outbox: WEBHOOKS_QUEUE_URL is not set",
                job.job_id
            );
        };
        send_to(&self.client, url, queue, job, SEND_TIMEOUT).await
    }

    async fn ping(&self) -> bool {
        SqsQueue::ping(self).await
    }
}

/// Bound of one delivery's `SendMessage` from an API function: the request waits for it, and a
/// delivery not sent is sent by the outbox sweep once due (a minute after its commit).
pub const DELIVERY_SEND_TIMEOUT: Duration = Duration::from_secs(2);

/// The webhooks queue alone, for the API functions that send the `deliver_webhook` messages of
/// the deliveries they wrote right after their commit (registrations, check-ins:
/// migrations/V20). They relay nothing else: their other jobs wait for the outbox sweep (see
/// template.yaml), so they get `WEBHOOKS_QUEUE_URL` without the other queues' URLs.
#[derive(Debug, Clone)]
pub struct WebhookQueue {
    client: Client,
    url: String,
}

impl WebhookQueue {
    pub fn new(client: Client, url: String) -> Self {
        Self { client, url }
    }

    /// `None` without `WEBHOOKS_QUEUE_URL`.
    pub async fn from_env(env: &Env) -> anyhow::Result<Option<Self>> {
        let Some(url) = env
            .get("WEBHOOKS_QUEUE_URL")
            .filter(|v| !v.trim().is_empty())
        else {
            return Ok(None);
        };
        let config = Box::pin(aws_config::load_defaults(
            aws_config::BehaviorVersion::latest(),
        ))
        .await;
        Ok(Some(Self::new(Client::new(&config), url)))
    }
}

#[async_trait]
impl QueueBackend for WebhookQueue {
    async fn send(&self, queue: Queue, job: &Message) -> anyhow::Result<()> {
        if queue != Queue::Webhooks {
            anyhow::bail!(
                "job {} waits in the outbox: this function sends only to the webhooks queue",
                job.job_id
            );
        }
        send_to(&self.client, &self.url, queue, job, DELIVERY_SEND_TIMEOUT).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn urls(vars: &[(&str, &str)]) -> anyhow::Result<Option<QueueUrls>> {
        let map: HashMap<&str, &str> = vars.iter().copied().collect();
        QueueUrls::from_lookup(|k| map.get(k).map(|v| v.to_string()))
    }

    #[test]
    fn both_urls_or_none() {
        assert_eq!(urls(&[]).unwrap(), None);
        assert_eq!(urls(&[("EMAIL_QUEUE_URL", " ")]).unwrap(), None);
        assert!(urls(&[("EMAIL_QUEUE_URL", "http://q/email")]).is_err());
        assert!(urls(&[("TICKET_QUEUE_URL", "http://q/t")]).is_err());
        let u = urls(&[
            ("EMAIL_QUEUE_URL", "http://q/email"),
            ("TICKET_QUEUE_URL", "http://q/t"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(u.url(Queue::Email), Some("http://q/email"));
        assert_eq!(u.url(Queue::TicketGeneration), Some("http://q/t"));
        assert_eq!(u.url(Queue::Webhooks), None);
        let u = urls(&[
            ("EMAIL_QUEUE_URL", "http://q/email"),
            ("TICKET_QUEUE_URL", "http://q/t"),
            ("WEBHOOKS_QUEUE_URL", "http://q/w"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(u.url(Queue::Webhooks), Some("http://q/w"));
    }
}
