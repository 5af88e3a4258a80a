//! The `health-probe` function, run every minute by an EventBridge schedule: checks the
//! dependencies from inside the VPC, as the API functions see them, and publishes the
//! result as one CloudWatch Embedded Metric Format line (namespace `EventPlannerCore`,
//! dimension `Service`):
//!
//! | metric | unit | value |
//! |---|---|---|
//! | `Healthy` | Count | 1 when every configured dependency answered, else 0 |
//! | `DatabaseUp`, `DatabaseLatency` | Count, Milliseconds | `SELECT 1` through a fresh pool connection |
//! | `RedisUp`, `RedisLatency` | Count, Milliseconds | `PING`; only when `REDIS_URL` is set |
//! | `QueueUp`, `QueueLatency` | Count, Milliseconds | `GetQueueAttributes` on both queues; only when the queue URLs are set |
//!
//! Stricter than `/health/ready` (where a Redis outage is only `degraded`): the alarm on
//! `Healthy` wants to hear about any dependency. It also fires when the metric is missing
//! (the probe itself failing or not scheduled).

use std::time::Duration;

use deadpool_postgres::Pool;
use serde_json::Value;
use tokio::sync::OnceCell;

use domain::outbox::QueueBackend;
use platform::cache::Cache;
use platform::config::Env;
use platform::emf::{Metrics, Unit};
use platform::health::Report as ProbeReport;
use platform::invocation::METRICS_NAMESPACE;
use platform::sqs::SqsQueue;

const DATABASE_TIMEOUT: Duration = Duration::from_secs(3);

/// The EMF document of a probe (see the [module documentation](self)).
pub fn metrics(report: &ProbeReport, service: &str) -> Metrics {
    let mut m = Metrics::new(METRICS_NAMESPACE)
        .dimension("Service", service)
        .metric("Healthy", Unit::Count, flag(report.healthy()));
    for (name, check) in [
        ("Database", Some(report.database)),
        ("Redis", report.redis),
        ("Queue", report.queue),
    ] {
        if let Some(c) = check {
            m = m
                .metric(&format!("{name}Up"), Unit::Count, flag(c.up))
                .metric(&format!("{name}Latency"), Unit::Milliseconds, c.latency_ms);
        }
    }
    m
}

fn flag(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

/// The probe of one execution environment.
pub struct Probe {
    pool: OnceCell<Pool>,
    env: Env,
    cache: Cache,
    queue: Option<SqsQueue>,
    service: String,
}

impl Probe {
    /// `REDIS_URL` (optional), `EMAIL_QUEUE_URL` + `TICKET_QUEUE_URL` (optional), the
    /// database (its secret resolved at the first probe, so that a failure counts as the
    /// database being down).
    pub async fn from_env(env: Env) -> anyhow::Result<Self> {
        let env = env
            .with_secrets(&[platform::config::Secret::RedisAuth])
            .await?;
        let cache = match env.redis()? {
            // The probe's own time-out: a slow Redis is a down Redis here too, but a
            // cold connection may take longer than the API's 100 ms budget.
            Some(mut r) => {
                r.timeout = Duration::from_secs(2);
                Cache::from_config(&r)?
            }
            None => Cache::disabled(),
        };
        Ok(Self {
            pool: OnceCell::new(),
            cache,
            // Boxed: the SDK's configuration loading is a deep future (rustc's layout depth limit).
            queue: Box::pin(SqsQueue::from_env(&env)).await?,
            service: env.service_name(),
            env,
        })
    }

    /// Checks every dependency concurrently ([`platform::health::check`], the checker
    /// `/health/ready` uses too).
    pub async fn check(&self) -> ProbeReport {
        let database = async {
            let pool = self
                .pool
                .get_or_try_init(|| async {
                    platform::db::pool(&self.env.database_resolved(1).await?)
                })
                .await?;
            platform::health::ping_database(pool).await
        };
        let queue = self.queue.as_ref().map(|q| q as &dyn QueueBackend);
        platform::health::check(database, DATABASE_TIMEOUT, &self.cache, queue).await
    }

    /// One scheduled run: checks, publishes the EMF line, returns the document.
    pub async fn run(&self) -> Value {
        let report = self.check().await;
        if report.healthy() {
            tracing::info!(report = %serde_json::to_string(&report).unwrap_or_default(), "healthy");
        } else {
            tracing::error!(report = %serde_json::to_string(&report).unwrap_or_default(), "a dependency is down");
        }
        metrics(&report, &self.service).emit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use platform::health::Check;
    use serde_json::json;

    fn check(up: bool, latency_ms: f64) -> Check {
        Check { up, latency_ms }
    }

    fn metric_names(doc: &Value) -> Vec<String> {
        doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn the_emf_document_has_every_dependency() {
        let report = ProbeReport {
            database: check(true, 1.5),
            redis: Some(check(false, 2000.0)),
            queue: Some(check(true, 12.0)),
        };
        assert!(!report.healthy());
        let doc = metrics(&report, "event-planner-core-prod").document(1_795_600_000_000);
        let aws = &doc["_aws"];
        assert_eq!(aws["Timestamp"], 1_795_600_000_000i64);
        let directive = &aws["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "EventPlannerCore");
        assert_eq!(directive["Dimensions"], json!([["Service"]]));
        assert_eq!(
            metric_names(&doc),
            [
                "Healthy",
                "DatabaseUp",
                "DatabaseLatency",
                "RedisUp",
                "RedisLatency",
                "QueueUp",
                "QueueLatency"
            ]
        );
        for m in directive["Metrics"].as_array().unwrap() {
            let name = m["Name"].as_str().unwrap();
            let unit = if name.ends_with("Latency") {
                "Milliseconds"
            } else {
                "Count"
            };
            assert_eq!(m["Unit"], unit, "{name}");
            // Every metric's value is a number at the top level of the document.
            assert!(doc[name].is_number(), "{name}: {doc}");
        }
        assert_eq!(doc["Service"], "event-planner-core-prod");
        assert_eq!(doc["Healthy"], 0);
        assert_eq!(doc["DatabaseUp"], 1);
        assert_eq!(doc["RedisUp"], 0);
        assert_eq!(doc["DatabaseLatency"], 1.5);
    }

    #[test]
    fn unconfigured_dependencies_are_left_out() {
        let report = ProbeReport {
            database: check(true, 3.0),
            redis: None,
            queue: None,
        };
        assert!(report.healthy());
        let doc = metrics(&report, "svc").document(0);
        assert_eq!(
            metric_names(&doc),
            ["Healthy", "DatabaseUp", "DatabaseLatency"]
        );
        assert_eq!(doc["Healthy"], 1);
        assert!(doc.get("RedisUp").is_none());

        let down = ProbeReport {
            database: check(false, 3000.0),
            redis: None,
            queue: None,
        };
        assert_eq!(metrics(&down, "svc").document(0)["Healthy"], 0);
    }
}
