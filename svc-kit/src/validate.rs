//! Request validation that names every bad field at once and turns into
//! INVALID_ARGUMENT with `google.rpc.BadRequest` details.

use std::fmt;

use taxi_proto::common::v1::TaxiType;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt as _};
use uuid::Uuid;

/// Longest idempotency key accepted.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 128;

/// One or more fields of a request are malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidArgument(pub Vec<(String, String)>);

impl InvalidArgument {
    /// A single bad field.
    pub fn field(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self(vec![(field.into(), description.into())])
    }
}

impl fmt::Display for InvalidArgument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid request: ")?;
        for (i, (field, description)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{field}: {description}")?;
        }
        Ok(())
    }
}

impl std::error::Error for InvalidArgument {}

impl From<InvalidArgument> for Status {
    fn from(err: InvalidArgument) -> Self {
        let violations: Vec<FieldViolation> = err
            .0
            .iter()
            .map(|(field, description)| FieldViolation::new(field.clone(), description.clone()))
            .collect();
        Status::with_error_details(
            Code::InvalidArgument,
            err.to_string(),
            ErrorDetails::with_bad_request(violations),
        )
    }
}

/// Collects field violations while a request is parsed.
#[derive(Debug, Default)]
pub struct Violations(Vec<(String, String)>);

impl Violations {
    /// An empty collector.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `field` is bad.
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push((field.into(), description.into()));
    }

    /// `Ok(())` when nothing was recorded.
    pub fn finish(self) -> Result<(), InvalidArgument> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(InvalidArgument(self.0))
        }
    }

    /// Parses a required UUID field.
    pub fn uuid(&mut self, field: &str, value: &str) -> Option<Uuid> {
        if value.is_empty() {
            self.add(field, "must not be empty");
            return None;
        }
        match Uuid::parse_str(value) {
            Ok(id) => Some(id),
            Err(_) => {
                self.add(field, "must be a UUID");
                None
            }
        }
    }

    /// Checks a required string of at most `max` characters, none of them
    /// control characters.
    pub fn text(&mut self, field: &str, value: &str, max: usize) -> Option<String> {
        let trimmed = value.trim();
        if trimmed.is_empty() {
            self.add(field, "must not be empty");
            None
        } else {
            self.optional_text(field, trimmed, max)
        }
    }

    /// Checks an optional string of at most `max` characters, none of them
    /// control characters.
    pub fn optional_text(&mut self, field: &str, value: &str, max: usize) -> Option<String> {
        let trimmed = value.trim();
        if trimmed.chars().count() > max {
            self.add(field, format!("must be at most {max} characters"));
            None
        } else if trimmed.chars().any(char::is_control) {
            // PostgreSQL text cannot hold NUL, and no name or reason needs
            // any control character.
            self.add(field, "must not contain control characters");
            None
        } else {
            Some(trimmed.to_owned())
        }
    }

    /// Checks an idempotency key: required, printable, at most 128 characters.
    pub fn idempotency_key(&mut self, field: &str, value: &str) -> Option<String> {
        if value.is_empty() {
            self.add(field, "must not be empty");
            None
        } else if value.len() > MAX_IDEMPOTENCY_KEY_LEN {
            self.add(field, format!("must be at most {MAX_IDEMPOTENCY_KEY_LEN} bytes"));
            None
        } else if value.chars().any(char::is_control) {
            self.add(field, "must not contain control characters");
            None
        } else {
            Some(value.to_owned())
        }
    }

    /// Parses a required taxi type (not UNSPECIFIED, not unknown).
    pub fn taxi_type(&mut self, field: &str, value: i32) -> Option<TaxiType> {
        match TaxiType::try_from(value) {
            Ok(TaxiType::Unspecified) => {
                self.add(field, "must be specified");
                None
            }
            Ok(taxi_type) => Some(taxi_type),
            Err(_) => {
                self.add(field, format!("unknown taxi type {value}"));
                None
            }
        }
    }

    /// Checks that an amount or distance lies within `min..=max`.
    pub fn within(&mut self, field: &str, value: i64, min: i64, max: i64) -> Option<i64> {
        if (min..=max).contains(&value) {
            Some(value)
        } else {
            self.add(field, format!("must be within {min}..={max}"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_violation_reaches_the_status_details() {
        let mut v = Violations::new();
        v.uuid("call_id", "");
        v.taxi_type("taxi_type", 42);
        v.idempotency_key("idempotency_key", &"k".repeat(129));
        let status = Status::from(v.finish().expect_err("three bad fields"));
        assert_eq!(status.code(), Code::InvalidArgument);
        let fields: Vec<_> = status
            .get_details_bad_request()
            .expect("bad request details")
            .field_violations
            .into_iter()
            .map(|f| f.field)
            .collect();
        assert_eq!(fields, ["call_id", "taxi_type", "idempotency_key"]);
    }

    #[test]
    fn unspecified_taxi_type_is_rejected() {
        let mut v = Violations::new();
        assert_eq!(v.taxi_type("taxi_type", 0), None);
        assert!(v.finish().is_err());
    }

    #[test]
    fn text_is_trimmed_and_bounded() {
        let mut v = Violations::new();
        assert_eq!(v.text("name", "  Kim  ", 10).as_deref(), Some("Kim"));
        assert_eq!(v.text("name", "   ", 10), None);
        assert_eq!(v.text("name", "가나다라마바사아자차카", 10), None);
        assert_eq!(v.finish().expect_err("two bad").0.len(), 2);
    }

    #[test]
    fn text_with_control_characters_is_rejected() {
        let mut v = Violations::new();
        assert_eq!(v.text("name", "Kim\0Gisa", 10), None);
        assert_eq!(v.optional_text("reason", "late\u{1b}[2J", 20), None);
        assert_eq!(v.optional_text("reason", "  ", 20).as_deref(), Some(""));
        assert_eq!(v.finish().expect_err("two bad").0.len(), 2);
    }
}
