//! The `taxi.payment.v1.PaymentService` API: identity and role checks, then
//! validation, then the use case; errors become statuses in `error.rs`.

mod convert;

use std::sync::Arc;

use svc_kit::identity::Caller;
use taxi_proto::payment::v1::{
    ChargeAdvanceRequest, ChargeAdvanceResponse, ListPaymentsRequest, ListPaymentsResponse, RefundRequest,
    RefundResponse, SettleFinalRequest, SettleFinalResponse, payment_service_server::PaymentService,
};
use tonic::{Request, Response, Status};

use crate::{error::PaymentError, service::Payments};

/// The gRPC face of [`Payments`].
pub struct PaymentApi {
    payments: Arc<Payments>,
    max_amount_krw: i64,
}

impl PaymentApi {
    pub fn new(payments: Arc<Payments>, max_amount_krw: i64) -> Self {
        Self {
            payments,
            max_amount_krw,
        }
    }
}

#[tonic::async_trait]
impl PaymentService for PaymentApi {
    async fn charge_advance(
        &self,
        request: Request<ChargeAdvanceRequest>,
    ) -> Result<Response<ChargeAdvanceResponse>, Status> {
        Caller::of(&request)?.service()?;
        let cmd =
            convert::charge_advance(request.get_ref(), self.max_amount_krw).map_err(PaymentError::from)?;
        let entry = self.payments.charge_advance(cmd).await?;
        Ok(Response::new(ChargeAdvanceResponse {
            entry: Some(convert::ledger_entry(&entry)),
        }))
    }

    async fn settle_final(
        &self,
        request: Request<SettleFinalRequest>,
    ) -> Result<Response<SettleFinalResponse>, Status> {
        Caller::of(&request)?.service()?;
        let cmd =
            convert::settle_final(request.get_ref(), self.max_amount_krw).map_err(PaymentError::from)?;
        let moved = self.payments.settle_final(cmd).await?;
        Ok(Response::new(SettleFinalResponse {
            entry: moved.entry.as_ref().map(convert::ledger_entry),
            net_paid_krw: moved.net_paid_krw,
        }))
    }

    async fn refund(&self, request: Request<RefundRequest>) -> Result<Response<RefundResponse>, Status> {
        Caller::of(&request)?.service()?;
        let cmd = convert::refund(request.get_ref(), self.max_amount_krw).map_err(PaymentError::from)?;
        let moved = self.payments.refund(cmd).await?;
        Ok(Response::new(RefundResponse {
            entry: moved.entry.as_ref().map(convert::ledger_entry),
            net_paid_krw: moved.net_paid_krw,
        }))
    }

    async fn list_payments(
        &self,
        request: Request<ListPaymentsRequest>,
    ) -> Result<Response<ListPaymentsResponse>, Status> {
        let caller = Caller::of(&request)?;
        if let Caller::Driver(_) = caller {
            return Err(PaymentError::PermissionDenied("drivers may not read payments".into()).into());
        }
        let call_id = convert::call_id(request.get_ref()).map_err(PaymentError::from)?;
        let ledger = self.payments.ledger(call_id).await?;
        // A customer reads only the ledger of a call they paid for. Someone
        // else's ledger is shown as empty, exactly as a call with no entries
        // (or no call at all), so nobody can probe which calls exist.
        if let Caller::Customer(customer_id) = caller
            && !ledger.involves_customer(customer_id)
        {
            return Ok(Response::new(ListPaymentsResponse::default()));
        }
        Ok(Response::new(ListPaymentsResponse {
            net_paid_krw: ledger.net_paid_krw(),
            entries: ledger.entries().iter().map(convert::ledger_entry).collect(),
        }))
    }
}
