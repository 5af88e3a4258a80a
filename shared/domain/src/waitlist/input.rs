//! Query parameters and bodies of the waiting-list endpoints (adding an entry takes the
//! registration body, [`crate::guests::input::Register`]).

use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use super::model::WaitlistStatus;
use crate::error::{DomainError, DomainResult};

#[derive(Debug, Default, Deserialize, Validate, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListWaitlist {
    #[validate(range(min = 1, max = 1000000))]
    #[param(minimum = 1, maximum = 1000000)]
    pub page: Option<i64>,
    #[validate(range(min = 1, max = 100))]
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    pub status: Option<WaitlistStatus>,
    pub ticket_type_id: Option<i64>,
}

impl ListWaitlist {
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

/// `POST /api/waitlist/claim`: the token of the offer email.
#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClaimOffer {
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub token: String,
}

impl ClaimOffer {
    pub fn check(&self) -> DomainResult<()> {
        self.validate().map_err(DomainError::from)
    }
}
