//! Queue backends behind one interface: the outbox relay sends jobs to a [`QueueBackend`];
//! locally an [`InProcessQueue`] feeds the same worker code the SQS-triggered Lambda
//! functions run ([`crate::jobs`]).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::jobs::{self, JobHandler};
use crate::outbox::Job;

pub mod sqs;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Queue {
    Email,
    TicketGeneration,
}

impl Queue {
    pub const ALL: [Queue; 2] = [Queue::Email, Queue::TicketGeneration];

    pub fn name(self) -> &'static str {
        match self {
            Queue::Email => "email",
            Queue::TicketGeneration => "ticket-generation",
        }
    }
}

#[async_trait]
pub trait QueueBackend: Send + Sync {
    async fn send(&self, queue: Queue, job: &Job) -> anyhow::Result<()>;

    /// Whether the queue answers now (readiness).
    async fn ping(&self) -> bool {
        true
    }
}

/// Jobs travel over in-memory channels to worker tasks in this process. Transient
/// failures are retried with a growing delay, up to `max_attempts`, then recorded as
/// failed (what a dead-letter queue does in AWS).
pub struct InProcessQueue {
    email: mpsc::UnboundedSender<(Job, u32)>,
    tickets: mpsc::UnboundedSender<(Job, u32)>,
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

    fn sender(&self, queue: Queue) -> &mpsc::UnboundedSender<(Job, u32)> {
        match queue {
            Queue::Email => &self.email,
            Queue::TicketGeneration => &self.tickets,
        }
    }
}

#[async_trait]
impl QueueBackend for InProcessQueue {
    async fn send(&self, queue: Queue, job: &Job) -> anyhow::Result<()> {
        self.sender(queue)
            .send((job.clone(), 1))
            .map_err(|_| anyhow::anyhow!("the {} worker has stopped", queue.name()))
    }
}

async fn worker(
    mut rx: mpsc::UnboundedReceiver<(Job, u32)>,
    queue: Queue,
    pool: deadpool_postgres::Pool,
    handler: Arc<dyn JobHandler>,
    me: std::sync::Weak<InProcessQueue>,
    max_attempts: u32,
) {
    while let Some((job, attempt)) = rx.recv().await {
        match jobs::process(&pool, handler.as_ref(), &job).await {
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
                if let Err(e) = jobs::record_failure(&pool, &job, &e.to_string()).await {
                    tracing::error!(error = %e, "could not record the failed job");
                }
            }
        }
    }
}
