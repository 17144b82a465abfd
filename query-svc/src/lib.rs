//! query-svc: the read side (CQRS). Projects the domain events from JetStream
//! into Redis and serves the customers' mypage and the analysts' dashboard.
//!
//! - [`domain`]: what each event means for the read models, and the
//!   dashboard's counters; no I/O.
//! - `service`: the use cases: the reads (ownership, read-your-writes,
//!   watching, pages, the dashboard) and the rebuild.
//! - `store`: Redis: the key layout, the atomic apply script, reads,
//!   generations, and the change notifications over one pub/sub connection
//!   fanned out to watchers (see its docs for the keys).
//! - [`events`]: the event stream: the projector (the durable consumer
//!   applying events to Redis, with its projection-lag metrics) and the
//!   ordered replay a rebuild reads.
//! - [`grpc`]: the `taxi.query.v1.QueryService` API and its conversions.
//! - [`app`]: builds everything and runs the service, and the one-shot
//!   [`rebuild`](fn@rebuild); [`config`]: its settings; [`error`]: its error
//!   and the mapping to gRPC.

pub mod app;
pub mod config;
pub mod domain;
pub mod error;
pub mod events;
pub mod grpc;
mod service;
mod store;

pub use app::{App, rebuild};
pub use config::{Config, RedisConfig};
pub use error::QueryError;
pub use events::PROJECTOR_DURABLE;
pub use service::rebuild::RebuildReport;
