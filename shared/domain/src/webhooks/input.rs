//! Request bodies and queries of the webhook endpoints.

use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use super::model::EventType;
use crate::error::{DomainResult, FieldError};
use crate::rules::{field_errors, finish, nullable};

/// `POST /api/webhooks`.
#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateWebhook {
    /// `https://…` (plain `http` only to a loopback host, in development).
    #[validate(length(min = 8, max = 2000))]
    #[schema(
        min_length = 8,
        max_length = 2000,
        format = "uri",
        example = "https://crm.example.com/hooks/events"
    )]
    pub url: String,
    #[validate(length(min = 1, max = 10))]
    #[schema(min_items = 1, max_items = 10)]
    pub event_types: Vec<EventType>,
    #[validate(length(max = 500))]
    #[schema(max_length = 500)]
    pub description: Option<String>,
}

/// `PATCH /api/webhooks/{id}`: any subset; `enabled: true` turns a disabled webhook back on.
#[derive(Debug, Clone, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateWebhook {
    #[validate(length(min = 8, max = 2000))]
    #[schema(min_length = 8, max_length = 2000, format = "uri")]
    pub url: Option<String>,
    #[validate(length(min = 1, max = 10))]
    #[schema(min_items = 1, max_items = 10)]
    pub event_types: Option<Vec<EventType>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 500, nullable)]
    pub description: Option<Option<String>>,
    pub enabled: Option<bool>,
}

/// Whether `url` may receive webhooks: https, or http to a loopback host when
/// `allow_local` (development); a host and no credentials in any case. Private addresses are
/// refused again when sending, after DNS resolution (`jobs::webhook`).
pub fn url_problem(url: &str, allow_local: bool) -> Option<&'static str> {
    let Ok(parsed) = url::Url::parse(url) else {
        return Some("must be an absolute URL, e.g. https://example.com/hooks");
    };
    let Some(host) = parsed.host() else {
        return Some("must name a host");
    };
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Some("must not carry credentials");
    }
    let loopback = match host {
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    };
    // In AWS the worker's egress is HTTPS on 443 only (its security group).
    if !allow_local && parsed.port().is_some_and(|p| p != 443) {
        return Some("must use the default https port (443)");
    }
    match parsed.scheme() {
        "https" => None,
        "http" if allow_local && loopback => None,
        "http" if allow_local => Some("must use https (plain http only to a loopback host)"),
        _ => Some("must use https"),
    }
}

fn types_problems(types: &[EventType], errors: &mut Vec<FieldError>) {
    for (i, t) in types.iter().enumerate() {
        if types[..i].contains(t) {
            errors.push(FieldError::new(
                format!("eventTypes[{i}]"),
                "is listed twice",
            ));
        }
    }
}

impl CreateWebhook {
    pub fn check(&self, allow_local: bool) -> DomainResult<()> {
        let mut errors = field_errors(self.validate());
        if let Some(p) = url_problem(&self.url, allow_local) {
            errors.push(FieldError::new("url", p));
        }
        types_problems(&self.event_types, &mut errors);
        finish(errors)
    }
}

impl UpdateWebhook {
    pub fn check(&self, allow_local: bool) -> DomainResult<()> {
        let mut errors = field_errors(self.validate());
        if let Some(p) = self
            .url
            .as_deref()
            .and_then(|u| url_problem(u, allow_local))
        {
            errors.push(FieldError::new("url", p));
        }
        if let Some(types) = &self.event_types {
            types_problems(types, &mut errors);
        }
        if let Some(Some(d)) = &self.description {
            if d.chars().count() > 500 {
                errors.push(FieldError::new(
                    "description",
                    "must be at most 500 characters long",
                ));
            }
        }
        finish(errors)
    }
}

/// `GET /api/webhooks/{id}/deliveries`.
#[derive(Debug, Default, Deserialize, Validate, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListDeliveries {
    #[validate(range(min = 1, max = 1000000))]
    #[param(minimum = 1, maximum = 1000000)]
    pub page: Option<i64>,
    #[validate(range(min = 1, max = 100))]
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    #[param(inline)]
    pub status: Option<DeliveryStatus>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_urls() {
        assert_eq!(url_problem("https://crm.example.com/h", false), None);
        assert_eq!(url_problem("https://crm.example.com:443/h", false), None);
        assert!(url_problem("https://crm.example.com:8443/h", false).is_some());
        assert!(url_problem("http://crm.example.com/h", false).is_some());
        assert!(url_problem("http://127.0.0.1:9000/h", false).is_some());
        assert_eq!(url_problem("http://127.0.0.1:9000/h", true), None);
        assert_eq!(url_problem("http://localhost/h", true), None);
        assert!(url_problem("http://10.0.0.1/h", true).is_some());
        assert!(url_problem("https://user:pw@crm.example.com/h", false).is_some());
        assert!(url_problem("ftp://crm.example.com/h", true).is_some());
        assert!(url_problem("crm.example.com/h", true).is_some());
    }
}
