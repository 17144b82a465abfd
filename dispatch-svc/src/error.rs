//! dispatch-svc's errors and their one mapping to gRPC status codes. What is
//! not the caller's fault is a [`Fault`], mapped as every service maps it.

use svc_kit::{
    failure::{FailureKind, Fault},
    validate::InvalidArgument,
};
use tonic::Status;
use uuid::Uuid;

use crate::domain::Refusal;

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error(transparent)]
    Invalid(#[from] InvalidArgument),
    #[error("driver {0} is not registered")]
    DriverNotFound(Uuid),
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The store or NATS (which carries offer notifications) cannot be
    /// reached, or a bug.
    #[error(transparent)]
    Fault(#[from] Fault),
}

impl DispatchError {
    /// The kind of failure, which decides whether a retry can help.
    pub fn kind(&self) -> FailureKind {
        match self {
            Self::Invalid(_) | Self::DriverNotFound(_) | Self::Refused(_) => FailureKind::Caller,
            Self::Fault(fault) => fault.kind(),
        }
    }

    /// NATS, which carries offer notifications, cannot be reached right now.
    pub fn notifications_unavailable(error: anyhow::Error) -> Self {
        Self::Fault(Fault::unavailable("offer notifications", error))
    }
}

impl From<sqlx::Error> for DispatchError {
    fn from(err: sqlx::Error) -> Self {
        Self::Fault(Fault::store("the dispatch store", err))
    }
}

impl From<anyhow::Error> for DispatchError {
    fn from(err: anyhow::Error) -> Self {
        Self::Fault(Fault::classify("the dispatch store", err))
    }
}

impl From<DispatchError> for Status {
    fn from(err: DispatchError) -> Self {
        match err {
            DispatchError::Invalid(invalid) => invalid.into(),
            DispatchError::DriverNotFound(id) => Status::not_found(format!("driver {id} is not registered")),
            DispatchError::Refused(refusal) => Status::failed_precondition(refusal.to_string()),
            DispatchError::Fault(fault) => fault.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    #[test]
    fn refusals_are_failed_preconditions_with_their_reason() {
        let status = Status::from(DispatchError::Refused(Refusal::CallAlreadyAssigned));
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert_eq!(status.message(), "call already assigned");
    }

    #[test]
    fn an_unreachable_database_is_unavailable() {
        let status = Status::from(DispatchError::from(sqlx::Error::PoolTimedOut));
        assert_eq!(status.code(), Code::Unavailable);
    }

    #[test]
    fn a_row_the_schema_refuses_is_permanent() {
        assert_eq!(
            DispatchError::from(sqlx::Error::RowNotFound).kind(),
            FailureKind::Permanent
        );
    }
}
