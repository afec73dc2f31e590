//! Settings: a key/value table for values an administrator changes at run time, with the known keys, their
//! defaults and their validation in one place so the CLI and the server agree.

use guard::config::{ConfigError, FLOOD_AMBER_PPS, FLOOD_RED_PPS, Limit};

use super::{Db, Result, StoreError, bump_version, now_ms};

/// The anti-hacking settings (hardening step 7), with their defaults and limits, in display order. Stored in the
/// settings table under these keys; see [`Db::guard_settings`].
pub use guard::config::SETTINGS as GUARD_SETTINGS;

/// The SIP domain. Default: [`default_domain`]. The digest realm is separate and fixed ([`crate::realm`]).
pub const DOMAIN: &str = "domain";
/// Ordered list of digest algorithms offered in challenges, e.g. "SHA-256,MD5". Default: [`DEFAULT_DIGEST_ALGORITHMS`].
pub const DIGEST_ALGORITHMS: &str = "digest_algorithms";
/// Length of generated auth IDs and passwords. Default: [`DEFAULT_CREDENTIAL_LENGTH`].
pub const CREDENTIAL_LENGTH: &str = "credential_length";
/// Internal: bumped by every admin write (see [`Db::current_version`]). Not settable by hand.
pub const CONFIG_VERSION: &str = "config_version";

/// MD5 only: what deployed phones speak (docs/security.md, step 1).
pub const DEFAULT_DIGEST_ALGORITHMS: &str = "MD5";
/// The digest algorithms Palisade implements, in their RFC 7616 / RFC 8760 spelling.
pub const KNOWN_DIGEST_ALGORITHMS: [&str; 2] = ["MD5", "SHA-256"];

pub const DEFAULT_CREDENTIAL_LENGTH: usize = 10;
pub const MIN_CREDENTIAL_LENGTH: usize = 10;
pub const MAX_CREDENTIAL_LENGTH: usize = 50;

/// Longest value accepted for any setting.
const MAX_VALUE_LEN: usize = 1024;

/// The settings an administrator may set, with a one-line description (for `palisade security show`).
pub const SETTABLE: [(&str, &str); 3] = [
    (
        DIGEST_ALGORITHMS,
        "digest algorithms offered, in order: MD5, SHA-256 (comma-separated)",
    ),
    (
        CREDENTIAL_LENGTH,
        "length of generated auth IDs and passwords (10 to 50)",
    ),
    (
        DOMAIN,
        "SIP domain (passwords stay valid: they are bound to the fixed realm, see `palisade realm`)",
    ),
];

/// The default SIP domain, shared by the server and the admin commands: the machine's host name, else
/// "palisade.local".
pub fn default_domain() -> String {
    for path in ["/proc/sys/kernel/hostname", "/etc/hostname"] {
        if let Ok(s) = std::fs::read_to_string(path) {
            let name = s.trim();
            if !name.is_empty()
                && name != "localhost"
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            {
                return name.to_string();
            }
        }
    }
    "palisade.local".to_string()
}

/// Parses an ordered, comma-separated list of digest algorithms ("SHA-256, md5") into their canonical names,
/// without duplicates. Errors name the allowed values.
pub fn parse_digest_algorithms(value: &str) -> Result<Vec<&'static str>> {
    let mut out: Vec<&'static str> = Vec::new();
    for item in value.split(',').map(str::trim) {
        let Some(known) = KNOWN_DIGEST_ALGORITHMS
            .iter()
            .find(|k| k.eq_ignore_ascii_case(item))
        else {
            return Err(StoreError::Invalid(format!(
                "unknown digest algorithm '{item}': allowed values are {} (comma-separated, in order of preference)",
                KNOWN_DIGEST_ALGORITHMS.join(", ")
            )));
        };
        if out.contains(known) {
            return Err(StoreError::Invalid(format!(
                "digest algorithm {known} is listed twice"
            )));
        }
        out.push(known);
    }
    Ok(out)
}

/// Parses a credential length, which must be within 10..=50.
pub fn parse_credential_length(value: &str) -> Result<usize> {
    match value.trim().parse::<usize>() {
        Ok(n) if (MIN_CREDENTIAL_LENGTH..=MAX_CREDENTIAL_LENGTH).contains(&n) => Ok(n),
        _ => Err(StoreError::Invalid(format!(
            "credential_length must be a whole number from {MIN_CREDENTIAL_LENGTH} to {MAX_CREDENTIAL_LENGTH}, got '{value}'"
        ))),
    }
}

