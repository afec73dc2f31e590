//! The IP blacklist and whitelist (hardening step 8), stored: manual entries written by `palisade blacklist|whitelist`
//! and the guard's automatic bans, so that bans survive restarts and expiries are honoured after one.
//!
//! `net` is always the canonical CIDR text of [`guard::lists::parse_net`] (`10.1.2.0/24`, never `10.1.2.3/24`;
//! a single address is `/32` or `/128`), so one prefix has exactly one row.

use guard::lists::{Action, Origin, Rule, parse_net};

use super::cluster::bump_ip_rules_version;
use super::{Db, Result, StoreError, bump_version, now_ms};

/// Most manual entries (automatic ones are bounded by the guard, `GuardConfig::max_auto_bans`).
pub const MAX_MANUAL_IP_RULES: i64 = 100_000;

/// Longest note or reason, in characters.
pub const MAX_IP_RULE_NOTE: usize = 256;

pub const ACTION_ALLOW: &str = "allow";
pub const ACTION_BLOCK: &str = "block";
pub const ORIGIN_MANUAL: &str = "manual";
pub const ORIGIN_AUTO: &str = "auto";

/// One stored allow or block entry.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct IpRule {
    /// Canonical CIDR text, e.g. "203.0.113.7/32", "2001:db8::/32".
    pub net: String,
    /// "allow" or "block".
    pub action: String,
    /// Unix milliseconds; `None` never expires.
    pub expires_at: Option<i64>,
    /// The administrator's description.
    pub note: Option<String>,
    /// "manual" or "auto".
    pub origin: String,
    /// Automatic entries: the guard's reason code (auth_failures, unanswered_challenges, flood).
    pub reason: Option<String>,
    /// Unix milliseconds.
    pub created_at: i64,
}

impl IpRule {
    /// True unless the entry has an expiry at or before `now_ms`.
    pub fn is_live(&self, now_ms: i64) -> bool {
        self.expires_at.is_none_or(|t| t > now_ms)
    }

    pub fn is_auto(&self) -> bool {
        self.origin == ORIGIN_AUTO
    }

    /// The guard's form of this entry. Fails only for rows that were not written through [`Db::upsert_ip_rule`].
    pub fn to_rule(&self) -> Result<Rule> {
        let net = parse_net(&self.net).map_err(StoreError::Invalid)?;
        let action = match self.action.as_str() {
            ACTION_ALLOW => Action::Allow,
            ACTION_BLOCK => Action::Block,
            other => return Err(invalid_action(other)),
        };
        let origin = match self.origin.as_str() {
            ORIGIN_MANUAL => Origin::Manual,
            ORIGIN_AUTO => Origin::Auto {
                reason: self.reason.clone().unwrap_or_default(),
            },
            other => return Err(invalid_origin(other)),
        };
        Ok(Rule {
            net,
            action,
            expires_at: self.expires_at.map(|t| t.max(0) as u64),
            note: self.note.clone(),
            origin,
            created_at: self.created_at.max(0) as u64,
        })
    }

    /// The stored form of one of the guard's entries (e.g. an automatic ban to persist).
    pub fn from_rule(rule: &Rule) -> IpRule {
        let (origin, reason) = match &rule.origin {
            Origin::Manual => (ORIGIN_MANUAL, None),
            Origin::Auto { reason } => (ORIGIN_AUTO, Some(reason.clone())),
        };
        IpRule {
            net: rule.net.trunc().to_string(),
            action: rule.action.as_str().to_string(),
            expires_at: rule
                .expires_at
                .map(|t| i64::try_from(t).unwrap_or(i64::MAX)),
            note: rule.note.clone(),
            origin: origin.to_string(),
            reason,
            created_at: i64::try_from(rule.created_at).unwrap_or(i64::MAX),
        }
    }
}

/// The canonical CIDR text for `ADDRESS` or `ADDRESS/LEN`, or [`StoreError::Invalid`] with the guard's message
/// (which gives examples).
pub fn canonical_net(s: &str) -> Result<String> {
    Ok(parse_net(s).map_err(StoreError::Invalid)?.to_string())
}

fn invalid_action(a: &str) -> StoreError {
    StoreError::Invalid(format!(
        "invalid IP rule action '{a}': expected '{ACTION_ALLOW}' or '{ACTION_BLOCK}'"
    ))
}

fn invalid_origin(o: &str) -> StoreError {
    StoreError::Invalid(format!(
        "invalid IP rule origin '{o}': expected '{ORIGIN_MANUAL}' or '{ORIGIN_AUTO}'"
    ))
}

/// Checks a rule and returns it with `net` canonical.
fn checked(rule: &IpRule) -> Result<IpRule> {
    let net = canonical_net(&rule.net)?;
    if rule.action != ACTION_ALLOW && rule.action != ACTION_BLOCK {
        return Err(invalid_action(&rule.action));
    }
    if rule.origin != ORIGIN_MANUAL && rule.origin != ORIGIN_AUTO {
        return Err(invalid_origin(&rule.origin));
    }
    if rule.origin == ORIGIN_AUTO && rule.reason.as_deref().is_none_or(str::is_empty) {
        return Err(StoreError::Invalid(
            "an automatic IP rule needs a reason (e.g. auth_failures, unanswered_challenges, flood)".into(),
        ));
    }
    for (what, text) in [("note", &rule.note), ("reason", &rule.reason)] {
        if let Some(t) = text {
            if t.chars().count() > MAX_IP_RULE_NOTE {
                return Err(StoreError::Invalid(format!(
                    "the {what} is {} characters long; at most {MAX_IP_RULE_NOTE} are allowed",
                    t.chars().count()
                )));
            }
            if t.chars().any(char::is_control) {
                return Err(StoreError::Invalid(format!(
                    "the {what} must not contain control characters (such as newlines)"
                )));
            }
        }
    }
    Ok(IpRule {
        net,
        ..rule.clone()
    })
}

