//! The `migrate` function: applies `migrations/` (embedded in the binary, `platform::db::migrate`,
//! under an advisory lock, so safe to run twice or concurrently).
//!
//! It is invoked
//! - by CloudFormation, as the handler of two custom resources (see [`crate::cfn`]):
//!   - `Custom::Migrations`: Create and Update migrate; Delete succeeds without touching the
//!     database (the data outlives the stack's resources). The template passes the
//!     function's version as a property, so every deploy of new code (new migrations
//!     included) is an Update that migrates, before the API functions are updated.
//!   - `Custom::TicketSigningKey` ([`crate::ticket_key`]): generates the ticket signing key.
//! - directly, with `{}` (`aws lambda invoke`, `sam remote invoke`): migrates and returns
//!   the report, e.g. `{"applied": ["V2__x"], "current": "V2__x", "total": 2}`.
//!
//! Nothing that can fail runs before the handler, so a broken configuration still
//! produces a `FAILED` answer instead of a stack that waits for one.

use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use serde_json::{json, Map, Value};
use tokio_postgres::error::SqlState;

use platform::config::Env;
use platform::invocation::{truncate, Invocation};

use crate::cfn::{self, CustomResourceRequest, Outcome, RequestType};
use crate::ticket_key;

/// The resource type of the migrations custom resource.
pub const RESOURCE_TYPE: &str = "Custom::Migrations";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigrationReport {
    /// Migrations applied by this run (`V<n>__<name>`), oldest first; empty when the
    /// database was up to date.
    pub applied: Vec<String>,
    /// The newest migration in the database after the run.
    pub current: Option<String>,
    /// Migrations in the database after the run.
    pub total: usize,
    /// Migrations the database has that this code does not know (a newer deploy's): then
    /// nothing is applied, and the schema stays as it is (migrations are forward-only and
    /// keep the previous code working, so an older version of the service runs on it).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub newer_in_database: Vec<String>,
}

/// Connects to the database of `db` (with its TLS settings) and applies the pending
/// migrations.
pub async fn run(db: &platform::config::DbConfig) -> anyhow::Result<MigrationReport> {
    let (mut config, tls) = db.connection()?;
    config.connect_timeout(CONNECT_TIMEOUT);
    let (mut client, connection) = config
        .connect(tls)
        .await
        .with_context(|| format!("connecting to the database at {}", db.address()))?;
    let connection = tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "database connection error");
        }
    });
    let before = history(&client).await?;
    let known = platform::db::migration_names();
    let newer: Vec<String> = before
        .iter()
        .filter(|m| !known.contains(m))
        .cloned()
        .collect();
    if !newer.is_empty() {
        tracing::warn!(newer = ?newer, "the database is ahead of this code: nothing applied");
        return Ok(MigrationReport {
            current: before.last().cloned(),
            total: before.len(),
            applied: Vec::new(),
            newer_in_database: newer,
        });
    }
    platform::db::migrate(&mut client).await?;
    let after = history(&client).await?;
    drop(client);
    let _ = connection.await;
    let applied: Vec<String> = after
        .iter()
        .filter(|m| !before.contains(m))
        .cloned()
        .collect();
    tracing::info!(applied = ?applied, total = after.len(), "migrations done");
    Ok(MigrationReport {
        current: after.last().cloned(),
        total: after.len(),
        applied,
        newer_in_database: Vec::new(),
    })
}

/// The migrations recorded by refinery (`V<n>__<name>`), oldest first; empty before the first run.
async fn history(client: &tokio_postgres::Client) -> anyhow::Result<Vec<String>> {
    match client
        .query(
            "SELECT version, name FROM refinery_schema_history ORDER BY version",
            &[],
        )
        .await
    {
        Ok(rows) => Ok(rows
            .iter()
            .map(|r| format!("V{}__{}", r.get::<_, i32>(0), r.get::<_, String>(1)))
            .collect()),
        Err(e) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => Ok(Vec::new()),
        Err(e) => Err(e).context("reading refinery_schema_history"),
    }
}

