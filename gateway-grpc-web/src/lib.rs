//! gateway-grpc-web: the one public entry of the taxi platform.
//!
//! - [`routes`]: which backend owns each public method, built from the
//!   protobuf descriptors; internal methods are refused and hidden.
//! - [`auth`]: JWT verification (HS256, RS256, JWKS) and dev tokens; counts
//!   refusals by reason.
//! - [`proxy`]: forwarding with verified identity, deadlines, read retries and
//!   a circuit breaker per backend; the client RPC metrics, breaker states,
//!   rejections and retries per backend.
//! - [`limits`]: per-subject rate limits and stream caps, gateway-wide load
//!   shedding; counts each refusal.
//! - [`app`]: gRPC and gRPC-web (with CORS) on one port, health per backend,
//!   reflection of the public API, the server RPC metrics of every public
//!   call and the one Prometheus registry; [`config`]: its settings.
//! - [`web`]: the plain HTTP port: the browser app's files, `GET /metrics`
//!   and, in development only, `POST /dev/token`.

pub mod app;
pub mod auth;
pub mod config;
pub mod limits;
pub mod proxy;
pub mod routes;
pub mod web;

pub use app::App;
pub use config::Config;
