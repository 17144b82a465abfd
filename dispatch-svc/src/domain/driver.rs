//! The driver aggregate: who drives what, whether they take calls, and the
//! rules for moving between OFFLINE, AVAILABLE and ON_CALL.

use chrono::{DateTime, Utc};
use svc_kit::geo::GeoPoint;
use taxi_proto::common::v1::TaxiType;
use uuid::Uuid;

use super::Refusal;

/// What a driver is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverStatus {
    Offline,
    Available,
    OnCall,
}

impl DriverStatus {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Offline => "OFFLINE",
            Self::Available => "AVAILABLE",
            Self::OnCall => "ON_CALL",
        }
    }

    /// Reads the stored form.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "OFFLINE" => Some(Self::Offline),
            "AVAILABLE" => Some(Self::Available),
            "ON_CALL" => Some(Self::OnCall),
            _ => None,
        }
    }

    /// The status after going online, or `None` when the driver already is.
    pub fn online(self) -> Option<Self> {
        match self {
            Self::Offline => Some(Self::Available),
            Self::Available | Self::OnCall => None,
        }
    }

    /// The status after going offline, `None` when the driver already is;
    /// refused in the middle of a call.
    pub fn offline(self) -> Result<Option<Self>, Refusal> {
        match self {
            Self::Available => Ok(Some(Self::Offline)),
            Self::Offline => Ok(None),
            Self::OnCall => Err(Refusal::OnCall),
        }
    }
}

/// What a driver states when registering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverDetails {
    pub name: String,
    pub license_plate: String,
    pub taxi_type: TaxiType,
}

/// A registered driver.
#[derive(Debug, Clone, PartialEq)]
pub struct Driver {
    pub id: Uuid,
    pub name: String,
    pub license_plate: String,
    pub taxi_type: TaxiType,
    pub status: DriverStatus,
    pub location: Option<GeoPoint>,
    pub location_updated_at: Option<DateTime<Utc>>,
    pub current_call_id: Option<Uuid>,
    pub version: i64,
    pub updated_at: DateTime<Utc>,
}

impl Driver {
    /// Whether registering again with `details` changes anything. A driver on
    /// a call keeps their taxi type: the call was matched on it.
    pub fn reregistration(&self, details: &DriverDetails) -> Result<bool, Refusal> {
        if self.status == DriverStatus::OnCall && self.taxi_type != details.taxi_type {
            return Err(Refusal::TaxiTypeLockedOnCall);
        }
        Ok(self.name != details.name
            || self.license_plate != details.license_plate
            || self.taxi_type != details.taxi_type)
    }

    /// Why this driver could not be assigned to a call of `taxi_type`.
    pub fn assignment_refusal(&self, taxi_type: TaxiType) -> Refusal {
        if self.taxi_type != taxi_type {
            return Refusal::WrongTaxiType {
                drives: self.taxi_type.as_str_name(),
                wanted: taxi_type.as_str_name(),
            };
        }
        match self.status {
            DriverStatus::Offline => Refusal::DriverOffline,
            DriverStatus::OnCall => Refusal::DriverOnAnotherCall,
            DriverStatus::Available => Refusal::DriverUnavailable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn driver(status: DriverStatus, taxi_type: TaxiType) -> Driver {
        Driver {
            id: Uuid::new_v4(),
            name: "Kim".into(),
            license_plate: "12가3456".into(),
            taxi_type,
            status,
            location: None,
            location_updated_at: None,
            current_call_id: (status == DriverStatus::OnCall).then(Uuid::new_v4),
            version: 1,
            updated_at: Utc::now(),
        }
    }

    fn details(taxi_type: TaxiType) -> DriverDetails {
        DriverDetails {
            name: "Kim".into(),
            license_plate: "12가3456".into(),
            taxi_type,
        }
    }

    #[test]
    fn status_round_trips_through_its_stored_form() {
        for status in [
            DriverStatus::Offline,
            DriverStatus::Available,
            DriverStatus::OnCall,
        ] {
            assert_eq!(DriverStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(DriverStatus::parse("BUSY"), None);
    }

    #[test]
    fn only_an_offline_driver_changes_when_going_online() {
        assert_eq!(DriverStatus::Offline.online(), Some(DriverStatus::Available));
        assert_eq!(DriverStatus::Available.online(), None);
        assert_eq!(DriverStatus::OnCall.online(), None);
    }

    #[test]
    fn going_offline_is_refused_on_a_call_and_a_no_op_when_offline() {
        assert_eq!(DriverStatus::Available.offline(), Ok(Some(DriverStatus::Offline)));
        assert_eq!(DriverStatus::Offline.offline(), Ok(None));
        assert_eq!(DriverStatus::OnCall.offline(), Err(Refusal::OnCall));
    }

    #[test]
    fn registering_the_same_details_again_changes_nothing() {
        let kim = driver(DriverStatus::Available, TaxiType::Normal);
        assert_eq!(kim.reregistration(&details(TaxiType::Normal)), Ok(false));
        assert_eq!(kim.reregistration(&details(TaxiType::Van)), Ok(true));
    }

    #[test]
    fn a_driver_on_a_call_cannot_change_taxi_type_but_may_change_name() {
        let kim = driver(DriverStatus::OnCall, TaxiType::Normal);
        assert_eq!(
            kim.reregistration(&details(TaxiType::Premium)),
            Err(Refusal::TaxiTypeLockedOnCall)
        );
        let renamed = DriverDetails {
            name: "Kim Minsu".into(),
            ..details(TaxiType::Normal)
        };
        assert_eq!(kim.reregistration(&renamed), Ok(true));
    }

    #[test]
    fn assignment_refusal_names_the_reason() {
        assert_eq!(
            driver(DriverStatus::Available, TaxiType::Van).assignment_refusal(TaxiType::Normal),
            Refusal::WrongTaxiType {
                drives: "TAXI_TYPE_VAN",
                wanted: "TAXI_TYPE_NORMAL"
            }
        );
        assert_eq!(
            driver(DriverStatus::Offline, TaxiType::Normal).assignment_refusal(TaxiType::Normal),
            Refusal::DriverOffline
        );
        assert_eq!(
            driver(DriverStatus::OnCall, TaxiType::Normal).assignment_refusal(TaxiType::Normal),
            Refusal::DriverOnAnotherCall
        );
    }
}
