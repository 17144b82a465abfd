//! Load generator and benchmarks against a running system
//! (`TAXI_PROFILE=release scripts/run.sh --detach`), through gRPC only.
//!
//! - `loadgen trips [SECONDS] [WORKERS]` (defaults 30, 4): whole trips back to
//!   back; command latency and projection lag against a plain view read.
//! - `loadgen gateway [SECONDS] [CONCURRENCY]` (defaults 10, 8): GetCallView
//!   through the gateway against the same call made directly to query-svc.
//!   Run the gateway with a rate limit above the load, e.g.
//!   `GATEWAY_LIMITS__RATE_PER_SECOND=1000000 GATEWAY_LIMITS__BURST=1000000`.
//!   Its tokens come from the gateway's development sign-in
//!   (`LOADGEN_GATEWAY_HTTP_URL`, default `http://127.0.0.1:8081`).
//!
//! Calls made directly to a service stand in for the gateway: they carry an
//! identity token signed with the gateway's key, by default the development
//! key `scripts/run.sh` creates (`LOADGEN_SIGNING_KEY_FILE` to change it).

mod gateway;
mod otlp_sink;
mod token;
mod trips;

use std::{sync::OnceLock, time::Instant};

use hdrhistogram::Histogram;
use svc_kit::identity::{Caller, Signer, SignerConfig};
use tonic::{Request, transport::Channel};

/// Signs the identities of direct calls, as the gateway would.
static SIGNER: OnceLock<Signer> = OnceLock::new();

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize, default: u64| -> anyhow::Result<u64> {
        Ok(args.get(i).map(|a| a.parse()).transpose()?.unwrap_or(default))
    };
    if args.first().map(String::as_str) == Some("otlp-sink") {
        return otlp_sink::run(args.get(1).map_or("127.0.0.1:4317", String::as_str)).await;
    }
    let key = SignerConfig {
        signing_key_file: url("LOADGEN_SIGNING_KEY_FILE", ".run/keys/gateway.key.pem").into(),
    };
    let _ = SIGNER.set(Signer::from_config("loadgen", &key)?);
    match args.first().map(String::as_str) {
        Some("gateway") => gateway::run(number(1, 10)?, usize::try_from(number(2, 8)?)?).await,
        Some("trips") | None => trips::run(number(1, 30)?, usize::try_from(number(2, 4)?)?).await,
        Some(other) => anyhow::bail!("unknown mode {other:?}; use `trips`, `gateway` or `otlp-sink`"),
    }
}

fn url(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

/// `message` on behalf of `caller`, straight to a service.
fn as_caller<T>(caller: &Caller, message: T) -> Request<T> {
    match SIGNER.get() {
        Some(signer) => signer.request(caller, message),
        // Set before any request is made; without it the service refuses.
        None => Request::new(message),
    }
}

fn micros(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX)
}

async fn channel(url: &str) -> anyhow::Result<Channel> {
    Ok(tonic::transport::Endpoint::from_shared(url.to_owned())?
        .connect()
        .await?)
}

fn ms(histogram: &Histogram<u64>, quantile: f64) -> f64 {
    histogram.value_at_quantile(quantile) as f64 / 1_000.0
}
