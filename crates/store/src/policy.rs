//! Stored call policy (hardening steps 3 and 4): the E.164 and policy settings (kept in the settings table, checked
//! by [`normalize`] through [`super::settings::normalize`]) and the ordered outbound rules. [`Db::policy_settings`]
//! reads them all into a [`PolicyConfig`], whose [`PolicyConfig::to_settings`] builds the
//! [`pbx::policy::PolicySettings`] the pure policy function takes.
//!
//! Deny by default: until the home `country_code` is set, no external call goes out except emergency numbers
//! (see [`PolicyConfig::not_configured`]); international calls need both a matching outbound rule and an allowed
//! country.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Serialize;

use super::{Db, Result, StoreError, bump_version, now_ms};
use pbx::policy::{NumberPlan, OfficeHours, OutboundRule, PolicySettings};
use pbx::voicemail::lockout::{self, LockoutSettings};

/// The home country calling code, e.g. 1, 44, 49. Default: not set (no external calls until it is).
pub const COUNTRY_CODE: &str = "country_code";
/// The international call prefix, e.g. 00 or 011.
pub const INTERNATIONAL_PREFIX: &str = "international_prefix";
/// The national (trunk) prefix, e.g. 0 or 1; may be empty.
pub const NATIONAL_PREFIX: &str = "national_prefix";
/// Country calling codes international calls may reach, besides the home country.
pub const ALLOWED_COUNTRY_CODES: &str = "allowed_country_codes";
/// Numbers that always go out through their rule, whatever the caller's restrictions.
pub const EMERGENCY_NUMBERS: &str = "emergency_numbers";
/// How long a PIN unlock lasts, in seconds.
pub const PIN_UNLOCK_SECONDS: &str = "pin_unlock_seconds";
/// Wrong voicemail PINs for one mailbox within 24 h before its PIN entry is locked.
pub const PIN_FAILURES_BEFORE_LOCKOUT: &str = "pin_failures_before_lockout";
/// How long the first lockout of a mailbox's PIN entry lasts, in seconds (doubled for each further one).
pub const PIN_LOCKOUT_SECONDS: &str = "pin_lockout_seconds";
/// Concurrent calls one extension may place (a per-extension override exists: `ext set --max-calls`).
pub const MAX_CALLS_PER_EXTENSION: &str = "max_calls_per_extension";
/// Message-waiting subscriptions one extension may hold.
pub const MAX_SUBSCRIPTIONS_PER_EXTENSION: &str = "max_subscriptions_per_extension";
/// The local networks (CIDRs) for `lan_only` and `block_remote_ws`.
pub const LOCAL_NETWORKS: &str = "local_networks";
/// The IANA time zone of the office hours; empty: the server's system time zone.
pub const OFFICE_HOURS_TIMEZONE: &str = "office_hours_timezone";
/// Weekly office hours, e.g. "mon-fri 08:00-18:00; sat 09:00-12:00"; empty: none set.
pub const OFFICE_HOURS: &str = "office_hours";
/// Days the office is closed, as ISO dates.
pub const HOLIDAYS: &str = "holidays";
/// The number extensions dial for their own mailbox.
pub const VOICEMAIL_NUMBER: &str = "voicemail_number";
pub const DEFAULT_VOICEMAIL_NUMBER: &str = "999";

pub const DEFAULT_INTERNATIONAL_PREFIX: &str = "00";
pub const DEFAULT_NATIONAL_PREFIX: &str = "0";
pub const DEFAULT_EMERGENCY_NUMBERS: &str = "112,911,999";
pub const DEFAULT_PIN_UNLOCK_SECONDS: u64 = 3600;
pub const MIN_PIN_UNLOCK_SECONDS: u64 = 60;
pub const MAX_PIN_UNLOCK_SECONDS: u64 = 86_400;
/// RFC 1918, loopback and IPv6 ULA.
pub const DEFAULT_LOCAL_NETWORKS: &str =
    "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,127.0.0.0/8,::1/128,fc00::/7";

/// The longest dialled number or rule length: E.164 numbers have at most 15 digits, plus prefixes.
pub const MAX_NUMBER_LEN: usize = 32;
/// The most outbound rules.
pub const MAX_RULES: usize = 1000;
const MAX_NAME_LEN: usize = 32;

/// A policy setting: key, default (as stored), what it is and which values it takes.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PolicySetting {
    pub key: &'static str,
    pub default: &'static str,
    pub about: &'static str,
    pub allowed: &'static str,
}

