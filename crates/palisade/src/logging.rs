//! Log output: human-readable by default, JSON lines with `--log-format json`; the filter comes from
//! `PALISADE_LOG` (tracing's env-filter syntax, default `info`).
//!
//! Under systemd (stderr is the journal stream named by `JOURNAL_STREAM`), human lines carry no timestamp — the
//! journal stamps every line itself — and start with a `<N>` syslog priority, which journald turns into the
//! entry's priority, so `journalctl -p warning` works.

use std::fmt;
use std::io::IsTerminal;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

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
    let journal = stderr_is_journal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human if journal => builder
            .with_ansi(false)
            .event_format(JournalPriority(
                tracing_subscriber::fmt::format().without_time(),
            ))
            .try_init(),
        LogFormat::Human => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
    if let Some(bad) = bad {
        tracing::warn!("ignoring invalid {FILTER_ENV} ({bad}); logging at info");
    }
}

/// Whether stderr is the journal stream systemd set up: `JOURNAL_STREAM` is `DEVICE:INODE` of that stream, and
/// only counts when it names our stderr (a child whose stderr was redirected inherits the variable).
pub fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    names_stream(&value.to_string_lossy(), meta.dev(), meta.ino())
}

/// Whether a `JOURNAL_STREAM` value names the stream with device `dev` and inode `ino`.
pub fn names_stream(value: &str, dev: u64, ino: u64) -> bool {
    let Some((d, i)) = value.trim().split_once(':') else {
        return false;
    };
    d.parse::<u64>() == Ok(dev) && i.parse::<u64>() == Ok(ino)
}

/// The syslog priority journald reads from a line's start (`SyslogLevelPrefix=`, on by default).
pub fn priority_prefix(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "<3>",
        Level::WARN => "<4>",
        Level::INFO => "<6>",
        _ => "<7>",
    }
}

/// Writes the `<N>` priority, then the line as the wrapped format would.
struct JournalPriority<F>(F);

impl<S, N, F> FormatEvent<S, N> for JournalPriority<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        writer.write_str(priority_prefix(event.metadata().level()))?;
        self.0.format_event(ctx, writer, event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_stream_must_name_this_stream() {
        assert!(names_stream("2049:1234", 2049, 1234));
        assert!(!names_stream("2049:1234", 2049, 1235));
        assert!(!names_stream("garbage", 2049, 1234));
        assert!(!names_stream("", 0, 0));
    }

    #[test]
    fn priorities_follow_syslog() {
        assert_eq!(priority_prefix(&Level::ERROR), "<3>");
        assert_eq!(priority_prefix(&Level::WARN), "<4>");
        assert_eq!(priority_prefix(&Level::INFO), "<6>");
        assert_eq!(priority_prefix(&Level::DEBUG), "<7>");
    }
}
