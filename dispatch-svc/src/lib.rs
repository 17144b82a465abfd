//! dispatch-svc: drivers, their availability and location, offers of
//! requested calls to nearby drivers, and the atomic assignment of drivers to
//! calls.
//!
//! - [`domain`]: driver status rules, assignment rules, search areas and offer
//!   rules; no I/O.
//! - [`store`]: PostgreSQL schema `dispatch` (drivers, assignments, offers,
//!   outbox); each driver state change commits with its event.
//! - [`events`]: the consumer of call events that makes and withdraws offers,
//!   and offer notifications on core NATS.
//! - [`grpc`]: the `taxi.dispatch.v1.DispatchService` API (with the
//!   WatchOffers streams) and its conversions.
//! - [`app`]: builds and runs the service; [`config`]: its settings;
//!   [`error`]: the error type and its one mapping to gRPC codes.

pub mod app;
pub mod config;
pub mod domain;
pub mod error;
pub mod events;
pub mod grpc;
pub mod store;

pub use app::App;
pub use config::Config;
pub use error::DispatchError;
pub use events::offers::OFFERS_DURABLE;
