//! The dispatch-svc binary: configuration, logging, then serve until SIGTERM;
//! `dispatch-svc dead-letters [list|replay]` lists or replays the call events
//! the offers consumer gave up on.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = dispatch_svc::Config::load()?;
    let telemetry = svc_kit::telemetry::init("dispatch-svc", &config.log)?;
    let done = match std::env::args().nth(1).as_deref() {
        None => {
            let app = dispatch_svc::App::build(config).await?;
            tracing::info!(addr = %app.local_addr(), "dispatch-svc listening");
            app.run_until_stopped(svc_kit::shutdown::signal()).await
        }
        Some("dead-letters") => {
            let args: Vec<String> = std::env::args().skip(2).collect();
            eventbus::dead_letters::command(&config.nats, dispatch_svc::OFFERS_DURABLE, &args).await
        }
        Some(other) => Err(anyhow::anyhow!(
            "unknown command {other:?}; usage: dispatch-svc [dead-letters [list|replay]]"
        )),
    };
    telemetry.shutdown().await;
    done
}
