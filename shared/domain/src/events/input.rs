//! Request bodies and query parameters of the Events section, and their rules.
//! Field rules use `validator`; the few cross-field rules are checked in `check()`, and
//! every problem is reported at once as a `VALIDATION_ERROR` list.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use validator::{Validate, ValidationError};

use super::model::EventStatus;
use crate::error::{DomainResult, FieldError};
use crate::money::Cents;
use crate::rules::{field_errors, finish, not_blank, nullable, rule};

pub const MAX_TICKET_TYPES: usize = 50;
pub const MAX_PRICE_CENTS: i64 = 100_000_000;

#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateEvent {
    #[validate(length(min = 3, max = 255), custom(function = "not_blank"))]
    #[schema(min_length = 3, max_length = 255)]
    pub title: String,
    #[validate(length(max = 10000))]
    #[schema(max_length = 10000)]
    pub description: Option<String>,
    /// ISO 8601 with an offset, in the future.
    #[validate(custom(function = "future_date"))]
    #[schema(format = DateTime)]
    #[schema(example = "2027-12-31T23:59:59Z")]
    pub event_date: String,
    #[validate(length(min = 1, max = 255), custom(function = "not_blank"))]
    #[schema(min_length = 1, max_length = 255)]
    pub location: String,
    #[validate(range(min = 1, max = 100000))]
    #[schema(minimum = 1, maximum = 100000)]
    pub max_attendees: i64,
    #[serde(default)]
    pub requires_approval: bool,
    /// Whether guests can join a waiting list when seats run out (default false).
    #[serde(default)]
    pub waitlist_enabled: bool,
    /// How long a waiting-list offer holds its seat, in minutes (5–10 080, default 1 440).
    #[validate(range(min = 5, max = 10080))]
    #[schema(minimum = 5, maximum = 10080, default = 1440)]
    pub waitlist_offer_minutes: Option<i64>,
    #[serde(default)]
    #[validate(length(max = 50), nested)]
    #[schema(max_items = 50)]
    pub ticket_types: Vec<NewTicketType>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NewTicketType {
    #[validate(length(min = 1, max = 100), custom(function = "not_blank"))]
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// 0–1 000 000, at most 2 decimals.
    #[validate(custom(function = "valid_price"))]
    #[schema(minimum = 0, maximum = 1000000, multiple_of = 0.01)]
    pub price: f64,
    /// 1–`maxAttendees` of the event.
    #[validate(range(min = 1, max = 100000))]
    #[schema(minimum = 1, maximum = 100000)]
    pub quantity: i64,
}

/// `PATCH /api/events/{id}`: any subset of the create fields, plus `status`.
/// `description: null` clears the description. `ticketTypes`, when present, is the
/// complete new list, matched to the existing types by name (case-insensitive): matches
/// are updated, new names created, missing ones deleted (only while nothing was sold).
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, Validate, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateEvent {
    #[validate(length(min = 3, max = 255), custom(function = "not_blank"))]
    #[schema(min_length = 3, max_length = 255)]
    pub title: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, nullable)]
    pub description: Option<Option<String>>,
    #[validate(custom(function = "future_date"))]
    #[schema(format = DateTime)]
    pub event_date: Option<String>,
    #[validate(length(min = 1, max = 255), custom(function = "not_blank"))]
    #[schema(min_length = 1, max_length = 255)]
    pub location: Option<String>,
    #[validate(range(min = 1, max = 100000))]
    #[schema(minimum = 1, maximum = 100000)]
    pub max_attendees: Option<i64>,
    pub requires_approval: Option<bool>,
    pub waitlist_enabled: Option<bool>,
    /// 5–10 080 minutes; applies to offers made from now on.
    #[validate(range(min = 5, max = 10080))]
    #[schema(minimum = 5, maximum = 10080)]
    pub waitlist_offer_minutes: Option<i64>,
    pub status: Option<EventStatus>,
    #[validate(length(max = 50), nested)]
    #[schema(max_items = 50)]
    pub ticket_types: Option<Vec<NewTicketType>>,
}

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, Validate, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateTicketType {
    #[validate(length(min = 1, max = 100), custom(function = "not_blank"))]
    #[schema(min_length = 1, max_length = 100)]
    pub name: Option<String>,
    #[validate(custom(function = "valid_price"))]
    #[schema(minimum = 0, maximum = 1000000, multiple_of = 0.01)]
    pub price: Option<f64>,
    #[validate(range(min = 1, max = 100000))]
    #[schema(minimum = 1, maximum = 100000)]
    pub quantity: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StatusFilter {
    Draft,
    Published,
    Cancelled,
    Completed,
    /// Published and not started.
    Upcoming,
    /// Already started.
    Past,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, ToSchema)]
