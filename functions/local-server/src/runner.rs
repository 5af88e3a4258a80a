//! The local server's job path: the same outbox relay, claims and handlers as in AWS,
//! fed by an in-process queue, or by SQS pollers when queue URLs are configured.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use domain::outbox::{self, Message, Queue};
use edge::ApiState;
use jobs::dispatch::{JobError, JobHandler};
use jobs::lambda::PollConfig;
use jobs::queue::InProcessQueue;
use jobs::workers::Workers;
use platform::config::Env;
use platform::sqs::SqsQueue;

/// The local server's job path without SQS: an in-process queue feeding [`Workers`], and
/// the outbox relay woken after each commit (and every few seconds as a sweep).
///
/// `LOCAL_HOLD_QUEUES` (a comma-separated list of queue names, e.g. `webhooks`) holds the
/// workers of those queues until the process receives SIGUSR1: their jobs are relayed as
/// usual and wait in memory. The performance harness uses it to measure the API without
/// the work a worker function does on other machines in AWS, then releases the backlog and
/// measures that on its own. Held jobs are lost if the process stops before the signal, so
/// this is for measurements, not for development.
pub fn start_in_process(env: &Env, state: &ApiState) -> anyhow::Result<()> {
    let workers = Arc::new(Workers::from_env(env, state.db.clone(), &state.cache)?);
    let held = held_queues(env)?;
    let (release, released) = tokio::sync::watch::channel(held.is_empty());
    if !held.is_empty() {
        let mut usr1 =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())?;
        let names: Vec<&str> = held.iter().map(|q| q.name()).collect();
        tracing::warn!(queues = ?names, "LOCAL_HOLD_QUEUES: these workers wait for SIGUSR1");
        tokio::spawn(async move {
            if usr1.recv().await.is_some() {
                let _ = release.send(true);
            }
        });
    }
    let queue = InProcessQueue::start_holding(state.db.clone(), workers, 5, &held, released);
    // Webhook deliveries written by the API are sent here right after their commit.
    let _ = state.delivery_queue.set(queue.clone());
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
pub async fn start_local(env: &Env, state: &ApiState, sqs: Option<SqsQueue>) -> anyhow::Result<()> {
    match sqs {
        Some(queue) => {
            if env.get("LOCAL_HOLD_QUEUES").is_some() {
                tracing::warn!(
                    "LOCAL_HOLD_QUEUES is ignored with SQS queues: jobs wait in SQS for their pollers"
                );
            }
            start_with_sqs(env, state, queue, PollConfig::default()).await
        }
        None => start_in_process(env, state),
    }
}

/// Jobs through SQS: the outbox relay sends them to `queue` (woken after each commit,
/// and every 5 s as a sweep), and one long-polling loop per queue
/// ([`jobs::lambda::poll_forever`]) feeds [`Workers`], the same per-message code
/// the Lambda worker functions run.
pub async fn start_with_sqs(
    env: &Env,
    state: &ApiState,
    queue: SqsQueue,
    poll: PollConfig,
) -> anyhow::Result<()> {
    let workers: Arc<dyn JobHandler> = Arc::new(WakeRelayAfter {
        workers: Workers::from_env(env, state.db.clone(), &state.cache)?,
        relay: state.outbox_signal.clone(),
    });
    if !queue.ping().await {
        tracing::warn!("SQS does not answer yet: jobs wait in the outbox and the pollers retry");
    }
    for q in Queue::ALL {
        let Some(url) = queue.urls().url(q) else {
            tracing::warn!(
                queue = q.name(),
                "WEBHOOKS_QUEUE_URL is not set: webhook deliveries wait in the outbox"
            );
            continue;
        };
        tokio::spawn(jobs::lambda::poll_forever(
            queue.client().clone(),
            url.to_owned(),
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
    async fn handle(&self, job: &Message) -> Result<(), JobError> {
        let result = self.workers.handle(job).await;
        self.relay.notify_one();
        result
    }
}

/// The local stand-in for the scheduled sweep's waiting-list pass: every `every`, expires
/// the offers past their time and hands their seats on (`domain::waitlist::offers`), then
/// wakes the relay for the offer emails that wrote.
pub fn start_offer_expiry(state: &ApiState, every: Duration) {
    let (pool, relay) = (state.db.clone(), state.outbox_signal.clone());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match domain::waitlist::offers::sweep_expired(&pool).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(expired = n, "waiting-list offers expired");
                    relay.notify_one();
                }
                Err(e) => {
                    tracing::warn!(error = %e, cause = e.internal.as_deref(), "expiring waiting-list offers failed")
                }
            }
        }
    });
}

/// The queues `LOCAL_HOLD_QUEUES` names (none when unset); an unknown name is an error.
fn held_queues(env: &Env) -> anyhow::Result<Vec<Queue>> {
    let Some(list) = env.get("LOCAL_HOLD_QUEUES") else {
        return Ok(Vec::new());
    };
    list.split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(|name| {
            Queue::ALL
                .into_iter()
                .find(|q| q.name() == name)
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "LOCAL_HOLD_QUEUES: unknown queue {name:?} (email, ticket-generation, webhooks)"
                    )
                })
        })
        .collect()
}
