//! The domain's one error type: every failure is a [`DomainError`] carrying one of the
//! contract's codes ([`ErrorCode`]); the HTTP edge maps the code to a status. Database
//! errors are mapped in one place ([`From<tokio_postgres::Error>`]), so a constraint
//! violation is a conflict, never an internal error, and the SQLSTATE stays in the log.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// Error codes of the contract (`../shared/api-contract.md`, Conventions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    ValidationError,
    InvalidSignature,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    DuplicateGuest,
    SoldOut,
    EventFull,
    RegistrationClosed,
    TicketAlreadyValidated,
    TicketCancelled,
    InvalidState,
    NotOnList,
    ListClosed,
    NotInside,
    OfferExpired,
    PreconditionFailed,
    IdempotencyInProgress,
    IdempotencyKeyReused,
    PayloadTooLarge,
    RateLimited,
    InternalError,
    ServiceUnavailable,
}

impl ErrorCode {
    /// The HTTP status the contract gives this code (the edge turns it into a response).
    pub fn http_status(self) -> u16 {
        use ErrorCode::*;
        match self {
            ValidationError | InvalidSignature => 400,
            Unauthorized => 401,
            Forbidden => 403,
            NotFound => 404,
            MethodNotAllowed => 405,
            DuplicateGuest
            | SoldOut
            | EventFull
            | RegistrationClosed
            | TicketAlreadyValidated
            | TicketCancelled
            | InvalidState
            | NotOnList
            | ListClosed
            | NotInside
            | OfferExpired => 409,
            PreconditionFailed => 412,
            IdempotencyInProgress => 409,
            IdempotencyKeyReused => 422,
            PayloadTooLarge => 413,
            RateLimited => 429,
            InternalError => 500,
            ServiceUnavailable => 503,
        }
    }

    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            ValidationError => "VALIDATION_ERROR",
            InvalidSignature => "INVALID_SIGNATURE",
            Unauthorized => "UNAUTHORIZED",
            Forbidden => "FORBIDDEN",
            NotFound => "NOT_FOUND",
            MethodNotAllowed => "METHOD_NOT_ALLOWED",
            DuplicateGuest => "DUPLICATE_GUEST",
            SoldOut => "SOLD_OUT",
            EventFull => "EVENT_FULL",
            RegistrationClosed => "REGISTRATION_CLOSED",
            TicketAlreadyValidated => "TICKET_ALREADY_VALIDATED",
            TicketCancelled => "TICKET_CANCELLED",
            InvalidState => "INVALID_STATE",
            NotOnList => "NOT_ON_LIST",
            ListClosed => "LIST_CLOSED",
            NotInside => "NOT_INSIDE",
            OfferExpired => "OFFER_EXPIRED",
            PreconditionFailed => "PRECONDITION_FAILED",
            IdempotencyInProgress => "IDEMPOTENCY_IN_PROGRESS",
            IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            RateLimited => "RATE_LIMITED",
            InternalError => "INTERNAL_ERROR",
            ServiceUnavailable => "SERVICE_UNAVAILABLE",
        }
    }
}

/// One field-level problem in a `VALIDATION_ERROR`'s `details`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct DomainError {
    pub code: ErrorCode,
    /// A sentence for humans; never holds SQL, stack traces or paths.
    pub message: String,
    pub details: Option<Value>,
    /// Seconds, sent as `Retry-After` (rate limits).
    pub retry_after: Option<u64>,
    /// What went wrong inside, for the log only (never sent to the client).
    pub internal: Option<String>,
    /// A serialization failure or a deadlock (SQLSTATE 40001, 40P01): running the same
    /// transaction again may succeed.
    pub retryable: bool,
}

pub type DomainResult<T> = Result<T, DomainError>;

impl DomainError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: None,
            retry_after: None,
            internal: None,
            retryable: false,
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn validation(errors: Vec<FieldError>) -> Self {
        let message = match errors.as_slice() {
            [one] => format!("{}: {}", one.field, one.message),
            _ => "the request is invalid".to_owned(),
        };
        Self::new(ErrorCode::ValidationError, message)
            .with_details(serde_json::to_value(errors).unwrap_or(Value::Null))
    }

    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::validation(vec![FieldError::new(field, message)])
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, message)
    }

    pub fn forbidden() -> Self {
        Self::new(ErrorCode::Forbidden, "your role may not call this endpoint")
    }

    pub fn invalid_state(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidState, message)
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        let mut e = Self::new(ErrorCode::InternalError, "an internal error occurred");
        e.internal = Some(cause.to_string());
        e
    }

    pub fn unavailable(what: &str, cause: impl std::fmt::Display) -> Self {
        let mut e = Self::new(
            ErrorCode::ServiceUnavailable,
            format!("{what} is unavailable, try again"),
        );
        e.internal = Some(cause.to_string());
        e
    }
}

impl std::fmt::Display for DomainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)?;
        if let Some(internal) = &self.internal {
            write!(f, " ({internal})")?;
        }
        Ok(())
    }
}

impl std::error::Error for DomainError {}

/// Maps a named constraint to the error the client should see. The domain modules call
/// [`DbResultExt::on_constraint`] where a specific violation has a specific meaning;
/// everything else falls through to the generic mapping below.
pub trait DbResultExt<T> {
    fn on_constraint(self, name: &str, f: impl FnOnce() -> DomainError) -> DomainResult<T>;
}

