//! End-to-end tests of the gateway: the four services started in-process on
//! random ports against one fresh database, and the gateway in front of them,
//! driven over gRPC and gRPC-web with tokens the tests mint or forge.
#![allow(unreachable_pub)]

mod grpc_web;
mod helpers;
mod raw;

mod authentication;
mod bad_bytes;
mod balance;
mod breaker;
mod cors;
mod fuzz;
mod health;
mod internal_methods;
mod metrics;
mod ownership;
mod prometheus;
mod rate_limit;
mod replicas;
mod streams;
mod trace;
mod trip_over_grpc;
mod trip_over_grpc_web;
