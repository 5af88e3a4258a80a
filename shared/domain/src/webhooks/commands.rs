//! Webhook endpoints: create (the secret shown once), read, change, delete, rotate the
//! secret; the delivery log and manual redelivery. An organizer's webhooks are its own (they
//! receive only its events); an admin sees every organizer's. The gate is
//! [`access::check`] on the webhook's organizer, like every other resource.

use chrono::{Duration, Utc};
use deadpool_postgres::{GenericClient, Transaction};
use serde::Serialize;
use utoipa::ToSchema;

use super::input::{CreateWebhook, ListDeliveries, UpdateWebhook};
use super::model::{
    delivery_from_row, webhook_from_row, Delivery, Webhook, WebhookWithSecret, DELIVERY_COLUMNS,
    WEBHOOK_COLUMNS,
};
use super::sign::new_secret;
use crate::access;
use crate::audit;
use crate::caller::Caller;
use crate::error::{DomainError, DomainResult};
use crate::page::Pagination;
use crate::rules::Input;
use crate::work::{Done, Effects};

/// How long the previous secret keeps signing after a rotation.
pub const ROTATION_GRACE_HOURS: i64 = 24;

/// The webhook `id` if the caller may see it; `lock`: `FOR UPDATE` (changes).
async fn owned(
    db: &impl GenericClient,
    caller: &Caller,
    id: i64,
    lock: bool,
) -> DomainResult<Webhook> {
    let sql = format!(
        "SELECT {WEBHOOK_COLUMNS}, w.organizer_id FROM webhooks w WHERE w.id = $1 {}",
        if lock { "FOR UPDATE" } else { "" }
    );
    let row = db
        .query_opt(&sql, &[&id])
        .await?
        .ok_or_else(|| DomainError::not_found("webhook"))?;
    access::check(caller, row.get("organizer_id"), "webhook")?;
    webhook_from_row(&row)
}

fn types(t: &[super::EventType]) -> Vec<&'static str> {
    t.iter().map(|t| t.as_str()).collect()
}

pub async fn create(
    tx: &Transaction<'_>,
    caller: &Caller,
    input: Input<CreateWebhook>,
    allow_local: bool,
) -> DomainResult<Done<WebhookWithSecret>> {
    let input = input.take()?;
    input.check(allow_local)?;
    let secret = new_secret();
    let row = tx
        .query_one(
            &format!(
                "INSERT INTO webhooks AS w (organizer_id, url, event_types, description, secret)
                 VALUES ($1, $2, $3, $4, $5) RETURNING {WEBHOOK_COLUMNS}"
            ),
            &[
                &caller.user_id,
                &input.url,
                &types(&input.event_types),
                &input.description,
                &secret,
            ],
        )
        .await?;
    let webhook = webhook_from_row(&row)?;
    audit::record(
        tx,
        caller,
        None,
        "webhook.created",
        "webhook",
        Some(webhook.id),
        serde_json::json!({"url": webhook.url, "eventTypes": webhook.event_types}),
    )
    .await?;
    tracing::info!(webhook_id = webhook.id, organizer = %caller.user_id, "webhook created");
    Ok(Done::new(
        WebhookWithSecret { webhook, secret },
        Effects::default(),
    ))
}

/// The caller's webhooks (an admin: everyone's), oldest first.
pub async fn list(db: &impl GenericClient, caller: &Caller) -> DomainResult<Vec<Webhook>> {
    let rows = db
        .query(
            &format!(
                "SELECT {WEBHOOK_COLUMNS} FROM webhooks w
                  WHERE $1::text IS NULL OR w.organizer_id = $1 ORDER BY w.id LIMIT 1000"
            ),
            &[&caller.tenant()],
        )
        .await?;
    rows.iter().map(webhook_from_row).collect()
}

pub async fn get(db: &impl GenericClient, caller: &Caller, id: i64) -> DomainResult<Webhook> {
    owned(db, caller, id, false).await
}

pub async fn update(
    tx: &Transaction<'_>,
    caller: &Caller,
    id: i64,
    input: Input<UpdateWebhook>,
    allow_local: bool,
) -> DomainResult<Done<Webhook>> {
    owned(tx, caller, id, true).await?;
    let input = input.take()?;
    input.check(allow_local)?;
    let types = input.event_types.as_deref().map(types);
    let description_set = input.description.is_some();
    let description = input.description.clone().flatten();
    let row = tx
        .query_one(
            &format!(
                "UPDATE webhooks w
                    SET url = COALESCE($2, url), event_types = COALESCE($3, event_types),
                        description = CASE WHEN $4 THEN $5 ELSE description END,
                        enabled = COALESCE($6, enabled),
                        -- turned on again by hand: a fresh start
                        disabled_reason = CASE WHEN $6 THEN NULL ELSE disabled_reason END,
                        failing_since = CASE WHEN $6 THEN NULL ELSE failing_since END,
                        updated_at = now()
                  WHERE id = $1 RETURNING {WEBHOOK_COLUMNS}"
            ),
            &[
                &id,
                &input.url,
                &types,
                &description_set,
                &description,
                &input.enabled,
            ],
        )
        .await?;
    audit::record(
        tx,
        caller,
        None,
        "webhook.updated",
        "webhook",
        Some(id),
        serde_json::json!({"url": input.url, "eventTypes": types, "enabled": input.enabled}),
    )
    .await?;
    Ok(Done::new(webhook_from_row(&row)?, Effects::default()))
}

