//! The events dispatch-svc publishes, built from the driver they are about.
//!
//! Each one describes a driver's change: it carries the driver's version and
//! the time of the change (`updated_at`) as read back from the row that made
//! it, so the store appends it to the outbox in the transaction of that change.

use taxi_proto::events::v1::{
    DriverAssigned, DriverOffline, DriverOnline, DriverRegistered, DriverReleased, EventEnvelope,
    event_envelope::Payload,
};
use uuid::Uuid;

use crate::domain::Driver;

/// The driver registered or changed their details.
pub fn driver_registered(driver: &Driver) -> EventEnvelope {
    about(
        driver,
        Payload::DriverRegistered(DriverRegistered {
            driver_id: driver.id.to_string(),
            taxi_type: driver.taxi_type.into(),
        }),
    )
}

/// The driver went from OFFLINE to AVAILABLE.
pub fn driver_online(driver: &Driver) -> EventEnvelope {
    about(
        driver,
        Payload::DriverOnline(DriverOnline {
            driver_id: driver.id.to_string(),
            taxi_type: driver.taxi_type.into(),
        }),
    )
}

/// The driver went from AVAILABLE to OFFLINE.
pub fn driver_offline(driver: &Driver) -> EventEnvelope {
    about(
        driver,
        Payload::DriverOffline(DriverOffline {
            driver_id: driver.id.to_string(),
            taxi_type: driver.taxi_type.into(),
        }),
    )
}

/// The driver was put on `call_id`.
pub fn driver_assigned(driver: &Driver, call_id: Uuid) -> EventEnvelope {
    about(
        driver,
        Payload::DriverAssigned(DriverAssigned {
            driver_id: driver.id.to_string(),
            call_id: call_id.to_string(),
        }),
    )
}

/// The driver was freed of `call_id`.
pub fn driver_released(driver: &Driver, call_id: Uuid) -> EventEnvelope {
    about(
        driver,
        Payload::DriverReleased(DriverReleased {
            driver_id: driver.id.to_string(),
            call_id: call_id.to_string(),
        }),
    )
}

/// An event about `driver` at its current version.
fn about(driver: &Driver, payload: Payload) -> EventEnvelope {
    outbox::envelope(driver.id, driver.version, driver.updated_at, payload)
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use taxi_proto::common::v1::TaxiType;

    use super::*;
    use crate::domain::DriverStatus;

    #[test]
    fn an_event_carries_the_drivers_version_and_the_time_of_the_change() {
        let driver = Driver {
            id: Uuid::new_v4(),
            name: "Kim".into(),
            license_plate: "12가3456".into(),
            taxi_type: TaxiType::Van,
            status: DriverStatus::OnCall,
            location: None,
            location_updated_at: None,
            current_call_id: None,
            version: 7,
            updated_at: Utc::now(),
        };
        let call_id = Uuid::new_v4();

        let event = driver_assigned(&driver, call_id);

        assert_eq!(event.aggregate_id, driver.id.to_string());
        assert_eq!(event.aggregate_version, 7);
        assert_eq!(
            event.occurred_at,
            Some(svc_kit::clock::to_proto(driver.updated_at))
        );
        assert_eq!(
            event.payload,
            Some(Payload::DriverAssigned(DriverAssigned {
                driver_id: driver.id.to_string(),
                call_id: call_id.to_string(),
            }))
        );
    }
}
