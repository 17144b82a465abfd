//! Integration tests of query-svc: the service started in-process on a random
//! port against the real Redis and NATS, each test under its own Redis key
//! prefix and NATS subject prefix. Events are published straight to JetStream,
//! so the projector is tested without the write services.
#![allow(unreachable_pub)]

mod helpers;

mod dashboard;
mod health;
mod ordering;
mod outage;
mod permissions;
mod poison;
mod rebuild;
mod validation;
mod views;
mod watch;
