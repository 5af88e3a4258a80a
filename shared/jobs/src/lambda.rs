//! Running jobs delivered by SQS, in Lambda ([`handle_batch`], the handler of the
//! SQS-triggered worker functions) and locally ([`poll_forever`], a long-polling loop the
//! local server runs when queue URLs are configured). Both take the same per-message path:
//!
//! | message | result |
//! |---|---|
//! | body is not a job (`{"jobId","type","payload","createdAt"}`) | item failure: redelivered, and after the queue's `maxReceiveCount` moved to the dead-letter queue (a poison message) |
//! | [`dispatch::process`] → `Done` / `Duplicate` | success (deleted) |
//! | [`dispatch::process`] → `FailedPermanently` | success: the failure is recorded in `processed_jobs`, retrying cannot help |
//! | [`dispatch::process`] → `Err` (transient) | item failure: retried after the visibility timeout, dead-letter queue in the end |
//!
//! The Lambda event source mapping must enable `ReportBatchItemFailures`, otherwise one
//! failed record makes Lambda retry the whole batch (harmless, as jobs are idempotent by
//! `jobId`, but wasteful).
//!
//! Records of a batch run concurrently, at most as many at a time as the database pool
//! has connections (1–2 in Lambda): their order does not matter.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::encodings::Base64Data;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage, SqsMessageAttribute};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use aws_sdk_sqs::Client;
use deadpool_postgres::Pool;
use futures_util::stream::{self, StreamExt};
use tracing::Instrument;

use crate::dispatch::{self, JobError, JobHandler, Outcome};
use crate::workers::WorkerState;
use domain::outbox::Message as JobMessage;

/// Runs every record of an SQS event; the response lists the records to redeliver.
pub async fn handle_batch(
    pool: &Pool,
    handler: &dyn JobHandler,
    event: SqsEvent,
) -> SqsBatchResponse {
    let concurrency = pool.status().max_size.clamp(1, 10);
    let failures: Vec<String> = stream::iter(event.records)
        .map(|record| async move {
            let ok = run_record(pool, handler, &record).await;
            (record.message_id.unwrap_or_default(), ok)
        })
        .buffer_unordered(concurrency)
        .filter_map(|(id, ok)| async move { (!ok).then_some(id) })
        .collect()
        .await;
    let mut response = SqsBatchResponse::default();
    response.set_failures(failures);
    response
}

/// One record: `true` when it may be deleted from the queue.
async fn run_record(pool: &Pool, handler: &dyn JobHandler, record: &SqsMessage) -> bool {
    let message_id = record.message_id.as_deref().unwrap_or("<none>");
    let receive_count = record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|n| n.parse::<u32>().ok());
    let span = tracing::info_span!("sqs_message", message_id, receive_count);
    async {
        let job: JobMessage = match record.body.as_deref().map(serde_json::from_str) {
            Some(Ok(job)) => job,
            Some(Err(e)) => {
                // Not a job: no code of ours can handle it. Redelivered until the queue
                // moves it to its dead-letter queue, where an operator can look at it.
                tracing::error!(error = %e, "message body is not a job; it will end in the dead-letter queue");
                return false;
            }
            None => {
                tracing::error!("message without a body; it will end in the dead-letter queue");
                return false;
            }
        };
        // The claim belongs to this message: a redelivery of it may take it back.
        match dispatch::process(pool, handler, &job, message_id).await {
            Ok(outcome) => {
                match outcome {
                    Outcome::Done => tracing::info!(job_id = %job.job_id, job_type = %job.job_type, "job done"),
                    Outcome::Duplicate => tracing::info!(job_id = %job.job_id, job_type = %job.job_type, "job already processed: skipped"),
                    Outcome::FailedPermanently => tracing::warn!(job_id = %job.job_id, job_type = %job.job_type, "job failed permanently: recorded, not retried"),
                }
                true
            }
            Err(JobError::Busy(held)) => {
                tracing::info!(job_id = %job.job_id, job_type = %job.job_type, held_ms = held.as_millis() as u64,
                    "another delivery is running this job; this one is retried after the visibility timeout");
                false
            }
            Err(e) => {
                tracing::warn!(job_id = %job.job_id, job_type = %job.job_type, error = %e, "job failed; it will be retried");
                false
            }
        }
    }
    .instrument(span)
    .await
}

