//! Logging: one `tracing` subscriber per process, JSON when deployed.

use serde::{Deserialize, Serialize};
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// How a service logs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    /// An `EnvFilter` directive; `RUST_LOG` takes priority when set.
    pub filter: String,
    /// One JSON object per line instead of human-readable lines.
    pub json: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            filter: "info".into(),
            json: false,
        }
    }
}

/// Installs the global subscriber. Call once, at the top of `main`.
pub fn init(service: &'static str, config: &LogConfig) -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new(&config.filter))?;
    let registry = tracing_subscriber::registry().with(filter);
    if config.json {
        registry
            .with(fmt::layer().json().with_current_span(true))
            .try_init()?;
    } else {
        // Colours only on a terminal; log files and collectors get plain text.
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
        registry.with(fmt::layer().compact().with_ansi(ansi)).try_init()?;
    }
    tracing::info!(service, "logging initialised");
    Ok(())
}
