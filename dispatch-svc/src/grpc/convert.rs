//! Requests to domain commands (collecting every bad field), domain values
//! to their wire form, and the end of a WatchOffers feed to a status. (An
//! offer's wire form is in `events::notify`: the notification carries it.)

use svc_kit::{
    clock::to_proto as timestamp,
    geo::GeoPoint,
    validate::{InvalidArgument, Violations},
};
use taxi_proto::dispatch::v1 as pb;
use tonic::Status;

use crate::{
    domain::{
        AssignCommand, Driver, DriverDetails, DriverStatus, ReleaseCommand, SearchArea, area::MAX_RADIUS_M,
    },
    service::FeedEnd,
};

const MAX_NAME_CHARS: usize = 100;
const MAX_LICENSE_PLATE_CHARS: usize = 20;

/// RegisterDriver's details.
pub fn driver_details(request: &pb::RegisterDriverRequest) -> Result<DriverDetails, InvalidArgument> {
    let mut v = Violations::new();
    let name = v.text("name", &request.name, MAX_NAME_CHARS);
    let license_plate = v.text("license_plate", &request.license_plate, MAX_LICENSE_PLATE_CHARS);
    let taxi_type = v.taxi_type("taxi_type", request.taxi_type);
    v.finish()?;
    match (name, license_plate, taxi_type) {
        (Some(name), Some(license_plate), Some(taxi_type)) => Ok(DriverDetails {
            name,
            license_plate,
            taxi_type,
        }),
        _ => Err(unreachable_violation()),
    }
}

/// UpdateLocation's point.
pub fn location(request: &pb::UpdateLocationRequest) -> Result<GeoPoint, InvalidArgument> {
    let mut v = Violations::new();
    let point = GeoPoint::parse("location", request.location.as_ref(), &mut v);
    v.finish()?;
    point.ok_or_else(unreachable_violation)
}

/// CheckAvailability's taxi type and area; a radius of 0 means `default_radius_m`.
pub fn availability_query(
    request: &pb::CheckAvailabilityRequest,
    default_radius_m: u32,
) -> Result<(taxi_proto::common::v1::TaxiType, SearchArea), InvalidArgument> {
    let mut v = Violations::new();
    let taxi_type = v.taxi_type("taxi_type", request.taxi_type);
    let center = GeoPoint::parse("pickup", request.pickup.as_ref(), &mut v);
    let radius_m = match u32::try_from(request.radius_m) {
        Ok(0) => Some(default_radius_m),
        Ok(radius) if radius <= MAX_RADIUS_M => Some(radius),
        _ => {
            v.add(
                "radius_m",
                format!("must be 0 (the default) or within 1..={MAX_RADIUS_M}"),
            );
            None
        }
    };
    v.finish()?;
    match (taxi_type, center, radius_m) {
        (Some(taxi_type), Some(center), Some(radius_m)) => Ok((taxi_type, SearchArea { center, radius_m })),
        _ => Err(unreachable_violation()),
    }
}

/// AssignDriver's command.
pub fn assign_command(request: &pb::AssignDriverRequest) -> Result<AssignCommand, InvalidArgument> {
    let mut v = Violations::new();
    let call_id = v.uuid("call_id", &request.call_id);
    let driver_id = v.uuid("driver_id", &request.driver_id);
    let taxi_type = v.taxi_type("taxi_type", request.taxi_type);
    v.finish()?;
    match (call_id, driver_id, taxi_type) {
        (Some(call_id), Some(driver_id), Some(taxi_type)) => Ok(AssignCommand {
            call_id,
            driver_id,
            taxi_type,
        }),
        _ => Err(unreachable_violation()),
    }
}

