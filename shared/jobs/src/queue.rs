//! The in-process queue of local runs: the outbox relay sends jobs to it as to SQS (it is a
//! [`QueueBackend`]), and it feeds the same claim-and-dispatch code ([`crate::dispatch`])
//! the SQS-triggered Lambda functions run.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{mpsc, watch};

use domain::outbox::{Message, Queue, QueueBackend};

use crate::dispatch::{self, JobError, JobHandler};

/// Jobs travel over in-memory channels to worker tasks in this process. Transient
/// failures are retried with a growing delay, up to `max_attempts`, then recorded as
/// failed (what a dead-letter queue does in AWS).
pub struct InProcessQueue {
    email: mpsc::UnboundedSender<Delivery>,
    tickets: mpsc::UnboundedSender<Delivery>,
    webhooks: mpsc::UnboundedSender<Delivery>,
}

impl InProcessQueue {
    /// Starts one worker task per queue. `handler` does the work of each job.
    pub fn start(
        pool: deadpool_postgres::Pool,
        handler: Arc<dyn JobHandler>,
        max_attempts: u32,
    ) -> Arc<Self> {
        Self::start_holding(pool, handler, max_attempts, &[], watch::channel(true).1)
    }

    /// [`InProcessQueue::start`], with the workers of the `held` queues started only once
    /// `release` turns true: their jobs are accepted (the relay marks them dispatched, as
    /// SQS would take them) and wait in the channel meanwhile. The local server holds a
    /// queue when asked to (`LOCAL_HOLD_QUEUES`), so that a benchmark can measure the API
    /// without the work that a worker function does elsewhere in AWS, then release it.
    pub fn start_holding(
        pool: deadpool_postgres::Pool,
        handler: Arc<dyn JobHandler>,
        max_attempts: u32,
        held: &[Queue],
        release: watch::Receiver<bool>,
    ) -> Arc<Self> {
        let (email, email_rx) = mpsc::unbounded_channel();
        let (tickets, tickets_rx) = mpsc::unbounded_channel();
        let (webhooks, webhooks_rx) = mpsc::unbounded_channel();
        let queue = Arc::new(Self {
            email,
            tickets,
            webhooks,
        });
        for (rx, q) in [
            (email_rx, Queue::Email),
            (tickets_rx, Queue::TicketGeneration),
            (webhooks_rx, Queue::Webhooks),
        ] {
            let (pool, handler, weak) = (pool.clone(), handler.clone(), Arc::downgrade(&queue));
            let mut gate = held.contains(&q).then(|| release.clone());
            tokio::spawn(async move {
                if let Some(gate) = gate.as_mut() {
                    if gate.wait_for(|open| *open).await.is_err() {
                        return;
                    }
                    tracing::info!(queue = q.name(), "held queue released: its worker starts");
                }
                worker(rx, q, pool, handler, weak, max_attempts).await
            });
        }
        queue
    }

    fn sender(&self, queue: Queue) -> &mpsc::UnboundedSender<Delivery> {
        match queue {
            Queue::Email => &self.email,
            Queue::TicketGeneration => &self.tickets,
            Queue::Webhooks => &self.webhooks,
        }
    }
}

#[async_trait]
impl QueueBackend for InProcessQueue {
    async fn send(&self, queue: Queue, job: &Message) -> anyhow::Result<()> {
        self.sender(queue)
            .send(Delivery {
                job: job.clone(),
                attempt: 1,
                owner: uuid::Uuid::new_v4().to_string(),
            })
            .map_err(|_| anyhow::anyhow!("the {} worker has stopped", queue.name()))
    }
}

/// How many jobs of a queue run at once in this process. Emails wait on the notification
/// service (I/O): several at once, so a hanging service holds up to this many, not every
/// email behind the first one. Ticket generation renders QR codes (CPU) on the cores the
/// API serves from: one at a time (in AWS it is a function of its own).
fn concurrency(queue: Queue) -> usize {
    match queue {
        Queue::Email => 8,
        Queue::TicketGeneration => 1,
        // Webhook receivers answer slowly or not at all (10 s time-out each).
        Queue::Webhooks => 8,
    }
}

async fn worker(
    mut rx: mpsc::UnboundedReceiver<Delivery>,
    queue: Queue,
    pool: deadpool_postgres::Pool,
    handler: Arc<dyn JobHandler>,
    me: std::sync::Weak<InProcessQueue>,
    max_attempts: u32,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(concurrency(queue)));
    while let Some(delivery) = rx.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (pool, handler, me) = (pool.clone(), handler.clone(), me.clone());
        tokio::spawn(async move {
            run(delivery, queue, &pool, handler.as_ref(), me, max_attempts).await;
            drop(slot);
        });
    }
}

/// One delivery of a job: processed, retried later (a transient failure uses up an
/// attempt, a claim held by another attempt does not), or recorded as failed for good.
async fn run(
    delivery: Delivery,
    queue: Queue,
    pool: &deadpool_postgres::Pool,
    handler: &dyn JobHandler,
    me: std::sync::Weak<InProcessQueue>,
    max_attempts: u32,
) {
    let Delivery {
        job,
        attempt,
        owner,
    } = delivery;
    let retry = |delay: Duration, attempt: u32, job: Message, owner: String| {
        let Some(q) = me.upgrade() else { return };
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = q.sender(queue).send(Delivery {
                job,
                attempt,
                owner,
            });
        });
    };
    match dispatch::process(pool, handler, &job, &owner).await {
        Ok(outcome) => tracing::debug!(job_id = %job.job_id, ?outcome, "job processed"),
        Err(JobError::Busy(held)) => {
            tracing::info!(job_id = %job.job_id, held_ms = held.as_millis() as u64, "another attempt holds the job; trying again when its claim ends");
            retry(held, attempt, job, owner);
        }
        Err(e) if attempt < max_attempts => {
            tracing::warn!(job_id = %job.job_id, attempt, error = %e, "job failed, retrying");
            let delay = Duration::from_millis(200 * 2u64.pow(attempt.min(8)));
            retry(delay, attempt + 1, job, owner);
        }
        Err(e) => {
            tracing::error!(job_id = %job.job_id, attempt, error = %e, queue = queue.name(), "job failed for good");
            if let Err(e) = dispatch::record_failure(pool, &job, &e.to_string()).await {
                tracing::error!(error = %e, "could not record the failed job");
            }
        }
    }
}

/// A job on its way through the in-process queue: its attempt number and the owner of
/// the claims its attempts take (one per job, as an SQS message id is).
struct Delivery {
    job: Message,
    attempt: u32,
    owner: String,
}