/// The policy settings, in display order.
pub const POLICY_SETTINGS: [PolicySetting; 15] = [
    PolicySetting {
        key: COUNTRY_CODE,
        default: "",
        about: "home country calling code; until it is set, only emergency numbers go out",
        allowed: "1 to 3 digits, an ITU country calling code (e.g. 1, 44, 49)",
    },
    PolicySetting {
        key: INTERNATIONAL_PREFIX,
        default: DEFAULT_INTERNATIONAL_PREFIX,
        about: "dialled before an international number",
        allowed: "1 to 4 digits (e.g. 00, 011)",
    },
    PolicySetting {
        key: NATIONAL_PREFIX,
        default: DEFAULT_NATIONAL_PREFIX,
        about: "dialled before a national number",
        allowed: "0 to 4 digits (e.g. 0, 1; \"\" for none)",
    },
    PolicySetting {
        key: ALLOWED_COUNTRY_CODES,
        default: "",
        about: "countries international calls may reach besides the home country",
        allowed: "comma-separated country calling codes (e.g. 44,33); \"\" for the home country only",
    },
    PolicySetting {
        key: EMERGENCY_NUMBERS,
        default: DEFAULT_EMERGENCY_NUMBERS,
        about: "always go out through their outbound rule, whatever the caller's restrictions",
        allowed: "comma-separated numbers of 1 to 15 digits, at least one",
    },
    PolicySetting {
        key: PIN_UNLOCK_SECONDS,
        default: "3600",
        about: "how long external calls stay allowed after a PIN unlock",
        allowed: "60 to 86400 seconds",
    },
    PolicySetting {
        key: PIN_FAILURES_BEFORE_LOCKOUT,
        default: "10",
        about: "wrong voicemail PINs (999 and 777 alike, across calls) within 24 h that lock a mailbox's PIN entry",
        allowed: "3 to 100",
    },
    PolicySetting {
        key: PIN_LOCKOUT_SECONDS,
        default: "3600",
        about: "how long a mailbox's PIN entry stays locked; doubled for each further lockout, at most 24 h",
        allowed: "60 to 86400 seconds",
    },
    PolicySetting {
        key: MAX_CALLS_PER_EXTENSION,
        default: "4",
        about: "calls in progress one extension may have placed; the next gets 486 (emergency calls always pass)",
        allowed: "1 to 1000 (per extension: ext set --max-calls)",
    },
    PolicySetting {
        key: MAX_SUBSCRIPTIONS_PER_EXTENSION,
        default: "4",
        about: "message-waiting subscriptions one extension may hold; the next gets 486",
        allowed: "1 to 1000",
    },
    PolicySetting {
        key: LOCAL_NETWORKS,
        default: DEFAULT_LOCAL_NETWORKS,
        about: "networks counted as local for lan_only and block_remote_ws extensions",
        allowed: "comma-separated addresses or CIDR prefixes, at least one",
    },
    PolicySetting {
        key: OFFICE_HOURS_TIMEZONE,
        default: "",
        about: "time zone of the office hours; \"\" for the server's system time zone",
        allowed: "an IANA time zone name (e.g. Europe/Berlin, America/New_York, UTC)",
    },
    PolicySetting {
        key: OFFICE_HOURS,
        default: "",
        about: "weekly office hours for office_hours_only extensions; \"\" for none",
        allowed: "DAYS HH:MM-HH:MM entries separated by ';' (e.g. mon-fri 08:00-18:00; sat 09:00-12:00)",
    },
    PolicySetting {
        key: HOLIDAYS,
        default: "",
        about: "days the office is closed all day",
        allowed: "comma-separated dates YYYY-MM-DD (e.g. 2026-12-25,2026-12-26)",
    },
    PolicySetting {
        key: VOICEMAIL_NUMBER,
        default: DEFAULT_VOICEMAIL_NUMBER,
        about: "dialled for one's own mailbox (an emergency number with an outbound rule wins over it)",
        allowed: "2 to 10 digits; \"\" for no access number",
    },
];

/// The policy setting called `key`, if it is one.
pub fn policy_setting(key: &str) -> Option<&'static PolicySetting> {
    POLICY_SETTINGS.iter().find(|s| s.key == key)
}

