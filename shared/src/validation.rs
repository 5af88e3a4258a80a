//! Field rules and helpers shared by the request types of every domain module.

use serde::{Deserialize, Deserializer};
use validator::ValidationError;

use crate::error::{validation_field_errors, ApiError, ApiResult, FieldError};

pub fn not_blank(s: &str) -> Result<(), ValidationError> {
    if s.trim().is_empty() {
        Err(rule("blank", "must not be blank"))
    } else {
        Ok(())
    }
}

/// E.164 phone numbers: `+` and 2–15 digits, not starting with 0.
pub fn e164(phone: &str) -> Result<(), ValidationError> {
    let digits = phone.strip_prefix('+').unwrap_or("");
    let ok = (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    if ok {
        Ok(())
    } else {
        Err(rule("e164", "must be an E.164 number, e.g. +33612345678"))
    }
}

pub fn rule(code: &'static str, message: &'static str) -> ValidationError {
    ValidationError::new(code).with_message(message.into())
}

/// Distinguishes a field sent as `null` (`Some(None)`) from a missing one (`None`).
pub fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// validator's result as a list, so extra cross-field problems can join it.
pub fn field_errors(result: Result<(), validator::ValidationErrors>) -> Vec<FieldError> {
    result
        .err()
        .map(|e| validation_field_errors(&e))
        .unwrap_or_default()
}

/// `Ok` when nothing is wrong, else one VALIDATION_ERROR listing every problem.
pub fn finish(errors: Vec<FieldError>) -> ApiResult<()> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones() {
        assert!(e164("+33612345678").is_ok());
        assert!(e164("+1").is_err());
        assert!(e164("0612345678").is_err());
        assert!(e164("+0612345678").is_err());
        assert!(e164("+3361234567890123").is_err());
        assert!(e164("+33 6 12").is_err());
    }

    #[test]
    fn blanks() {
        assert!(not_blank(" \t").is_err());
        assert!(not_blank(" a ").is_ok());
    }
}
