//! The job handlers behind both queues, as one [`JobHandler`]: the SQS-triggered Lambda
//! functions and the local server's in-process queue run exactly this code.

use std::sync::Arc;

use async_trait::async_trait;
use deadpool_postgres::Pool;

use domain::outbox::{Job, Message, QueueBackend, RelayConfig};
use platform::cache::Cache;
use platform::config::{Env, Secret};
use platform::s3::ObjectStore;

use crate::clients::auth::AuthClient;
use crate::clients::notification::NotificationClient;
use crate::dispatch::{JobError, JobHandler};
use crate::email::{EmailWorker, Mailer};
use crate::export;
use crate::ticket::generate_ticket;
use crate::webhook::{self, WebhookSender};

pub struct Workers {
    pool: Pool,
    email: EmailWorker,
    webhooks: WebhookSender,
    /// The exports bucket (`EXPORTS_BUCKET`), for `build_export`; without it exports fail
    /// with that reason.
    exports: Option<ObjectStore>,
}

impl Workers {
    pub fn new(pool: Pool, mailer: Mailer, auth: Option<Arc<AuthClient>>) -> Self {
        Self {
            email: EmailWorker {
                pool: pool.clone(),
                mailer,
                auth,
                claim_url: None,
            },
            pool,
            webhooks: WebhookSender::default(),
            exports: None,
        }
    }

    /// With the exports bucket (`build_export` writes to it).
    pub fn with_exports(mut self, store: Option<ObjectStore>) -> Self {
        self.exports = store;
        self
    }

    /// With the front end's claim page for `waitlist_offer` emails (`{token}` replaced).
    pub fn with_claim_url(mut self, url: Option<String>) -> Self {
        self.email.claim_url = url.filter(|u| u.contains("{token}"));
        self
    }

    /// With these webhook settings (tests: private targets and short back-offs).
    pub fn with_webhooks(mut self, sender: WebhookSender) -> Self {
        self.webhooks = sender;
        self
    }

    /// From the environment: `NOTIFICATION_SERVICE_URL` (required in Lambda; locally the
    /// emails are logged when it is unset) and `AUTH_SERVICE_URL` (optional, its users
    /// read through `cache`).
    pub fn from_env(env: &Env, pool: Pool, cache: &Cache) -> anyhow::Result<Self> {
        let mailer = match NotificationClient::from_lookup(env.lookup())? {
            Some(client) => Mailer::Notification(Box::new(client)),
            None if env.in_lambda() => {
                anyhow::bail!("NOTIFICATION_SERVICE_URL is not set")
            }
            None => {
                tracing::warn!(
                    "NOTIFICATION_SERVICE_URL is not set: emails are written to the log, not sent"
                );
                Mailer::Log
            }
        };
        let auth =
            AuthClient::from_lookup(env.lookup())?.map(|client| match cache.is_configured() {
                true => Arc::new(client.with_cache(Arc::new(cache.clone()))),
                false => Arc::new(client),
            });
        Ok(Self::new(pool, mailer, auth)
            .with_claim_url(env.get("WAITLIST_CLAIM_URL"))
            .with_webhooks(WebhookSender::from_env(env)?)
            .with_exports(ObjectStore::from_env(env)?))
    }
}

#[async_trait]
impl JobHandler for Workers {
    async fn handle(&self, message: &Message) -> Result<(), JobError> {
        let job = message.job().map_err(JobError::Permanent)?;
        match job {
            Job::GenerateTicket { ticket_id } => generate_ticket(&self.pool, ticket_id).await,
            Job::DeliverWebhook { delivery_id } => {
                webhook::deliver(&self.pool, &self.webhooks, delivery_id).await
            }
            Job::BuildExport { export_id } => {
                export::build(&self.pool, self.exports.as_ref(), export_id).await
            }
            Job::ExportReady { export_id } => {
                self.email.export_ready(message.job_id, export_id).await
            }
            Job::WaitlistOffer {
                entry_id, token, ..
            } => {
                self.email
                    .waitlist_offer(message.job_id, entry_id, &token)
                    .await
            }
            email => self.email.handle(message.job_id, &email).await,
        }
    }
}

/// What a worker function builds once per execution environment: the database (its
/// secret only), the handlers with their clients, and the queue the jobs a job writes are
/// relayed to. No token verifier, no ticket key, no HTTP edge.
pub struct WorkerState {
    pub db: Pool,
    pub workers: Workers,
    pub relay_to: Option<Arc<dyn QueueBackend>>,
}

impl WorkerState {
    pub async fn load(env: Env) -> anyhow::Result<Self> {
        let env = env
            .with_secrets(&[
                Secret::Database,
                Secret::AuthServiceToken,
                Secret::RedisAuth,
            ])
            .await?;
        let db = platform::db::pool(&env.database(1)?)?;
        let cache = match env.redis()? {
            Some(r) => Cache::from_config(&r)?,
            None => Cache::disabled(),
        };
        let workers = Workers::from_env(&env, db.clone(), &cache)?;
        let relay_to = platform::sqs::SqsQueue::from_env(&env)
            .await?
            .map(|q| Arc::new(q) as Arc<dyn QueueBackend>);
        Ok(Self {
            db,
            workers,
            relay_to,
        })
    }

    /// Relays the jobs the handled jobs wrote (`generate_ticket` writes `ticket_ready`)
    /// before the invocation ends; what fails waits for the sweep.
    pub async fn relay(&self) {
        let Some(queue) = &self.relay_to else { return };
        if let Err(e) =
            domain::outbox::drain(&self.db, queue.as_ref(), &RelayConfig::default()).await
        {
            tracing::warn!(error = %e, "outbox relay failed; the jobs wait for the sweep");
        }
    }
}