fn invalid(key: &str, value: &str, why: &str) -> StoreError {
    let allowed = policy_setting(key).map(|s| s.allowed).unwrap_or("");
    let why = if why.is_empty() {
        String::new()
    } else {
        format!(" ({why})")
    };
    StoreError::Invalid(format!(
        "invalid {key} '{}'{why}: expected {allowed}",
        value.escape_debug()
    ))
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// True if `code` is exactly an ITU country calling code (so "4" and "25" are not: numbers starting with them
/// belong to 40–49 and 250–259).
pub fn is_country_code(code: &str) -> bool {
    (1..=3).contains(&code.len())
        && is_digits(code)
        && pbx::policy::country_code(&format!("{code}0000000")) == Some(code)
}

fn list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

fn country(key: &str, value: &str, item: &str) -> Result<String> {
    let code = item.strip_prefix('+').unwrap_or(item);
    if !is_digits(code) || code.len() > 3 {
        return Err(invalid(
            key,
            value,
            &format!("'{item}' is not 1 to 3 digits"),
        ));
    }
    if !is_country_code(code) {
        let hint = match pbx::policy::country_code(&format!("{code}0000000")) {
            Some(real) if real.len() > code.len() => format!(
                "{code} is not a country calling code: numbers starting with {code} belong to longer codes \
                 such as {real}"
            ),
            _ => format!("{code} is not a country calling code"),
        };
        return Err(invalid(key, value, &hint));
    }
    Ok(code.to_string())
}

/// Validates and canonicalises a policy setting; `None` if `key` is not one (see [`POLICY_SETTINGS`]).
pub fn normalize(key: &str, value: &str) -> Option<Result<String>> {
    let v = value.trim();
    let r = match key {
        COUNTRY_CODE => country(key, value, v),
        INTERNATIONAL_PREFIX => {
            if is_digits(v) && v.len() <= 4 {
                Ok(v.to_string())
            } else {
                Err(invalid(key, value, ""))
            }
        }
        NATIONAL_PREFIX => {
            if v.is_empty() || (is_digits(v) && v.len() <= 4) {
                Ok(v.to_string())
            } else {
                Err(invalid(key, value, ""))
            }
        }
        ALLOWED_COUNTRY_CODES => {
            let mut out: Vec<String> = Vec::new();
            let mut r = Ok(());
            for item in list(v) {
                match country(key, value, item) {
                    Ok(c) if !out.contains(&c) => out.push(c),
                    Ok(_) => {}
                    Err(e) => {
                        r = Err(e);
                        break;
                    }
                }
            }
            r.map(|()| out.join(","))
        }
        EMERGENCY_NUMBERS => {
            let mut out: Vec<&str> = Vec::new();
            let mut r = Ok(());
            for item in list(v) {
                if !is_digits(item) || item.len() > 15 {
                    r = Err(invalid(
                        key,
                        value,
                        &format!("'{item}' is not 1 to 15 digits"),
                    ));
                    break;
                }
                if !out.contains(&item) {
                    out.push(item);
                }
            }
            if r.is_ok() && out.is_empty() {
                r = Err(invalid(
                    key,
                    value,
                    "emergency calls must always be possible; the default is 112,911,999",
                ));
            }
            r.map(|()| out.join(","))
        }
        PIN_FAILURES_BEFORE_LOCKOUT => match v.parse::<u32>() {
            Ok(n)
                if (lockout::MIN_FAILURES_BEFORE_LOCKOUT
                    ..=lockout::MAX_FAILURES_BEFORE_LOCKOUT)
                    .contains(&n) =>
            {
                Ok(n.to_string())
            }
            _ => Err(invalid(key, value, "")),
        },
        PIN_LOCKOUT_SECONDS => match v.parse::<u64>() {
            Ok(n) if (lockout::MIN_LOCKOUT_SECONDS..=lockout::MAX_LOCKOUT_SECONDS).contains(&n) => {
                Ok(n.to_string())
            }
            _ => Err(invalid(key, value, "")),
        },
        MAX_CALLS_PER_EXTENSION | MAX_SUBSCRIPTIONS_PER_EXTENSION => match v.parse::<u32>() {
            Ok(n) if (1..=pbx::limits::MAX_LIMIT).contains(&n) => Ok(n.to_string()),
            _ => Err(invalid(key, value, "")),
        },
        PIN_UNLOCK_SECONDS => match v.parse::<u64>() {
            Ok(n) if (MIN_PIN_UNLOCK_SECONDS..=MAX_PIN_UNLOCK_SECONDS).contains(&n) => {
                Ok(n.to_string())
            }
            _ => Err(invalid(key, value, "")),
        },
        LOCAL_NETWORKS => {
            let mut out: Vec<String> = Vec::new();
            let mut r = Ok(());
            for item in list(v) {
                match guard::lists::parse_net(item) {
                    Ok(net) => {
                        let net = net.to_string();
                        if !out.contains(&net) {
                            out.push(net);
                        }
                    }
                    Err(e) => {
                        r = Err(invalid(key, value, &e));
                        break;
                    }
                }
            }
            if r.is_ok() && out.is_empty() {
                r = Err(invalid(
                    key,
                    value,
                    "an empty list would make every address remote",
                ));
            }
            r.map(|()| out.join(","))
        }
        OFFICE_HOURS_TIMEZONE => {
            if v.is_empty() {
                Ok(String::new())
            } else {
                match jiff::tz::TimeZone::get(v) {
                    Ok(_) => Ok(v.to_string()),
                    Err(_) => Err(invalid(key, value, "unknown time zone")),
                }
            }
        }
        OFFICE_HOURS => match OfficeHours::parse("UTC", v, &[]) {
            Ok(_) => Ok(v
                .split(';')
                .map(|e| e.split_whitespace().collect::<Vec<_>>().join(" "))
                .filter(|e| !e.is_empty())
                .collect::<Vec<_>>()
                .join("; ")),
            Err(e) => Err(invalid(key, value, &e)),
        },
        HOLIDAYS => {
            let mut out: Vec<jiff::civil::Date> = Vec::new();
            let mut r = Ok(());
            for item in list(v) {
                match item.parse::<jiff::civil::Date>() {
                    Ok(d) if item.len() == 10 => out.push(d),
                    _ => {
                        r = Err(invalid(key, value, &format!("'{item}' is not a date")));
                        break;
                    }
                }
            }
            out.sort();
            out.dedup();
            r.map(|()| {
                out.iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            })
        }
        VOICEMAIL_NUMBER => {
            if v.is_empty() || (is_digits(v) && (2..=10).contains(&v.len())) {
                Ok(v.to_string())
            } else {
                Err(invalid(key, value, ""))
            }
        }
        _ => return None,
    };
    Some(r)
}

/// The stored policy, with defaults applied: see [`Db::policy_settings`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyConfig {
    /// The home country calling code; empty: not configured (see [`PolicyConfig::not_configured`]).
    pub country_code: String,
    pub international_prefix: String,
    /// May be empty (no national prefix).
    pub national_prefix: String,
    /// Countries allowed besides the home country, as set (the home country is always allowed).
    pub allowed_country_codes: Vec<String>,
    pub emergency_numbers: Vec<String>,
    pub pin_unlock_seconds: u64,
    pub pin_failures_before_lockout: u32,
    pub pin_lockout_seconds: u64,
    pub max_calls_per_extension: u32,
    pub max_subscriptions_per_extension: u32,
    /// Canonical CIDRs (`guard::lists::parse_net` accepts each).
    pub local_networks: Vec<String>,
    /// IANA name as set; empty: the system time zone (see [`PolicyConfig::effective_timezone`]).
    pub office_hours_timezone: String,
    /// Weekly office hours as set; empty: none.
    pub office_hours: String,
    /// ISO dates, sorted.
    pub holidays: Vec<String>,
    /// The voicemail access number; empty: none.
    pub voicemail_number: String,
    /// The outbound rules, in order.
    pub rules: Vec<OutboundRuleRow>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        let split = |s: &str| list(s).map(String::from).collect();
        PolicyConfig {
            country_code: String::new(),
            international_prefix: DEFAULT_INTERNATIONAL_PREFIX.into(),
            national_prefix: DEFAULT_NATIONAL_PREFIX.into(),
            allowed_country_codes: Vec::new(),
            emergency_numbers: split(DEFAULT_EMERGENCY_NUMBERS),
            pin_unlock_seconds: DEFAULT_PIN_UNLOCK_SECONDS,
            pin_failures_before_lockout: lockout::DEFAULT_FAILURES_BEFORE_LOCKOUT,
            pin_lockout_seconds: lockout::DEFAULT_LOCKOUT_SECONDS,
            max_calls_per_extension: pbx::limits::DEFAULT_MAX_CALLS_PER_EXTENSION,
            max_subscriptions_per_extension: pbx::limits::DEFAULT_MAX_SUBSCRIPTIONS_PER_EXTENSION,
            local_networks: split(DEFAULT_LOCAL_NETWORKS),
            office_hours_timezone: String::new(),
            office_hours: String::new(),
            holidays: Vec::new(),
            voicemail_number: DEFAULT_VOICEMAIL_NUMBER.into(),
            rules: Vec::new(),
        }
    }
}

