//! What dispatch-svc publishes and what it consumes.
//!
//! - [`publish`]: the driver events dispatch-svc publishes (through the
//!   outbox), built from the changed driver.
//! - [`convert`]: what a call event means for offers.
//! - [`offers`]: the handler of the `dispatch-offers` consumer, which hands
//!   call events to the offer use cases.
//! - [`notify`]: offer notifications on core NATS, one subject per driver,
//!   and the WatchOffers messages they carry.

pub mod convert;
pub mod notify;
pub mod offers;
pub mod publish;
