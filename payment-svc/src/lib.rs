//! payment-svc: the payment ledger of every call (advance, final settlement,
//! refunds), charged through a pluggable provider.
//!
//! - [`domain`]: entries and the ledger's arithmetic (net paid, settlement); no I/O.
//! - [`service`]: the use cases and the crash-safe charge/refund protocol.
//! - [`provider`]: the provider trait and the simulated provider.
//! - [`events`]: the payment events written to the outbox.
//! - [`store`]: PostgreSQL schema `payment` (entries, settlements, outbox).
//! - [`grpc`]: the `taxi.payment.v1.PaymentService` API and its conversions.
//! - [`app`]: builds and runs the service; [`config`]: its settings;
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