pub enum EventSort {
    #[default]
    #[serde(rename = "eventDate")]
    EventDate,
    #[serde(rename = "-eventDate")]
    EventDateDesc,
    #[serde(rename = "createdAt")]
    CreatedAt,
    #[serde(rename = "-createdAt")]
    CreatedAtDesc,
    #[serde(rename = "title")]
    Title,
}

#[derive(Debug, Default, Deserialize, Validate, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListEvents {
    /// 1-based page number (default 1).
    #[validate(range(min = 1, max = 1000000))]
    #[param(minimum = 1, maximum = 1000000)]
    pub page: Option<i64>,
    /// Page size 1–100 (default 20).
    #[validate(range(min = 1, max = 100))]
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// Case-insensitive match on title and location.
    #[validate(length(min = 1, max = 100))]
    #[param(min_length = 1, max_length = 100)]
    pub search: Option<String>,
    #[param(inline)]
    pub status: Option<StatusFilter>,
    /// `eventDate` (default), `-eventDate`, `createdAt`, `-createdAt`, `title`.
    #[param(inline)]
    pub sort: Option<EventSort>,
    /// Incremental sync: only events changed at or after this time (RFC 3339), sorted by
    /// `updatedAt` (then id), whatever `sort` says. Ask again from a little before your last
    /// sync (a change committing late is stamped with its transaction's start).
    #[serde(rename = "updatedSince")]
    #[validate(custom(function = "crate::rules::date_time"))]
    #[param(format = DateTime)]
    pub updated_since: Option<String>,
}

impl CreateEvent {
    pub fn check(&self) -> DomainResult<DateTime<Utc>> {
        let mut errors = field_errors(self.validate());
        errors.extend(ticket_type_rules(
            &self.ticket_types,
            Some(self.max_attendees),
        ));
        finish(errors)?;
        Ok(parse_date(&self.event_date).expect("validated"))
    }
}

impl UpdateEvent {
    pub fn check(&self) -> DomainResult<Option<DateTime<Utc>>> {
        let mut errors = field_errors(self.validate());
        if let Some(Some(d)) = &self.description {
            if d.chars().count() > 10_000 {
                errors.push(FieldError::new(
                    "description",
                    "must be at most 10000 characters long",
                ));
            }
        }
        if let Some(types) = &self.ticket_types {
            errors.extend(ticket_type_rules(types, self.max_attendees));
        }
        finish(errors)?;
        Ok(self
            .event_date
            .as_deref()
            .map(|d| parse_date(d).expect("validated")))
    }
}

impl NewTicketType {
    pub fn check(&self, max_attendees: i64) -> DomainResult<()> {
        let mut errors = field_errors(self.validate());
        if self.quantity > max_attendees {
            errors.push(FieldError::new(
                "quantity",
                format!("must not exceed maxAttendees ({max_attendees})"),
            ));
        }
        finish(errors)
    }

    pub fn price_cents(&self) -> Cents {
        to_cents(self.price)
    }
}

impl UpdateTicketType {
    pub fn price_cents(&self) -> Option<Cents> {
        self.price.map(to_cents)
    }

    pub fn check(&self, max_attendees: i64) -> DomainResult<()> {
        let mut errors = field_errors(self.validate());
        if self.quantity.is_some_and(|q| q > max_attendees) {
            errors.push(FieldError::new(
                "quantity",
                format!("must not exceed maxAttendees ({max_attendees})"),
            ));
        }
        finish(errors)
    }
}

impl ListEvents {
    pub fn check(&self) -> DomainResult<()> {
        finish(field_errors(self.validate()))
    }
    pub fn page(&self) -> i64 {
        self.page.unwrap_or(1)
    }
    pub fn limit(&self) -> i64 {
        self.limit.unwrap_or(20)
    }
}

/// Names unique per event (case-insensitive) and quantities within `maxAttendees`.
fn ticket_type_rules(types: &[NewTicketType], max_attendees: Option<i64>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, t) in types.iter().enumerate() {
        if !seen.insert(t.name.trim().to_lowercase()) {
            errors.push(FieldError::new(
                format!("ticketTypes[{i}].name"),
                "must be unique within the event",
            ));
        }
        if let Some(max) = max_attendees.filter(|m| t.quantity > *m) {
            errors.push(FieldError::new(
                format!("ticketTypes[{i}].quantity"),
                format!("must not exceed maxAttendees ({max})"),
            ));
        }
    }
    errors
}

