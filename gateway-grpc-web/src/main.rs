use std::time::Duration;

/// `gateway-grpc-web` serves; `gateway-grpc-web token ROLE [SUBJECT] [TTL_SECS]`
/// prints a token signed with the configured HS256 secret, for local use.
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = gateway_grpc_web::Config::load()?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some("token") = args.first().map(String::as_str) {
        let role = args.get(1).map(String::as_str).unwrap_or("customer");
        let subject = args
            .get(2)
            .map(|s| s.parse())
            .transpose()?
            .unwrap_or_else(uuid::Uuid::new_v4);
        let ttl = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(3_600);
        println!(
            "{}",
            gateway_grpc_web::auth::mint(&config.auth, role, subject, Duration::from_secs(ttl))?
        );
        return Ok(());
    }
    let telemetry = svc_kit::telemetry::init("gateway-grpc-web", &config.log)?;
    let app = gateway_grpc_web::App::build(config).await?;
    tracing::info!(addr = %app.local_addr(), "gateway listening (gRPC and gRPC-web)");
    tracing::info!(addr = %app.http_addr(), "browser app on http://{}", app.http_addr());
    let stopped = app.run_until_stopped(svc_kit::shutdown::signal()).await;
    telemetry.shutdown().await;
    stopped
}
