//! query-svc: the read side (CQRS). Projects the domain events from JetStream
//! into Redis and serves the customers' mypage and the analysts' dashboard.
//!
//! - [`projection`]: what each event means for the read models; no I/O.
//! - [`projector`]: the durable consumer applying events to Redis.
//! - `store`: the Redis key layout, the atomic apply script, reads and
//!   generations (see its docs for the keys).
//! - `notify`: change notifications over one pub/sub connection, fanned out.
//! - `reads`: the read use cases, ownership, read-your-writes and watching.
//! - [`grpc`]: the `taxi.query.v1.QueryService` API.
//! - [`rebuild`](mod@rebuild): replays the stream into a fresh generation and switches.
//! - [`app`]: builds and runs the service; [`config`]: its settings.

pub mod app;
pub mod config;
pub mod error;
pub mod grpc;
mod notify;
pub mod projection;
pub mod projector;
mod reads;
pub mod rebuild;
mod store;

pub use app::App;
pub use config::{Config, RedisConfig};
pub use error::QueryError;
pub use projector::PROJECTOR_DURABLE;
pub use rebuild::{RebuildReport, rebuild};