/// The handler of the `migrate` function (see the [module documentation](self)).
pub async fn handle(env: &Env, event: Value, invocation: Invocation) -> anyhow::Result<Value> {
    if !CustomResourceRequest::matches(&event) {
        tracing::info!("direct invocation: applying the migrations");
        let report = run(&env.database_resolved(1).await?).await?;
        return Ok(serde_json::to_value(report)?);
    }
    let request: CustomResourceRequest = match serde_json::from_value(event.clone()) {
        Ok(r) => r,
        Err(e) => return answer_malformed(&event, &invocation, e).await,
    };
    tracing::info!(request_type = ?request.request_type, resource_type = %request.resource_type,
        logical_resource_id = %request.logical_resource_id, "custom resource request");
    let response = match request.resource_type.as_str() {
        RESOURCE_TYPE => {
            let default_id = format!("{}-migrations", stack_name(&request.stack_id));
            cfn::respond(
                &request,
                &invocation,
                &default_id,
                on_migrations(env.clone(), request.clone()),
            )
            .await?
        }
        ticket_key::RESOURCE_TYPE => {
            let default_id = request
                .property("SecretId")
                .unwrap_or("ticket-signing-key")
                .to_owned();
            cfn::respond(
                &request,
                &invocation,
                &default_id,
                ticket_key::on_request(request.clone()),
            )
            .await?
        }
        other => {
            let other = other.to_owned();
            cfn::respond(&request, &invocation, "unsupported", async move {
                anyhow::bail!("this function does not manage resources of type {other:?}")
            })
            .await?
        }
    };
    Ok(serde_json::to_value(response)?)
}

async fn on_migrations(env: Env, request: CustomResourceRequest) -> anyhow::Result<Outcome> {
    if request.request_type == RequestType::Delete {
        return Ok(Outcome {
            reason: "nothing to do: the database and its schema are kept".into(),
            ..Outcome::default()
        });
    }
    // CloudFormation rolling a failed update back sends an Update with the old properties:
    // the older function version. Its migrations are already applied (a subset of the
    // database's), and migrations are forward-only: nothing to do, and a success, so that
    // the rollback completes (a FAILED here leaves the stack in UPDATE_ROLLBACK_FAILED).
    let version = |v: Option<&str>| v.and_then(|s| s.trim().parse::<u64>().ok());
    if let (Some(old), Some(new)) = (
        version(request.old_property("FunctionVersion")),
        version(request.property("FunctionVersion")),
    ) {
        if request.request_type == RequestType::Update && new < old {
            return Ok(Outcome {
                reason: format!(
                    "rollback from function version {old} to {new}: the schema stays as it is (migrations are forward-only)"
                ),
                ..Outcome::default()
            });
        }
    }
    let report = run(&env.database_resolved(1).await?).await?;
    let mut data = Map::new();
    data.insert("Applied".into(), json!(report.applied.len().to_string()));
    data.insert(
        "Current".into(),
        json!(report.current.clone().unwrap_or_default()),
    );
    let reason = if !report.newer_in_database.is_empty() {
        format!(
            "the database is ahead of this code ({}): nothing applied, the schema stays as it is",
            report.newer_in_database.join(", ")
        )
    } else if report.applied.is_empty() {
        format!(
            "up to date at {}",
            report.current.as_deref().unwrap_or("(no migrations)")
        )
    } else {
        format!(
            "applied {} migration(s): {}",
            report.applied.len(),
            report.applied.join(", ")
        )
    };
    Ok(Outcome {
        physical_resource_id: None,
        reason,
        data,
    })
}

/// A request with a `ResponseURL` that does not parse: answered `FAILED` with what it has.
async fn answer_malformed(
    event: &Value,
    invocation: &Invocation,
    error: serde_json::Error,
) -> anyhow::Result<Value> {
    let field = |k: &str| {
        event
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let response = cfn::CustomResourceResponse {
        status: cfn::Status::Failed,
        reason: truncate(&format!("malformed custom resource request: {error}"), 1024),
        physical_resource_id: event
            .get("PhysicalResourceId")
            .and_then(Value::as_str)
            .unwrap_or("malformed-request")
            .to_owned(),
        stack_id: field("StackId"),
        request_id: field("RequestId"),
        logical_resource_id: field("LogicalResourceId"),
        data: Map::new(),
    };
    tracing::error!(error = %error, request_id = %invocation.request_id, "malformed custom resource request");
    cfn::send(&field("ResponseURL"), &response).await?;
    Ok(serde_json::to_value(response)?)
}

/// `epc-dev` of `arn:aws:cloudformation:eu-west-1:123:stack/epc-dev/guid`.
fn stack_name(stack_id: &str) -> &str {
    stack_id
        .split('/')
        .nth(1)
        .filter(|s| !s.is_empty())
        .unwrap_or("stack")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_names_come_from_stack_ids() {
        assert_eq!(
            stack_name("arn:aws:cloudformation:eu-west-1:123456789012:stack/epc-dev/1b2c"),
            "epc-dev"
        );
        assert_eq!(stack_name(""), "stack");
    }
}
