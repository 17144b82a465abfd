//! Tokens for the gateway, from its development sign-in (`POST /dev/token` on
//! its HTTP port, which `scripts/run.sh` turns on), as the browser app gets
//! them; loadgen holds no key of the gateway's.

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use uuid::Uuid;

/// A token for `subject` in `role` (`customer`, `driver` or `analyst`) from the
/// gateway's HTTP port at `http_url` (`http://host:port`).
pub(crate) async fn dev_token(http_url: &str, role: &str, subject: Uuid) -> anyhow::Result<String> {
    let body = serde_json::json!({ "role": role, "subject": subject.to_string() }).to_string();
    let request = http::Request::post(format!("{http_url}/dev/token"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))?;
    let client = Client::builder(TokioExecutor::new()).build_http();
    let response = client
        .request(request)
        .await
        .with_context(|| format!("cannot reach the gateway's sign-in at {http_url}"))?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    anyhow::ensure!(
        status.is_success(),
        "the gateway refused a development token ({status}); is it running with GATEWAY_DEV_TOKENS=true?"
    );
    let answer: serde_json::Value = serde_json::from_slice(&body)?;
    answer["token"]
        .as_str()
        .map(str::to_owned)
        .context("the gateway's sign-in answered without a token")
}
