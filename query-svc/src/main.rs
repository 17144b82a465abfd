//! `query-svc` serves the read models; `query-svc rebuild` rebuilds them from
//! the event stream and exits.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = query_svc::Config::load()?;
    svc_kit::telemetry::init("query-svc", &config.log)?;
    match std::env::args().nth(1).as_deref() {
        None => {
            let app = query_svc::App::build(config).await?;
            tracing::info!(addr = %app.local_addr(), "query-svc listening");
            app.run_until_stopped(svc_kit::shutdown::signal()).await
        }
        Some("rebuild") => {
            let report = query_svc::rebuild(config).await?;
            println!("{report:#?}");
            Ok(())
        }
        Some(other) => anyhow::bail!("unknown command {other:?}; usage: query-svc [rebuild]"),
    }
}
