//! What the API returns for tickets.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::events::{EventStatus, TicketType};
use crate::guests::Guest;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TicketStatus {
    Active,
    Cancelled,
}

crate::text_enum!(TicketStatus {
    Active => "active",
    Cancelled => "cancelled",
});

/// The event as a ticket shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventSummary {
    pub id: i64,
    pub title: String,
    pub event_date: DateTime<Utc>,
    pub location: String,
    pub status: EventStatus,
    pub organizer_id: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Ticket {
    pub id: i64,
    pub ticket_code: String,
    pub status: TicketStatus,
    pub is_validated: bool,
    pub validated_at: Option<DateTime<Utc>>,
    pub validated_by: Option<String>,
    pub validation_location: Option<String>,
    /// The signed string the QR code encodes.
    pub qr_payload: Option<String>,
    /// The QR code as a base64 PNG; null until the ticket-generation job ran.
    pub qr_code_data: Option<String>,
    pub guest: Guest,
    pub event: EventSummary,
    pub ticket_type: Option<TicketType>,
    pub created_at: DateTime<Utc>,
}
