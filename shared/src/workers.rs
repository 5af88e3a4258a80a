//! The job handlers behind both queues, as one [`JobHandler`]: the SQS-triggered Lambda
//! functions and the local server's in-process queue run exactly this code.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::Pool;

use crate::clients::auth::AuthClient;
use crate::clients::notification::NotificationClient;
use crate::email::{EmailWorker, Mailer};
use crate::jobs::{JobError, JobHandler};
use crate::outbox::{self, types, Job};
use crate::queue::InProcessQueue;
use crate::state::AppState;
use crate::tickets::generate::generate_ticket;

pub struct Workers {
    pool: Pool,
    email: EmailWorker,
}

impl Workers {
    pub fn new(pool: Pool, mailer: Mailer, auth: Option<Arc<AuthClient>>) -> Self {
        Self {
            email: EmailWorker {
                pool: pool.clone(),
                mailer,
                auth,
            },
            pool,
        }
    }

    /// From the environment: `NOTIFICATION_SERVICE_URL` (required in Lambda; locally the
    /// emails are logged when it is unset) and `AUTH_SERVICE_URL` (optional).
    pub fn from_env(state: &AppState) -> anyhow::Result<Self> {
        let mailer = match NotificationClient::from_env()? {
            Some(client) => Mailer::Notification(Box::new(client)),
            None if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some() => {
                anyhow::bail!("NOTIFICATION_SERVICE_URL is not set")
            }
            None => {
                tracing::warn!(
                    "NOTIFICATION_SERVICE_URL is not set: emails are written to the log, not sent"
                );
                Mailer::Log
            }
        };
        let auth = AuthClient::from_env(state.tokens.clone())?.map(|client| {
            match state.cache.is_configured() {
                true => Arc::new(client.with_cache(Arc::new(state.cache.clone()))),
                false => Arc::new(client),
            }
        });
        Ok(Self::new(state.db.clone(), mailer, auth))
    }
}

#[async_trait]
impl JobHandler for Workers {
    async fn handle(&self, job: &Job) -> Result<(), JobError> {
        match job.job_type.as_str() {
            types::GENERATE_TICKET => generate_ticket(&self.pool, &job.payload).await,
            _ => self.email.handle(job).await,
        }
    }
}

/// The local server's job path without SQS: an in-process queue feeding [`Workers`], and
/// the outbox relay woken after each commit (and every few seconds as a sweep).
pub fn start_in_process(state: &AppState) -> anyhow::Result<()> {
    let workers = Arc::new(Workers::from_env(state)?);
    let queue = InProcessQueue::start(state.db.clone(), workers, 5);
    tokio::spawn(outbox::run_relay(
        state.db.clone(),
        queue,
        state.outbox_signal.clone(),
        Duration::from_secs(5),
    ));
    tracing::info!("jobs: in-process queue and outbox relay started");
    Ok(())
}

/// The local server's job path. With `EMAIL_QUEUE_URL` and `TICKET_QUEUE_URL` set (and
/// `AWS_ENDPOINT_URL` for a local SQS-compatible server such as moto), jobs go through
/// SQS ([`start_with_sqs`]); without them, [`start_in_process`].
pub async fn start_local(state: &AppState) -> anyhow::Result<()> {
    match crate::queue::sqs::SqsQueue::from_env().await? {
        Some(queue) => start_with_sqs(state, queue, crate::sqs_worker::PollConfig::default()).await,
        None => start_in_process(state),
    }
}

/// Jobs through SQS: the outbox relay sends them to `queue` (woken after each commit,
/// and every 5 s as a sweep), and one long-polling loop per queue
/// ([`crate::sqs_worker::poll_forever`]) feeds [`Workers`], the same per-message code
/// the Lambda worker functions run.
pub async fn start_with_sqs(
    state: &AppState,
    queue: crate::queue::sqs::SqsQueue,
    poll: crate::sqs_worker::PollConfig,
) -> anyhow::Result<()> {
    use crate::queue::Queue;

    let workers: Arc<dyn JobHandler> = Arc::new(WakeRelayAfter {
        workers: Workers::from_env(state)?,
        relay: state.outbox_signal.clone(),
    });
    if !queue.ping().await {
        tracing::warn!("SQS does not answer yet: jobs wait in the outbox and the pollers retry");
    }
    for q in Queue::ALL {
        tokio::spawn(crate::sqs_worker::poll_forever(
            queue.client().clone(),
            queue.urls().url(q).to_owned(),
            state.db.clone(),
            workers.clone(),
            poll.clone(),
        ));
    }
    let urls = queue.urls().clone();
    tokio::spawn(outbox::run_relay(
        state.db.clone(),
        Arc::new(queue),
        state.outbox_signal.clone(),
        Duration::from_secs(5),
    ));
    tracing::info!(email_queue = %urls.email, ticket_queue = %urls.ticket_generation,
        "jobs: SQS queues, pollers and outbox relay started");
    Ok(())
}

/// Wakes the relay after each job, so that the jobs a job wrote (`generate_ticket` writes
/// `ticket_ready`) leave the outbox at once instead of at the next sweep.
struct WakeRelayAfter {
    workers: Workers,
    relay: Arc<tokio::sync::Notify>,
}

#[async_trait]
impl JobHandler for WakeRelayAfter {
    async fn handle(&self, job: &Job) -> Result<(), JobError> {
        let result = self.workers.handle(job).await;
        self.relay.notify_one();
        result
    }
}
