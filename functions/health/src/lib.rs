//! The `health` function's routes (`/health`, `/health/ready`, `/api/openapi.json`), its
//! state, and the OpenAPI document of the whole API it serves.

use std::sync::Arc;
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
            Some(r) => Cache::from_config(&r)?,
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

/// The OpenAPI document of the whole API, as served at `/api/openapi.json`. It is generated
/// from every API function's routes (`local_server::openapi()`); the test
/// `the_served_openapi_document_is_generated_from_the_routes` fails when this copy differs
/// and rewrites it with `UPDATE_OPENAPI=1`. A copy, so that the health function does not
/// link the other functions' handlers.
pub const OPENAPI_JSON: &str = include_str!("../openapi.json");
