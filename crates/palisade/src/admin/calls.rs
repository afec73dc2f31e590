//! `palisade calls` and `palisade cdr`: read-only views of the calls in progress and of the call records.

use anyhow::bail;
use clap::Args;
use serde::Serialize;
use store::MAX_CDR_LIST;

use super::time::{format_ms, now_ms, parse_since};
use super::{CommonArgs, output};

#[derive(Debug, Args)]
pub struct CallsArgs {
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Args)]
pub struct CdrArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Only calls started at or after TIME: RFC 3339 (2025-03-01T08:00:00Z) or relative (30s, 10m, 2h, 1d).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only calls from or to this number.
    #[arg(long, value_name = "NUM")]
    pub ext: Option<String>,
    /// At most N calls, the most recent (1 to 10000).
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub limit: u32,
}

#[derive(Debug, Serialize)]
pub struct ActiveCallView {
    pub call_id: String,
    pub caller: String,
    pub callee: String,
    pub state: String,
    pub started_at: String,
    pub answered_at: Option<String>,
    /// Talk time so far; `None` until answered.
    pub duration_secs: Option<i64>,
    /// When the server last wrote the set of calls.
    pub updated_at: String,
}

#[derive(Debug, Serialize)]
pub struct CdrView {
    pub id: i64,
    pub call_id: String,
    pub caller: String,
    pub callee: String,
    pub started_at: String,
    pub answered_at: Option<String>,
    pub ended_at: String,
    pub duration_secs: i64,
    pub disposition: String,
    pub hung_up_by: String,
    pub reason: String,
}

/// Seconds as `h:mm:ss`.
fn hms(secs: i64) -> String {
    let secs = secs.max(0);
    format!("{}:{:02}:{:02}", secs / 3600, secs % 3600 / 60, secs % 60)
}

/// An empty text (e.g. the callee of a request with no readable number) as `-`.
fn or_dash(s: &str) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s.to_string()
    }
}

/// The calls in progress, as `palisade calls` and the console show them.
pub async fn active_call_views(db: &store::Db) -> anyhow::Result<Vec<ActiveCallView>> {
    let list = db.list_active_calls().await;
    let now = now_ms();
    Ok(list?
        .into_iter()
        .map(|c| {
            let c_updated = c.updated_at;
            let c = c.call;
            ActiveCallView {
                duration_secs: c.answered_at.map(|a| (now - a).max(0) / 1000),
                started_at: format_ms(c.started_at),
                answered_at: c.answered_at.map(format_ms),
                updated_at: format_ms(c_updated),
                call_id: c.call_id,
                caller: c.caller,
                callee: c.callee,
                state: c.state,
            }
        })
        .collect())
}

pub async fn calls(args: CallsArgs) -> anyhow::Result<()> {
    let common = args.common;
    let db = common.open().await?;
    let views = active_call_views(&db).await;
    db.close().await;
    let views = views?;
    output::list(
        common.json,
        &views,
        "No calls in progress.",
        &[
            "CALL-ID", "CALLER", "CALLEE", "STATE", "STARTED", "DURATION",
        ],
        |v| {
            vec![
                v.call_id.clone(),
                v.caller.clone(),
                or_dash(&v.callee),
                v.state.clone(),
                v.started_at.clone(),
                v.duration_secs.map_or_else(|| "-".into(), hms),
            ]
        },
    )
}

pub async fn cdr(args: CdrArgs) -> anyhow::Result<()> {
    if !(1..=MAX_CDR_LIST).contains(&args.limit) {
        bail!(
            "--limit must be from 1 to {MAX_CDR_LIST}, got {}",
            args.limit
        );
    }
    let since = args
        .since
        .as_deref()
        .map(|s| parse_since(s, now_ms()))
        .transpose()?;
    let common = args.common;
    let db = common.open().await?;
    let views = cdr_views(&db, since, args.ext.as_deref(), args.limit).await;
    db.close().await;
    let views = views?;
    output::list(
        common.json,
        &views,
        "No call records.",
        &[
            "STARTED",
            "CALLER",
            "CALLEE",
            "DISPOSITION",
            "DURATION",
            "HUNG UP BY",
            "REASON",
        ],
        |v| {
            vec![
                v.started_at.clone(),
                v.caller.clone(),
                or_dash(&v.callee),
                v.disposition.clone(),
                hms(v.duration_secs),
                v.hung_up_by.clone(),
                or_dash(&v.reason),
            ]
        },
    )
}

/// Call records, newest first, as `palisade cdr` and the console show them: `limit` checked as the CLI does.
pub async fn cdr_views(
    db: &store::Db,
    since: Option<i64>,
    ext: Option<&str>,
    limit: u32,
) -> anyhow::Result<Vec<CdrView>> {
    if !(1..=MAX_CDR_LIST).contains(&limit) {
        bail!("--limit must be from 1 to {MAX_CDR_LIST}, got {limit}");
    }
    Ok(db
        .list_cdrs(since, ext, limit)
        .await?
        .into_iter()
        .map(|s| {
            let c = s.cdr;
            CdrView {
                id: s.id,
                started_at: format_ms(c.started_at),
                answered_at: c.answered_at.map(format_ms),
                ended_at: format_ms(c.ended_at),
                call_id: c.call_id,
                caller: c.caller,
                callee: c.callee,
                duration_secs: c.duration_secs,
                disposition: c.disposition,
                hung_up_by: c.hung_up_by,
                reason: c.reason,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_h_mm_ss() {
        assert_eq!(hms(0), "0:00:00");
        assert_eq!(hms(59), "0:00:59");
        assert_eq!(hms(61), "0:01:01");
        assert_eq!(hms(3_600), "1:00:00");
        assert_eq!(hms(36_000 + 3_599), "10:59:59");
        assert_eq!(hms(-3), "0:00:00");
    }
}
