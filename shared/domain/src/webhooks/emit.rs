//! Announcing a change to webhooks, in the change's own transaction.

use std::collections::{HashMap, HashSet};
use std::sync::{LazyLock, RwLock};

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

/// The guest deliveries of `event` written by a caller's own statement, as a CTE `hook`, and
/// the expression of their ids (`bigint[]`, empty without endpoints): one per enabled endpoint
/// of `organizer` (an SQL expression) subscribed to it, storing `guest` (an SQL expression of
/// type `guest_snapshot` over the rows of `from`, usually `guest_snapshot(g, ticket, at)`),
/// due a minute later. The body sent is rendered from that snapshot when it is read
/// (`delivery_payload`, migrations/V23), the same as `webhook_write` stores for that guest
/// (the webhook tests compare the two); building the JSON here was over half of what a
/// delivery cost a check-in. For the hot one-statement paths of an organizer with endpoints
/// ([`Inline`]): no function call, whose own statement costs PostgreSQL about 0.045 ms per
/// delivery (pgbench, 16 clients, a check-in); but the deliveries table is opened by every
/// execution, endpoints or not (0.015 ms).
pub(crate) fn inline_guest_deliveries(
    event: EventType,
    organizer: &str,
    guest: &str,
    from: &str,
) -> (String, &'static str) {
    let event = event.as_str();
    let cte = format!(
        "hook AS (
            INSERT INTO webhook_deliveries (webhook_id, message_id, event_type, guest, next_attempt_at)
            SELECT w.id, 'msg_' || replace(gen_random_uuid()::text, '-', ''), '{event}', {guest},
                   now() + interval '1 minute'
              FROM {from}
              JOIN webhooks w ON w.organizer_id = {organizer} AND w.enabled AND '{event}' = ANY (w.event_types)
             ORDER BY w.id
         RETURNING id)"
    );
    (
        cte,
        "COALESCE((SELECT array_agg(id ORDER BY id) FROM hook), ARRAY[]::bigint[])",
    )
}

/// Which statement writes a hot path's deliveries more cheaply for an organizer: the inline
/// insert ([`inline_guest_deliveries`]) when its last change of that kind in this process wrote
/// deliveries, else the call of `webhook_write` (guarded by a look at the endpoints where the
/// path can). Both write exactly the deliveries due, so the choice is one of cost only, and a
/// process learns it from the statements' own answers, with no query of its own.
pub(crate) struct Inline(RwLock<HashMap<EventType, HashSet<String>>>);

/// Organizers remembered at most (then forgotten all at once: they are learned again).
const REMEMBERED: usize = 10_000;

pub(crate) static INLINE: LazyLock<Inline> = LazyLock::new(|| Inline(RwLock::new(HashMap::new())));

impl Inline {
    /// Whether `organizer`'s `event` deliveries are written inline (`None`: an admin's change of
    /// an organizer the statement finds itself).
    pub(crate) fn get(&self, event: EventType, organizer: Option<&str>) -> bool {
        let organizer = organizer.unwrap_or_default();
        self.0
            .read()
            .is_ok_and(|sets| sets.get(&event).is_some_and(|set| set.contains(organizer)))
    }

    /// What a change said: it wrote deliveries, or not.
    pub(crate) fn learn(
        &self,
        event: EventType,
        organizer: Option<&str>,
        inline: bool,
        wrote: bool,
    ) {
        if inline == wrote {
            return;
        }
        let organizer = organizer.unwrap_or_default();
        if let Ok(mut sets) = self.0.write() {
            let set = sets.entry(event).or_default();
            if wrote {
                if set.len() >= REMEMBERED {
                    set.clear();
                }
                set.insert(organizer.to_owned());
            } else {
                set.remove(organizer);
            }
        }
    }
}

/// Whether this process writes `organizer`'s `event` deliveries inline ([`Inline`]; for tests).
pub fn writes_inline(event: EventType, organizer: Option<&str>) -> bool {
    INLINE.get(event, organizer)
}