fn parse_date(s: &str) -> Option<DateTime<Utc>> {
    crate::rules::parse_rfc3339(s)
}

fn future_date(s: &str) -> Result<(), ValidationError> {
    match parse_date(s) {
        None => Err(rule(
            "date",
            "must be an ISO 8601 date-time with an offset, e.g. 2027-12-31T23:59:59Z",
        )),
        Some(d) if d <= Utc::now() => Err(rule("future", "must be in the future")),
        Some(_) => Ok(()),
    }
}

fn valid_price(price: f64) -> Result<(), ValidationError> {
    Cents::from_decimal(price)
        .map(|_| ())
        .map_err(|message| rule("price", message))
}

/// A price the validation accepted, in cents.
fn to_cents(price: f64) -> Cents {
    Cents::from_decimal(price).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::DomainError;
    use crate::rules::parse_json;

    fn fields(e: DomainError) -> Vec<String> {
        e.details
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["field"].as_str().unwrap().to_owned())
            .collect()
    }

    fn body(extra: &str) -> String {
        format!(
            r#"{{"title": "Tech Conference", "eventDate": "2099-12-31T23:59:59Z", "location": "Paris", "maxAttendees": 500{extra}}}"#
        )
    }

    #[test]
    fn a_good_event_passes() {
        let e: CreateEvent = parse_json(
            body(r#", "ticketTypes": [{"name": "VIP", "price": 299.99, "quantity": 50}]"#)
                .as_bytes(),
        )
        .unwrap();
        let date = e.check().unwrap();
        assert_eq!(date.to_rfc3339(), "2099-12-31T23:59:59+00:00");
        assert_eq!(e.ticket_types[0].price_cents(), Cents(29999));
    }

    #[test]
    fn every_problem_is_listed_with_camel_case_fields() {
        let e: CreateEvent = parse_json(
            br#"{"title": "ab", "eventDate": "2001-01-01T00:00:00Z", "location": "", "maxAttendees": 0,
                 "ticketTypes": [{"name": "A", "price": 1.234, "quantity": 5}, {"name": "a", "price": -1, "quantity": 1}]}"#,
        )
        .unwrap();
        let f = fields(e.check().unwrap_err());
        for expected in [
            "title",
            "eventDate",
            "location",
            "maxAttendees",
            "ticketTypes[0].price",
            "ticketTypes[1].price",
            "ticketTypes[1].name",
        ] {
            assert!(
                f.contains(&expected.to_owned()),
                "{expected} missing in {f:?}"
            );
        }
    }

    #[test]
    fn dates_need_an_offset() {
        assert!(future_date("2099-12-31T23:59:59").is_err());
        assert!(future_date("2099-12-31T23:59:59+02:00").is_ok());
        assert!(future_date("tomorrow").is_err());
    }

    #[test]
    fn prices() {
        assert!(valid_price(0.0).is_ok());
        assert!(valid_price(1_000_000.0).is_ok());
        assert!(valid_price(0.1 + 0.2).is_ok());
        assert!(valid_price(1_000_000.01).is_err());
        assert!(valid_price(12.345).is_err());
        assert!(valid_price(f64::NAN).is_err());
        assert_eq!(to_cents(0.1 + 0.2), Cents(30));
    }

    #[test]
    fn quantity_is_bounded_by_max_attendees() {
        let e: CreateEvent = parse_json(
            body(r#", "ticketTypes": [{"name": "VIP", "price": 1, "quantity": 501}]"#).as_bytes(),
        )
        .unwrap();
        assert_eq!(
            fields(e.check().unwrap_err()),
            vec!["ticketTypes[0].quantity"]
        );
    }

    #[test]
    fn patch_distinguishes_null_from_missing() {
        let u: UpdateEvent = parse_json(br#"{"description": null}"#).unwrap();
        assert_eq!(u.description, Some(None));
        let u: UpdateEvent = parse_json(br#"{}"#).unwrap();
        assert_eq!(u.description, None);
        let u: UpdateEvent = parse_json(br#"{"status": "published"}"#).unwrap();
        assert_eq!(u.status, Some(EventStatus::Published));
        assert!(parse_json::<UpdateEvent>(br#"{"status": "archived"}"#).is_err());
    }
}