impl PolicyConfig {
    /// Why external calls are all refused, if the home country is not set: a message for the log, the security
    /// event and `palisade policy show`. Emergency numbers still go out.
    pub fn not_configured(&self) -> Option<String> {
        self.country_code.is_empty().then(|| {
            "the home country calling code is not set, so every external call except emergency numbers is \
             refused: set it with `palisade policy set country_code CODE` (e.g. 1, 44, 49)"
                .to_string()
        })
    }

    /// The country codes external calls may reach: the home country and `allowed_country_codes`; none while the
    /// home country is not set (numbers cannot be normalised without it).
    pub fn effective_allowed_country_codes(&self) -> BTreeSet<String> {
        if self.country_code.is_empty() {
            return BTreeSet::new();
        }
        std::iter::once(self.country_code.clone())
            .chain(self.allowed_country_codes.iter().cloned())
            .collect()
    }

    /// The office-hours time zone's IANA name: the setting, else the system's zone, else UTC.
    pub fn effective_timezone(&self) -> String {
        if !self.office_hours_timezone.is_empty() {
            return self.office_hours_timezone.clone();
        }
        jiff::tz::TimeZone::system()
            .iana_name()
            .map(String::from)
            .unwrap_or_else(|| "UTC".into())
    }

    /// The office hours, if set (`None`: none configured).
    pub fn office_hours(&self) -> Result<Option<OfficeHours>, String> {
        if self.office_hours.trim().is_empty() {
            return Ok(None);
        }
        let holidays: Vec<&str> = self.holidays.iter().map(String::as_str).collect();
        OfficeHours::parse(&self.effective_timezone(), &self.office_hours, &holidays).map(Some)
    }

