//! `palisade blacklist …` and `palisade whitelist …`: the IP lists (hardening step 8). Block entries drop a source
//! silently before parsing; allow entries exempt it from all anti-hacking. The most specific prefix wins.
//!
//! Both lists live in one table, one entry per prefix: adding a prefix to one list takes it off the other.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use anyhow::{anyhow, bail};
use clap::{Args, Subcommand};
use guard::lists::parse_net;
use pbx::model::SecurityEventKind;
use serde::Serialize;
use store::ip_rules::{ACTION_ALLOW, ACTION_BLOCK, ORIGIN_MANUAL};
use store::{Db, IpRule, SecurityEvent, canonical_net};

use super::time::{format_ms, now_ms};
use super::{CommonArgs, output, store_error};

/// Longest `--expires`, the same as the longest automatic ban (`ban_seconds`).
const MAX_EXPIRES_SECONDS: u64 = 1_000_000_000;

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(subcommand)]
    pub command: ListCommand,
}

#[derive(Debug, Subcommand)]
pub enum ListCommand {
    /// List the entries in force (manual and automatic; expired ones are hidden).
    List,
    /// Add an address or CIDR prefix, IPv4 or IPv6 (203.0.113.7, 198.51.100.0/24, 2001:db8::/32).
    ///
    /// The running server applies it within a second. An entry for the same prefix on the other list is
    /// replaced.
    Add {
        /// Address or CIDR prefix.
        #[arg(value_name = "CIDR")]
        cidr: String,
        /// Remove the entry automatically after this many seconds (1 to 1000000000); default: never.
        #[arg(long, value_name = "SECONDS", allow_hyphen_values = true)]
        expires: Option<String>,
        /// A description, e.g. who or what the entry is for (at most 256 characters).
        #[arg(long, value_name = "TEXT")]
        note: Option<String>,
    },
    /// Remove the entry for exactly this prefix (on the blacklist this also lifts an automatic ban).
    Remove {
        /// Address or CIDR prefix, as listed.
        #[arg(value_name = "CIDR")]
        cidr: String,
    },
}

/// Which list a command works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum List {
    Black,
    White,
}

impl List {
    pub fn action(self) -> &'static str {
        match self {
            List::Black => ACTION_BLOCK,
            List::White => ACTION_ALLOW,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            List::Black => "blacklist",
            List::White => "whitelist",
        }
    }

    fn of_action(action: &str) -> List {
        if action == ACTION_ALLOW {
            List::White
        } else {
            List::Black
        }
    }
}

/// An entry as shown.
#[derive(Debug, Serialize)]
pub struct RuleView {
    pub net: String,
    pub action: String,
    pub origin: String,
    pub reason: Option<String>,
    pub note: Option<String>,
    /// RFC 3339, or null: never expires.
    pub expires_at: Option<String>,
    pub expires_in_s: Option<i64>,
    pub created_at: String,
}

impl RuleView {
    pub fn new(r: &IpRule, now: i64) -> RuleView {
        RuleView {
            net: r.net.clone(),
            action: r.action.clone(),
            origin: r.origin.clone(),
            reason: r.reason.clone(),
            note: r.note.clone(),
            expires_at: r.expires_at.map(format_ms),
            expires_in_s: r.expires_at.map(|t| (t - now).max(0) / 1000),
            created_at: format_ms(r.created_at),
        }
    }
}

/// "auto (flood)" or "manual".
fn origin_text(r: &IpRule) -> String {
    match &r.reason {
        Some(reason) if r.is_auto() => format!("{} ({reason})", r.origin),
        _ => r.origin.clone(),
    }
}

/// "never", or "in 23h59m (2025-03-02T08:00:00.000Z)".
fn expires_text(expires_at: Option<i64>, now: i64) -> String {
    match expires_at {
        None => "never".into(),
        Some(t) => format!(
            "in {} ({})",
            relative((t - now).max(0) / 1000),
            format_ms(t)
        ),
    }
}

