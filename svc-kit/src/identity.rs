//! Who is calling. Until the gateway verifies tokens, callers state their
//! subject and role in gRPC metadata; the gateway will strip what clients send
//! and set these from a verified token. Services calling each other identify
//! as the `service` role.

use std::fmt;

use tonic::{Request, Status, metadata::MetadataMap};
use uuid::Uuid;

/// Metadata key carrying the caller's subject (a UUID, or a service name).
pub const SUBJECT_HEADER: &str = "x-taxi-subject";
/// Metadata key carrying the caller's role.
pub const ROLE_HEADER: &str = "x-taxi-role";

/// A verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A customer calling taxis.
    Customer(Uuid),
    /// A driver.
    Driver(Uuid),
    /// An analyst reading aggregates.
    Analyst(Uuid),
    /// Another service of the platform, by name.
    Service(String),
}

impl Caller {
    /// Reads the caller from request metadata: UNAUTHENTICATED when it is
    /// missing or malformed.
    pub fn from_metadata(metadata: &MetadataMap) -> Result<Self, Status> {
        let text = |key: &str| {
            metadata
                .get(key)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| Status::unauthenticated(format!("missing {key} metadata")))
        };
        let role = text(ROLE_HEADER)?;
        let subject = text(SUBJECT_HEADER)?;
        let user = || {
            Uuid::parse_str(subject)
                .map_err(|_| Status::unauthenticated(format!("{SUBJECT_HEADER} must be a UUID")))
        };
        match role {
            "customer" => Ok(Self::Customer(user()?)),
            "driver" => Ok(Self::Driver(user()?)),
            "analyst" => Ok(Self::Analyst(user()?)),
            "service" if subject.len() <= 64 => Ok(Self::Service(subject.to_owned())),
            "service" => Err(Status::unauthenticated("service name too long")),
            other => Err(Status::unauthenticated(format!("unknown role {other:?}"))),
        }
    }

    /// Reads the caller of a request.
    pub fn of<T>(request: &Request<T>) -> Result<Self, Status> {
        Self::from_metadata(request.metadata())
    }

    /// The role's name as it travels in metadata.
    pub fn role(&self) -> &'static str {
        match self {
            Self::Customer(_) => "customer",
            Self::Driver(_) => "driver",
            Self::Analyst(_) => "analyst",
            Self::Service(_) => "service",
        }
    }

    /// The customer's id, or PERMISSION_DENIED for any other role.
    pub fn customer(&self) -> Result<Uuid, Status> {
        match self {
            Self::Customer(id) => Ok(*id),
            other => Err(Status::permission_denied(format!(
                "{} may not do this; customers only",
                other.role()
            ))),
        }
    }

    /// The driver's id, or PERMISSION_DENIED for any other role.
    pub fn driver(&self) -> Result<Uuid, Status> {
        match self {
            Self::Driver(id) => Ok(*id),
            other => Err(Status::permission_denied(format!(
                "{} may not do this; drivers only",
                other.role()
            ))),
        }
    }

    /// Succeeds for internal callers only: PERMISSION_DENIED otherwise.
    pub fn service(&self) -> Result<&str, Status> {
        match self {
            Self::Service(name) => Ok(name),
            other => Err(Status::permission_denied(format!(
                "{} may not do this; internal method",
                other.role()
            ))),
        }
    }

    /// Adds this caller's identity to an outgoing request.
    pub fn attach<T>(&self, request: &mut Request<T>) {
        let subject = self.to_string();
        let metadata = request.metadata_mut();
        // Both values are ASCII by construction (a UUID or a checked name).
        if let Ok(value) = subject.parse() {
            metadata.insert(SUBJECT_HEADER, value);
        }
        metadata.insert(
            ROLE_HEADER,
            tonic::metadata::MetadataValue::from_static(self.role()),
        );
    }
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Customer(id) | Self::Driver(id) | Self::Analyst(id) => write!(f, "{id}"),
            Self::Service(name) => f.write_str(name),
        }
    }
}

/// Wraps `message` in a request that identifies as the internal service `name`.
pub fn service_request<T>(name: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    Caller::Service(name.to_owned()).attach(&mut request);
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(role: &str, subject: &str) -> MetadataMap {
        let mut map = MetadataMap::new();
        map.insert(ROLE_HEADER, role.parse().expect("ascii"));
        map.insert(SUBJECT_HEADER, subject.parse().expect("ascii"));
        map
    }

    #[test]
    fn customer_subject_must_be_a_uuid() {
        let err = Caller::from_metadata(&metadata("customer", "bob")).expect_err("not a uuid");
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
    }

    #[test]
    fn identity_round_trips_through_metadata() {
        let caller = Caller::Driver(Uuid::new_v4());
        let mut request = Request::new(());
        caller.attach(&mut request);
        assert_eq!(Caller::of(&request).expect("valid"), caller);
    }

    #[test]
    fn missing_metadata_is_unauthenticated() {
        let err = Caller::from_metadata(&MetadataMap::new()).expect_err("missing");
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
    }

    #[test]
    fn wrong_role_is_permission_denied() {
        let caller = Caller::Customer(Uuid::new_v4());
        assert_eq!(
            caller.driver().expect_err("customer").code(),
            tonic::Code::PermissionDenied
        );
        assert_eq!(
            caller.service().expect_err("customer").code(),
            tonic::Code::PermissionDenied
        );
    }
}
