//! Field rules and helpers shared by the request types of every domain module.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use validator::ValidationError;

use crate::error::{validation_field_errors, DomainError, DomainResult, FieldError};

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

/// An RFC 3339 date-time with an offset, in UTC.
pub fn parse_rfc3339(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.with_timezone(&chrono::Utc))
}

/// A field holding an RFC 3339 date-time.
pub fn date_time(s: &str) -> Result<(), ValidationError> {
    match parse_rfc3339(s) {
        Some(_) => Ok(()),
        None => Err(rule(
            "date",
            "must be an ISO 8601 date-time with an offset, e.g. 2027-12-31T23:59:59Z",
        )),
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
pub fn finish(errors: Vec<FieldError>) -> DomainResult<()> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(DomainError::validation(errors))
    }
}

/// A JSON document parsed into `T` with field paths in its errors: malformed JSON, wrong
/// types and unknown fields are `VALIDATION_ERROR`s naming the field (`items[0].name`).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> DomainResult<T> {
    if let Some(field) = nul_character(bytes) {
        // PostgreSQL text cannot hold it: refused here, naming the field, rather than by
        // the database with a message about encodings.
        return Err(DomainError::validation(vec![FieldError::new(
            field,
            "must not contain the NUL character (\\u0000)",
        )]));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let field = if path == "." || path.is_empty() {
            "body".to_owned()
        } else {
            path
        };
        let message = if inner.is_syntax() || inner.is_eof() {
            format!("malformed JSON: {inner}")
        } else {
            humanize(&strip_position(&inner.to_string()))
        };
        DomainError::validation(vec![FieldError::new(field, message)])
    })?;
    // One JSON document and nothing after it (`{...}xyz` or two objects are refused).
    de.end().map_err(|e| {
        DomainError::validation(vec![FieldError::new(
            "body",
            format!("malformed JSON: {e}"),
        )])
    })?;
    Ok(value)
}

/// The path of the first string (or key) holding a NUL character, for a body that spells
/// one as the escape `\u0000` (a raw NUL byte is malformed JSON anyway). Scans the bytes
/// first, so a body without it costs nothing more.
fn nul_character(bytes: &[u8]) -> Option<String> {
    if !bytes.windows(6).any(|w| w.eq_ignore_ascii_case(b"\\u0000")) {
        return None;
    }
    fn find(v: &serde_json::Value, path: String) -> Option<String> {
        use serde_json::Value;
        match v {
            Value::String(s) if s.contains('\0') => Some(path),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, item)| find(item, format!("{path}[{i}]"))),
            Value::Object(map) => map.iter().find_map(|(k, item)| {
                let here = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                if k.contains('\0') {
                    Some(here)
                } else {
                    find(item, here)
                }
            }),
            _ => None,
        }
    }
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    find(&value, String::new()).map(|p| if p.is_empty() { "body".to_owned() } else { p })
}

/// serde's messages name Rust types (`expected i64`, `expected struct CreateEvent`); a
/// client reads JSON types.
pub fn humanize(message: &str) -> String {
    let mut out = message.to_owned();
    for (rust, json) in [
        ("i8", "an integer"),
        ("i16", "an integer"),
        ("i32", "an integer"),
        ("i64", "an integer"),
        ("u8", "a non-negative integer"),
        ("u16", "a non-negative integer"),
        ("u32", "a non-negative integer"),
        ("u64", "a non-negative integer"),
        ("usize", "a non-negative integer"),
        ("f32", "a number"),
        ("f64", "a number"),
        ("a sequence", "an array"),
        ("a map", "an object"),
        ("a borrowed string", "a string"),
    ] {
        out = out.replace(&format!("expected {rust}"), &format!("expected {json}"));
        out = out.replace(&format!("`{rust}`"), json);
    }
    // `expected struct CreateEvent` / `expected enum StatusFilter`
    for kind in ["struct ", "enum ", "tuple struct "] {
        while let Some(i) = out.find(&format!("expected {kind}")) {
            let start = i + "expected ".len();
            let end = out[start + kind.len()..]
                .find(|c: char| !c.is_alphanumeric() && c != '_')
                .map(|e| start + kind.len() + e)
                .unwrap_or(out.len());
            let replacement = if kind == "enum " {
                "one of the documented values"
            } else {
                "an object"
            };
            out.replace_range(start..end, replacement);
        }
    }
    out
}

