#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = call_svc::Config::load()?;
    let telemetry = svc_kit::telemetry::init("call-svc", &config.log)?;
    let app = call_svc::App::build(config).await?;
    tracing::info!(addr = %app.local_addr(), "call-svc listening");
    let stopped = app.run_until_stopped(svc_kit::shutdown::signal()).await;
    telemetry.shutdown().await;
    stopped
}
