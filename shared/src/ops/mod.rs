//! The operations functions: everything that keeps the service running but serves no
//! client request.
//!
//! | function | trigger | module |
//! |---|---|---|
//! | `migrate` | CloudFormation custom resources at deploy (`Custom::Migrations`, `Custom::TicketSigningKey`), or a direct invocation `{}` | [`migrate`], [`ticket_key`], [`cfn`] |
//! | `outbox-sweep` | EventBridge schedule, every minute | [`sweep`] |
//! | `health-probe` | EventBridge schedule, every minute | [`probe`] |
//!
//! None of them verifies tokens or signs tickets, so none of them needs the JWT key or
//! the ticket key: they read only the database secret ([`database_url`]), which keeps
//! their IAM policies small. The sweep and the probe publish CloudWatch metrics as
//! Embedded Metric Format lines on stdout ([`emf`]).

use std::time::{Duration, SystemTime};

use anyhow::Context;
use deadpool_postgres::Pool;

use crate::config::{Config, DEFAULT_DATABASE_URL};

pub mod cfn;
pub mod emf;
pub mod migrate;
pub mod probe;
pub mod sweep;
pub mod ticket_key;

/// The CloudWatch namespace of the service's own metrics.
pub const METRICS_NAMESPACE: &str = "EventPlannerCore";

/// What an operations handler needs to know about the Lambda invocation it serves
/// (taken from `lambda_runtime::Context` by the function's `main.rs`).
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    pub request_id: String,
    /// When Lambda stops the invocation; `None` when unknown.
    pub deadline: Option<SystemTime>,
    /// The CloudWatch log stream of this execution environment (named in CloudFormation
    /// failure reasons, so that an operator finds the details).
    pub log_stream: String,
}

impl Invocation {
    /// `deadline_ms`: the runtime's deadline, milliseconds since the Unix epoch. A value
    /// before 2001 counts as unknown: cargo-lambda's emulator sends its time-out there
    /// (`600000`), not a point in time.
    pub fn new(request_id: &str, deadline_ms: u64, log_stream: &str) -> Self {
        const PLAUSIBLE_MS: u64 = 1_000_000_000_000; // 2001-09-09
        Self {
            request_id: request_id.to_owned(),
            deadline: (deadline_ms >= PLAUSIBLE_MS)
                .then(|| SystemTime::UNIX_EPOCH + Duration::from_millis(deadline_ms)),
            log_stream: log_stream.to_owned(),
        }
    }

    /// Time left before the deadline, minus `margin`; `default` when the deadline is unknown.
    pub fn budget(&self, margin: Duration, default: Duration) -> Duration {
        match self.deadline {
            Some(deadline) => deadline
                .duration_since(SystemTime::now())
                .unwrap_or_default()
                .saturating_sub(margin),
            None => default,
        }
    }
}

/// The name the service's metrics carry in their `Service` dimension: `SERVICE_NAME`
/// (the template sets the stack name), default `event-planner-core`.
pub fn service_name() -> String {
    std::env::var("SERVICE_NAME")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "event-planner-core".to_owned())
}

/// The database URL: `DATABASE_URL`, or built from the RDS secret named by
/// `DB_SECRET_ARN` with `DB_HOST`/`DB_PORT`/`DB_NAME` ([`crate::secrets`]). Only the
/// database secret is read, whatever other ARNs the environment holds. Outside Lambda
/// the local default applies; in Lambda one of the two must be set.
pub async fn database_url() -> anyhow::Result<String> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let only_database = |k: &str| match k {
        "DB_SECRET_ARN" | "DB_HOST" | "DB_PORT" | "DB_NAME" => env(k),
        _ => None,
    };
    // Boxed: the SDK's futures are deep, and callers' futures embed this one (rustc's
    // layout depth limit).
    let mut resolved = Box::pin(crate::secrets::resolve_env(only_database)).await?;
    if let Some(url) = resolved.remove("DATABASE_URL") {
        return Ok(url);
    }
    match env("DATABASE_URL") {
        Some(url) => Ok(url),
        None if env("AWS_LAMBDA_FUNCTION_NAME").is_some() => {
            anyhow::bail!("neither DB_SECRET_ARN nor DATABASE_URL is set")
        }
        None => Ok(DEFAULT_DATABASE_URL.to_owned()),
    }
}

/// A small pool (`DB_POOL_SIZE`, default 1; `DB_TIMEOUT_MS`) on `database_url`, built
/// like the API's ([`crate::db::pool`]).
pub fn pool(database_url: &str) -> anyhow::Result<Pool> {
    let get = |k: &str| match k {
        "DATABASE_URL" => Some(database_url.to_owned()),
        "DB_POOL_SIZE" => Some(std::env::var(k).unwrap_or_else(|_| "1".to_owned())),
        // The configuration insists on a JWT key inside Lambda; these functions verify no
        // token, so they are not given the secret and a placeholder stands in.
        "JWT_SECRET" => Some("unused-by-the-operations-functions".to_owned()),
        // No cache through this pool's configuration (the probe pings Redis itself).
        "REDIS_URL" => None,
        k => std::env::var(k).ok(),
    };
    let config = Config::from_lookup(get).context("database configuration")?;
    crate::db::pool(&config)
}

/// `s` cut to at most `max` bytes on a character boundary, with `…` when cut.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_follows_the_deadline() {
        let inv = Invocation::new("r", 0, "");
        assert_eq!(
            inv.budget(Duration::from_secs(1), Duration::from_secs(7)),
            Duration::from_secs(7)
        );
        let in_a_minute = SystemTime::now() + Duration::from_secs(60);
        let ms = in_a_minute
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let budget = Invocation::new("r", ms, "").budget(Duration::from_secs(10), Duration::ZERO);
        assert!(budget > Duration::from_secs(45) && budget <= Duration::from_secs(50));
        // A deadline in the past leaves nothing.
        let past = Invocation::new("r", 1_700_000_000_000, "");
        assert_eq!(
            past.budget(Duration::ZERO, Duration::from_secs(1)),
            Duration::ZERO
        );
        // The emulator's relative "deadline" is no deadline.
        let emulator = Invocation::new("r", 600_000, "");
        assert_eq!(emulator.deadline, None);
    }

    #[test]
    fn truncation_respects_characters() {
        assert_eq!(truncate("abc", 3), "abc");
        let cut = truncate("ééééé", 6);
        assert!(cut.len() <= 6 && cut.ends_with('…'), "{cut}");
    }
}
