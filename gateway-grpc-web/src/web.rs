//! The plain HTTP/1.1 port: the browser app's built files (any path that is
//! not a file gets `index.html`, so the app's own routes survive a reload)
//! and, in development only, `POST /dev/token`, which mints a token for a role
//! and subject so the app can sign in without an identity provider. `GET
//! /metrics` answers the gateway's Prometheus metrics here too (the issue lets
//! the gateway share this port rather than open an admin port of its own).

use std::{path::Path, sync::Arc, time::Duration};

use axum::{
    Json, Router,
    extract::{State, rejection::JsonRejection},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{any, get, post},
};
use serde::{Deserialize, Serialize};
use svc_kit::metrics::{CONTENT_TYPE, Registry, encode};
use tower_http::services::{ServeDir, ServeFile};
use uuid::Uuid;

use crate::{auth, config::Config};

/// How long a dev token lives.
pub const DEV_TOKEN_TTL: Duration = Duration::from_secs(3_600);

/// The roles a dev token may carry (never `service`).
const ROLES: [&str; 3] = ["customer", "driver", "analyst"];

/// `POST /dev/token` body.
#[derive(Debug, Deserialize)]
struct TokenRequest {
    role: String,
    /// A UUID; a new one when absent.
    subject: Option<String>,
}

/// `POST /dev/token` answer.
#[derive(Debug, Serialize)]
struct TokenResponse {
    token: String,
    role: String,
    subject: String,
    expires_in_secs: u64,
}

#[derive(Debug, Serialize)]
struct ErrorBody {
    error: String,
}

fn bad_request(error: impl Into<String>) -> Response {
    (StatusCode::BAD_REQUEST, Json(ErrorBody { error: error.into() })).into_response()
}

/// The router of the HTTP port; `/metrics` serves `registry`.
pub fn router(config: &Config, registry: Arc<Registry>) -> Router {
    let root = Path::new(&config.web_root);
    let index = root.join("index.html");
    if !index.is_file() {
        tracing::warn!(
            web_root = %root.display(),
            "the browser app is not built (no index.html); run `npm install && npm run build` in web/"
        );
    }
    let files = ServeDir::new(root).fallback(ServeFile::new(index));
    let router = if config.dev_tokens {
        tracing::warn!("POST /dev/token mints tokens for anyone: development only");
        Router::new().route(
            "/dev/token",
            post(mint_token).with_state(Arc::new(config.auth.clone())),
        )
    } else {
        // Not the app's index.html either: the path does not exist here.
        Router::new().route("/dev/token", any(|| async { StatusCode::NOT_FOUND }))
    };
    router
        .route(
            "/metrics",
            get(move || async move { ([(http::header::CONTENT_TYPE, CONTENT_TYPE)], encode(&registry)) }),
        )
        .fallback_service(files)
}