impl<T> DbResultExt<T> for Result<T, tokio_postgres::Error> {
    fn on_constraint(self, name: &str, f: impl FnOnce() -> DomainError) -> DomainResult<T> {
        self.map_err(|e| match e.as_db_error().and_then(|d| d.constraint()) {
            Some(c) if c == name => f(),
            _ => DomainError::from(e),
        })
    }
}

impl From<tokio_postgres::Error> for DomainError {
    fn from(e: tokio_postgres::Error) -> Self {
        let Some(db) = e.as_db_error() else {
            // No server answer: the connection broke or could not be made.
            return DomainError::unavailable("the database", e);
        };
        let code = db.code().code();
        let mut err = match code {
            // unique_violation
            "23505" => DomainError::new(
                ErrorCode::InvalidState,
                "this conflicts with an existing resource",
            ),
            // foreign_key_violation: still referenced, or pointing at nothing
            "23503" => DomainError::invalid_state("the resource is referenced by other records"),
            // check_violation / not_null_violation: input the validation layer let through
            "23514" | "23502" => DomainError::invalid_state("the change violates a data rule"),
            // serialization failure / deadlock: the client may simply retry
            "40001" | "40P01" => DomainError {
                retryable: true,
                ..DomainError::unavailable("the database", "transaction conflict")
            },
            // data exceptions (bad encoding, out-of-range values...)
            c if c.starts_with("22") => DomainError::new(
                ErrorCode::ValidationError,
                "a value is out of range or malformed",
            ),
            // connection exceptions, refused authorization (pg_hba.conf, password),
            // insufficient resources, operator intervention: the database is unavailable to
            // this service, not the request wrong
            c if c.starts_with("08")
                || c.starts_with("28")
                || c.starts_with("53")
                || c.starts_with("57") =>
            {
                DomainError::unavailable("the database", &e)
            }
            _ => DomainError::internal(&e),
        };
        // What the log line says, whatever the answer: the SQLSTATE, the constraint and the
        // server's own message (a bare "db error" says nothing).
        err.internal = Some(match db.constraint() {
            Some(c) => format!("SQLSTATE {code} (constraint {c}): {}", db.message()),
            None => format!("SQLSTATE {code}: {}", db.message()),
        });
        err
    }
}

impl From<deadpool_postgres::PoolError> for DomainError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => e.into(),
            other => DomainError::unavailable("the database", other),
        }
    }
}

impl From<validator::ValidationErrors> for DomainError {
    fn from(errors: validator::ValidationErrors) -> Self {
        DomainError::validation(validation_field_errors(&errors))
    }
}

/// validator's nested report as the contract's flat `[{"field", "message"}]` list,
/// with paths like `ticketTypes[0].name`.
pub fn validation_field_errors(errors: &validator::ValidationErrors) -> Vec<FieldError> {
    let mut out = Vec::new();
    flatten_validation(errors, "", &mut out);
    out.sort_by(|a, b| a.field.cmp(&b.field));
    out
}

fn flatten_validation(
    errors: &validator::ValidationErrors,
    prefix: &str,
    out: &mut Vec<FieldError>,
) {
    use validator::ValidationErrorsKind as Kind;
    for (field, kind) in errors.errors() {
        let name = format!("{prefix}{}", camel_case(field));
        match kind {
            Kind::Field(list) => out.extend(list.iter().map(|e| {
                let message = e
                    .message
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_else(|| describe_rule(e));
                FieldError::new(name.clone(), message)
            })),
            Kind::Struct(inner) => flatten_validation(inner, &format!("{name}."), out),
            Kind::List(items) => {
                for (i, inner) in items {
                    flatten_validation(inner, &format!("{name}[{i}]."), out);
                }
            }
        }
    }
}

fn describe_rule(e: &validator::ValidationError) -> String {
    let p = |k: &str| e.params.get(k).map(|v| v.to_string());
    match e.code.as_ref() {
        "length" => match (p("min"), p("max")) {
            (Some(min), Some(max)) => format!("must be {min} to {max} characters long"),
            (None, Some(max)) => format!("must be at most {max} characters long"),
            (Some(min), None) => format!("must be at least {min} characters long"),
            _ => "has a wrong length".into(),
        },
        "range" => match (p("min"), p("max")) {
            (Some(min), Some(max)) => format!("must be between {min} and {max}"),
            _ => "is out of range".into(),
        },
        "email" => "must be a valid email address".into(),
        other => format!("is invalid ({other})"),
    }
}

/// `max_attendees` → `maxAttendees`: validator reports Rust field names.
pub fn camel_case(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_contract_table() {
        assert_eq!(ErrorCode::ValidationError.http_status(), 400);
        assert_eq!(ErrorCode::SoldOut.http_status(), 409);
        assert_eq!(ErrorCode::PayloadTooLarge.http_status(), 413);
        assert_eq!(ErrorCode::RateLimited.http_status(), 429);
        assert_eq!(
            serde_json::to_value(ErrorCode::TicketAlreadyValidated).unwrap(),
            "TICKET_ALREADY_VALIDATED"
        );
        assert_eq!(
            serde_json::to_value(ErrorCode::InternalError).unwrap(),
            ErrorCode::InternalError.as_str()
        );
    }

    #[test]
    fn camel_case_converts_validator_names() {
        assert_eq!(camel_case("max_attendees"), "maxAttendees");
        assert_eq!(camel_case("title"), "title");
        assert_eq!(camel_case("requires_approval"), "requiresApproval");
    }
}
