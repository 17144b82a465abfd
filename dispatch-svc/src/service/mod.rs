//! The use cases of dispatch-svc, as methods of [`Dispatch`]: what each
//! request and each call event does, step by step, with the rules from
//! `domain`, the rows from `store` and the events from `events`.
//!
//! - [`drivers`]: registration, going on- and offline, location, and the
//!   count of available drivers.
//! - [`assignments`]: assigning a driver to a call and releasing them.
//! - [`offers`]: opening a call's round of offers, closing it, and the
//!   cleanup of expired offers with the loop that repeats it.
//! - [`watch`]: WatchOffers feeds, which follow one driver's offers.

use std::time::Duration;

use chrono::TimeDelta;
use uuid::Uuid;

use crate::{
    domain::{Driver, OfferPolicy},
    error::DispatchError,
    events::notify::Notifications,
    store::Store,
};

pub mod assignments;
pub mod drivers;
pub mod offers;
pub mod watch;

pub use offers::{OfferCleanup, Round};
pub use watch::{FeedEnd, OfferFeed, OfferStreams};

/// The values the use cases apply, from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// How requested calls are offered.
    pub offers: OfferPolicy,
    /// How long a call's round of offers is remembered; a CallRequested older
    /// than this is stale, as its round may have been forgotten.
    pub round_retention: TimeDelta,
    /// Drivers whose last location is older than this are not available.
    pub location_max_age: Duration,
}

/// Dispatch's use cases, shared by the gRPC API and the consumer of call
/// events.
#[derive(Debug, Clone)]
pub struct Dispatch {
    store: Store,
    notifications: Notifications,
    settings: Settings,
}

impl Dispatch {
    /// The use cases over `store`, telling drivers of offers through
    /// `notifications`, under `settings`.
    pub fn new(store: Store, notifications: Notifications, settings: Settings) -> Self {
        Self {
            store,
            notifications,
            settings,
        }
    }
}

/// The driver `driver_id` as read, or NOT_FOUND when there is no such row.
fn registered(driver: Option<Driver>, driver_id: Uuid) -> Result<Driver, DispatchError> {
    driver.ok_or(DispatchError::DriverNotFound(driver_id))
}