/// Checks a domain: a host name such as pbx.example.com.
pub fn validate_domain(value: &str) -> Result<String> {
    let v = value.trim();
    let ok = !v.is_empty()
        && v.len() <= 253
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        && !v.starts_with(['.', '-'])
        && !v.ends_with(['.', '-']);
    if ok {
        Ok(v.to_ascii_lowercase())
    } else {
        Err(StoreError::Invalid(format!(
            "invalid domain '{value}': expected a host name such as pbx.example.com (letters, digits, '-' and '.')"
        )))
    }
}

/// The anti-hacking setting called `key`, if it is one.
pub fn guard_limit(key: &str) -> Option<&'static Limit> {
    GUARD_SETTINGS.iter().find(|l| l.key == key)
}

/// The event log setting called `key` (`event_retention_days`, `event_max_rows`), if it is one.
pub fn event_limit(key: &str) -> Option<&'static Limit> {
    super::events::EVENT_SETTINGS.iter().find(|l| l.key == key)
}

/// Checks a whole number against `limit`; returns it canonical.
pub fn validate_limit(limit: &Limit, value: &str) -> Result<String> {
    value
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|v| (limit.min..=limit.max).contains(v))
        .map(|v| v.to_string())
        .ok_or_else(|| {
            StoreError::Invalid(format!(
                "{} must be a whole number from {} to {}, got '{value}'",
                limit.key, limit.min, limit.max
            ))
        })
}

/// Validates and canonicalises a value for a settable key. Unknown keys are refused with the list of known ones.
///
/// Anti-hacking settings are checked against their limits here; that `flood_red_pps` stays above
/// `flood_amber_pps` depends on the other stored value and is checked by [`Db::set_setting`].
pub fn normalize(key: &str, value: &str) -> Result<String> {
    match key {
        DIGEST_ALGORITHMS => Ok(parse_digest_algorithms(value)?.join(",")),
        CREDENTIAL_LENGTH => Ok(parse_credential_length(value)?.to_string()),
        DOMAIN => validate_domain(value),
        _ if guard_limit(key).is_some() => guard::config::validate(key, value)
            .map(|v| v.to_string())
            .map_err(|e| StoreError::Invalid(e.to_string())),
        _ if event_limit(key).is_some() => {
            event_limit(key).map_or(Ok(value.to_string()), |l| validate_limit(l, value))
        }
        _ if super::admin::admin_limit(key).is_some() => super::admin::admin_limit(key)
            .map_or(Ok(value.to_string()), |l| validate_limit(l, value)),
        _ if super::policy::policy_setting(key).is_some() => {
            super::policy::normalize(key, value).unwrap_or_else(|| Ok(value.to_string()))
        }
        _ => {
            let known: Vec<&str> = SETTABLE
                .iter()
                .map(|(k, _)| *k)
                .chain(GUARD_SETTINGS.iter().map(|l| l.key))
                .chain(super::events::EVENT_SETTINGS.iter().map(|l| l.key))
                .chain(super::admin::ADMIN_SETTINGS.iter().map(|l| l.key))
                .chain(super::policy::POLICY_SETTINGS.iter().map(|s| s.key))
                .collect();
            Err(StoreError::Invalid(format!(
                "unknown setting '{key}': known settings are {}",
                known.join(", ")
            )))
        }
    }
}

impl Db {
    /// The raw value of a setting, if set.
    pub async fn get_setting(&self, key: &str) -> Result<Option<String>> {
        on_both!(
            self,
            pool,
            Ok(
                sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
                    .bind(key)
                    .fetch_optional(pool)
                    .await?,
            )
        )
    }

