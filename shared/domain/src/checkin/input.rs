//! Request bodies and query parameters of the check-in list endpoints.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use validator::Validate;

use super::door::Direction;
use crate::error::{DomainResult, FieldError};
use crate::rules::{date_time, field_errors, finish, not_blank, nullable, parse_rfc3339};

/// `POST /api/events/{eventId}/checkin-lists`.
#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateList {
    /// Unique per event (case-insensitive).
    #[validate(length(min = 1, max = 100), custom(function = "not_blank"))]
    #[schema(min_length = 1, max_length = 100, example = "VIP lounge")]
    pub name: String,
    /// The ticket types admitted; empty or missing: every ticket type of the event.
    #[serde(default)]
    #[validate(length(max = 50))]
    #[schema(max_items = 50)]
    pub ticket_type_ids: Vec<i64>,
    /// Whether a ticket may enter again after an exit (default false: once ever).
    #[serde(default)]
    pub allow_reentry: bool,
    #[validate(custom(function = "date_time"))]
    #[schema(format = DateTime)]
    pub opens_at: Option<String>,
    /// Exclusive.
    #[validate(custom(function = "date_time"))]
    #[schema(format = DateTime)]
    pub closes_at: Option<String>,
}

/// `PATCH /api/checkin-lists/{listId}`: any subset; `opensAt`/`closesAt: null` clear the window.
/// The default list keeps every ticket type and no re-entry (the part-1 check-in endpoints
/// scan on it): only its name and window change.
#[derive(Debug, Clone, Default, Deserialize, Serialize, Validate, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateList {
    #[validate(length(min = 1, max = 100), custom(function = "not_blank"))]
    #[schema(min_length = 1, max_length = 100)]
    pub name: Option<String>,
    #[validate(length(max = 50))]
    #[schema(max_items = 50)]
    pub ticket_type_ids: Option<Vec<i64>>,
    pub allow_reentry: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, format = DateTime, nullable)]
    pub opens_at: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, format = DateTime, nullable)]
    pub closes_at: Option<Option<String>>,
}

/// A list's window, checked: `opensAt` before `closesAt`.
pub(crate) type Window = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

fn window_errors(window: Window, errors: &mut Vec<FieldError>) {
    if let (Some(o), Some(c)) = window {
        if o >= c {
            errors.push(FieldError::new("closesAt", "must be after opensAt"));
        }
    }
}

fn ids_errors(ids: &[i64], errors: &mut Vec<FieldError>) {
    let mut seen = std::collections::HashSet::new();
    for (i, id) in ids.iter().enumerate() {
        if !seen.insert(id) {
            errors.push(FieldError::new(
                format!("ticketTypeIds[{i}]"),
                "is listed twice",
            ));
        }
    }
}

impl CreateList {
    pub fn check(&self) -> DomainResult<Window> {
        let mut errors = field_errors(self.validate());
        ids_errors(&self.ticket_type_ids, &mut errors);
        let window = (
            self.opens_at.as_deref().and_then(parse_rfc3339),
            self.closes_at.as_deref().and_then(parse_rfc3339),
        );
        window_errors(window, &mut errors);
        finish(errors)?;
        Ok(window)
    }
}

impl UpdateList {
    /// The problems of the body alone; the window against the stored one is checked by the
    /// command ([`UpdateList::window`]).
    pub fn check(&self) -> DomainResult<()> {
        let mut errors = field_errors(self.validate());
        for (field, value) in [("opensAt", &self.opens_at), ("closesAt", &self.closes_at)] {
            if let Some(Some(s)) = value {
                if let Err(e) = date_time(s) {
                    errors.push(FieldError::new(
                        field,
                        e.message.map(|m| m.to_string()).unwrap_or_default(),
                    ));
                }
            }
        }
        if let Some(ids) = &self.ticket_type_ids {
            ids_errors(ids, &mut errors);
        }
        finish(errors)
    }

    /// The window after this change of `stored`.
    pub fn window(&self, stored: Window) -> DomainResult<Window> {
        let pick = |patch: &Option<Option<String>>, old| match patch {
            None => old,
            Some(v) => v.as_deref().and_then(parse_rfc3339),
        };
        let window = (
            pick(&self.opens_at, stored.0),
            pick(&self.closes_at, stored.1),
        );
        let mut errors = Vec::new();
        window_errors(window, &mut errors);
        finish(errors)?;
        Ok(window)
    }
}

/// `POST /api/checkin-lists/{listId}/scans`: what the scanner read (`code`: a signed QR
/// payload or a typed ticket code) or the ticket's id; exactly one of them.
#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScanInput {
    #[validate(length(min = 1, max = 512))]
    #[schema(min_length = 1, max_length = 512)]
    pub code: Option<String>,
    #[validate(range(min = 1))]
    #[schema(minimum = 1)]
    pub ticket_id: Option<i64>,
    #[validate(length(min = 1, max = 100), custom(function = "not_blank"))]
    #[schema(min_length = 1, max_length = 100, example = "scanner-123")]
    pub scanner_id: String,
    #[validate(length(min = 1, max = 100), custom(function = "not_blank"))]
    #[schema(min_length = 1, max_length = 100, example = "Main gate")]
    pub location: String,
    /// `entry` (default) or `exit`.
    #[serde(default, rename = "type")]
    pub direction: Direction,
}