/// The SQS → Lambda event that the event source mapping would build from `messages`
/// (the local poller feeds [`handle_batch`] with it, so both paths run the same code).
pub fn to_lambda_event(messages: &[Message], queue_arn: Option<&str>) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages
        .iter()
        .map(|m| {
            let mut record = SqsMessage::default();
            record.message_id = m.message_id.clone();
            record.receipt_handle = m.receipt_handle.clone();
            record.body = m.body.clone();
            record.md5_of_body = m.md5_of_body.clone();
            record.md5_of_message_attributes = m.md5_of_message_attributes.clone();
            record.attributes = m
                .attributes
                .iter()
                .flatten()
                .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                .collect();
            record.message_attributes = m
                .message_attributes
                .iter()
                .flatten()
                .map(|(k, v)| {
                    let mut a = SqsMessageAttribute::default();
                    a.data_type = Some(v.data_type().to_owned());
                    a.string_value = v.string_value().map(str::to_owned);
                    a.binary_value = v.binary_value().map(|b| {
                        let mut data = Base64Data::default();
                        data.extend_from_slice(b.as_ref());
                        data
                    });
                    a.string_list_values = v.string_list_values().to_vec();
                    (k.clone(), a)
                })
                .collect();
            record.event_source = Some("aws:sqs".into());
            record.event_source_arn = queue_arn.map(str::to_owned);
            record
        })
        .collect();
    event
}

/// Settings of the local poller.
#[derive(Debug, Clone)]
pub struct PollConfig {
    /// Long polling: how long one `ReceiveMessage` waits for a message (0–20 s).
    pub wait_time_seconds: i32,
    /// Messages per `ReceiveMessage` (1–10).
    pub max_messages: i32,
    /// A failed message becomes visible again after `retry_backoff × 2^(receives − 1)`,
    /// capped at `max_backoff`; `None` leaves the queue's own `VisibilityTimeout`.
    pub retry_backoff: Option<Duration>,
    pub max_backoff: Duration,
}

impl Default for PollConfig {
    fn default() -> Self {
        Self {
            wait_time_seconds: 20,
            max_messages: 10,
            retry_backoff: Some(Duration::from_secs(2)),
            max_backoff: Duration::from_secs(300),
        }
    }
}

impl PollConfig {
    fn visibility_after_failure(&self, receive_count: u32) -> Option<i32> {
        let base = self.retry_backoff?;
        let delay = base
            .saturating_mul(2u32.saturating_pow(receive_count.saturating_sub(1).min(20)))
            .min(self.max_backoff);
        // SQS's limit is 12 hours.
        Some(delay.as_secs().min(43_200) as i32)
    }
}

/// What one [`poll_once`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PollReport {
    pub received: usize,
    pub deleted: usize,
    pub failed: usize,
}