impl Db {
    /// Every entry, expired ones included (until [`Db::purge_expired_ip_rules`]), ordered by `net`.
    pub async fn list_ip_rules(&self) -> Result<Vec<IpRule>> {
        on_both!(self, pool, Ok(sqlx::query_as(
"SELECT net, action, expires_at, note, origin, reason, created_at FROM ip_rules ORDER BY net",
)
            .fetch_all(pool)
            .await?))
    }

    /// The entry for exactly this prefix (given in any form `parse_net` accepts), if any.
    pub async fn get_ip_rule(&self, net: &str) -> Result<Option<IpRule>> {
        let net = canonical_net(net)?;
        on_both!(self, pool, Ok(sqlx::query_as(
"SELECT net, action, expires_at, note, origin, reason, created_at FROM ip_rules WHERE net = $1",
)
            .bind(net)
            .fetch_optional(pool)
            .await?))
    }

    /// Adds or replaces the entry for `rule.net` (canonicalised first); returns the entry it replaced.
    ///
    /// `bump`: administrators' writes pass `true`, so a running server reloads the lists (within a second); the
    /// server's own automatic bans pass `false`, as it already applies them. On PostgreSQL every write also bumps
    /// the IP-list version and notifies `palisade_bans`, so the other nodes apply automatic bans too. A new manual entry beyond
    /// [`MAX_MANUAL_IP_RULES`] is refused.
    pub async fn upsert_ip_rule(&self, rule: &IpRule, bump: bool) -> Result<Option<IpRule>> {
        let rule = checked(rule)?;
        let now = now_ms();
        on_both!(self, pool, {
            let mut tx = super::begin_write(pool).await?;
            let old: Option<IpRule> = sqlx::query_as(
"SELECT net, action, expires_at, note, origin, reason, created_at FROM ip_rules WHERE net = $1",
)
                .bind(&rule.net)
                .fetch_optional(&mut *tx)
                .await?;
            let adds_manual =
                rule.origin == ORIGIN_MANUAL && old.as_ref().is_none_or(IpRule::is_auto);
            if adds_manual {
                let manual: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM ip_rules WHERE origin = 'manual'")
                        .fetch_one(&mut *tx)
                        .await?;
                if manual >= MAX_MANUAL_IP_RULES {
                    return Err(StoreError::Invalid(format!(
                        "the IP lists already hold {manual} manual entries, the most allowed \
                             ({MAX_MANUAL_IP_RULES}); remove some, or cover neighbouring addresses with one \
                             CIDR prefix"
                    )));
                }
            }
            sqlx::query(
                    "INSERT INTO ip_rules (net, action, expires_at, note, origin, reason, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (net) DO UPDATE SET action = $2, expires_at = $3, note = $4, origin = $5, \
                     reason = $6, created_at = $7",
                )
                .bind(&rule.net)
                .bind(&rule.action)
                .bind(rule.expires_at)
                .bind(&rule.note)
                .bind(&rule.origin)
                .bind(&rule.reason)
                .bind(rule.created_at)
                .execute(&mut *tx)
                .await?;
            if bump {
                bump_version(&mut tx, now).await?;
            }
            // Every node reloads its IP lists (PostgreSQL; automatic bans included: they come from one node).
            bump_ip_rules_version(&mut tx).await?;
            tx.commit().await?;
            Ok(old)
        })
    }

    /// Removes the entry for exactly this prefix, manual or automatic (an unban); true if there was one. A removal
    /// bumps the configuration version so a running server drops the entry too.
    pub async fn remove_ip_rule(&self, net: &str) -> Result<bool> {
        let net = canonical_net(net)?;
        let now = now_ms();
        on_both!(self, pool, {
            let mut tx = super::begin_write(pool).await?;
            let done = sqlx::query("DELETE FROM ip_rules WHERE net = $1")
                .bind(&net)
                .execute(&mut *tx)
                .await?;
            let removed = done.rows_affected() > 0;
            if removed {
                bump_version(&mut tx, now).await?;
                bump_ip_rules_version(&mut tx).await?;
            }
            tx.commit().await?;
            Ok(removed)
        })
    }

    /// Deletes entries whose expiry is at or before `now_ms`; returns how many. No version bump: every reader
    /// already ignores expired entries.
    pub async fn purge_expired_ip_rules(&self, now_ms: i64) -> Result<u64> {
        on_both!(self, pool, {
            let done = sqlx::query(
                "DELETE FROM ip_rules WHERE expires_at IS NOT NULL AND expires_at <= $1",
            )
            .bind(now_ms)
            .execute(pool)
            .await?;
            Ok(done.rows_affected())
        })
    }
}
