//! Announcing a change to webhooks, in the change's own transaction.

use deadpool_postgres::GenericClient;
use serde::Serialize;

use super::model::EventType;
use crate::error::{DomainError, DomainResult};

/// Writes, in `tx`, one delivery per enabled webhook of `organizer_id` subscribed to `event`
/// (body `{"type", "timestamp", "data"}`, `data` the full resource as the API shows it), due at
/// once, with the SQL function `webhook_write` of migrations/V20__webhook_deliveries_outbox.sql.
/// Returns whether any was written: the caller's effects then relay (`.jobs()`), which sends
/// due deliveries as it sends due jobs. The hot one-statement paths (registration, check-in)
/// call `webhook_write` inline instead, due a minute later, and send their deliveries' messages
/// themselves after the commit ([`crate::work::Effects::webhooks`]), with no lease to write.
/// Without subscribers it writes nothing.
pub async fn emit(
    tx: &impl GenericClient,
    organizer_id: &str,
    event: EventType,
    data: &impl Serialize,
) -> DomainResult<bool> {
    let data = serde_json::to_value(data).map_err(DomainError::internal)?;
    let stmt = tx
        .prepare_cached("SELECT webhook_write($1, $2, $3, interval '0')")
        .await?;
    let ids: Vec<i64> = tx
        .query_one(&stmt, &[&organizer_id, &event.as_str(), &data])
        .await?
        .get(0);
    if !ids.is_empty() {
        tracing::info!(
            event = event.as_str(),
            organizer = organizer_id,
            deliveries = ids.len(),
            "webhooks written"
        );
    }
    Ok(!ids.is_empty())
}
