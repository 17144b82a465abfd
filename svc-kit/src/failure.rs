//! One error policy for every service: what kind of failure an error is, and
//! what that means on the wire and to whoever retries.
//!
//! | kind | examples | on the wire | a retry of the same request |
//! |---|---|---|---|
//! | [`FailureKind::Caller`] | bad input, not allowed, wrong state, unknown id | its own code (INVALID_ARGUMENT, PERMISSION_DENIED, FAILED_PRECONDITION, NOT_FOUND, ...) | fails the same way |
//! | [`FailureKind::Transient`] | a store or backend down, overloaded or too slow | UNAVAILABLE (or what the backend said: DEADLINE_EXCEEDED, ABORTED, RESOURCE_EXHAUSTED) | may succeed later |
//! | [`FailureKind::Permanent`] | a bug, a broken invariant, a constraint the data violates | INTERNAL, with no detail | fails the same way |
//!
//! Each service's error enum keeps its own caller-kind variants and wraps the
//! other two in a [`Fault`], which maps itself to a status here, once. The
//! saga (call-svc) and the event consumers decide on retries by the kind.

use tonic::{Code, Status};

/// What kind of failure an error is; see the module's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The request itself is wrong; only a different request can succeed.
    Caller,
    /// Something the request needs is unreachable or overloaded right now.
    Transient,
    /// Nothing about the moment will change the outcome: a bug or bad data.
    Permanent,
}

impl FailureKind {
    /// The kind of a status another service answered with.
    ///
    /// UNKNOWN is what the transport reports for a connection reset mid-call,
    /// so it counts as transient; INTERNAL, DATA_LOSS and UNIMPLEMENTED are the
    /// backend's own permanent failures.
    pub fn of_status(status: &Status) -> Self {
        match status.code() {
            Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Cancelled
            | Code::Unknown
            | Code::ResourceExhausted
            | Code::Aborted => Self::Transient,
            Code::Internal | Code::DataLoss | Code::Unimplemented => Self::Permanent,
            Code::Ok
            | Code::InvalidArgument
            | Code::NotFound
            | Code::AlreadyExists
            | Code::PermissionDenied
            | Code::FailedPrecondition
            | Code::OutOfRange
            | Code::Unauthenticated => Self::Caller,
        }
    }

    /// The kind of a PostgreSQL failure: the server or the pool unreachable,
    /// a connection lost, a serialization failure or deadlock (a retry of the
    /// transaction succeeds), the server starting or shutting down, or out of
    /// resources are transient. Everything else, a constraint violation above
    /// all, fails again however often it is retried.
    #[cfg(feature = "postgres")]
    pub fn of_sqlx(error: &sqlx::Error) -> Self {
        match error {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::BeginFailed => Self::Transient,
            sqlx::Error::Database(db) => match db.code().as_deref() {
                // 08: connection exception; 53: insufficient resources;
                // 57P01-03: shut down by an administrator, crash or start-up.
                Some(code) if code.starts_with("08") || code.starts_with("53") => Self::Transient,
                Some("40001" | "40P01" | "55P03" | "57P01" | "57P02" | "57P03") => Self::Transient,
                _ => Self::Permanent,
            },
            _ => Self::Permanent,
        }
    }
}

/// A failure that is not the caller's: transient or permanent. It carries its
/// cause for the logs and answers with a fixed text, so no internal detail
/// reaches a client.
#[derive(Debug, thiserror::Error)]
pub enum Fault {
    /// `what` (a store, a backend) cannot be reached right now.
    #[error("{what} is unavailable")]
    Unavailable {
        /// What is down, as the client may read it: "the call store".
        what: &'static str,
        /// Why, for the logs.
        #[source]
        source: anyhow::Error,
    },
    /// Anything retrying cannot fix.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl Fault {
    /// `what` is unavailable because of `source`.
    pub fn unavailable(what: &'static str, source: impl Into<anyhow::Error>) -> Self {
        Self::Unavailable {
            what,
            source: source.into(),
        }
    }

    /// A PostgreSQL failure of the service's own store (named `what` for the
    /// client), classified by [`FailureKind::of_sqlx`].
    #[cfg(feature = "postgres")]
    pub fn store(what: &'static str, error: sqlx::Error) -> Self {
        Self::classify(what, error.into())
    }

    /// An error that reached the service as `anyhow` (with context added on
    /// the way): transient if a PostgreSQL failure in its chain is, which
    /// then names `what` as unavailable; permanent otherwise.
    pub fn classify(what: &'static str, error: anyhow::Error) -> Self {
        #[cfg(feature = "postgres")]
        {
            let transient = error
                .chain()
                .filter_map(|cause| cause.downcast_ref::<sqlx::Error>())
                .any(|cause| FailureKind::of_sqlx(cause) == FailureKind::Transient);
            if transient {
                return Self::unavailable(what, error);
            }
        }
        let _ = what;
        Self::Unexpected(error)
    }

    /// Transient or permanent.
    pub fn kind(&self) -> FailureKind {
        match self {
            Self::Unavailable { .. } => FailureKind::Transient,
            Self::Unexpected(_) => FailureKind::Permanent,
        }
    }
}

impl From<Fault> for Status {
    fn from(fault: Fault) -> Self {
        match fault {
            Fault::Unavailable { what, source } => {
                tracing::warn!(error = format!("{source:#}"), "{what} is unavailable");
                Status::unavailable(format!("{what} is unavailable; retry shortly"))
            }
            Fault::Unexpected(error) => {
                tracing::error!(error = ?error, "unexpected failure");
                Status::internal("internal error")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_the_callers_and_outages_transient() {
        assert_eq!(
            FailureKind::of_status(&Status::failed_precondition("taken")),
            FailureKind::Caller
        );
        assert_eq!(
            FailureKind::of_status(&Status::unavailable("down")),
            FailureKind::Transient
        );
        assert_eq!(
            FailureKind::of_status(&Status::internal("bug")),
            FailureKind::Permanent
        );
    }

    #[test]
    fn an_unexpected_fault_does_not_leak_its_text() {
        let status = Status::from(Fault::Unexpected(anyhow::anyhow!("password=hunter2")));
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), "internal error");
    }

    #[test]
    fn an_unavailable_store_is_unavailable_and_named() {
        let status = Status::from(Fault::unavailable("the call store", anyhow::anyhow!("refused")));
        assert_eq!(status.code(), Code::Unavailable);
        assert!(status.message().starts_with("the call store is unavailable"));
        assert!(!status.message().contains("refused"));
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn an_unreachable_pool_is_transient_and_a_decode_error_permanent() {
        assert_eq!(
            FailureKind::of_sqlx(&sqlx::Error::PoolTimedOut),
            FailureKind::Transient
        );
        assert_eq!(
            FailureKind::of_sqlx(&sqlx::Error::RowNotFound),
            FailureKind::Permanent
        );
    }
}
