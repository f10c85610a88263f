//! Provides tracing set-up: an env-filtered subscriber (`RUST_LOG`, default `info`) writing
//! text or JSON lines. Installed once per process; later calls are no-ops.
//!
//! The request spans (`tracing_actix_web`, which carry `request_id`) stay on at `info`
//! unless `RUST_LOG` names that target itself, so `RUST_LOG=wakeplane=debug` keeps request
//! ids on every line. Colours only when stderr is a terminal and `NO_COLOR` is unset.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber writing to stderr.
pub fn init(format: LogFormat) {
    let spec = std::env::var("RUST_LOG").unwrap_or_default();
    let mut filter = EnvFilter::try_new(&spec)
        .ok()
        .filter(|_| !spec.trim().is_empty())
        .unwrap_or_else(|| EnvFilter::new("info"));
    if !spec.contains("tracing_actix_web") {
        if let Ok(directive) = "tracing_actix_web=info".parse() {
            filter = filter.add_directive(directive);
        }
    }
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(ansi)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
}
