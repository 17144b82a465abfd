//! Who is calling. The gateway authenticates people; inside the platform the
//! caller's identity travels as a signed token ([`Signer`], [`Verifier`]), which every
//! backend verifies before its handlers run and turns into the
//! `x-taxi-subject` / `x-taxi-role` metadata that [`Caller::of`] reads. Those
//! two entries are never taken from the wire: the verifier removes any a
//! request carries. Services calling each other act in the `service` role.

use std::fmt;

use tonic::{Request, Status, metadata::MetadataMap};
use uuid::Uuid;

mod token;

pub use token::{IDENTITY_HEADER, Signer, SignerConfig, TrustConfig, Verifier};

/// Metadata key carrying the verified caller's subject (a UUID, or a service
/// name), set only by [`Verifier::establish`].
pub const SUBJECT_HEADER: &str = "x-taxi-subject";
/// Metadata key carrying the verified caller's role, likewise.
pub const ROLE_HEADER: &str = "x-taxi-role";

/// A verified caller.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Customer(id) | Self::Driver(id) | Self::Analyst(id) => write!(f, "{id}"),
            Self::Service(name) => f.write_str(name),
        }
    }
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
