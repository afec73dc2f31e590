//! Translations between the guard (rules, decisions) and the store (IP list rows, security events).

use guard::{Action, GuardConfig, GuardEvent, Origin, Rule, parse_net};
use pbx::model::SecurityEventKind;
use store::{self, Db, SecurityEvent};

/// The guard's settings from the store. A stored combination that no longer validates falls back to the
/// defaults (with a warning), so a bad value can never keep the server from starting.
pub async fn guard_config(db: &Db) -> anyhow::Result<GuardConfig> {
    let stored = db.guard_settings().await?;
    Ok(
        GuardConfig::from_settings(stored.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "anti-hacking settings invalid; using the defaults");
                GuardConfig::default()
            }),
    )
}

/// Every stored IP list entry as guard rules; entries that no longer parse are skipped with a warning.
pub async fn rules(db: &Db) -> anyhow::Result<Vec<Rule>> {
    Ok(db
        .list_ip_rules()
        .await?
        .iter()
        .filter_map(|r| {
            let rule = rule_from_store(r);
            if rule.is_none() {
                tracing::warn!(net = %r.net, "ignoring an IP list entry that does not parse");
            }
            rule
        })
        .collect())
}

pub fn rule_from_store(r: &store::IpRule) -> Option<Rule> {
    let net = parse_net(&r.net).ok()?;
    let action = match r.action.as_str() {
        "allow" => Action::Allow,
        "block" => Action::Block,
        _ => return None,
    };
    let origin = match r.origin.as_str() {
        "auto" => Origin::Auto {
            reason: r.reason.clone().unwrap_or_else(|| "auto".into()),
        },
        _ => Origin::Manual,
    };
    Some(Rule {
        net,
        action,
        expires_at: r.expires_at.and_then(|t| u64::try_from(t).ok()),
        note: r.note.clone(),
        origin,
        created_at: u64::try_from(r.created_at).unwrap_or(0),
    })
}

pub fn rule_to_store(r: &Rule) -> store::IpRule {
    let (origin, reason) = match &r.origin {
        Origin::Manual => ("manual", None),
        Origin::Auto { reason } => ("auto", Some(reason.clone())),
    };
    store::IpRule {
        net: r.net.to_string(),
        action: r.action.as_str().to_string(),
        expires_at: r.expires_at.map(|t| i64::try_from(t).unwrap_or(i64::MAX)),
        note: r.note.clone(),
        origin: origin.to_string(),
        reason,
        created_at: i64::try_from(r.created_at).unwrap_or(i64::MAX),
    }
}

fn reason_of(rule: &Rule) -> String {
    match &rule.origin {
        Origin::Auto { reason } => reason.clone(),
        Origin::Manual => "manual".into(),
    }
}

/// A guard decision as a security event (kinds `ban`, `throttle`, `ban_expired`, `allow_expired`).
pub fn guard_event(e: &GuardEvent, now_ms: u64) -> SecurityEvent {
    let at = i64::try_from(now_ms).unwrap_or(i64::MAX);
    let (kind, reason, source, detail) = match e {
        GuardEvent::Banned { rule } => (
            SecurityEventKind::Ban,
            reason_of(rule),
            rule.net.to_string(),
            Some(format!(
                "{}; blacklisted until {}",
                rule.note.as_deref().unwrap_or("-"),
                rule.expires_at.map_or("never".to_string(), rfc3339)
            )),
        ),
        GuardEvent::Throttled { source, until, pps } => (
            SecurityEventKind::Throttle,
            guard::BanReason::Flood.as_str().to_string(),
            source.to_string(),
            Some(format!(
                "{pps} packets in one second; dropped until {}",
                rfc3339(*until)
            )),
        ),
        GuardEvent::Expired { rule } => (
            if rule.action == Action::Block {
                SecurityEventKind::BanExpired
            } else {
                SecurityEventKind::AllowExpired
            },
            reason_of(rule),
            rule.net.to_string(),
            rule.note.clone(),
        ),
    };
    SecurityEvent {
        at,
        kind: kind.as_str().to_string(),
        reason,
        source,
        user: None,
        detail,
    }
}

/// Unix milliseconds as RFC 3339 UTC with second precision.
pub fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(i64::try_from(days).unwrap_or(0));
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's civil_from_days).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_800_000_000_000), "2027-01-15T08:00:00Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn rules_round_trip_through_the_store_shape() {
        let rule = Rule {
            net: parse_net("2001:db8::/48").unwrap(),
            action: Action::Block,
            expires_at: Some(5_000),
            note: Some("25 failed authentications".into()),
            origin: Origin::Auto {
                reason: "auth_failures".into(),
            },
            created_at: 1_000,
        };
        assert_eq!(rule_from_store(&rule_to_store(&rule)), Some(rule));
    }
}