    /// How long a PIN unlock lasts.
    pub fn pin_unlock_duration(&self) -> Duration {
        Duration::from_secs(self.pin_unlock_seconds)
    }

    /// The voicemail PIN lockout settings.
    pub fn pin_lockout(&self) -> LockoutSettings {
        LockoutSettings {
            failures_before_lockout: self.pin_failures_before_lockout,
            lockout_seconds: self.pin_lockout_seconds,
        }
    }

    /// The number plan; its country code is empty while not configured.
    pub fn number_plan(&self) -> NumberPlan {
        NumberPlan {
            country_code: self.country_code.clone(),
            international_prefix: self.international_prefix.clone(),
            national_prefix: self.national_prefix.clone(),
        }
    }

    /// The settings for [`pbx::policy::route`]. Errors (a stored office-hours value that no longer parses,
    /// e.g. after a time-zone database change) say what to fix.
    pub fn to_settings(&self) -> Result<PolicySettings, String> {
        let mut s = PolicySettings::new(self.number_plan());
        s.rules = self.rules.iter().map(OutboundRuleRow::to_rule).collect();
        s.allowed_country_codes = self.effective_allowed_country_codes();
        s.emergency_numbers = self.emergency_numbers.clone();
        s.voicemail_number = self.voicemail_number.clone();
        s.office_hours = self
            .office_hours()
            .map_err(|e| format!("{e} (fix it with `palisade policy set office_hours …`)"))?;
        Ok(s)
    }
}

/// A stored outbound rule. Lists are comma-separated in the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutboundRuleRow {
    /// 1-based; rules are tried in this order.
    pub position: u32,
    pub name: String,
    /// Digits, optionally after a leading '+'; empty: any number.
    pub prefix: String,
    /// `None`: the prefix length (at least 1).
    pub min_len: Option<u32>,
    /// `None`: [`MAX_NUMBER_LEN`].
    pub max_len: Option<u32>,
    /// Calling extensions; empty: all.
    pub extensions: Vec<String>,
    pub strip: u32,
    pub prepend: String,
    /// Trunk names, in failover order (at least one).
    pub trunks: Vec<String>,
}

impl OutboundRuleRow {
    /// A rule for `name` and `prefix` through `trunks`, with no other conditions (fill in the rest as needed).
    pub fn new(name: &str, prefix: &str, trunks: &[&str]) -> Self {
        OutboundRuleRow {
            position: 0,
            name: name.into(),
            prefix: prefix.into(),
            min_len: None,
            max_len: None,
            extensions: Vec::new(),
            strip: 0,
            prepend: String::new(),
            trunks: trunks.iter().map(|t| t.to_string()).collect(),
        }
    }

    pub fn effective_min_len(&self) -> usize {
        self.min_len
            .map(|n| n as usize)
            .unwrap_or(self.prefix.len().max(1))
    }

    pub fn effective_max_len(&self) -> usize {
        self.max_len.map(|n| n as usize).unwrap_or(MAX_NUMBER_LEN)
    }