/// serde_json appends " at line 1 column 42"; the field path already says where.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// A request's input as it arrived: parsed or not, not yet trusted. Commands that act on an
/// existing resource take it and open it only *after* the tenancy gate ([`crate::access`]), so
/// another organizer's resource answers 404 whatever the body holds, and the caller's own
/// gets the 400 that names the field.
#[derive(Debug, Clone)]
pub struct Input<T> {
    parsed: DomainResult<T>,
    /// The request's `If-Match` (optimistic concurrency): checked by the command against the
    /// resource's version once it holds the row lock ([`crate::etag::check`]).
    if_match: Option<String>,
}

impl<T> Input<T> {
    /// The outcome of parsing the request (the HTTP edge builds it).
    pub fn new(parsed: DomainResult<T>) -> Self {
        Self {
            parsed,
            if_match: None,
        }
    }

    /// Input that is already a value (tests, fixtures, tools).
    pub fn ok(value: T) -> Self {
        Self::new(Ok(value))
    }

    /// With the request's `If-Match` header.
    pub fn with_if_match(mut self, if_match: Option<String>) -> Self {
        self.if_match = if_match;
        self
    }

    pub fn if_match(&self) -> Option<&str> {
        self.if_match.as_deref()
    }

    /// The value if it parsed, to steer a lookup before the gate has run (never to act on).
    pub fn peek(&self) -> Option<&T> {
        self.parsed.as_ref().ok()
    }

    /// The value, or the parse error: call after the gate.
    pub fn take(self) -> DomainResult<T> {
        self.parsed
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn nul_characters_are_refused_by_field() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Body {
            name: String,
            items: Vec<String>,
        }
        let e = parse_json::<Body>(br#"{"name": "a\u0000b", "items": []}"#).unwrap_err();
        assert_eq!(e.details.unwrap()[0]["field"], "name");
        let e = parse_json::<Body>(br#"{"name": "a", "items": ["x", "\u0000"]}"#).unwrap_err();
        assert_eq!(e.details.unwrap()[0]["field"], "items[1]");
        // An escaped backslash followed by u0000 is not a NUL character.
        assert!(parse_json::<Body>(br#"{"name": "a\\u0000", "items": []}"#).is_ok());
    }

    #[test]
    fn one_document_and_json_words() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Body {
            n: i64,
        }
        assert!(parse_json::<Body>(br#"{"n": 1}  "#).is_ok());
        for bad in [&br#"{"n": 1}xyz"#[..], br#"{"n": 1}{"n": 2}"#] {
            let e = parse_json::<Body>(bad).unwrap_err();
            assert_eq!(e.code, crate::ErrorCode::ValidationError);
        }
        let e = parse_json::<Body>(br#"{"n": "x"}"#).unwrap_err();
        let text = e.details.unwrap().to_string();
        assert!(text.contains("expected an integer"), "{text}");
        let e = parse_json::<Body>(b"\"text\"").unwrap_err();
        let text = e.details.unwrap().to_string();
        assert!(!text.contains("struct") && !text.contains("Body"), "{text}");
        assert_eq!(
            humanize("invalid type: string \"a\", expected u32"),
            "invalid type: string \"a\", expected a non-negative integer"
        );
        assert_eq!(
            humanize("unknown variant `x`, expected enum StatusFilter"),
            "unknown variant `x`, expected one of the documented values"
        );
    }

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
