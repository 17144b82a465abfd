//! The event stream, the read side's only input: query-svc publishes nothing.
//!
//! - [`projector`]: the durable JetStream consumer that applies each domain
//!   event to the active generation of the read models, retrying Redis for a
//!   while before handing an event back; its metrics (projection lag,
//!   events applied by type and skipped) are registered by
//!   [`Projector::register_metrics`](projector::Projector::register_metrics).
//! - `replay`: reading a range of the stream in order, for a rebuild, without
//!   disturbing the projector.
//!
//! The change notifications watchers wait on are not here: they travel over
//! Redis pub/sub, published by the store's apply script, so they live in
//! `store::notify`.

pub mod projector;
pub(crate) mod replay;

pub use projector::PROJECTOR_DURABLE;
