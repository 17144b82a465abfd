//! Dispatch rules without I/O: driver status transitions, why an assignment is
//! refused, the area an availability search covers, and how calls are offered.

pub mod area;
pub mod assignment;
pub mod driver;
pub mod offer;

pub use area::{BoundingBox, SearchArea};
pub use assignment::{AssignCommand, Assignment, ReleaseCommand};
pub use driver::{Driver, DriverDetails, DriverStatus};
pub use offer::{CallEvent, Offer, OfferPolicy, RequestedCall, SentOffers, Withdrawal};

/// A request that is well formed but not allowed in the current state
/// (FAILED_PRECONDITION). The messages are part of the API: call-svc shows or
/// matches them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("call already assigned")]
    CallAlreadyAssigned,
    #[error("assignment of this call was released")]
    AssignmentReleased,
    #[error("driver is offline")]
    DriverOffline,
    #[error("driver is on another call")]
    DriverOnAnotherCall,
    #[error("driver drives {drives}, the call needs {wanted}")]
    WrongTaxiType {
        drives: &'static str,
        wanted: &'static str,
    },
    /// The driver was available when read but lost the race for the row.
    #[error("driver is not available")]
    DriverUnavailable,
    #[error("driver is on a call")]
    OnCall,
    #[error("taxi type cannot change while on a call")]
    TaxiTypeLockedOnCall,
    /// Only a driver holding a live offer of a call may take it.
    #[error("no live offer of this call: it was never offered to this driver, or was withdrawn or expired")]
    NoLiveOffer,
}
