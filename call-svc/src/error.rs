//! call-svc's errors and their one mapping to gRPC status codes. What is not
//! the caller's fault is a [`Fault`], mapped as every service maps it.

use svc_kit::{failure::Fault, validate::InvalidArgument};
use tonic::Status;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Invalid(#[from] InvalidArgument),
    #[error("call {0} not found")]
    NotFound(Uuid),
    #[error("{0}")]
    PermissionDenied(String),
    /// The call is in the wrong state, or no taxi is available.
    #[error("{0}")]
    FailedPrecondition(String),
    /// A backend could not be reached; the step will be completed or undone
    /// by the sweeper, and the message says so.
    #[error("{0}")]
    BackendUnavailable(String),
    /// A status from a backend passed through unchanged (already meaningful).
    #[error("{0}")]
    Backend(Status),
    #[error(transparent)]
    Fault(#[from] Fault),
}

impl From<sqlx::Error> for CallError {
    fn from(err: sqlx::Error) -> Self {
        Self::Fault(Fault::store("the call store", err))
    }
}

impl From<anyhow::Error> for CallError {
    fn from(err: anyhow::Error) -> Self {
        Self::Fault(Fault::classify("the call store", err))
    }
}

impl From<CallError> for Status {
    fn from(err: CallError) -> Self {
        match err {
            CallError::Invalid(invalid) => invalid.into(),
            CallError::NotFound(id) => Status::not_found(format!("call {id} not found")),
            CallError::PermissionDenied(msg) => Status::permission_denied(msg),
            CallError::FailedPrecondition(msg) => Status::failed_precondition(msg),
            CallError::BackendUnavailable(msg) => Status::unavailable(msg),
            CallError::Backend(status) => status,
            CallError::Fault(fault) => fault.into(),
        }
    }
}

impl From<crate::domain::TransitionError> for CallError {
    fn from(err: crate::domain::TransitionError) -> Self {
        use crate::domain::TransitionError as T;
        match err {
            T::NotAssignedDriver { .. } | T::NotOwner { .. } => Self::PermissionDenied(err.to_string()),
            T::WrongState { .. } | T::ClaimedByAnother | T::VersionMismatch { .. } | T::NothingOwed => {
                Self::FailedPrecondition(err.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    #[test]
    fn an_unreachable_call_store_is_unavailable_not_internal() {
        let status = Status::from(CallError::from(sqlx::Error::PoolTimedOut));
        assert_eq!(status.code(), Code::Unavailable);
    }
}
