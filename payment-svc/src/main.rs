#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = payment_svc::Config::load()?;
    svc_kit::telemetry::init("payment-svc", &config.log)?;
    let app = payment_svc::App::build(config).await?;
    tracing::info!(addr = %app.local_addr(), "payment-svc listening");
    app.run_until_stopped(svc_kit::shutdown::signal()).await
}
