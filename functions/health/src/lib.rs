//! The `health` function's routes (`/health`, `/health/ready`, `/api/openapi.json`) and the
//! OpenAPI document of the whole API, generated from every API function's routes.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::FromRef;
use deadpool_postgres::Pool;
use domain::outbox::QueueBackend;
use edge::ApiState;
use platform::cache::Cache;
use platform::config::{Env, Secret};

mod routes;

pub use routes::routes;

/// What the health function builds: the database (its secret only), Redis, the queue, and
/// the start time. No token key, no ticket key: the health routes verify and sign nothing.
#[derive(Clone)]
pub struct HealthState {
    pub db: Pool,
    pub cache: Cache,
    pub queue: Option<Arc<dyn QueueBackend>>,
    pub started_at: Instant,
}

impl HealthState {
    pub async fn load(env: Env) -> anyhow::Result<Self> {
        let env = env.with_secrets(&[Secret::Database]).await?;
        let cache = match env.redis()? {
            Some(r) => Cache::new(&r.url, r.timeout, r.ttl, &r.prefix)?,
            None => Cache::disabled(),
        };
        Ok(Self {
            db: platform::db::pool(&env.database(1)?)?,
            cache,
            queue: platform::sqs::SqsQueue::from_env(&env)
                .await?
                .map(|q| Arc::new(q) as Arc<dyn QueueBackend>),
            started_at: Instant::now(),
        })
    }
}

/// The local server serves the health routes over the API's state.
impl FromRef<ApiState> for HealthState {
    fn from_ref(api: &ApiState) -> Self {
        Self {
            db: api.db.clone(),
            cache: api.cache.clone(),
            queue: api.queue.clone(),
            started_at: api.started_at,
        }
    }
}

/// The OpenAPI document of every API function, built from the same routes that serve requests.
pub fn openapi() -> &'static utoipa::openapi::OpenApi {
    static DOC: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOC.get_or_init(|| {
        utoipa_axum::router::OpenApiRouter::<edge::ApiState>::with_openapi(edge::docs::base())
            .merge(events::routes())
            .merge(guests::routes())
            .merge(tickets::routes())
            .merge(routes::<ApiState>())
            .split_for_parts()
            .1
    })
}
