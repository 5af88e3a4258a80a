//! The in-process queue of local runs: the outbox relay sends jobs to it as to SQS (it is a
//! [`QueueBackend`]), and it feeds the same claim-and-dispatch code ([`crate::dispatch`])
//! the SQS-triggered Lambda functions run.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

use domain::outbox::{Message, Queue, QueueBackend};

use crate::dispatch::{self, JobHandler};

/// Jobs travel over in-memory channels to worker tasks in this process. Transient
/// failures are retried with a growing delay, up to `max_attempts`, then recorded as
/// failed (what a dead-letter queue does in AWS).
pub struct InProcessQueue {
    email: mpsc::UnboundedSender<(Message, u32)>,
    tickets: mpsc::UnboundedSender<(Message, u32)>,
}

impl InProcessQueue {
    /// Starts one worker task per queue. `handler` does the work of each job.
    pub fn start(
        pool: deadpool_postgres::Pool,
        handler: Arc<dyn JobHandler>,
        max_attempts: u32,
    ) -> Arc<Self> {
        let (email, email_rx) = mpsc::unbounded_channel();
        let (tickets, tickets_rx) = mpsc::unbounded_channel();
        let queue = Arc::new(Self { email, tickets });
        for (rx, q) in [
            (email_rx, Queue::Email),
            (tickets_rx, Queue::TicketGeneration),
        ] {
            let (pool, handler, weak) = (pool.clone(), handler.clone(), Arc::downgrade(&queue));
            tokio::spawn(worker(rx, q, pool, handler, weak, max_attempts));
        }
        queue
    }

    fn sender(&self, queue: Queue) -> &mpsc::UnboundedSender<(Message, u32)> {
        match queue {
            Queue::Email => &self.email,
            Queue::TicketGeneration => &self.tickets,
        }
    }
}

#[async_trait]
impl QueueBackend for InProcessQueue {
    async fn send(&self, queue: Queue, job: &Message) -> anyhow::Result<()> {
        self.sender(queue)
            .send((job.clone(), 1))
            .map_err(|_| anyhow::anyhow!("the {} worker has stopped", queue.name()))
    }
}

async fn worker(
    mut rx: mpsc::UnboundedReceiver<(Message, u32)>,
    queue: Queue,
    pool: deadpool_postgres::Pool,
    handler: Arc<dyn JobHandler>,
    me: std::sync::Weak<InProcessQueue>,
    max_attempts: u32,
) {
    while let Some((job, attempt)) = rx.recv().await {
        match dispatch::process(&pool, handler.as_ref(), &job).await {
            Ok(outcome) => tracing::debug!(job_id = %job.job_id, ?outcome, "job processed"),
            Err(e) if attempt < max_attempts => {
                tracing::warn!(job_id = %job.job_id, attempt, error = %e, "job failed, retrying");
                let Some(q) = me.upgrade() else { return };
                let delay = Duration::from_millis(200 * 2u64.pow(attempt.min(8)));
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = q.sender(queue).send((job, attempt + 1));
                });
            }
            Err(e) => {
                tracing::error!(job_id = %job.job_id, attempt, error = %e, queue = queue.name(), "job failed for good");
                if let Err(e) = dispatch::record_failure(&pool, &job, &e.to_string()).await {
                    tracing::error!(error = %e, "could not record the failed job");
                }
            }
        }
    }
}
