//! What the webhook endpoints answer, and the event types of the contract.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::Row;
use utoipa::ToSchema;

use crate::error::DomainResult;

/// The event types a webhook can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum EventType {
    #[serde(rename = "event.published")]
    EventPublished,
    #[serde(rename = "event.cancelled")]
    EventCancelled,
    #[serde(rename = "guest.registered")]
    GuestRegistered,
    #[serde(rename = "guest.approved")]
    GuestApproved,
    #[serde(rename = "guest.cancelled")]
    GuestCancelled,
    #[serde(rename = "guest.checked_in")]
    GuestCheckedIn,
    #[serde(rename = "scan.conflict")]
    ScanConflict,
    #[serde(rename = "waitlist.offered")]
    WaitlistOffered,
    #[serde(rename = "waitlist.claimed")]
    WaitlistClaimed,
    #[serde(rename = "export.done")]
    ExportDone,
}

crate::text_enum!(EventType {
    EventPublished => "event.published",
    EventCancelled => "event.cancelled",
    GuestRegistered => "guest.registered",
    GuestApproved => "guest.approved",
    GuestCancelled => "guest.cancelled",
    GuestCheckedIn => "guest.checked_in",
    ScanConflict => "scan.conflict",
    WaitlistOffered => "waitlist.offered",
    WaitlistClaimed => "waitlist.claimed",
    ExportDone => "export.done",
});

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    pub id: i64,
    pub url: String,
    #[schema(value_type = Vec<String>)]
    pub event_types: Vec<String>,
    pub description: Option<String>,
    pub enabled: bool,
    /// Why the service disabled it: `gone` (the endpoint answered 410) or `failing` (every
    /// attempt failed for 3 days). Null when enabled or disabled by hand.
    pub disabled_reason: Option<String>,
    /// The first failed attempt since the last delivered one.
    pub failing_since: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Creation and rotation answers: the only times the secret is shown.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookWithSecret {
    #[serde(flatten)]
    pub webhook: Webhook,
    /// `whsec_` + base64 of 32 random bytes: the key of the HMAC-SHA256 signatures.
    pub secret: String,
}

pub(crate) const WEBHOOK_COLUMNS: &str = "w.id, w.url, w.event_types, w.description, w.enabled,
    w.disabled_reason, w.failing_since, w.created_at, w.updated_at";

pub(crate) fn webhook_from_row(row: &Row) -> DomainResult<Webhook> {
    Ok(Webhook {
        id: row.try_get("id")?,
        url: row.try_get("url")?,
        event_types: row.try_get("event_types")?,
        description: row.try_get("description")?,
        enabled: row.try_get("enabled")?,
        disabled_reason: row.try_get("disabled_reason")?,
        failing_since: row.try_get("failing_since")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// One message to one endpoint, with its attempts so far.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub id: i64,
    pub webhook_id: i64,
    /// The `webhook-id` header: the same for every attempt and redelivery.
    pub message_id: String,
    pub event_type: String,
    /// `pending` (an attempt is due), `delivered` (2xx) or `failed` (given up).
    pub status: String,
    pub attempts: i32,
    /// The HTTP status of the last attempt (null: no answer).
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub last_duration_ms: Option<i32>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
}

pub(crate) const DELIVERY_COLUMNS: &str =
    "d.id, d.webhook_id, d.message_id, d.event_type, d.status,
    d.attempts, d.last_status, d.last_error, d.last_duration_ms, d.next_attempt_at, d.created_at,
    d.last_attempt_at, d.delivered_at";

pub(crate) fn delivery_from_row(row: &Row) -> DomainResult<Delivery> {
    Ok(Delivery {
        id: row.try_get("id")?,
        webhook_id: row.try_get("webhook_id")?,
        message_id: row.try_get("message_id")?,
        event_type: row.try_get("event_type")?,
        status: row.try_get("status")?,
        attempts: row.try_get("attempts")?,
        last_status: row.try_get("last_status")?,
        last_error: row.try_get("last_error")?,
        last_duration_ms: row.try_get("last_duration_ms")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        created_at: row.try_get("created_at")?,
        last_attempt_at: row.try_get("last_attempt_at")?,
        delivered_at: row.try_get("delivered_at")?,
    })
}
