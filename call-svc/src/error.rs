//! call-svc's errors and their one mapping to gRPC status codes.

use svc_kit::validate::InvalidArgument;
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
    /// A backend could not be reached; the step can be retried.
    #[error("{0}")]
    Unavailable(String),
    /// A status from a backend passed through unchanged (already meaningful).
    #[error("{0}")]
    Backend(Status),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for CallError {
    fn from(err: sqlx::Error) -> Self {
        Self::Unexpected(err.into())
    }
}

impl From<CallError> for Status {
    fn from(err: CallError) -> Self {
        match err {
            CallError::Invalid(invalid) => invalid.into(),
            CallError::NotFound(id) => Status::not_found(format!("call {id} not found")),
            CallError::PermissionDenied(msg) => Status::permission_denied(msg),
            CallError::FailedPrecondition(msg) => Status::failed_precondition(msg),
            CallError::Unavailable(msg) => Status::unavailable(msg),
            CallError::Backend(status) => status,
            CallError::Unexpected(error) => {
                tracing::error!(error = ?error, "unexpected failure");
                Status::internal("internal error")
            }
        }
    }
}

impl From<crate::domain::TransitionError> for CallError {
    fn from(err: crate::domain::TransitionError) -> Self {
        use crate::domain::TransitionError as T;
        match err {
            T::NotAssignedDriver { .. } | T::NotOwner { .. } => Self::PermissionDenied(err.to_string()),
            T::WrongState { .. } | T::ClaimedByAnother | T::VersionMismatch { .. } => {
                Self::FailedPrecondition(err.to_string())
            }
        }
    }
}
