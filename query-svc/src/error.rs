//! query-svc's errors and their one mapping to gRPC status codes. What is not
//! the caller's fault is a [`Fault`], mapped as every service maps it.

use svc_kit::{failure::Fault, validate::InvalidArgument};
use tonic::Status;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    Invalid(#[from] InvalidArgument),
    #[error("call {0} not found")]
    NotFound(Uuid),
    /// A read-your-writes wait ran out before the projection caught up.
    #[error("{0}")]
    DeadlineExceeded(String),
    /// The server started draining while a watch was open; the client resumes
    /// elsewhere from the last version it was sent.
    #[error("server shutting down; watch again with from_version {last_sent}")]
    ShuttingDown { last_sent: i64 },
    #[error(transparent)]
    Fault(#[from] Fault),
}

/// Whether a Redis failure may pass: the server unreachable, the connection
/// lost or a reply late. Anything else (a script error, a wrong type) repeats.
pub(crate) fn is_transient(err: &redis::RedisError) -> bool {
    err.is_io_error() || err.is_timeout() || err.is_connection_dropped() || err.is_connection_refusal()
}

impl From<redis::RedisError> for QueryError {
    fn from(err: redis::RedisError) -> Self {
        if is_transient(&err) {
            Self::Fault(Fault::unavailable("the read store", err))
        } else {
            Self::Fault(Fault::Unexpected(err.into()))
        }
    }
}

impl From<anyhow::Error> for QueryError {
    fn from(err: anyhow::Error) -> Self {
        Self::Fault(Fault::Unexpected(err))
    }
}

impl From<QueryError> for Status {
    fn from(err: QueryError) -> Self {
        match err {
            QueryError::Invalid(invalid) => invalid.into(),
            QueryError::NotFound(id) => Status::not_found(format!("call {id} not found")),
            QueryError::DeadlineExceeded(msg) => Status::deadline_exceeded(msg),
            shutting_down @ QueryError::ShuttingDown { .. } => Status::unavailable(shutting_down.to_string()),
            QueryError::Fault(fault) => fault.into(),
        }
    }
}
