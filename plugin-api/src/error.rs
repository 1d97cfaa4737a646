//! The error a handler (or `init`, or a setting) returns: an HTTP status, a stable
//! machine-readable `code`, a message for people, optional `details`. `http.rs` renders it as the
//! hub's one error shape, `{"error": {"code", "message", "details"?}}`.

use std::borrow::Cow;
use std::fmt;

use serde_json::Value;

/// An error a handler returns: an HTTP status, a stable machine-readable `code`, a message for
/// people, and optional `details` (e.g. the invalid fields).
#[derive(Debug, Clone, PartialEq)]
pub struct Error(Box<ErrorInner>);

#[derive(Debug, Clone, PartialEq)]
struct ErrorInner {
    status: u16,
    code: Cow<'static, str>,
    message: String,
    details: Option<Value>,
}

impl Error {
    pub fn new(
        status: u16,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Error {
        Error(Box::new(ErrorInner {
            status,
            code: code.into(),
            message: message.into(),
            details: None,
        }))
    }

    /// 400 `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Error {
        Error::new(400, "bad_request", message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Error {
        Error::new(404, "not_found", message)
    }

    /// 409 `conflict`.
    pub fn conflict(message: impl Into<String>) -> Error {
        Error::new(409, "conflict", message)
    }

    /// 422 `validation_failed`; put the field errors in `details`.
    pub fn validation(message: impl Into<String>) -> Error {
        Error::new(422, "validation_failed", message)
    }

    /// 422 `validation_failed` for one field, in the shape the hub's own checks answer with:
    /// `details` is `[{"location", "field", "message"}]`. `location` is `path`, `query` or
    /// `body`. E.g. `Error::invalid("body", "customer_id", "no customer 7")`.
    pub fn invalid(location: &str, field: &str, message: &str) -> Error {
        Error::validation(format!(
            "the request is invalid: {location} '{field}' {message}"
        ))
        .with_details(
            serde_json::json!([{"location": location, "field": field, "message": message}]),
        )
    }

    /// 500 `internal`.
    pub fn internal(message: impl Into<String>) -> Error {
        Error::new(500, "internal", message)
    }

    pub fn with_details(mut self, details: Value) -> Error {
        self.0.details = Some(details);
        self
    }

    pub fn status(&self) -> u16 {
        self.0.status
    }

    pub fn code(&self) -> &str {
        &self.0.code
    }

    pub fn message(&self) -> &str {
        &self.0.message
    }

    pub fn details(&self) -> Option<&Value> {
        self.0.details.as_ref()
    }

    /// (status, code, message, details), moved out.
    pub(crate) fn into_parts(self) -> (u16, Cow<'static, str>, String, Option<Value>) {
        let ErrorInner {
            status,
            code,
            message,
            details,
        } = *self.0;
        (status, code, message, details)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.code(), self.status(), self.message())
    }
}

impl std::error::Error for Error {}
