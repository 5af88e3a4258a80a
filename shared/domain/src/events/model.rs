//! What the API returns for events and ticket types.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::money::Cents;

pub use crate::lifecycle::EventStatus;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub id: i64,
    pub title: String,
    pub description: Option<String>,
    pub event_date: DateTime<Utc>,
    pub location: String,
    pub max_attendees: i32,
    pub status: EventStatus,
    pub organizer_id: String,
    pub requires_approval: bool,
    pub waitlist_enabled: bool,
    /// How long a waiting-list offer holds its seat.
    pub waitlist_offer_minutes: i32,
    pub ticket_types: Vec<TicketType>,
    pub stats: EventCounts,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The row version behind the `ETag` header (`crate::etag`); not in the body.
    #[serde(skip)]
    pub version: String,
}

/// The counts an event carries (`stats`); the full figures are `tickets::stats::EventStats`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventCounts {
    /// Pending, confirmed and checked-in guests.
    pub registered: i32,
    pub checked_in: i32,
    /// Seats held for waiting-list offers (they count against capacity like registrations).
    pub held: i32,
    /// Waiting-list entries still waiting for a seat.
    pub waiting: i32,
    /// Seats left: `maxAttendees - registered - held`.
    pub available: i32,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TicketType {
    pub id: i64,
    pub event_id: i64,
    pub name: String,
    /// In the event's currency, at most 2 decimals.
    #[schema(value_type = f64, example = 299.99)]
    pub price: Cents,
    pub quantity: i32,
    /// Seats held by pending, confirmed and checked-in guests.
    pub sold: i32,
    /// Seats held for waiting-list offers.
    pub held: i32,
    /// `quantity - sold - held`.
    pub available: i32,
    /// The row version behind the `ETag` header, when read alone (`queries::ticket_type`).
    #[serde(skip)]
    pub version: String,
}

pub use crate::page::Pagination;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventList {
    pub events: Vec<Event>,
    pub pagination: Pagination,
}

impl TicketType {
    /// The one mapping of a ticket type, whatever it was read from (a row, a JSON
    /// aggregate, a join): `available` is derived here.
    pub fn new(
        id: i64,
        event_id: i64,
        name: String,
        price: Cents,
        quantity: i32,
        sold: i32,
        held: i32,
    ) -> Self {
        Self {
            id,
            event_id,
            name,
            price,
            quantity,
            sold,
            held,
            available: quantity - sold - held,
            version: String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pagination_rounds_up() {
        assert_eq!(Pagination::new(1, 20, 0).total_pages, 0);
        assert_eq!(Pagination::new(1, 20, 20).total_pages, 1);
        assert_eq!(Pagination::new(1, 20, 21).total_pages, 2);
    }

    #[test]
    fn prices_round_trip() {
        assert_eq!(Cents(29999).as_decimal(), 299.99);
        assert_eq!(serde_json::to_string(&Cents(100)).unwrap(), "1.0");
    }
}