/// A duration in seconds in its two largest units: "2d3h", "23h59m", "5m12s", "40s".
fn relative(secs: i64) -> String {
    let (d, h, m, s) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    if d > 0 {
        format!("{d}d{h}h")
    } else if h > 0 {
        format!("{h}h{m}m")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

/// Parses `--expires`.
pub fn parse_expires(s: &str) -> anyhow::Result<u64> {
    s.trim()
        .parse::<u64>()
        .ok()
        .filter(|v| (1..=MAX_EXPIRES_SECONDS).contains(v))
        .ok_or_else(|| {
            anyhow!(
                "--expires must be a whole number of seconds from 1 to {MAX_EXPIRES_SECONDS}, got `{s}` \
                 (e.g. 3600 for an hour, 86400 for a day; leave it out for no expiry)"
            )
        })
}

/// Warnings for an entry that is probably a mistake (printed, never refused).
fn warnings(list: List, net: &str) -> Vec<String> {
    let Ok(parsed) = parse_net(net) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if list == List::Black {
        let local: Vec<String> = [
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ]
        .into_iter()
        .filter(|ip| parsed.contains(ip))
        .map(|ip| ip.to_string())
        .collect();
        if !local.is_empty() {
            out.push(format!(
                "{net} covers {}: this also blocks local tools such as sipp, SIPVicious, a monitoring check or a \
                 softphone on this machine (undo with `palisade blacklist remove {net}`)",
                local.join(" and ")
            ));
        }
    }
    if list == List::White && parsed.prefix_len() == 0 {
        out.push(format!(
            "{net} exempts every {} source from anti-hacking (no bans, no flood limits)",
            if parsed.addr().is_ipv4() {
                "IPv4"
            } else {
                "IPv6"
            }
        ));
    }
    out
}

pub async fn run(list: List, args: ListArgs) -> anyhow::Result<()> {
    let common = args.common;
    match args.command {
        ListCommand::List => {
            let db = common.open().await?;
            let rules = db.list_ip_rules().await;
            db.close().await;
            let now = now_ms();
            let rules: Vec<IpRule> = rules?
                .into_iter()
                .filter(|r| r.action == list.action() && r.is_live(now))
                .collect();
            if common.json {
                let views: Vec<RuleView> = rules.iter().map(|r| RuleView::new(r, now)).collect();
                return output::json(&views);
            }
            if rules.is_empty() {
                crate::say!(
                    "The {} is empty. Add an entry with `palisade {} add CIDR`.",
                    list.name(),
                    list.name()
                );
                return Ok(());
            }
            let rows: Vec<Vec<String>> = rules
                .iter()
                .map(|r| {
                    vec![
                        r.net.clone(),
                        r.action.clone(),
                        origin_text(r),
                        expires_text(r.expires_at, now),
                        output::opt(&r.note),
                    ]
                })
                .collect();
            output::table(&["NET", "ACTION", "ORIGIN", "EXPIRES", "NOTE"], &rows);
            Ok(())
        }
        ListCommand::Add {
            cidr,
            expires,
            note,
        } => {
            let db = common.open_or_create().await?;
            let result = add_entry(&db, list, &cidr, expires.as_deref(), note).await;
            db.close().await;
            let (rule, replaced, warnings) = result?;
            let now = now_ms();
            let net = rule.net.clone();
            for w in &warnings {
                eprintln!("warning: {w}");
            }
            if common.json {
                return output::json(&serde_json::json!({
                    "list": list.name(),
                    "entry": RuleView::new(&rule, now),
                    "replaced": replaced.as_ref().map(|r| RuleView::new(r, now)),
                    "warnings": warnings,
                }));
            }
            let until = match rule.expires_at {
                None => "no expiry".to_string(),
                Some(t) => format!("expires {}", expires_text(Some(t), now)),
            };
            match list {
                List::Black => crate::say!("Blocked {net}, {until}."),
                List::White => {
                    crate::say!("Whitelisted {net} (exempt from anti-hacking), {until}.")
                }
            }
            if let Some(old) = &replaced {
                let was = List::of_action(&old.action);
                if was == list {
                    crate::say!(
                        "This replaces the previous {} entry for {net} ({}, expiring {}).",
                        list.name(),
                        origin_text(old),
                        expires_text(old.expires_at, now)
                    );
                } else {
                    crate::say!(
                        "This replaces the {} entry for {net} ({}), which is no longer on the {}.",
                        old.action,
                        origin_text(old),
                        was.name()
                    );
                }
            }
            crate::say!("The running server applies it within a second.");
            Ok(())
        }
        ListCommand::Remove { cidr } => {
            let net = canonical_net(&cidr).map_err(store_error)?;
            let db = common.open().await?;
            let result = remove(&db, list, &net).await;
            db.close().await;
            let old = result?;
            if common.json {
                return output::json(&serde_json::json!({
                    "list": list.name(),
                    "removed": RuleView::new(&old, now_ms()),
                }));
            }
            let what = if old.is_auto() {
                format!(
                    " (an automatic ban: {})",
                    output::clean(&output::opt(&old.reason))
                )
            } else {
                String::new()
            };
            crate::say!(
                "Removed {net} from the {}{what}. The running server applies it within a second.",
                list.name()
            );
            Ok(())
        }
    }
}

/// Adds `cidr` to `list` (`palisade blacklist|whitelist add`, the API and the console): the entry written, the
/// live entry it replaced, and warnings (e.g. blocking loopback).
pub async fn add_entry(
    db: &Db,
    list: List,
    cidr: &str,
    expires: Option<&str>,
    note: Option<String>,
) -> anyhow::Result<(IpRule, Option<IpRule>, Vec<String>)> {
    let net = canonical_net(cidr).map_err(store_error)?;
    let expires = expires.map(parse_expires).transpose()?;
    let now = now_ms();
    let rule = IpRule {
        net: net.clone(),
        action: list.action().to_string(),
        expires_at: expires.map(|s| now.saturating_add((s as i64).saturating_mul(1000))),
        note: note.filter(|n| !n.trim().is_empty()),
        origin: ORIGIN_MANUAL.to_string(),
        reason: None,
        created_at: now,
    };
    let replaced = add(db, list, &rule, now)
        .await?
        .filter(|old| old.is_live(now));
    let warnings = warnings(list, &net);
    Ok((rule, replaced, warnings))
}

/// Removes the entry for `cidr` from `list` (`palisade blacklist|whitelist remove`, the API and the console).
pub async fn remove_entry(db: &Db, list: List, cidr: &str) -> anyhow::Result<IpRule> {
    let net = canonical_net(cidr).map_err(store_error)?;
    remove(db, list, &net).await
}

/// Writes `rule`; taking a live block off the blacklist by whitelisting its prefix is recorded as an unban.
pub async fn add(db: &Db, list: List, rule: &IpRule, now: i64) -> anyhow::Result<Option<IpRule>> {
    let old = db.upsert_ip_rule(rule, true).await.map_err(store_error)?;
    if let Some(old) = &old
        && list == List::White
        && old.action == ACTION_BLOCK
        && old.is_live(now)
    {
        unban_event(
            db,
            old,
            "replaced by a whitelist entry (palisade whitelist add)",
        )
        .await?;
    }
    if list == List::Black {
        // A manual ban is a security decision like an automatic one: it goes in the log too.
        db.append_event(&SecurityEvent {
            at: now_ms(),
            kind: SecurityEventKind::Ban.as_str().into(),
            reason: "manual".into(),
            source: rule.net.clone(),
            user: None,
            detail: Some(match &rule.note {
                Some(note) => format!("palisade blacklist add; {note}"),
                None => "palisade blacklist add".to_string(),
            }),
        })
        .await
        .map_err(store_error)?;
    }
    Ok(old)
}

/// Removes the entry for `net` if it is on `list` and in force; a blacklist removal is recorded as an unban.
pub async fn remove(db: &Db, list: List, net: &str) -> anyhow::Result<IpRule> {
    let now = now_ms();
    let old = db
        .get_ip_rule(net)
        .await
        .map_err(store_error)?
        .filter(|r| r.is_live(now));
    let old = match old {
        Some(r) if r.action == list.action() => r,
        Some(r) => {
            let other = List::of_action(&r.action).name();
            bail!(
                "{net} is not on the {} but on the {other} (see `palisade {other} list`; remove it with \
                 `palisade {other} remove {net}`)",
                list.name()
            )
        }
        None => bail!(
            "{net} is not on the {} (see `palisade {} list`)",
            list.name(),
            list.name()
        ),
    };
    if !db.remove_ip_rule(net).await.map_err(store_error)? {
        bail!(
            "{net} is not on the {} (see `palisade {} list`)",
            list.name(),
            list.name()
        );
    }
    if list == List::Black {
        unban_event(db, &old, "removed with palisade blacklist remove").await?;
    }
    Ok(old)
}

/// Appends a security event `unban`, reason `manual`, for the entry `old`.
async fn unban_event(db: &Db, old: &IpRule, how: &str) -> anyhow::Result<()> {
    let detail = match &old.reason {
        Some(reason) if old.is_auto() => format!("{how}; was an automatic ban ({reason})"),
        _ => format!("{how}; was a manual entry"),
    };
    db.append_event(&SecurityEvent {
        at: now_ms(),
        kind: SecurityEventKind::Unban.as_str().into(),
        reason: "manual".into(),
        source: old.net.clone(),
        user: None,
        detail: Some(detail),
    })
    .await
    .map_err(store_error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_durations() {
        assert_eq!(relative(86_399), "23h59m");
        assert_eq!(relative(86_400 * 2 + 3600 * 3 + 5), "2d3h");
        assert_eq!(relative(312), "5m12s");
        assert_eq!(relative(40), "40s");
        assert_eq!(relative(0), "0s");
    }

    #[test]
    fn loopback_warnings() {
        assert_eq!(warnings(List::Black, "127.0.0.0/8").len(), 1);
        assert!(warnings(List::Black, "0.0.0.0/0")[0].contains("127.0.0.1"));
        assert!(warnings(List::Black, "::/0")[0].contains("::1"));
        assert!(warnings(List::Black, "10.0.0.0/8").is_empty());
        assert!(warnings(List::White, "127.0.0.0/8").is_empty());
        assert_eq!(warnings(List::White, "::/0").len(), 1);
        assert!(parse_expires("0").is_err());
        assert!(parse_expires("1000000001").is_err());
        assert_eq!(parse_expires("3600").unwrap(), 3600);
    }
}
