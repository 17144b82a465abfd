//! payment-svc end to end: the gRPC API against a real PostgreSQL database.

mod access;
mod advance;
mod health;
mod helpers;
mod metrics;
mod outage;
mod refund;
mod settle;
mod validation;