    /// The rule as the policy function takes it.
    pub fn to_rule(&self) -> OutboundRule {
        OutboundRule {
            name: self.name.clone(),
            prefix: self.prefix.clone(),
            min_len: self.effective_min_len(),
            max_len: self.effective_max_len(),
            extensions: self.extensions.clone(),
            strip: self.strip as usize,
            prepend: self.prepend.clone(),
            trunks: self.trunks.clone(),
        }
    }

    /// Checks every field; errors name the allowed form.
    pub fn validate(&self) -> Result<()> {
        validate_name("rule name", &self.name)?;
        // "", "+", digits or '+' and digits.
        let plus_digits =
            |s: &str| s.is_empty() || s == "+" || is_digits(s.strip_prefix('+').unwrap_or(s));
        if !plus_digits(&self.prefix) || self.prefix.len() > MAX_NUMBER_LEN {
            return Err(StoreError::Invalid(format!(
                "invalid prefix '{}': expected digits, optionally after a '+' (e.g. 00, 0, +44), or \"\" for any \
                 number",
                self.prefix.escape_debug()
            )));
        }
        if !plus_digits(&self.prepend) || self.prepend.len() > MAX_NUMBER_LEN {
            return Err(StoreError::Invalid(format!(
                "invalid prepend '{}': expected digits, optionally after a '+' (e.g. 0049, +), or \"\" for nothing",
                self.prepend.escape_debug()
            )));
        }
        for (what, n) in [("min length", self.min_len), ("max length", self.max_len)] {
            if let Some(n) = n
                && !(1..=MAX_NUMBER_LEN as u32).contains(&n)
            {
                return Err(StoreError::Invalid(format!(
                    "{what} {n} is out of range: expected 1 to {MAX_NUMBER_LEN}"
                )));
            }
        }
        let (min, max) = (self.effective_min_len(), self.effective_max_len());
        if min > max {
            return Err(StoreError::Invalid(format!(
                "min length {min} is greater than max length {max}: choose a min length at most the max length"
            )));
        }
        if max < self.prefix.len() {
            return Err(StoreError::Invalid(format!(
                "max length {max} is shorter than the prefix '{}', so the rule could never match",
                self.prefix
            )));
        }
        if self.strip as usize > MAX_NUMBER_LEN {
            return Err(StoreError::Invalid(format!(
                "strip {} is out of range: expected 0 to {MAX_NUMBER_LEN} digits",
                self.strip
            )));
        }
        for e in &self.extensions {
            super::validate_number(e)
                .map_err(|e| StoreError::Invalid(format!("{e} (in the rule's extensions)")))?;
        }
        if self.trunks.is_empty() {
            return Err(StoreError::Invalid(
                "a rule needs at least one trunk name (e.g. --trunks carrier or --trunks carrier,backup)".into(),
            ));
        }
        for t in &self.trunks {
            validate_name("trunk name", t)?;
        }
        let mut seen = BTreeSet::new();
        if let Some(t) = self.trunks.iter().find(|t| !seen.insert(t.as_str())) {
            return Err(StoreError::Invalid(format!(
                "trunk {t} is listed twice in the rule"
            )));
        }
        Ok(())
    }
}

/// Rule and trunk names: 1 to 32 letters, digits, '-' and '_'.
pub fn validate_name(what: &str, name: &str) -> Result<()> {
    if !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "invalid {what} '{}': expected 1 to {MAX_NAME_LEN} letters, digits, '-' or '_'",
            name.escape_debug()
        )))
    }
}

type RuleTuple = (
    i64,
    String,
    String,
    Option<i64>,
    Option<i64>,
    Option<String>,
    i64,
    String,
    String,
);

fn from_tuple(t: RuleTuple) -> OutboundRuleRow {
    let split = |s: &str| list(s).map(String::from).collect::<Vec<_>>();
    OutboundRuleRow {
        position: t.0.clamp(0, u32::MAX as i64) as u32,
        name: t.1,
        prefix: t.2,
        min_len: t.3.map(|n| n.clamp(0, u32::MAX as i64) as u32),
        max_len: t.4.map(|n| n.clamp(0, u32::MAX as i64) as u32),
        extensions: t.5.as_deref().map(split).unwrap_or_default(),
        strip: t.6.clamp(0, u32::MAX as i64) as u32,
        prepend: t.7,
        trunks: split(&t.8),
    }
}

