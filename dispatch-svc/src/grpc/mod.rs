//! The `taxi.dispatch.v1.DispatchService` API: identity checks, request
//! validation and conversions around the store, and WatchOffers streams.

mod api;
pub mod convert;
mod watch;

pub use api::DispatchApi;
pub use watch::{OfferStream, OfferStreams};
