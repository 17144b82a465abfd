//! query-svc's errors and their one mapping to gRPC status codes.

use svc_kit::validate::InvalidArgument;
use tonic::Status;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    Invalid(#[from] InvalidArgument),
    #[error("call {0} not found")]
    NotFound(Uuid),
    #[error("{0}")]
    PermissionDenied(String),
    /// A read-your-writes wait ran out before the projection caught up.
    #[error("{0}")]
    DeadlineExceeded(String),
    /// The read store cannot be reached; the request can be retried.
    #[error("read store unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<redis::RedisError> for QueryError {
    fn from(err: redis::RedisError) -> Self {
        if err.is_io_error() || err.is_timeout() || err.is_connection_dropped() || err.is_connection_refusal()
        {
            Self::Unavailable(err.to_string())
        } else {
            Self::Unexpected(err.into())
        }
    }
}

impl From<QueryError> for Status {
    fn from(err: QueryError) -> Self {
        match err {
            QueryError::Invalid(invalid) => invalid.into(),
            QueryError::NotFound(id) => Status::not_found(format!("call {id} not found")),
            QueryError::PermissionDenied(msg) => Status::permission_denied(msg),
            QueryError::DeadlineExceeded(msg) => Status::deadline_exceeded(msg),
            QueryError::Unavailable(msg) => {
                tracing::warn!(error = msg, "read store unavailable");
                Status::unavailable("read store unavailable")
            }
            QueryError::Unexpected(error) => {
                tracing::error!(error = ?error, "unexpected failure");
                Status::internal("internal error")
            }
        }
    }
}
