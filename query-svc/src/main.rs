//! `query-svc` serves the read models; `query-svc rebuild` rebuilds them from
//! the event stream and exits; `query-svc dead-letters [list|replay]` lists or
//! replays the events the projector gave up on.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = query_svc::Config::load()?;
    let telemetry = svc_kit::telemetry::init("query-svc", &config.log)?;
    let done = match std::env::args().nth(1).as_deref() {
        None => {
            let app = query_svc::App::build(config).await?;
            tracing::info!(addr = %app.local_addr(), "query-svc listening");
            app.run_until_stopped(svc_kit::shutdown::signal()).await
        }
        Some("rebuild") => query_svc::rebuild(config)
            .await
            .map(|report| println!("{report:#?}")),
        Some("dead-letters") => {
            let args: Vec<String> = std::env::args().skip(2).collect();
            eventbus::dead_letters::command(&config.nats, query_svc::PROJECTOR_DURABLE, &args).await
        }
        Some(other) => Err(anyhow::anyhow!(
            "unknown command {other:?}; usage: query-svc [rebuild | dead-letters [list|replay]]"
        )),
    };
    telemetry.shutdown().await;
    done
}
