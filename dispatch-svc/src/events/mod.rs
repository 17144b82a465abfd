//! Call events in, offer notifications out.
//!
//! - [`convert`]: what a call event means for offers.
//! - [`offers`]: the handler of the `dispatch-offers` consumer, which makes and
//!   withdraws offers, and the cleanup of expired ones.
//! - [`notify`]: offer notifications on core NATS, one subject per driver.

pub mod convert;
pub mod notify;
pub mod offers;