/// ReleaseDriver's command.
pub fn release_command(request: &pb::ReleaseDriverRequest) -> Result<ReleaseCommand, InvalidArgument> {
    let mut v = Violations::new();
    let call_id = v.uuid("call_id", &request.call_id);
    let driver_id = v.uuid("driver_id", &request.driver_id);
    v.finish()?;
    match (call_id, driver_id) {
        (Some(call_id), Some(driver_id)) => Ok(ReleaseCommand { call_id, driver_id }),
        _ => Err(unreachable_violation()),
    }
}

/// Every parser above records a violation whenever it returns `None`, so
/// `finish()` has already failed; this only keeps the code free of panics.
fn unreachable_violation() -> InvalidArgument {
    InvalidArgument::field("request", "is malformed")
}

/// The wire form of a driver.
pub fn driver(driver: &Driver) -> pb::Driver {
    pb::Driver {
        driver_id: driver.id.to_string(),
        name: driver.name.clone(),
        license_plate: driver.license_plate.clone(),
        taxi_type: driver.taxi_type.into(),
        status: status(driver.status).into(),
        location: driver.location.map(GeoPoint::to_proto),
        current_call_id: driver
            .current_call_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        updated_at: Some(timestamp(driver.updated_at)),
    }
}

/// Why a WatchOffers stream ended, for the client: UNAVAILABLE, so it
/// watches again.
pub fn feed_end(end: FeedEnd) -> Status {
    match end {
        FeedEnd::ShuttingDown => Status::unavailable("dispatch-svc is shutting down; watch again"),
        FeedEnd::NotificationsEnded => Status::unavailable("offer notifications ended; watch again"),
    }
}

fn status(status: DriverStatus) -> pb::DriverStatus {
    match status {
        DriverStatus::Offline => pb::DriverStatus::Offline,
        DriverStatus::Available => pb::DriverStatus::Available,
        DriverStatus::OnCall => pb::DriverStatus::OnCall,
    }
}

#[cfg(test)]
mod tests {
    use taxi_proto::common::v1::{LatLng, TaxiType};

    use super::*;

    fn fields(err: InvalidArgument) -> Vec<String> {
        err.0.into_iter().map(|(field, _)| field).collect()
    }

    #[test]
    fn registration_names_every_bad_field() {
        let request = pb::RegisterDriverRequest {
            name: " ".into(),
            license_plate: "X".repeat(21),
            taxi_type: 0,
        };
        let err = driver_details(&request).expect_err("all bad");
        assert_eq!(fields(err), ["name", "license_plate", "taxi_type"]);
    }

    #[test]
    fn registration_trims_the_details() {
        let request = pb::RegisterDriverRequest {
            name: "  Kim  ".into(),
            license_plate: "12가3456".into(),
            taxi_type: TaxiType::Van.into(),
        };
        let details = driver_details(&request).expect("valid");
        assert_eq!(details.name, "Kim");
        assert_eq!(details.taxi_type, TaxiType::Van);
    }

    #[test]
    fn a_zero_radius_means_the_default_and_out_of_range_ones_are_rejected() {
        let mut request = pb::CheckAvailabilityRequest {
            taxi_type: TaxiType::Normal.into(),
            pickup: Some(LatLng {
                latitude: 37.5,
                longitude: 127.0,
            }),
            radius_m: 0,
        };
        let (_, area) = availability_query(&request, 3_000).expect("valid");
        assert_eq!(area.radius_m, 3_000);
        for bad in [-1, 50_001] {
            request.radius_m = bad;
            let err = availability_query(&request, 3_000).expect_err("bad radius");
            assert_eq!(fields(err), ["radius_m"]);
        }
        request.radius_m = 50_000;
        assert!(availability_query(&request, 3_000).is_ok());
    }

    #[test]
    fn assignment_ids_must_be_uuids() {
        let request = pb::AssignDriverRequest {
            call_id: "call-1".into(),
            driver_id: String::new(),
            taxi_type: 99,
        };
        let err = assign_command(&request).expect_err("all bad");
        assert_eq!(fields(err), ["call_id", "driver_id", "taxi_type"]);
    }
}
