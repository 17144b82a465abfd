//! The `taxi.dispatch.v1.DispatchService` API: identity checks, request
//! validation and conversions around the use cases in `service`.
//!
//! - [`api`]: the tonic implementation, [`DispatchApi`].
//! - [`convert`]: requests to domain commands, domain values to replies.

pub mod api;
pub mod convert;

pub use api::{DispatchApi, OfferStream};