pub async fn delete(tx: &Transaction<'_>, caller: &Caller, id: i64) -> DomainResult<Done<()>> {
    owned(tx, caller, id, true).await?;
    // Its deliveries go with it (no foreign key deletes them: migrations/V24).
    tx.execute(
        "DELETE FROM webhook_deliveries WHERE webhook_id = $1",
        &[&id],
    )
    .await?;
    tx.execute("DELETE FROM webhooks WHERE id = $1", &[&id])
        .await?;
    audit::record(
        tx,
        caller,
        None,
        "webhook.deleted",
        "webhook",
        Some(id),
        serde_json::json!({}),
    )
    .await?;
    Ok(Done::new((), Effects::default()))
}

/// A new secret; the previous one keeps signing for [`ROTATION_GRACE_HOURS`].
pub async fn rotate_secret(
    tx: &Transaction<'_>,
    caller: &Caller,
    id: i64,
) -> DomainResult<Done<WebhookWithSecret>> {
    owned(tx, caller, id, true).await?;
    let secret = new_secret();
    let until = Utc::now() + Duration::hours(ROTATION_GRACE_HOURS);
    let row = tx
        .query_one(
            &format!(
                "UPDATE webhooks w SET previous_secret = secret, previous_until = $3, secret = $2,
                        updated_at = now()
                  WHERE id = $1 RETURNING {WEBHOOK_COLUMNS}"
            ),
            &[&id, &secret, &until],
        )
        .await?;
    audit::record(
        tx,
        caller,
        None,
        "webhook.secret_rotated",
        "webhook",
        Some(id),
        serde_json::json!({}),
    )
    .await?;
    tracing::info!(webhook_id = id, "webhook secret rotated");
    Ok(Done::new(
        WebhookWithSecret {
            webhook: webhook_from_row(&row)?,
            secret,
        },
        Effects::default(),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryPage {
    pub deliveries: Vec<Delivery>,
    pub pagination: Pagination,
}

/// The webhook's deliveries, newest first.
pub async fn deliveries(
    db: &impl GenericClient,
    caller: &Caller,
    id: i64,
    query: ListDeliveries,
) -> DomainResult<DeliveryPage> {
    owned(db, caller, id, false).await?;
    crate::rules::finish(crate::rules::field_errors(validator::Validate::validate(
        &query,
    )))?;
    let (page, limit) = (query.page.unwrap_or(1), query.limit.unwrap_or(20));
    let status = query.status.map(|s| s.as_str());
    let rows = db
        .query(
            &format!(
                "SELECT {DELIVERY_COLUMNS}, count(*) OVER () AS total FROM webhook_deliveries d
                  WHERE d.webhook_id = $1 AND ($2::text IS NULL OR d.status = $2)
                  ORDER BY d.id DESC LIMIT $3 OFFSET $4"
            ),
            &[&id, &status, &limit, &((page - 1) * limit)],
        )
        .await?;
    let total = match rows.first() {
        Some(r) => r.get("total"),
        None => db
            .query_one(
                "SELECT count(*) FROM webhook_deliveries d WHERE d.webhook_id = $1 AND ($2::text IS NULL OR d.status = $2)",
                &[&id, &status],
            )
            .await?
            .get(0),
    };
    Ok(DeliveryPage {
        deliveries: rows
            .iter()
            .map(delivery_from_row)
            .collect::<DomainResult<_>>()?,
        pagination: Pagination::new(page, limit, total),
    })
}

/// Sends a delivery again now, with the same `webhook-id` (receivers dedupe on it) and a new
/// 3-day retry window. A delivery still pending is left to its schedule.
pub async fn redeliver(
    tx: &Transaction<'_>,
    caller: &Caller,
    id: i64,
    delivery_id: i64,
) -> DomainResult<Done<Delivery>> {
    let webhook = owned(tx, caller, id, false).await?;
    if !webhook.enabled {
        return Err(DomainError::invalid_state(
            "the webhook is disabled; enable it first",
        ));
    }
    let row = tx
        .query_opt(
            &format!(
                "UPDATE webhook_deliveries d
                    SET status = 'pending', next_attempt_at = now(), window_start = now()
                  WHERE d.id = $1 AND d.webhook_id = $2 AND d.status <> 'pending'
              RETURNING {DELIVERY_COLUMNS}"
            ),
            &[&delivery_id, &id],
        )
        .await?;
    let Some(row) = row else {
        let current = tx
            .query_opt(
                &format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d WHERE d.id = $1 AND d.webhook_id = $2"),
                &[&delivery_id, &id],
            )
            .await?
            .ok_or_else(|| DomainError::not_found("delivery"))?;
        return Ok(Done::new(delivery_from_row(&current)?, Effects::default()));
    };
    // Due now: the relay after the commit sends it (the delivery is its own outbox, V20).
    Ok(Done::new(
        delivery_from_row(&row)?,
        Effects::default().jobs(),
    ))
}
