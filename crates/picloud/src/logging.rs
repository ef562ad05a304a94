//! `tracing` setup: text or JSON lines on stderr (stdout is kept for what commands print:
//! the bootstrap key, a created key). Level from `RUST_LOG`, default `info`.
//!
//! Keys and tokens never reach a log: handlers log key *ids* only, and request spans carry
//! the path without its query string.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

pub fn init(format: LogFormat, default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
