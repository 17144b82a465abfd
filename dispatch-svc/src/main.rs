//! The dispatch-svc binary: configuration, logging, then serve until SIGTERM.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = dispatch_svc::Config::load()?;
    svc_kit::telemetry::init("dispatch-svc", &config.log)?;
    let app = dispatch_svc::App::build(config).await?;
    tracing::info!(addr = %app.local_addr(), "dispatch-svc listening");
    app.run_until_stopped(svc_kit::shutdown::signal()).await
}
