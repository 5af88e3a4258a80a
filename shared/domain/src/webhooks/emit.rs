//! Announcing a change to webhooks, in the change's own transaction.

use deadpool_postgres::GenericClient;
use serde::Serialize;

use super::model::EventType;
use crate::error::{DomainError, DomainResult};

/// Writes, in `tx`, one delivery per enabled webhook of `organizer_id` subscribed to `event`
/// (body `{"type", "timestamp", "data"}`, `data` the full resource as the API shows it) and
/// one `deliver_webhook` job per delivery to the outbox (the SQL function `webhook_emit` of
/// migrations/V10__webhooks.sql, which the one-statement paths call inline). Returns whether
/// any was written: the caller's effects then relay jobs. Without subscribers it writes nothing.
pub async fn emit(
    tx: &impl GenericClient,
    organizer_id: &str,
    event: EventType,
    data: &impl Serialize,
) -> DomainResult<bool> {
    let data = serde_json::to_value(data).map_err(DomainError::internal)?;
    let stmt = tx.prepare_cached("SELECT webhook_emit($1, $2, $3)").await?;
    let n: i32 = tx
        .query_one(&stmt, &[&organizer_id, &event.as_str(), &data])
        .await?
        .get(0);
    if n > 0 {
        tracing::info!(
            event = event.as_str(),
            organizer = organizer_id,
            deliveries = n,
            "webhooks written"
        );
    }
    Ok(n > 0)
}
