//! dispatch-svc's errors and their one mapping to gRPC status codes.

use svc_kit::validate::InvalidArgument;
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
    /// PostgreSQL cannot be reached right now; the request may be retried.
    #[error("database unavailable")]
    StoreUnavailable(#[source] sqlx::Error),
    /// NATS, which carries offer notifications, cannot be reached right now.
    #[error("offer notifications unavailable")]
    NotificationsUnavailable(#[source] anyhow::Error),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for DispatchError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                Self::StoreUnavailable(err)
            }
            other => Self::Unexpected(other.into()),
        }
    }
}

impl From<DispatchError> for Status {
    fn from(err: DispatchError) -> Self {
        match err {
            DispatchError::Invalid(invalid) => invalid.into(),
            DispatchError::DriverNotFound(id) => Status::not_found(format!("driver {id} is not registered")),
            DispatchError::Refused(refusal) => Status::failed_precondition(refusal.to_string()),
            DispatchError::StoreUnavailable(error) => {
                tracing::warn!(%error, "database unavailable");
                Status::unavailable("dispatch store unavailable, retry later")
            }
            DispatchError::NotificationsUnavailable(error) => {
                tracing::warn!(error = format!("{error:#}"), "offer notifications unavailable");
                Status::unavailable("offer notifications unavailable, retry later")
            }
            DispatchError::Unexpected(error) => {
                tracing::error!(error = ?error, "unexpected failure");
                Status::internal("internal error")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    #[test]
    fn unexpected_failures_do_not_leak_their_text() {
        let status = Status::from(DispatchError::Unexpected(anyhow::anyhow!("password=hunter2")));
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), "internal error");
    }

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
}
