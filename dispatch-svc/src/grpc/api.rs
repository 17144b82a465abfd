//! The tonic implementation of `DispatchService`: who may call what, the
//! request's conversion, one use case per method, and the answer's
//! conversion. WatchOffers hands over to a feed task, whose end becomes a
//! status here.

use futures::StreamExt as _;
use svc_kit::identity::Caller;
use taxi_proto::dispatch::v1::{
    AssignDriverRequest, AssignDriverResponse, CheckAvailabilityRequest, CheckAvailabilityResponse,
    GetDriverRequest, GetDriverResponse, RegisterDriverRequest, RegisterDriverResponse, ReleaseDriverRequest,
    ReleaseDriverResponse, SetOfflineRequest, SetOfflineResponse, SetOnlineRequest, SetOnlineResponse,
    UpdateLocationRequest, UpdateLocationResponse, WatchOffersRequest, WatchOffersResponse,
    dispatch_service_server::DispatchService,
};
use tonic::{Request, Response, Status};

use super::convert;
use crate::{
    error::DispatchError,
    service::{Dispatch, FeedEnd, OfferFeed, OfferStreams},
};

/// What a WatchOffers stream yields: its feed, with the end as a status.
pub type OfferStream = futures::stream::Map<
    OfferFeed,
    fn(Result<WatchOffersResponse, FeedEnd>) -> Result<WatchOffersResponse, Status>,
>;

/// Serves `taxi.dispatch.v1.DispatchService`.
#[derive(Debug, Clone)]
pub struct DispatchApi {
    dispatch: Dispatch,
    default_radius_m: u32,
    offers: OfferStreams,
}

impl DispatchApi {
    /// The API over `dispatch`; CheckAvailability searches `default_radius_m`
    /// when the request does not say; WatchOffers feeds come from `offers`.
    pub fn new(dispatch: Dispatch, default_radius_m: u32, offers: OfferStreams) -> Self {
        Self {
            dispatch,
            default_radius_m,
            offers,
        }
    }
}

#[tonic::async_trait]
impl DispatchService for DispatchApi {
    async fn register_driver(
        &self,
        request: Request<RegisterDriverRequest>,
    ) -> Result<Response<RegisterDriverResponse>, Status> {
        let driver_id = Caller::of(&request)?.driver()?;
        let details = convert::driver_details(request.get_ref()).map_err(DispatchError::from)?;
        let driver = self.dispatch.register(driver_id, &details).await?;
        Ok(Response::new(RegisterDriverResponse {
            driver: Some(convert::driver(&driver)),
        }))
    }

    async fn set_online(
        &self,
        request: Request<SetOnlineRequest>,
    ) -> Result<Response<SetOnlineResponse>, Status> {
        let driver_id = Caller::of(&request)?.driver()?;
        let driver = self.dispatch.set_online(driver_id).await?;
        Ok(Response::new(SetOnlineResponse {
            driver: Some(convert::driver(&driver)),
        }))
    }

    async fn set_offline(
        &self,
        request: Request<SetOfflineRequest>,
    ) -> Result<Response<SetOfflineResponse>, Status> {
        let driver_id = Caller::of(&request)?.driver()?;
        let driver = self.dispatch.set_offline(driver_id).await?;
        Ok(Response::new(SetOfflineResponse {
            driver: Some(convert::driver(&driver)),
        }))
    }

    async fn update_location(
        &self,
        request: Request<UpdateLocationRequest>,
    ) -> Result<Response<UpdateLocationResponse>, Status> {
        let driver_id = Caller::of(&request)?.driver()?;
        let location = convert::location(request.get_ref()).map_err(DispatchError::from)?;
        let driver = self.dispatch.update_location(driver_id, location).await?;
        Ok(Response::new(UpdateLocationResponse {
            driver: Some(convert::driver(&driver)),
        }))
    }

    async fn get_driver(
        &self,
        request: Request<GetDriverRequest>,
    ) -> Result<Response<GetDriverResponse>, Status> {
        let driver_id = Caller::of(&request)?.driver()?;
        let driver = self.dispatch.driver(driver_id).await?;
        Ok(Response::new(GetDriverResponse {
            driver: Some(convert::driver(&driver)),
        }))
    }

    type WatchOffersStream = OfferStream;

    async fn watch_offers(
        &self,
        request: Request<WatchOffersRequest>,
    ) -> Result<Response<Self::WatchOffersStream>, Status> {
        let driver_id = Caller::of(&request)?.driver()?;
        let feed = self.offers.open(driver_id).await?;
        let to_status: fn(_) -> _ = |item: Result<_, FeedEnd>| item.map_err(convert::feed_end);
        Ok(Response::new(feed.map(to_status)))
    }

    async fn check_availability(
        &self,
        request: Request<CheckAvailabilityRequest>,
    ) -> Result<Response<CheckAvailabilityResponse>, Status> {
        Caller::of(&request)?.service()?;
        let (taxi_type, area) = convert::availability_query(request.get_ref(), self.default_radius_m)
            .map_err(DispatchError::from)?;
        let count = self.dispatch.count_available(taxi_type, area).await?;
        Ok(Response::new(CheckAvailabilityResponse {
            available_drivers: i32::try_from(count).unwrap_or(i32::MAX),
        }))
    }

    async fn assign_driver(
        &self,
        request: Request<AssignDriverRequest>,
    ) -> Result<Response<AssignDriverResponse>, Status> {
        Caller::of(&request)?.service()?;
        let command = convert::assign_command(request.get_ref()).map_err(DispatchError::from)?;
        let driver = self.dispatch.assign(command).await?;
        Ok(Response::new(AssignDriverResponse {
            driver: Some(convert::driver(&driver)),
        }))
    }

    async fn release_driver(
        &self,
        request: Request<ReleaseDriverRequest>,
    ) -> Result<Response<ReleaseDriverResponse>, Status> {
        Caller::of(&request)?.service()?;
        let command = convert::release_command(request.get_ref()).map_err(DispatchError::from)?;
        let released = self.dispatch.release(command).await?;
        Ok(Response::new(ReleaseDriverResponse { released }))
    }
}
