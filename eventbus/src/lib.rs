//! Domain events on NATS JetStream, shared by every service. (Writing them
//! through the outbox and relaying them here is the `outbox` crate's.)
//!
//! - [`Subjects`] and [`NatsConfig`]: one stream per deployment prefix, and a
//!   subject per event, `{prefix}.{aggregate}.{event}.{aggregate_id}`, so that
//!   consumers filter by aggregate or event type with wildcards.
//! - [`stream`]: connecting, and creating or updating the streams at start-up.
//! - [`consumer`]: durable pull consumers with explicit ack, retries with
//!   back-off for transient failures and a dead-letter stream for poison.
//! - [`dead_letters`]: listing a consumer's dead letters and replaying them.
//! - [`trace`]: a span's trace context in message headers, publisher to consumer.
//! - `testing` (feature): isolated prefixes and a private NATS server.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod consumer;
pub mod dead_letters;
mod nats;
pub mod stream;
#[cfg(feature = "testing")]
pub mod testing;
pub mod trace;

pub use nats::{NatsConfig, Subjects};
