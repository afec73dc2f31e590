//! `palisade registrations` and `palisade events`: read-only views of the registrar and the security log.

use anyhow::bail;
use clap::Args;
use serde::Serialize;
use store::MAX_EVENT_LIST;

use super::time::{format_ms, now_ms, parse_since};
use super::{CommonArgs, output};

#[derive(Debug, Args)]
pub struct RegistrationsArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Only this extension's contacts.
    #[arg(value_name = "NUMBER")]
    pub number: Option<String>,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Only events at or after TIME: RFC 3339 (2025-03-01T08:00:00Z) or relative (30s, 10m, 2h, 1d).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only events of this kind (e.g. auth_failure, ban).
    #[arg(long, value_name = "KIND")]
    pub kind: Option<String>,
    /// At most N events (1 to 10000).
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub limit: u32,
    /// Instead of the events: how many rows the log holds, its retention settings, and the daily counters of the
    /// routine decisions that are counted rather than stored (challenges to requests without credentials,
    /// successful authentications), since --since (default: the last 7 days).
    #[arg(long)]
    pub summary: bool,
}

#[derive(Debug, Serialize)]
pub struct BindingView {
    pub extension: String,
    pub contact: String,
    pub transport: String,
    pub source: String,
    pub local: Option<String>,
    pub expires_at: String,
    pub expires_in_s: i64,
    pub user_agent: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct EventView {
    pub id: i64,
    pub at: String,
    pub kind: String,
    pub reason: String,
    pub source: String,
    pub user: Option<String>,
    pub detail: Option<String>,
}

pub async fn registrations(args: RegistrationsArgs) -> anyhow::Result<()> {
    let common = args.common;
    let db = common.open().await?;
    let views = binding_views(&db, args.number.as_deref()).await;
    db.close().await;
    let views = views?;
    output::list(
        common.json,
        &views,
        "No registered contacts.",
        &[
            "EXTENSION",
            "CONTACT",
            "TRANSPORT",
            "SOURCE",
            "EXPIRES IN",
            "USER AGENT",
        ],
        |v| {
            vec![
                v.extension.clone(),
                v.contact.clone(),
                v.transport.clone(),
                v.source.clone(),
                format!("{}s", v.expires_in_s),
                output::opt(&v.user_agent),
            ]
        },
    )
}

pub async fn events(args: EventsArgs) -> anyhow::Result<()> {
    if !(1..=MAX_EVENT_LIST).contains(&args.limit) {
        bail!(
            "--limit must be from 1 to {MAX_EVENT_LIST}, got {}",
            args.limit
        );
    }
    let since = args
        .since
        .as_deref()
        .map(|s| parse_since(s, now_ms()))
        .transpose()?;
    let common = args.common;
    if args.summary {
        return summary(&common, since).await;
    }
    let db = common.open().await?;
    let views = event_views(&db, since, args.kind.as_deref(), None, args.limit).await;
    db.close().await;
    let views = views?;
    output::list(
        common.json,
        &views,
        "No security events.",
        &["TIME", "KIND", "REASON", "SOURCE", "USER", "DETAIL"],
        |v| {
            vec![
                v.at.clone(),
                v.kind.clone(),
                v.reason.clone(),
                v.source.clone(),
                output::opt(&v.user),
                output::opt(&v.detail),
            ]
        },
    )
}

#[derive(Debug, Serialize)]
struct Summary {
    /// Event rows stored now, and the time of the oldest.
    rows: i64,
    oldest: Option<String>,
    event_retention_days: u64,
    event_max_rows: u64,
    /// Routine decisions counted per UTC day instead of stored.
    counts: Vec<CountView>,
}

#[derive(Debug, Serialize)]
struct CountView {
    day: String,
    kind: String,
    reason: String,
    count: i64,
    last_at: String,
}

/// `palisade events --summary`.
async fn summary(common: &CommonArgs, since: Option<i64>) -> anyhow::Result<()> {
    let since = since.unwrap_or_else(|| now_ms() - 7 * 86_400_000);
    let db = common.open().await?;
    let read = async {
        let (rows, oldest) = db.event_rows().await?;
        let (days, max_rows) = db.event_retention().await?;
        let counts = db.event_counts(since.div_euclid(86_400_000)).await?;
        anyhow::Ok((rows, oldest, days, max_rows, counts))
    }
    .await;
    db.close().await;
    let (rows, oldest, days, max_rows, counts) = read?;
    let s = Summary {
        rows,
        oldest: oldest.map(format_ms),
        event_retention_days: days,
        event_max_rows: max_rows,
        counts: counts
            .into_iter()
            .map(|c| CountView {
                day: format_ms(c.day.saturating_mul(86_400_000))[..10].to_string(),
                kind: c.kind,
                reason: c.reason,
                count: c.count,
                last_at: format_ms(c.last_at),
            })
            .collect(),
    };
    if common.json {
        return output::json(&s);
    }
    output::fields(&[
        ("event rows", s.rows.to_string()),
        ("oldest", output::opt(&s.oldest)),
        ("event_retention_days", s.event_retention_days.to_string()),
        ("event_max_rows", s.event_max_rows.to_string()),
    ]);
    crate::say!();
    crate::say!("Routine decisions, counted per day (not stored as rows):");
    output::list(
        false,
        &s.counts,
        "None.",
        &["DAY", "KIND", "REASON", "COUNT", "LAST"],
        |c| {
            vec![
                c.day.clone(),
                c.kind.clone(),
                c.reason.clone(),
                c.count.to_string(),
                c.last_at.clone(),
            ]
        },
    )
}

/// The live registrations (of `number` if given), as `palisade registrations` and the console show them.
pub async fn binding_views(
    db: &store::Db,
    number: Option<&str>,
) -> anyhow::Result<Vec<BindingView>> {
    let list = match number {
        Some(n) => db.list_bindings_for(n).await?,
        None => db.list_bindings().await?,
    };
    let now_s = now_ms() / 1000;
    Ok(list
        .into_iter()
        .filter(|b| b.expires_at > now_s)
        .map(|b| BindingView {
            expires_at: format_ms(b.expires_at.saturating_mul(1000)),
            expires_in_s: b.expires_at - now_s,
            extension: b.aor,
            contact: b.contact_uri,
            transport: b.transport,
            source: b.source_addr,
            local: b.local_addr,
            user_agent: b.user_agent,
        })
        .collect())
}

/// Security events, newest first, as `palisade events` and the console show them: at or after `since`, of
/// `kind`, with an id below `before_id` (for paging), at most `limit` (checked as the CLI does).
pub async fn event_views(
    db: &store::Db,
    since: Option<i64>,
    kind: Option<&str>,
    before_id: Option<i64>,
    limit: u32,
) -> anyhow::Result<Vec<EventView>> {
    if !(1..=MAX_EVENT_LIST).contains(&limit) {
        bail!("--limit must be from 1 to {MAX_EVENT_LIST}, got {limit}");
    }
    Ok(db
        .list_events_page(since, kind, before_id, limit)
        .await?
        .into_iter()
        .map(|e| EventView {
            id: e.id,
            at: format_ms(e.at),
            kind: e.kind,
            reason: e.reason,
            source: e.source,
            user: e.user,
            detail: e.detail,
        })
        .collect())
}