    /// Stores a setting durably and bumps the configuration version. The value is stored as given: validate it
    /// first with [`normalize`] for the known keys.
    pub async fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        if key == CONFIG_VERSION {
            return Err(StoreError::Invalid(format!(
                "{CONFIG_VERSION} is maintained by Palisade and cannot be set"
            )));
        }
        if key.is_empty() || key.len() > 64 || value.len() > MAX_VALUE_LEN {
            return Err(StoreError::Invalid(format!(
                "setting keys are 1 to 64 characters and values at most {MAX_VALUE_LEN}"
            )));
        }
        let now = now_ms();
        on_both!(self, pool, {
            {
                let mut tx = super::begin_write(pool).await?;
                if let Some(partner) = flood_partner(key) {
                    let stored: Option<String> =
                        sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
                            .bind(partner.key)
                            .fetch_optional(&mut *tx)
                            .await?;
                    check_flood_tiers(key, value, partner, stored)?;
                }
                sqlx::query(
                    "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (key) DO UPDATE SET value = $2, updated_at = $3",
                )
                .bind(key)
                .bind(value)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                bump_version(&mut tx, now).await?;
                tx.commit().await?;
                Ok(())
            }
        })
    }

    /// Removes a stored setting, so its default applies again, and bumps the configuration version. Returns
    /// whether it was set.
    pub async fn remove_setting(&self, key: &str) -> Result<bool> {
        if key == CONFIG_VERSION {
            return Err(StoreError::Invalid(format!(
                "{CONFIG_VERSION} is maintained by Palisade and cannot be removed"
            )));
        }
        let now = now_ms();
        on_both!(self, pool, {
            {
                let mut tx = super::begin_write(pool).await?;
                let done = sqlx::query("DELETE FROM settings WHERE key = $1")
                    .bind(key)
                    .execute(&mut *tx)
                    .await?;
                bump_version(&mut tx, now).await?;
                tx.commit().await?;
                Ok(done.rows_affected() > 0)
            }
        })
    }

    /// The anti-hacking settings that are stored, as `(key, value)` in [`GUARD_SETTINGS`] order, for
    /// `guard::GuardConfig::from_settings` (settings not stored keep their defaults).
    pub async fn guard_settings(&self) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        for limit in &GUARD_SETTINGS {
            if let Some(v) = self.get_setting(limit.key).await? {
                out.push((limit.key.to_string(), v));
            }
        }
        Ok(out)
    }

    /// The SIP domain: the `domain` setting, else [`default_domain`].
    pub async fn domain(&self) -> Result<String> {
        Ok(self
            .get_setting(DOMAIN)
            .await?
            .unwrap_or_else(default_domain))
    }

    /// The ordered digest algorithms: the `digest_algorithms` setting, else MD5. A stored value that no longer
    /// parses falls back to the default.
    pub async fn digest_algorithms(&self) -> Result<Vec<&'static str>> {
        let v = self.get_setting(DIGEST_ALGORITHMS).await?;
        Ok(v.and_then(|v| parse_digest_algorithms(&v).ok())
            .unwrap_or_else(|| vec![DEFAULT_DIGEST_ALGORITHMS]))
    }

    /// The length of generated credentials: the `credential_length` setting, else 10.
    pub async fn credential_length(&self) -> Result<usize> {
        let v = self.get_setting(CREDENTIAL_LENGTH).await?;
        Ok(v.and_then(|v| parse_credential_length(&v).ok())
            .unwrap_or(DEFAULT_CREDENTIAL_LENGTH))
    }
}

/// The other flood tier of `key` (`flood_red_pps` for `flood_amber_pps` and back), whose stored value
/// [`check_flood_tiers`] needs; `None` for other keys.
fn flood_partner(key: &str) -> Option<&'static Limit> {
    match key {
        k if k == FLOOD_AMBER_PPS.key => Some(&FLOOD_RED_PPS),
        k if k == FLOOD_RED_PPS.key => Some(&FLOOD_AMBER_PPS),
        _ => None,
    }
}

/// Refuses a `flood_amber_pps` or `flood_red_pps` value that would put red at or below amber, given the other
/// tier's stored value (`stored`, else its default). Values that are not numbers are left to [`normalize`].
fn check_flood_tiers(key: &str, value: &str, other: &Limit, stored: Option<String>) -> Result<()> {
    let Ok(new) = value.trim().parse::<u64>() else {
        return Ok(());
    };
    let other_value = stored
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(other.default);
    let (amber, red) = if key == FLOOD_RED_PPS.key {
        (other_value, new)
    } else {
        (new, other_value)
    };
    if red <= amber {
        let hint = if key == FLOOD_RED_PPS.key {
            format!("choose a value above {amber}, or lower flood_amber_pps first")
        } else {
            format!("choose a value below {red}, or raise flood_red_pps first")
        };
        return Err(StoreError::Invalid(format!(
            "{}; {hint} (limits: flood_amber_pps {} to {}, flood_red_pps {} to {})",
            ConfigError::RedNotAboveAmber { amber, red },
            FLOOD_AMBER_PPS.min,
            FLOOD_AMBER_PPS.max,
            FLOOD_RED_PPS.min,
            FLOOD_RED_PPS.max
        )));
    }
    Ok(())
}
