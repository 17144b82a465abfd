//! payment-svc's errors and their one mapping to gRPC status codes. What is
//! not the caller's fault is a [`Fault`], mapped as every service maps it:
//! clients never see the text of an unexpected error, only that one happened.

use svc_kit::{failure::Fault, validate::InvalidArgument};
use tonic::Status;

use crate::{domain::LedgerError, provider::ProviderError};

#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    #[error(transparent)]
    Invalid(#[from] InvalidArgument),
    #[error("{0}")]
    PermissionDenied(String),
    /// The idempotency key already belongs to a different request.
    #[error("idempotency_key was already used for a different request")]
    KeyReused,
    /// The ledger refuses the movement (second advance, refund above the net,
    /// nothing to charge), or another payment of the call is in flight.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The provider's answer is unknown; the entry stays PENDING and a retry
    /// with the same idempotency key resumes it.
    #[error(transparent)]
    ProviderUnavailable(#[from] ProviderError),
    #[error(transparent)]
    Fault(#[from] Fault),
}

impl From<sqlx::Error> for PaymentError {
    fn from(err: sqlx::Error) -> Self {
        Self::Fault(Fault::store("the payment ledger", err))
    }
}

impl From<anyhow::Error> for PaymentError {
    fn from(err: anyhow::Error) -> Self {
        Self::Fault(Fault::classify("the payment ledger", err))
    }
}

impl From<PaymentError> for Status {
    fn from(err: PaymentError) -> Self {
        match err {
            PaymentError::Invalid(invalid) => invalid.into(),
            PaymentError::PermissionDenied(msg) => Status::permission_denied(msg),
            PaymentError::KeyReused => Status::failed_precondition(err.to_string()),
            PaymentError::Ledger(LedgerError::PaymentInProgress) => {
                Status::aborted(format!("{}; retry", LedgerError::PaymentInProgress))
            }
            PaymentError::Ledger(refused) => Status::failed_precondition(refused.to_string()),
            PaymentError::ProviderUnavailable(error) => {
                tracing::warn!(%error, "payment provider unavailable");
                Status::unavailable("payment provider unavailable; retry with the same idempotency_key")
            }
            PaymentError::Fault(fault) => fault.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn ledger_refusals_are_failed_preconditions_and_races_are_aborted() {
        assert_eq!(
            Status::from(PaymentError::Ledger(LedgerError::AdvanceExists)).code(),
            Code::FailedPrecondition
        );
        assert_eq!(
            Status::from(PaymentError::Ledger(LedgerError::PaymentInProgress)).code(),
            Code::Aborted
        );
        assert_eq!(
            Status::from(PaymentError::KeyReused).code(),
            Code::FailedPrecondition
        );
        assert_eq!(
            Status::from(PaymentError::ProviderUnavailable(ProviderError("down".into()))).code(),
            Code::Unavailable
        );
    }

    #[test]
    fn an_unreachable_ledger_is_unavailable_not_internal() {
        let status = Status::from(PaymentError::from(sqlx::Error::PoolTimedOut));
        assert_eq!(status.code(), Code::Unavailable);
    }
}
