//! The steps of a trip, each one request to one service on behalf of
//! whoever takes it (see [`Credentials`]), so that the same steps run
//! straight against the backends and through the gateway.

use taxi_proto::{
    call::v1::{
        AcceptCallRequest, Call, CompleteTripRequest, RequestCallRequest, StartTripRequest,
        call_service_client::CallServiceClient,
    },
    common::v1::{LatLng, TaxiType},
    dispatch::v1::{
        Driver, GetDriverRequest, RegisterDriverRequest, SetOnlineRequest, UpdateLocationRequest,
        dispatch_service_client::DispatchServiceClient,
    },
    query::v1::{CallView, GetCallViewRequest, query_service_client::QueryServiceClient},
};
use tonic::{Status, transport::Channel};

use crate::identity::Credentials;

/// Registers `driver` with a taxi of `taxi_type`, online, standing at `at`.
pub async fn online_driver(
    dispatch: &DispatchServiceClient<Channel>,
    driver: &impl Credentials,
    taxi_type: TaxiType,
    at: LatLng,
) {
    let mut dispatch = dispatch.clone();
    let register = RegisterDriverRequest {
        name: "Kim Gisa".into(),
        license_plate: "12가3456".into(),
        taxi_type: taxi_type.into(),
    };
    dispatch
        .register_driver(driver.attach(register))
        .await
        .expect("register");
    dispatch
        .set_online(driver.attach(SetOnlineRequest {}))
        .await
        .expect("online");
    let location = UpdateLocationRequest { location: Some(at) };
    dispatch
        .update_location(driver.attach(location))
        .await
        .expect("location");
}

/// The driver's own record.
pub async fn driver_record(dispatch: &DispatchServiceClient<Channel>, driver: &impl Credentials) -> Driver {
    dispatch
        .clone()
        .get_driver(driver.attach(GetDriverRequest {}))
        .await
        .expect("get driver")
        .into_inner()
        .driver
        .expect("driver")
}

/// The customer's new call (a driver must be online).
pub async fn request_call(
    calls: &CallServiceClient<Channel>,
    customer: &impl Credentials,
    request: RequestCallRequest,
) -> Call {
    calls
        .clone()
        .request_call(customer.attach(request))
        .await
        .expect("request call")
        .into_inner()
        .call
        .expect("call")
}

/// The driver accepts the call once they hold its offer. Only a driver
/// holding a live offer may accept, and the offer reaches dispatch-svc
/// through the event stream a moment after the request, so this waits for
/// it as a driver's app waits for WatchOffers: a refusal for want of an
/// offer is retried for a few seconds, any other answer returned.
pub async fn accept(
    calls: &CallServiceClient<Channel>,
    driver: &impl Credentials,
    call_id: &str,
) -> Result<Call, Status> {
    let request = AcceptCallRequest {
        call_id: call_id.into(),
    };
    let deadline = tokio::time::Instant::now() + OFFER_PATIENCE;
    loop {
        match calls.clone().accept_call(driver.attach(request.clone())).await {
            Err(status) if is_no_live_offer(&status) && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(crate::poll::EVERY).await;
            }
            answer => return Ok(answer?.into_inner().call.expect("call")),
        }
    }
}

/// How long [`accept`] waits for the driver's offer to be made.
pub const OFFER_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// Whether `status` refuses an accept because the driver holds no live
/// offer of the call.
pub fn is_no_live_offer(status: &Status) -> bool {
    status.code() == tonic::Code::FailedPrecondition && status.message().contains("no live offer")
}

pub async fn start_trip(
    calls: &CallServiceClient<Channel>,
    driver: &impl Credentials,
    call_id: &str,
) -> Result<Call, Status> {
    let request = StartTripRequest {
        call_id: call_id.into(),
    };
    let response = calls.clone().start_trip(driver.attach(request)).await?;
    Ok(response.into_inner().call.expect("call"))
}

pub async fn complete_trip(
    calls: &CallServiceClient<Channel>,
    driver: &impl Credentials,
    call_id: &str,
    distance_m: i64,
) -> Result<Call, Status> {
    let request = CompleteTripRequest {
        call_id: call_id.into(),
        distance_m,
    };
    let response = calls.clone().complete_trip(driver.attach(request)).await?;
    Ok(response.into_inner().call.expect("call"))
}

/// The call's view at `min_version` or newer (read-your-writes), as `user`
/// may see it.
pub async fn call_view(
    query: &QueryServiceClient<Channel>,
    user: &impl Credentials,
    call_id: &str,
    min_version: i64,
) -> Result<CallView, Status> {
    let request = GetCallViewRequest {
        call_id: call_id.into(),
        min_version,
    };
    let response = query.clone().get_call_view(user.attach(request)).await?;
    Ok(response.into_inner().view.expect("view"))
}
