//! The `taxi.call.v1.CallService` API: identify the caller, parse the request,
//! run the use case, convert the answer.

mod convert;

use std::sync::Arc;

use svc_kit::identity::Caller;
use taxi_proto::call::v1::{
    AcceptCallRequest, AcceptCallResponse, CancelCallRequest, CancelCallResponse, CompleteTripRequest,
    CompleteTripResponse, GetCallRequest, GetCallResponse, QuoteFareRequest, QuoteFareResponse,
    RequestCallRequest, RequestCallResponse, SettleBalanceRequest, SettleBalanceResponse, StartTripRequest,
    StartTripResponse, call_service_server::CallService,
};
use tonic::{Request, Response, Status};

use crate::{events::wire_call, service::Calls};

/// The tonic implementation of `CallService`.
pub struct CallApi {
    calls: Arc<Calls>,
}

impl CallApi {
    pub fn new(calls: Arc<Calls>) -> Self {
        Self { calls }
    }
}

#[tonic::async_trait]
impl CallService for CallApi {
    #[tracing::instrument(skip_all)]
    async fn quote_fare(
        &self,
        request: Request<QuoteFareRequest>,
    ) -> Result<Response<QuoteFareResponse>, Status> {
        Caller::of(&request)?.customer()?;
        let (taxi_type, pickup, dropoff) = convert::quote(request.get_ref())?;
        let quote = self.calls.quote(taxi_type, pickup, dropoff);
        Ok(Response::new(QuoteFareResponse {
            estimated_distance_m: quote.distance_m,
            fare_krw: quote.fare_krw,
            cancel_fee_krw: self.calls.cancel_fee_krw().min(quote.fare_krw),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn request_call(
        &self,
        request: Request<RequestCallRequest>,
    ) -> Result<Response<RequestCallResponse>, Status> {
        let customer = Caller::of(&request)?.customer()?;
        let parsed = convert::call_request(customer, request.get_ref())?;
        let call = self.calls.request_call(parsed).await?;
        Ok(Response::new(RequestCallResponse {
            call: Some(wire_call(&call)),
        }))
    }

    #[tracing::instrument(skip_all, fields(call_id = %request.get_ref().call_id))]
    async fn accept_call(
        &self,
        request: Request<AcceptCallRequest>,
    ) -> Result<Response<AcceptCallResponse>, Status> {
        let driver = Caller::of(&request)?.driver()?;
        let call_id = convert::call_id(&request.get_ref().call_id)?;
        let call = self.calls.accept_call(driver, call_id).await?;
        Ok(Response::new(AcceptCallResponse {
            call: Some(wire_call(&call)),
        }))
    }

    #[tracing::instrument(skip_all, fields(call_id = %request.get_ref().call_id))]
    async fn start_trip(
        &self,
        request: Request<StartTripRequest>,
    ) -> Result<Response<StartTripResponse>, Status> {
        let driver = Caller::of(&request)?.driver()?;
        let call_id = convert::call_id(&request.get_ref().call_id)?;
        let call = self.calls.start_trip(driver, call_id).await?;
        Ok(Response::new(StartTripResponse {
            call: Some(wire_call(&call)),
        }))
    }

    #[tracing::instrument(skip_all, fields(call_id = %request.get_ref().call_id))]
    async fn complete_trip(
        &self,
        request: Request<CompleteTripRequest>,
    ) -> Result<Response<CompleteTripResponse>, Status> {
        let driver = Caller::of(&request)?.driver()?;
        let (call_id, distance_m) = convert::complete_trip(request.get_ref())?;
        let call = self.calls.complete_trip(driver, call_id, distance_m).await?;
        Ok(Response::new(CompleteTripResponse {
            call: Some(wire_call(&call)),
        }))
    }

    #[tracing::instrument(skip_all, fields(call_id = %request.get_ref().call_id))]
    async fn cancel_call(
        &self,
        request: Request<CancelCallRequest>,
    ) -> Result<Response<CancelCallResponse>, Status> {
        let customer = Caller::of(&request)?.customer()?;
        let (call_id, expected_version) = convert::cancel_call(request.get_ref())?;
        let call = self
            .calls
            .cancel_call(customer, call_id, expected_version)
            .await?;
        Ok(Response::new(CancelCallResponse {
            call: Some(wire_call(&call)),
        }))
    }

    #[tracing::instrument(skip_all, fields(call_id = %request.get_ref().call_id))]
    async fn settle_balance(
        &self,
        request: Request<SettleBalanceRequest>,
    ) -> Result<Response<SettleBalanceResponse>, Status> {
        let customer = Caller::of(&request)?.customer()?;
        let (call_id, payment_method) = convert::settle_balance(request.get_ref())?;
        let call = self
            .calls
            .settle_balance(customer, call_id, payment_method)
            .await?;
        Ok(Response::new(SettleBalanceResponse {
            call: Some(wire_call(&call)),
        }))
    }

    #[tracing::instrument(skip_all, fields(call_id = %request.get_ref().call_id))]
    async fn get_call(&self, request: Request<GetCallRequest>) -> Result<Response<GetCallResponse>, Status> {
        let caller = Caller::of(&request)?;
        let call_id = convert::call_id(&request.get_ref().call_id)?;
        let call = self.calls.get_call(&caller, call_id).await?;
        Ok(Response::new(GetCallResponse {
            call: Some(wire_call(&call)),
        }))
    }
}
