//! The dashboard and the alerts cannot rot: `promtool` accepts the committed
//! rules and config, and a real Prometheus (Debian's `prometheus`, started
//! by the test on a free port) scrapes a running platform every second with
//! `deploy/prometheus/prometheus.yml`'s jobs and `alerts.yml`'s rules while
//! the test drives two trips, a canceled call, a watched call and a request
//! without a token.
//!
//! Then every panel query of `deploy/grafana/taxi.json` (with Grafana's
//! `$__rate_interval` and `$__interval` replaced by `1m`) and every alert's
//! expression (as Prometheus loaded it, read back from `/api/v1/rules`) is
//! sent to `/api/v1/query` and must return a non-empty result. A healthy
//! platform fires none of the alerts, so an alert's expression is queried
//! without its threshold: the last comparison outside parentheses and label
//! matchers (`> 0.05`, `== 2`, `>= max(...)`) is cut off, which leaves the
//! quantity the alert watches (an error ratio, a breaker state, the
//! connections in use); "returns data" then means the families and labels
//! it names exist. The rules must also all have been evaluated without
//! error, carry a `runbook` annotation, and none may fire.

use std::{
    ffi::OsString,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use serde_json::Value;
use svc_kit::testing::ServerProcess;
use system_tests::metrics::get;
use taxi_proto::{call::v1::CancelCallRequest, query::v1::WatchCallRequest};
use tokio_stream::StreamExt as _;
use tonic::{Code, Request};
use uuid::Uuid;

use crate::helpers::*;

/// A file of the repository's `deploy/` folder.
fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy").join(path)
}

/// Runs `promtool` with `args`, and asserts it succeeds.
fn promtool(args: &[&std::ffi::OsStr]) {
    let output = std::process::Command::new("promtool")
        .args(args)
        .output()
        .expect("promtool runs (apt-get install prometheus)");
    assert!(
        output.status.success(),
        "promtool {args:?}:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn promtool_accepts_the_alert_rules_and_the_scrape_config() {
    let rules = deploy("prometheus/alerts.yml");
    let config = deploy("prometheus/prometheus.yml");
    promtool(&["check".as_ref(), "rules".as_ref(), rules.as_os_str()]);
    promtool(&["check".as_ref(), "config".as_ref(), config.as_os_str()]);
}

/// `s` with every byte but the unreserved ones percent-encoded.
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The status line of `GET path`.
async fn status(addr: SocketAddr, path: &str) -> String {
    let (head, _) = get(addr, path).await;
    head.lines().next().unwrap_or_default().to_owned()
}

/// `GET path` on Prometheus's HTTP API, parsed as JSON.
async fn api(addr: SocketAddr, path: &str) -> Value {
    let (head, body) = get(addr, path).await;
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{path}: {head}\n\n{body}"
    );
    let body: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(body["status"], "success", "{path}: {body}");
    body["data"].clone()
}

/// The result of an instant query.
async fn query(addr: SocketAddr, promql: &str) -> Vec<Value> {
    let data = api(addr, &format!("/api/v1/query?query={}", percent_encode(promql))).await;
    data["result"].as_array().cloned().unwrap_or_default()
}

/// The one value of an instant query that sums to one series (0 when empty).
async fn scalar(addr: SocketAddr, promql: &str) -> f64 {
    query(addr, promql)
        .await
        .first()
        .and_then(|series| series["value"][1].as_str()?.parse().ok())
        .unwrap_or(0.0)
}

