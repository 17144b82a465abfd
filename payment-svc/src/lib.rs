//! payment-svc: the payment ledger of every call (advance, final settlement,
//! refunds), charged through a pluggable provider.
//!
//! - [`domain`]: entries and the ledger's arithmetic (net paid, settlement); no I/O.
//! - [`service`]: the use cases ([`Payments`](service::Payments): charge,
//!   settle, refund, read the ledger) and the crash-safe pending → provider
//!   → outcome protocol they share, and the business figures they record
//!   ([`PaymentMetrics`](service::PaymentMetrics), registered by
//!   [`Payments::register_metrics`](service::Payments::register_metrics)).
//! - [`provider`]: the card processor behind the ledger, as a trait, and the
//!   simulated provider. It is an outbound adapter (I/O to a third party),
//!   so it is neither a use case nor storage; it sits at the top level
//!   beside [`store`], the other side the service talks to, and is public so
//!   that tests and a deployment can plug in their own.
//! - [`store`]: the [`Store`](store::Store) over PostgreSQL schema `payment`
//!   (entries, settlements, per-call event versions; the outbox beside them).
//! - [`events`]: the payment events written to the outbox (payment-svc
//!   consumes none).
//! - [`grpc`]: the `taxi.payment.v1.PaymentService` API and its conversions.
//! - [`app`]: wires and runs the service; [`config`]: its settings;
//!   [`error`]: errors and their status codes.

pub mod app;
pub mod config;
pub mod domain;
pub mod error;
pub mod events;
pub mod grpc;
pub mod provider;
pub mod service;
pub mod store;

pub use app::App;
pub use config::Config;
pub use error::PaymentError;
