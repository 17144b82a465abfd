//! Plumbing shared by the taxi services, free of any service's domain.
//!
//! - [`config`]: typed configuration from environment variables with defaults.
//! - [`telemetry`]: one `tracing` subscriber (JSON or pretty).
//! - [`grpc`]: serving with health, reflection and graceful drain; client channels.
//! - [`identity`]: who is calling, from the `x-taxi-*` metadata.
//! - [`validate`]: request validation that reports every bad field at once.
//! - [`db`]: PostgreSQL pools confined to one schema, migrations at start-up.
//! - [`outbox`]: appending domain events in the same transaction as the change.
//! - [`geo`]: coordinates and distances.
//! - [`breaker`]: a circuit breaker for calls to another service.
//! - [`clock`]: the current UTC time at the precision the stores keep.
//! - `testing` (feature): fresh databases for integration tests.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod breaker;
pub mod clock;
pub mod config;
pub mod db;
pub mod geo;
pub mod grpc;
pub mod identity;
pub mod outbox;
pub mod shutdown;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod validate;