fn one_of(code: &Option<String>, ticket_id: Option<i64>, at: &str) -> Option<FieldError> {
    match (code, ticket_id) {
        (Some(_), Some(_)) => Some(FieldError::new(
            format!("{at}code"),
            "send either code or ticketId, not both",
        )),
        (None, None) => Some(FieldError::new(
            format!("{at}code"),
            "code or ticketId is required",
        )),
        _ => None,
    }
}

impl ScanInput {
    pub fn check(&self) -> DomainResult<()> {
        let mut errors = field_errors(self.validate());
        errors.extend(one_of(&self.code, self.ticket_id, ""));
        finish(errors)
    }
}

/// Largest batch of offline scans.
pub const MAX_BATCH: usize = 500;
/// How old an offline scan may be.
pub const MAX_OFFLINE_AGE_DAYS: i64 = 7;

/// `POST /api/checkin-lists/{listId}/scans/batch`.
#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScanBatch {
    #[validate(length(min = 1, max = 500), nested)]
    #[schema(min_items = 1, max_items = 500)]
    pub scans: Vec<OfflineScan>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OfflineScan {
    /// The device's id for this scan: uploading it again returns its first result.
    pub client_scan_id: Uuid,
    #[validate(length(min = 1, max = 512))]
    #[schema(min_length = 1, max_length = 512)]
    pub code: Option<String>,
    #[validate(range(min = 1))]
    #[schema(minimum = 1)]
    pub ticket_id: Option<i64>,
    #[validate(length(min = 1, max = 100), custom(function = "not_blank"))]
    #[schema(min_length = 1, max_length = 100)]
    pub scanner_id: String,
    #[validate(length(min = 1, max = 100), custom(function = "not_blank"))]
    #[schema(min_length = 1, max_length = 100)]
    pub location: String,
    #[serde(default, rename = "type")]
    pub direction: Direction,
    /// When the scan happened on the device: not in the future, at most 7 days old.
    #[validate(custom(function = "date_time"))]
    #[schema(format = DateTime)]
    pub scanned_at: String,
}

impl ScanBatch {
    /// Checks the batch at `now`; the scans' times.
    pub fn check(&self, now: DateTime<Utc>) -> DomainResult<Vec<DateTime<Utc>>> {
        let mut errors = field_errors(self.validate());
        let mut times = Vec::with_capacity(self.scans.len());
        // A device clock a little ahead of the server's is not a future scan.
        let skew = Duration::seconds(60);
        for (i, scan) in self.scans.iter().enumerate() {
            errors.extend(one_of(&scan.code, scan.ticket_id, &format!("scans[{i}].")));
            match parse_rfc3339(&scan.scanned_at) {
                Some(at) if at > now + skew => errors.push(FieldError::new(
                    format!("scans[{i}].scannedAt"),
                    "must not be in the future",
                )),
                Some(at) if at < now - Duration::days(MAX_OFFLINE_AGE_DAYS) => {
                    errors.push(FieldError::new(
                        format!("scans[{i}].scannedAt"),
                        "must be at most 7 days old",
                    ))
                }
                Some(at) => times.push(at.min(now)),
                None => times.push(now), // reported by validate()
            }
        }
        finish(errors)?;
        Ok(times)
    }
}

/// `GET /api/checkin-lists/{listId}/scans`.
#[derive(Debug, Default, Deserialize, Validate, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListScans {
    #[validate(range(min = 1, max = 1000000))]
    #[param(minimum = 1, maximum = 1000000)]
    pub page: Option<i64>,
    #[validate(range(min = 1, max = 100))]
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    #[param(inline)]
    pub result: Option<ResultFilter>,
    #[validate(range(min = 1))]
    #[param(minimum = 1)]
    pub ticket_id: Option<i64>,
    /// Incremental sync: only scans recorded or reverted at or after this time (RFC 3339),
    /// sorted by `updatedAt` (then id).
    #[validate(custom(function = "crate::rules::date_time"))]
    #[param(format = DateTime)]
    pub updated_since: Option<String>,
}

/// Which attempts of the scan log: `accepted`, `rejected` (every refusal) or `conflict`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ResultFilter {
    Accepted,
    Rejected,
    Conflict,
}

impl ListScans {
    pub fn check(&self) -> DomainResult<()> {
        finish(field_errors(self.validate()))
    }
}

/// `GET /api/checkin-lists/{listId}/offline-data`.
#[derive(Debug, Default, Deserialize, Validate, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct OfflineQuery {
    /// The `cursor` of the previous answer; none: a full download.
    #[validate(length(min = 1, max = 200))]
    #[param(min_length = 1, max_length = 200)]
    pub cursor: Option<String>,
    /// Items per page (default 1000).
    #[validate(range(min = 1, max = 5000))]
    #[param(minimum = 1, maximum = 5000)]
    pub limit: Option<i64>,
}
