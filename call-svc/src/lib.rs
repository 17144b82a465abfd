//! call-svc: customers' taxi calls and the trip saga that call-svc orchestrates.
//!
//! - [`domain`]: the Call aggregate, its state machine and the fare table; no
//!   I/O. Its status and cancel reason map to `taxi.call.v1`'s enums there,
//!   once, for the API and the events alike.
//! - [`service`]: the use cases ([`Calls`](service::Calls): request, accept,
//!   start, complete, cancel, get), which drive dispatch-svc and payment-svc
//!   and commit each change with its event; the effects owed to them and
//!   their retries; and the sweep that expires unaccepted calls and finishes
//!   sagas a crash left half-way, with the loop that repeats it; and the
//!   saga's metrics ([`SagaMetrics`](service::SagaMetrics), registered by
//!   [`Calls::register_metrics`](service::Calls::register_metrics)).
//! - [`store`]: the [`Store`](store::Store) over PostgreSQL schema `call`
//!   (calls, rejected requests, the effects' schedule and leases); the only
//!   other spelling of a status is its text column there.
//! - [`events`]: the events appended to the outbox (call-svc consumes none),
//!   and [`wire_call`](events::wire_call), the one copy of a domain call into
//!   `taxi.call.v1.Call` that the events and the API's answers share.
//! - [`grpc`]: the `taxi.call.v1.CallService` API and its request parsing.
//! - [`app`]: wires and runs the service; [`config`]: its settings;
//!   [`error`]: its errors and their status codes.

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
pub use error::CallError;
