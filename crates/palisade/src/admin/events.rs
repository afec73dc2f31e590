//! `palisade registrations` and `palisade events`: read-only views of the registrar and the security log.

use anyhow::bail;
use clap::Args;
use pbx::store::MAX_EVENT_LIST;
use serde::Serialize;

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
}

#[derive(Debug, Serialize)]
struct BindingView {
    extension: String,
    contact: String,
    transport: String,
    source: String,
    local: Option<String>,
    expires_at: String,
    expires_in_s: i64,
    user_agent: Option<String>,
}

#[derive(Debug, Serialize)]
struct EventView {
    id: i64,
    at: String,
    kind: String,
    reason: String,
    source: String,
    user: Option<String>,
    detail: Option<String>,
}

pub async fn registrations(args: RegistrationsArgs) -> anyhow::Result<()> {
    let common = args.common;
    let db = common.open().await?;
    let list = match &args.number {
        Some(n) => db.list_bindings_for(n).await,
        None => db.list_bindings().await,
    };
    db.close().await;
    let now_s = now_ms() / 1000;
    let views: Vec<BindingView> = list?
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
        .collect();
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
    let db = common.open().await?;
    let list = db
        .list_events(since, args.kind.as_deref(), args.limit)
        .await;
    db.close().await;
    let views: Vec<EventView> = list?
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
        .collect();
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
