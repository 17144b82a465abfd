//! call-svc: customers' taxi calls and the trip saga that call-svc orchestrates.
//!
//! - [`domain`]: the Call aggregate, its state machine, the fare table and the
//!   effects' retry back-off; no I/O.
//! - [`service`]: the use cases (request, accept, start, complete, cancel), which
//!   drive dispatch-svc and payment-svc and commit each change with its event.
//! - [`sweeper`]: expires unaccepted calls and finishes sagas a crash left half-way.
//! - [`store`]: PostgreSQL schema `call` (calls, rejected requests and the outbox).
//! - [`grpc`]: the `taxi.call.v1.CallService` API and its conversions.
//! - [`app`]: builds and runs the service; [`config`]: its settings.

pub mod app;
pub mod config;
pub mod domain;
pub mod error;
pub mod events;
pub mod grpc;
pub mod service;
pub mod store;
pub mod sweeper;

pub use app::App;
pub use config::Config;
pub use error::CallError;