const SELECT_RULES: &str = "SELECT position, name, prefix, min_len, max_len, extensions, strip, prepend, trunks \
                            FROM outbound_rules ORDER BY position";

/// Connection-typed helpers, instantiated as `sqlite_helpers` and `pg_helpers` (see `on_both!`): one SQL text.
macro_rules! rule_helpers {
    ($conn:ty) => {
    pub(super) async fn load_rules(conn: &mut $conn) -> Result<Vec<OutboundRuleRow>> {
        let rows: Vec<RuleTuple> = sqlx::query_as(SELECT_RULES).fetch_all(&mut *conn).await?;
        Ok(rows.into_iter().map(from_tuple).collect())
    }

    /// Replaces the whole rule table with `rules`, numbered 1, 2, … in order (inside the caller's transaction).
    pub(super) async fn store_rules(
        conn: &mut $conn,
        rules: &mut [OutboundRuleRow],
    ) -> Result<()> {
        sqlx::query("DELETE FROM outbound_rules")
            .execute(&mut *conn)
            .await?;
        for (i, r) in rules.iter_mut().enumerate() {
            r.position = i as u32 + 1;
            sqlx::query(
                "INSERT INTO outbound_rules (position, name, prefix, min_len, max_len, extensions, strip, prepend, \
                 trunks) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(r.position as i64)
            .bind(&r.name)
            .bind(&r.prefix)
            .bind(r.min_len.map(i64::from))
            .bind(r.max_len.map(i64::from))
            .bind((!r.extensions.is_empty()).then(|| r.extensions.join(",")))
            .bind(r.strip as i64)
            .bind(&r.prepend)
            .bind(r.trunks.join(","))
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
    };
}

mod sqlite_helpers {
    use super::*;
    rule_helpers!(sqlx::SqliteConnection);
}

mod pg_helpers {
    use super::*;
    rule_helpers!(sqlx::PgConnection);
}

fn position_error(at: usize, len: usize) -> StoreError {
    StoreError::Invalid(format!(
        "position {at} is out of range: expected 1 to {len} (see `palisade rule list`)"
    ))
}

impl Db {
    /// The stored policy settings and outbound rules, with defaults for what is not set. A stored value that no
    /// longer validates is replaced by its default, as the guard settings are.
    pub async fn policy_settings(&self) -> Result<PolicyConfig> {
        let mut c = PolicyConfig::default();
        for s in &POLICY_SETTINGS {
            let Some(raw) = self.get_setting(s.key).await? else {
                continue;
            };
            let Some(Ok(v)) = normalize(s.key, &raw) else {
                tracing::warn!(key = s.key, value = %raw, "stored policy setting is invalid; using its default");
                continue;
            };
            let split = |v: &str| list(v).map(String::from).collect::<Vec<_>>();
            match s.key {
                COUNTRY_CODE => c.country_code = v,
                INTERNATIONAL_PREFIX => c.international_prefix = v,
                NATIONAL_PREFIX => c.national_prefix = v,
                ALLOWED_COUNTRY_CODES => c.allowed_country_codes = split(&v),
                EMERGENCY_NUMBERS => c.emergency_numbers = split(&v),
                PIN_UNLOCK_SECONDS => {
                    c.pin_unlock_seconds = v.parse().unwrap_or(DEFAULT_PIN_UNLOCK_SECONDS)
                }
                PIN_FAILURES_BEFORE_LOCKOUT => {
                    c.pin_failures_before_lockout = v
                        .parse()
                        .unwrap_or(lockout::DEFAULT_FAILURES_BEFORE_LOCKOUT)
                }
                PIN_LOCKOUT_SECONDS => {
                    c.pin_lockout_seconds = v.parse().unwrap_or(lockout::DEFAULT_LOCKOUT_SECONDS)
                }
                MAX_CALLS_PER_EXTENSION => {
                    c.max_calls_per_extension = v
                        .parse()
                        .unwrap_or(pbx::limits::DEFAULT_MAX_CALLS_PER_EXTENSION)
                }
                MAX_SUBSCRIPTIONS_PER_EXTENSION => {
                    c.max_subscriptions_per_extension = v
                        .parse()
                        .unwrap_or(pbx::limits::DEFAULT_MAX_SUBSCRIPTIONS_PER_EXTENSION)
                }
                LOCAL_NETWORKS => c.local_networks = split(&v),
                OFFICE_HOURS_TIMEZONE => c.office_hours_timezone = v,
                OFFICE_HOURS => c.office_hours = v,
                HOLIDAYS => c.holidays = split(&v),
                VOICEMAIL_NUMBER => c.voicemail_number = v,
                _ => {}
            }
        }
        c.rules = self.list_outbound_rules().await?;
        Ok(c)
    }

    /// The outbound rules, in order.
    pub async fn list_outbound_rules(&self) -> Result<Vec<OutboundRuleRow>> {
        on_both!(self, pool, helpers, {
            let mut conn = pool.acquire().await?;
            load_rules(&mut conn).await
        })
    }

    /// Adds a rule at `at` (1-based; the rules from there on move down one) or, with `None`, at the end. Returns
    /// it with its position. [`StoreError::Conflict`] if the name is taken.
    pub async fn add_outbound_rule(
        &self,
        mut rule: OutboundRuleRow,
        at: Option<usize>,
    ) -> Result<OutboundRuleRow> {
        rule.validate()?;
        let now = now_ms();
        on_both!(self, pool, helpers, {
            let mut tx = super::begin_write(pool).await?;
            let mut rules = load_rules(&mut tx).await?;
            if rules.iter().any(|r| r.name == rule.name) {
                return Err(StoreError::Conflict(format!(
                    "outbound rule {} already exists (remove it first with `palisade rule remove {}`)",
                    rule.name, rule.name
                )));
            }
            if rules.len() >= MAX_RULES {
                return Err(StoreError::Invalid(format!(
                    "at most {MAX_RULES} outbound rules; remove some first"
                )));
            }
            let index = match at {
                None => rules.len(),
                Some(p) if (1..=rules.len() + 1).contains(&p) => p - 1,
                Some(p) => return Err(position_error(p, rules.len() + 1)),
            };
            rule.position = 0;
            rules.insert(index, rule);
            store_rules(&mut tx, &mut rules).await?;
            bump_version(&mut tx, now).await?;
            tx.commit().await?;
            Ok(rules.swap_remove(index))
        })
    }

    /// Removes the rule called `name`; the ones after it move up. [`StoreError::NotFound`] if there is none.
    pub async fn remove_outbound_rule(&self, name: &str) -> Result<()> {
        let now = now_ms();
        on_both!(self, pool, helpers, {
            let mut tx = super::begin_write(pool).await?;
            let mut rules = load_rules(&mut tx).await?;
            let Some(i) = rules.iter().position(|r| r.name == name) else {
                return Err(StoreError::NotFound(format!("outbound rule {name}")));
            };
            rules.remove(i);
            store_rules(&mut tx, &mut rules).await?;
            bump_version(&mut tx, now).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Replaces the rule called `name` with `rule` (which may carry another name) at the same position, in one
    /// transaction. [`StoreError::NotFound`] if there is none, [`StoreError::Conflict`] if the new name is taken.
    pub async fn replace_outbound_rule(
        &self,
        name: &str,
        mut rule: OutboundRuleRow,
    ) -> Result<OutboundRuleRow> {
        rule.validate()?;
        let now = now_ms();
        on_both!(self, pool, helpers, {
            let mut tx = super::begin_write(pool).await?;
            let mut rules = load_rules(&mut tx).await?;
            let Some(i) = rules.iter().position(|r| r.name == name) else {
                return Err(StoreError::NotFound(format!("outbound rule {name}")));
            };
            if rule.name != name && rules.iter().any(|r| r.name == rule.name) {
                return Err(StoreError::Conflict(format!(
                    "outbound rule {} already exists (choose another name)",
                    rule.name
                )));
            }
            rule.position = 0;
            rules[i] = rule;
            store_rules(&mut tx, &mut rules).await?;
            bump_version(&mut tx, now).await?;
            tx.commit().await?;
            Ok(rules.swap_remove(i))
        })
    }

    /// Moves the rule called `name` to position `to` (1-based); returns the rules in their new order.
    pub async fn move_outbound_rule(&self, name: &str, to: usize) -> Result<Vec<OutboundRuleRow>> {
        let now = now_ms();
        on_both!(self, pool, helpers, {
            let mut tx = super::begin_write(pool).await?;
            let mut rules = load_rules(&mut tx).await?;
            let Some(i) = rules.iter().position(|r| r.name == name) else {
                return Err(StoreError::NotFound(format!("outbound rule {name}")));
            };
            if !(1..=rules.len()).contains(&to) {
                return Err(position_error(to, rules.len()));
            }
            let rule = rules.remove(i);
            rules.insert(to - 1, rule);
            store_rules(&mut tx, &mut rules).await?;
            bump_version(&mut tx, now).await?;
            tx.commit().await?;
            Ok(rules)
        })
    }
}
