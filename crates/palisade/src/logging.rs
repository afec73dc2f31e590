//! Log output: human-readable by default, JSON lines with `--log-format json`; the filter comes from
//! `PALISADE_LOG` (tracing's env-filter syntax, default `info`).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

pub const FILTER_ENV: &str = "PALISADE_LOG";

pub fn init(format: LogFormat) {
    let (filter, bad) = match std::env::var(FILTER_ENV) {
        Ok(s) if !s.trim().is_empty() => match EnvFilter::try_new(&s) {
            Ok(f) => (f, None),
            Err(e) => (EnvFilter::new("info"), Some(format!("{s}: {e}"))),
        },
        _ => (EnvFilter::new("info"), None),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
    if let Some(bad) = bad {
        tracing::warn!("ignoring invalid {FILTER_ENV} ({bad}); logging at info");
    }
}
