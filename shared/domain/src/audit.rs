//! The audit log: who changed what, written in the transaction of every change made through the
//! API (events, ticket types, guests, check-in lists, reverted scans, webhooks, erasures), and
//! listed per event.
//!
//! `changes` holds what the change set, except personal data: for a guest only the names of
//! the fields that changed (an erasure must leave nothing readable behind, in the log too).

use deadpool_postgres::GenericClient;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use crate::access::{self, Lock};
use crate::caller::Caller;
use crate::error::DomainResult;
use crate::page::Pagination;
use crate::rules::{field_errors, finish};

/// Writes one audit entry in `tx` (the change's transaction).
pub async fn record(
    tx: &impl GenericClient,
    caller: &Caller,
    event_id: Option<i64>,
    action: &str,
    entity: &str,
    entity_id: Option<i64>,
    changes: Value,
) -> DomainResult<()> {
    let actor = (caller.user_id.as_str(), caller.role.as_str());
    record_as(tx, actor, event_id, action, entity, entity_id, changes).await
}

/// [`record`] for an actor that is not a token's caller: `(sub, role)`, e.g. the holder of
/// a waiting-list claim token (`("waitlist-entry:12", "guest")`).
pub async fn record_as(
    tx: &impl GenericClient,
    (sub, role): (&str, &str),
    event_id: Option<i64>,
    action: &str,
    entity: &str,
    entity_id: Option<i64>,
    changes: Value,
) -> DomainResult<()> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO audit_log (event_id, actor_sub, actor_role, action, entity, entity_id, changes)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .await?;
    tx.execute(
        &stmt,
        &[
            &event_id, &sub, &role, &action, &entity, &entity_id, &changes,
        ],
    )
    .await?;
    Ok(())
}

/// The fields a request body set (the keys of its JSON object), for changes that carry
/// personal data.
pub fn fields_of(body: &impl Serialize) -> Value {
    let fields: Vec<String> = match serde_json::to_value(body) {
        Ok(Value::Object(map)) => map
            .into_iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, _)| k)
            .collect(),
        _ => Vec::new(),
    };
    serde_json::json!({ "fields": fields })
}

/// What a request body set, without its null (absent) fields.
pub fn values_of(body: &impl Serialize) -> Value {
    match serde_json::to_value(body) {
        Ok(Value::Object(map)) => {
            Value::Object(map.into_iter().filter(|(_, v)| !v.is_null()).collect())
        }
        Ok(other) => other,
        Err(_) => Value::Null,
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Actor {
    pub sub: String,
    pub role: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    pub id: i64,
    pub at: chrono::DateTime<chrono::Utc>,
    pub actor: Actor,
    /// e.g. `event.updated`, `guest.cancelled`, `scan.reverted`, `guest.erased`.
    pub action: String,
    /// `event`, `ticket_type`, `guest`, `checkin_list`, `scan`.
    pub entity: String,
    pub entity_id: Option<i64>,
    #[schema(value_type = Object)]
    pub changes: Value,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    pub pagination: Pagination,
}

/// `GET /api/events/{eventId}/audit`.
#[derive(Debug, Default, Deserialize, Validate, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListAudit {
    #[validate(range(min = 1, max = 1000000))]
    #[param(minimum = 1, maximum = 1000000)]
    pub page: Option<i64>,
    #[validate(range(min = 1, max = 100))]
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// Only this entity kind (`event`, `ticket_type`, `guest`, `checkin_list`, `scan`).
    #[validate(length(min = 1, max = 50))]
    #[param(min_length = 1, max_length = 50)]
    pub entity: Option<String>,
    /// Only this action (e.g. `guest.cancelled`).
    #[validate(length(min = 1, max = 100))]
    #[param(min_length = 1, max_length = 100)]
    pub action: Option<String>,
}

/// The event's audit entries, newest first.
pub async fn list(
    db: &impl GenericClient,
    caller: &Caller,
    event_id: i64,
    q: ListAudit,
) -> DomainResult<AuditPage> {
    access::event(db, caller, event_id, Lock::None, None).await?;
    finish(field_errors(q.validate()))?;
    let (page, limit) = (q.page.unwrap_or(1), q.limit.unwrap_or(50));
    let from_where = "FROM audit_log a WHERE a.event_id = $1
        AND ($2::text IS NULL OR a.entity = $2) AND ($3::text IS NULL OR a.action = $3)";
    let stmt = db
        .prepare_cached(&format!(
            "SELECT a.id, a.at, a.actor_sub, a.actor_role, a.action, a.entity, a.entity_id, a.changes,
                    count(*) OVER () AS total
               {from_where} ORDER BY a.id DESC LIMIT $4 OFFSET $5"
        ))
        .await?;
    let rows = db
        .query(
            &stmt,
            &[
                &event_id,
                &q.entity,
                &q.action,
                &limit,
                &((page - 1) * limit),
            ],
        )
        .await?;
    let total = match rows.first() {
        Some(r) => r.get("total"),
        None => db
            .query_one(
                &format!("SELECT count(*) {from_where}"),
                &[&event_id, &q.entity, &q.action],
            )
            .await?
            .get(0),
    };
    Ok(AuditPage {
        entries: rows
            .iter()
            .map(|r| AuditEntry {
                id: r.get(0),
                at: r.get(1),
                actor: Actor {
                    sub: r.get(2),
                    role: r.get(3),
                },
                action: r.get(4),
                entity: r.get(5),
                entity_id: r.get(6),
                changes: r.get(7),
            })
            .collect(),
        pagination: Pagination::new(page, limit, total),
    })
}
