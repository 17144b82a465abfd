//! Plumbing shared by the taxi services, free of any service's domain.
//!
//! - [`config`]: typed configuration from environment variables with defaults.
//! - [`telemetry`]: one `tracing` subscriber (JSON or pretty).
//! - [`grpc`]: serving with health, reflection and graceful drain; client channels.
//! - [`identity`]: who is calling: signed identity tokens, verified before
//!   every handler.
//! - [`failure`]: the one error policy: caller's, transient or permanent,
//!   and how each maps to gRPC.
//! - [`metrics`]: the service's Prometheus registry, per-RPC metrics for
//!   gRPC servers and clients, and the admin port serving `/metrics`.
//! - [`secret`]: settings that never print (secrets, URLs with a password).
//! - [`validate`]: request validation that reports every bad field at once.
//! - `db` (feature `postgres`): PostgreSQL pools confined to one schema,
//!   migrations at start-up.
//! - [`geo`]: coordinates and distances.
//! - [`backoff`]: exponential back-off for loops that retry and for stored retries.
//! - [`breaker`]: a circuit breaker for calls to another service.
//! - [`sync`]: locking shared state.
//! - [`clock`]: the current UTC time at the precision the stores keep, and
//!   its protobuf form.
//! - `testing` (feature): in-process services, server processes and fresh
//!   databases for integration tests.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod backoff;
pub mod breaker;
pub mod clock;
pub mod config;
#[cfg(feature = "postgres")]
pub mod db;
pub mod failure;
pub mod geo;
pub mod grpc;
pub mod identity;
pub mod metrics;
pub mod secret;
pub mod shutdown;
pub mod sync;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod validate;
