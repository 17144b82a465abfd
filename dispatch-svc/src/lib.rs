//! dispatch-svc: drivers, their availability and location, offers of
//! requested calls to nearby drivers, and the atomic assignment of drivers to
//! calls.
//!
//! - [`domain`]: the rules, without I/O: driver status transitions and why an
//!   assignment or a change is refused, search areas, how a call is offered
//!   and what a WatchOffers stream has shown.
//! - [`service`]: the use cases, as methods of [`Dispatch`]: registering,
//!   going on- and offline, location, availability, assignment and release;
//!   opening and closing a call's round of offers and the cleanup loop; and
//!   the WatchOffers feeds ([`OfferStreams`]), which resync with the database.
//! - [`store`]: PostgreSQL schema `dispatch` (drivers, assignments, offers,
//!   outbox), rows in and out; a use case runs its statements in one
//!   transaction, so each driver change commits with its event.
//! - [`events`]: the driver events published through the outbox, the
//!   consumer of call events that hands them to the offer use cases, and
//!   offer notifications on core NATS with the messages they carry.
//! - [`grpc`]: the `taxi.dispatch.v1.DispatchService` API and its
//!   conversions; WatchOffers adapts a feed to a tonic stream.
//! - [`app`]: builds every part and runs them; [`config`]: the settings;
//!   [`error`]: the error type and its one mapping to gRPC codes.

pub mod app;
pub mod config;
pub mod domain;
pub mod error;
pub mod events;
pub mod grpc;
pub mod service;
pub mod store;

pub use app::App;
pub use config::Config;
pub use error::DispatchError;
pub use events::offers::OFFERS_DURABLE;
pub use service::{Dispatch, OfferStreams};