/// `expr` without its last comparison at the top level (outside
/// parentheses, brackets, braces and quotes): the quantity an alert compares
/// with its threshold. An expression without one is returned as it is.
fn without_threshold(expr: &str) -> &str {
    let bytes = expr.as_bytes();
    let (mut depth, mut quoted, mut cut) = (0_i32, false, None);
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'"' => quoted = !quoted,
            _ if quoted => {}
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth -= 1,
            b'>' | b'<' | b'=' | b'!' if depth == 0 => {
                let next = bytes.get(i + 1).copied();
                let is_comparison = match b {
                    b'>' | b'<' => true,
                    _ => next == Some(b'='),
                };
                if is_comparison {
                    cut = Some(i);
                    if next == Some(b'=') {
                        i += 1;
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    cut.map_or(expr, |at| expr[..at].trim_end())
}

#[test]
fn without_threshold_cuts_the_last_top_level_comparison_only() {
    assert_eq!(without_threshold("up == 0"), "up");
    assert_eq!(
        without_threshold("max by (job) (x{state=\"a\",c!=\"b\"}) >= max by (job) (y)"),
        "max by (job) (x{state=\"a\",c!=\"b\"})"
    );
    assert_eq!(
        without_threshold("(sum(rate(a{c=~\"U|I\"}[5m])) or b * 0) / sum(c) > 0.05"),
        "(sum(rate(a{c=~\"U|I\"}[5m])) or b * 0) / sum(c)"
    );
    assert_eq!(without_threshold("sum(rate(a[5m]))"), "sum(rate(a[5m]))");
}

/// Every `expr` of every panel target in the dashboard, with its panel's title.
fn dashboard_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(deploy("grafana/taxi.json")).expect("the dashboard");
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut queries = Vec::new();
    let mut panels: Vec<Value> = dashboard["panels"].as_array().cloned().unwrap_or_default();
    while let Some(panel) = panels.pop() {
        panels.extend(panel["panels"].as_array().cloned().unwrap_or_default());
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("a target has an expr");
            let expr = expr
                .replace("$__rate_interval", "1m")
                .replace("$__interval", "1m");
            queries.push((panel["title"].as_str().unwrap_or_default().to_owned(), expr));
        }
    }
    queries
}

/// A Prometheus process of the test's own, with its storage in a directory
/// of its own, removed on drop.
struct Prometheus {
    server: ServerProcess,
    dir: PathBuf,
}

impl Prometheus {
    /// Starts Prometheus with `deploy/prometheus/prometheus.yml`, its
    /// targets replaced by `targets` (the jobs' addresses by job name),
    /// scraping and evaluating every second.
    async fn start(targets: &[(&str, String)]) -> Self {
        let dir = std::env::temp_dir().join(format!("taxi-prometheus-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("a directory");
        let mut config =
            std::fs::read_to_string(deploy("prometheus/prometheus.yml")).expect("the scrape config");
        let mut replace = |from: &str, to: &str| {
            assert!(config.contains(from), "{from} in prometheus.yml");
            config = config.replace(from, to);
        };
        replace("scrape_interval: 15s", "scrape_interval: 1s");
        replace("evaluation_interval: 15s", "evaluation_interval: 1s");
        replace(
            "- alerts.yml",
            &format!("- {}", deploy("prometheus/alerts.yml").display()),
        );
        for (job, addr) in targets {
            let port = match *job {
                "call-svc" => "9101",
                "dispatch-svc" => "9102",
                "payment-svc" => "9103",
                "query-svc" => "9104",
                _ => "8081",
            };
            replace(&format!("\"127.0.0.1:{port}\""), &format!("\"{addr}\""));
        }
        let config_file = dir.join("prometheus.yml");
        std::fs::write(&config_file, config).expect("write the config");
        let storage = dir.join("data");
        let server = ServerProcess::start("prometheus", |port, _log| {
            vec![
                OsString::from(format!("--config.file={}", config_file.display())),
                format!("--storage.tsdb.path={}", storage.display()).into(),
                format!("--web.listen-address=127.0.0.1:{port}").into(),
                "--log.level=warn".into(),
            ]
        })
        .await
        .expect("start prometheus (apt-get install prometheus)");
        let prometheus = Self { server, dir };
        // It listens before its storage and rules are loaded, answering 503
        // until then.
        system_tests::poll(
            Duration::from_secs(30),
            || status(prometheus.addr(), "/-/ready"),
            |head| head.contains(" 200 "),
        )
        .await;
        prometheus
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.server.port()))
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.server.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn every_panel_query_and_every_alert_expression_returns_data_from_a_real_prometheus() {
    // Arrange: the platform, and Prometheus scraping its five ports.
    let app = spawn_app_with(|config| config.http_addr = free_local_addr()).await;
    let admin = &app.backends.admin;
    let targets = [
        ("call-svc", admin["call-svc"].to_string()),
        ("dispatch-svc", admin["dispatch-svc"].to_string()),
        ("payment-svc", admin["payment-svc"].to_string()),
        ("query-svc", admin["query-svc"].to_string()),
        ("gateway", app.config.http_addr.clone()),
    ];
    let prometheus = Prometheus::start(&targets).await;
    let prom = prometheus.addr();
    system_tests::poll(
        Duration::from_secs(30),
        || scalar(prom, "sum(up)"),
        |up| *up == 5.0,
    )
    .await;

    // Act: two trips, one watched by its customer; a call canceled after
    // its acceptance; a request without a token.
    for watched in [true, false] {
        let customer = app.customer();
        let (call, driver) = app.accepted_call(&customer).await;
        if watched {
            let request = WatchCallRequest {
                call_id: call.call_id.clone(),
                from_version: 0,
            };
            let mut watch = app
                .query_client()
                .watch_call(bearer(&customer, request))
                .await
                .expect("watch")
                .into_inner();
            watch.next().await.expect("a view").expect("a view");
        }
        app.start_trip(&driver, &call.call_id).await.expect("start");
        app.complete_trip(&driver, &call.call_id).await.expect("complete");
    }
    let customer = app.customer();
    let (call, _driver) = app.accepted_call(&customer).await;
    let cancel = CancelCallRequest {
        call_id: call.call_id.clone(),
        expected_version: 0,
    };
    app.call_client()
        .cancel_call(bearer(&customer, cancel))
        .await
        .expect("the customer cancels");
    let anonymous = app
        .call_client()
        .request_call(Request::new(call_request()))
        .await
        .expect_err("no token");
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    // Prometheus has scraped the trips' ends, and their projections.
    system_tests::poll(
        Duration::from_secs(30),
        || {
            scalar(
                prom,
                "sum(saga_calls_finished_total) + sum(saga_calls_canceled_total)",
            )
        },
        |done| *done >= 3.0,
    )
    .await;
    system_tests::poll(
        Duration::from_secs(30),
        || scalar(prom, "sum(projection_lag_seconds_count)"),
        |projected| *projected >= 8.0,
    )
    .await;
    // A few more scrapes, so every rate has two samples after the change,
    // and a few more evaluations of the rules.
    tokio::time::sleep(Duration::from_secs(4)).await;

    // Assert: every panel's query has data.
    let panels = dashboard_queries();
    assert!(panels.len() >= 30, "{} queries", panels.len());
    let mut empty = Vec::new();
    for (title, expr) in &panels {
        if query(prom, expr).await.is_empty() {
            empty.push(format!("panel {title:?}: {expr}"));
        }
    }
    // Every alert was loaded, evaluated without error, has a runbook line,
    // and does not fire; its expression without the threshold has data.
    let groups = api(prom, "/api/v1/rules?type=alert").await;
    let rules: Vec<Value> = groups["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|group| group["rules"].as_array().cloned().unwrap_or_default())
        .collect();
    assert!(rules.len() >= 12, "{groups}");
    for rule in &rules {
        let name = rule["name"].as_str().expect("a name");
        assert_eq!(rule["health"], "ok", "{name}: {rule}");
        assert!(
            rule["annotations"]["runbook"]
                .as_str()
                .is_some_and(|runbook| runbook.len() > 40),
            "{name} has a runbook line"
        );
        assert_ne!(rule["state"], "firing", "{name} fires: {rule}");
        let expr = without_threshold(rule["query"].as_str().expect("a query"));
        if query(prom, expr).await.is_empty() {
            empty.push(format!("alert {name}: {expr}"));
        }
    }
    assert!(empty.is_empty(), "queries without data:\n{}", empty.join("\n"));
}
