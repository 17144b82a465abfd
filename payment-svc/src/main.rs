#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = payment_svc::Config::load()?;
    let telemetry = svc_kit::telemetry::init("payment-svc", &config.log)?;
    let app = payment_svc::App::build(config).await?;
    tracing::info!(addr = %app.local_addr(), "payment-svc listening");
    let stopped = app.run_until_stopped(svc_kit::shutdown::signal()).await;
    telemetry.shutdown().await;
    stopped
}
