//! Request bodies and query parameters of the Guests section.

use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use super::model::GuestStatus;
use crate::error::{DomainError, DomainResult};
use crate::rules::{e164, field_errors, finish, not_blank, nullable};

#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Register {
    #[validate(length(min = 1, max = 100), custom(function = "not_blank"))]
    #[schema(min_length = 1, max_length = 100)]
    pub first_name: String,
    #[validate(length(min = 1, max = 100), custom(function = "not_blank"))]
    #[schema(min_length = 1, max_length = 100)]
    pub last_name: String,
    /// Compared case-insensitively.
    #[validate(length(max = 254), email)]
    #[schema(max_length = 254, format = Email)]
    pub email: String,
    /// E.164, e.g. `+33612345678`.
    #[validate(custom(function = "e164"))]
    #[schema(pattern = r"^\+[1-9][0-9]{1,14}$")]
    pub phone: Option<String>,
    /// Required when the event has ticket types.
    pub ticket_type_id: Option<i64>,
}

/// `PATCH /api/events/{eventId}/guests/{guestId}`: any subset; `phone: null` clears it.
/// Changing `ticketTypeId` moves the guest's seat (SOLD_OUT when the new type is full).
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, Validate, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateGuest {
    #[validate(length(min = 1, max = 100), custom(function = "not_blank"))]
    #[schema(min_length = 1, max_length = 100)]
    pub first_name: Option<String>,
    #[validate(length(min = 1, max = 100), custom(function = "not_blank"))]
    #[schema(min_length = 1, max_length = 100)]
    pub last_name: Option<String>,
    #[validate(length(max = 254), email)]
    #[schema(max_length = 254, format = Email)]
    pub email: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, nullable)]
    pub phone: Option<Option<String>>,
    pub ticket_type_id: Option<i64>,
}

#[derive(Debug, Default, Deserialize, Validate, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListGuests {
    #[validate(range(min = 1, max = 1000000))]
    #[param(minimum = 1, maximum = 1000000)]
    pub page: Option<i64>,
    #[validate(range(min = 1, max = 100))]
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// Case-insensitive match on first name, last name and email.
    #[validate(length(min = 1, max = 100))]
    #[param(min_length = 1, max_length = 100)]
    pub search: Option<String>,
    pub status: Option<GuestStatus>,
    pub ticket_type_id: Option<i64>,
    /// Incremental sync: only guests changed at or after this time (RFC 3339), sorted by
    /// `updatedAt` (then id). Ask again from a little before your last sync.
    #[validate(custom(function = "crate::rules::date_time"))]
    #[param(format = DateTime)]
    pub updated_since: Option<String>,
}

impl Register {
    pub fn check(&self) -> DomainResult<()> {
        self.validate().map_err(DomainError::from)
    }
}

impl UpdateGuest {
    pub fn check(&self) -> DomainResult<()> {
        let mut errors = field_errors(self.validate());
        if let Some(Err(e)) = self.phone.as_ref().and_then(|p| p.as_deref()).map(e164) {
            errors.push(crate::error::FieldError::new(
                "phone",
                e.message.unwrap_or_default(),
            ));
        }
        finish(errors)
    }
}

impl ListGuests {
    pub fn check(&self) -> DomainResult<()> {
        self.validate().map_err(DomainError::from)
    }
    pub fn page(&self) -> i64 {
        self.page.unwrap_or(1)
    }
    pub fn limit(&self) -> i64 {
        self.limit.unwrap_or(20)
    }
}