/// One long poll: receive up to `max_messages`, run them through [`handle_batch`], delete
/// the successes, and push back the failures' next attempt (see [`PollConfig`]).
pub async fn poll_once(
    client: &Client,
    queue_url: &str,
    pool: &Pool,
    handler: &dyn JobHandler,
    config: &PollConfig,
) -> anyhow::Result<PollReport> {
    let received = client
        .receive_message()
        .queue_url(queue_url)
        .wait_time_seconds(config.wait_time_seconds)
        .max_number_of_messages(config.max_messages)
        .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
        .message_attribute_names("All")
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "ReceiveMessage: {}",
                aws_sdk_sqs::error::DisplayErrorContext(e)
            )
        })?;
    let messages = received.messages.unwrap_or_default();
    let mut report = PollReport {
        received: messages.len(),
        ..PollReport::default()
    };
    if messages.is_empty() {
        return Ok(report);
    }
    let response = handle_batch(pool, handler, to_lambda_event(&messages, None)).await;
    let failed: std::collections::HashSet<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();

    let mut deletes = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let (Some(id), Some(handle)) = (m.message_id(), m.receipt_handle()) else {
            continue;
        };
        if failed.contains(id) {
            report.failed += 1;
            let receives = m
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                .and_then(|n| n.parse().ok())
                .unwrap_or(1);
            if let Some(timeout) = config.visibility_after_failure(receives) {
                if let Err(e) = client
                    .change_message_visibility()
                    .queue_url(queue_url)
                    .receipt_handle(handle)
                    .visibility_timeout(timeout)
                    .send()
                    .await
                {
                    // The queue's own visibility timeout applies instead.
                    tracing::warn!(message_id = id, error = %aws_sdk_sqs::error::DisplayErrorContext(e), "ChangeMessageVisibility failed");
                }
            }
        } else {
            deletes.push(
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(handle)
                    .build()?,
            );
        }
    }
    if !deletes.is_empty() {
        let asked = deletes.len();
        match client
            .delete_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(deletes))
            .send()
            .await
        {
            Ok(out) => {
                for f in out.failed() {
                    // Redelivered later, and then skipped as a duplicate.
                    tracing::warn!(entry = f.id(), code = f.code(), "DeleteMessage failed");
                }
                report.deleted = asked - out.failed().len();
            }
            Err(e) => {
                tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(e), "DeleteMessageBatch failed; the messages will be redelivered and skipped as duplicates");
            }
        }
    }
    Ok(report)
}

/// Polls `queue_url` until the task is dropped. Receive errors (SQS down) are logged and
/// retried with a growing pause (1 s doubling to 30 s).
pub async fn poll_forever(
    client: Client,
    queue_url: String,
    pool: Pool,
    handler: Arc<dyn JobHandler>,
    config: PollConfig,
) {
    let mut pause = Duration::from_secs(1);
    loop {
        match poll_once(&client, &queue_url, &pool, handler.as_ref(), &config).await {
            Ok(report) => {
                pause = Duration::from_secs(1);
                if report.received > 0 {
                    tracing::debug!(
                        queue_url,
                        received = report.received,
                        deleted = report.deleted,
                        failed = report.failed,
                        "SQS poll"
                    );
                }
            }
            Err(e) => {
                tracing::warn!(queue_url, error = %e, retry_in_ms = pause.as_millis() as u64, "SQS poll failed");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// The whole life of an SQS-triggered worker function: [`WorkerState`] built once per
/// execution environment, then every batch through [`handle_batch`], and the jobs the batch
/// wrote (`generate_ticket` writes `ticket_ready`) relayed before the invocation ends.
pub async fn run_lambda(service: &'static str) -> Result<(), lambda_runtime::Error> {
    let env = platform::config::Env::process();
    platform::logging::init(service, &env);
    let state = WorkerState::load(env).await?;
    lambda_runtime::run(lambda_runtime::service_fn(
        |event: lambda_runtime::LambdaEvent<SqsEvent>| {
            let span = platform::logging::invocation_span(&event.context.request_id);
            let state = &state;
            tracing::Instrument::instrument(
                async move {
                    let response = handle_batch(&state.db, &state.workers, event.payload).await;
                    state.relay().await;
                    Ok::<_, lambda_runtime::Error>(response)
                },
                span,
            )
        },
    ))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_messages_back_off() {
        let c = PollConfig::default();
        assert_eq!(c.visibility_after_failure(1), Some(2));
        assert_eq!(c.visibility_after_failure(3), Some(8));
        assert_eq!(c.visibility_after_failure(40), Some(300));
        let none = PollConfig {
            retry_backoff: None,
            ..PollConfig::default()
        };
        assert_eq!(none.visibility_after_failure(1), None);
    }

    #[test]
    fn the_project_fixture_parses() {
        let raw = include_str!("../../../infra/fixtures/sqs-event.json");
        let event: SqsEvent = serde_json::from_str(raw).unwrap();
        assert_eq!(event.records.len(), 1);
        assert_eq!(event.records[0].message_id.as_deref(), Some("MessageID_1"));
    }
}