async fn mint_token(
    State(auth_config): State<Arc<crate::config::AuthConfig>>,
    body: Result<Json<TokenRequest>, JsonRejection>,
) -> Response {
    let Json(request) = match body {
        Ok(body) => body,
        Err(rejection) => return bad_request(rejection.body_text()),
    };
    if !ROLES.contains(&request.role.as_str()) {
        return bad_request(format!(
            "role must be one of customer, driver, analyst (not {:?})",
            request.role
        ));
    }
    let subject = match request.subject.as_deref().map(str::trim) {
        None | Some("") => Uuid::new_v4(),
        Some(text) => match Uuid::parse_str(text) {
            Ok(subject) => subject,
            Err(_) => return bad_request(format!("subject must be a UUID (not {text:?})")),
        },
    };
    match auth::mint(&auth_config, &request.role, subject, DEV_TOKEN_TTL) {
        Ok(token) => Json(TokenResponse {
            token,
            role: request.role,
            subject: subject.to_string(),
            expires_in_secs: DEV_TOKEN_TTL.as_secs(),
        })
        .into_response(),
        Err(error) => {
            tracing::error!(%error, "cannot mint a dev token");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::path::PathBuf;

    use axum::body::Body;
    use http_body_util::BodyExt as _;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tower::ServiceExt as _;

    use super::*;
    use crate::{App, auth::Authenticator, routes::Backend};

    /// A built app of two files in a directory of its own.
    fn web_root() -> PathBuf {
        let root = std::env::temp_dir().join(format!("gateway-web-{}", Uuid::new_v4()));
        std::fs::create_dir_all(root.join("assets")).unwrap();
        std::fs::write(root.join("index.html"), "<!doctype html><title>Taxi</title>").unwrap();
        std::fs::write(root.join("assets/app.js"), "console.log('taxi')").unwrap();
        root
    }

    fn config(dev_tokens: bool) -> Config {
        let mut config = Config {
            listen_addr: "127.0.0.1:0".into(),
            http_addr: "127.0.0.1:0".into(),
            web_root: web_root().display().to_string(),
            dev_tokens,
            identity: svc_kit::testing::gateway_signer(),
            ..Config::default()
        };
        config.auth.hs256_secret = format!("test-secret-{}", Uuid::new_v4()).into();
        config
    }

    async fn call(config: &Config, method: &str, path: &str, body: &str) -> (StatusCode, String) {
        let request = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap();
        let response = router(config, Arc::default()).oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[tokio::test]
    async fn dev_tokens_mint_a_token_the_gateway_accepts() {
        let config = config(true);
        let subject = Uuid::new_v4();
        let (status, body) = call(
            &config,
            "POST",
            "/dev/token",
            &format!(r#"{{"role": "driver", "subject": "{subject}"}}"#),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
        let token = answer["token"].as_str().unwrap();
        let header = http::HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
        let caller = Authenticator::from_config(&config.auth)
            .unwrap()
            .verify(Some(&header))
            .unwrap();
        assert_eq!(caller, svc_kit::identity::Caller::Driver(subject));
        assert_eq!(answer["subject"], subject.to_string());
    }

    #[tokio::test]
    async fn a_dev_token_without_a_subject_gets_a_new_one() {
        let (status, body) = call(&config(true), "POST", "/dev/token", r#"{"role": "analyst"}"#).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(Uuid::parse_str(answer["subject"].as_str().unwrap()).is_ok());
    }

    #[tokio::test]
    async fn dev_tokens_refuse_other_roles_bad_subjects_and_bad_json() {
        let config = config(true);
        for body in [
            r#"{"role": "service"}"#,
            r#"{"role": "admin", "subject": "6b0b3c5e-8d43-4f4e-9d43-6c1a4c2b0a11"}"#,
            r#"{"role": "customer", "subject": "not-a-uuid"}"#,
            r#"{"subject": "6b0b3c5e-8d43-4f4e-9d43-6c1a4c2b0a11"}"#,
            "not json",
        ] {
            let (status, answer) = call(&config, "POST", "/dev/token", body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body} -> {answer}");
            assert!(answer.contains("error"), "{answer}");
        }
    }

    #[tokio::test]
    async fn without_dev_tokens_the_path_does_not_exist() {
        let config = config(false);
        for method in ["POST", "GET"] {
            let (status, body) = call(&config, method, "/dev/token", r#"{"role": "customer"}"#).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method}: {body}");
            assert!(!body.contains("Taxi"), "{method}: not the app either");
        }
    }

    #[tokio::test]
    async fn the_app_is_served_with_index_html_for_its_own_routes() {
        let config = config(false);
        let (status, body) = call(&config, "GET", "/", "").await;
        assert_eq!(
            (status, body.contains("<title>Taxi</title>")),
            (StatusCode::OK, true)
        );
        let (status, body) = call(&config, "GET", "/assets/app.js", "").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "console.log('taxi')"));
        let (status, body) = call(&config, "GET", "/driver", "").await;
        assert_eq!(
            (status, body.contains("<title>Taxi</title>")),
            (StatusCode::OK, true)
        );
    }

    /// One HTTP/1.1 exchange over a fresh connection.
    async fn http1(addr: std::net::SocketAddr, request: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer
    }

    #[tokio::test]
    async fn the_gateway_serves_the_app_and_dev_tokens_on_its_http_port_until_stopped() {
        let mut config = config(true);
        config.drain_grace_ms = 1_000;
        // No backend is needed for this port.
        for backend in Backend::ALL {
            config.backends.get_mut(backend).url = "http://127.0.0.1:9".into();
        }
        let app = App::build(config).await.unwrap();
        let (grpc_addr, http_addr) = (app.local_addr(), app.http_addr());
        assert_ne!(grpc_addr, http_addr);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(app.run_until_stopped(async {
            let _ = stopped.await;
        }));

        let page = http1(
            http_addr,
            "GET /customer HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(page.starts_with("HTTP/1.1 200"), "{page}");
        assert!(page.contains("<title>Taxi</title>"), "{page}");
        let body = r#"{"role": "customer"}"#;
        let token = http1(
            http_addr,
            &format!(
                "POST /dev/token HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        )
        .await;
        assert!(token.starts_with("HTTP/1.1 200"), "{token}");
        assert!(token.contains(r#""token":""#), "{token}");
        let metrics = http1(
            http_addr,
            "GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
        // (The per-RPC families show once a call has been made.)
        for family in [
            "gateway_breaker_state",
            "gateway_breaker_rejections",
            "gateway_retries",
            "gateway_shed",
            "gateway_rate_limited",
            "gateway_stream_cap_refusals",
            "gateway_auth_failures",
        ] {
            assert!(
                metrics.contains(&format!("# TYPE {family} ")),
                "{family} in {metrics}"
            );
        }
        assert!(
            metrics.contains("gateway_breaker_state{backend=\"call-svc\"} 0"),
            "{metrics}"
        );
        // The gRPC port still refuses plain HTTP: the two stay apart.
        let refused = http1(
            grpc_addr,
            "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(!refused.contains("<title>Taxi</title>"), "{refused}");

        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), running)
            .await
            .expect("stops within the drain grace")
            .unwrap()
            .unwrap();
        assert!(
            tokio::net::TcpStream::connect(http_addr).await.is_err(),
            "the HTTP port is closed"
        );
    }
}
