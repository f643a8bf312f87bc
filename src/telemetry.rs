//! Logging: human-readable on a terminal, JSON lines with `--log-format json`.
//! Logs go to stderr; results go to stdout.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

/// Install the global subscriber. The filter comes from `OUTREACH_LOG`
/// (same syntax as `RUST_LOG`), default `info` for outreach and `warn` for the rest.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_env("OUTREACH_LOG")
        .unwrap_or_else(|_| EnvFilter::new("warn,outreach=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Human => builder
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
            .try_init(),
    };
}
