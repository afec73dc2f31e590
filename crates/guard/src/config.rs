//! Anti-hacking settings (hardening step 7), with the limits the hardening guide sets for each.

/// One setting's name, default and allowed range, for validation messages and `palisade security show`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub key: &'static str,
    pub default: u64,
    pub min: u64,
    pub max: u64,
    pub help: &'static str,
}

pub const AUTH_FAILURES_BEFORE_BAN: Limit = Limit {
    key: "auth_failures_before_ban",
    default: 25,
    min: 3,
    max: 1_000_000,
    help: "failed authentications from one source before it is blacklisted",
};
pub const UNANSWERED_CHALLENGES_BEFORE_BAN: Limit = Limit {
    key: "unanswered_challenges_before_ban",
    default: 1000,
    min: 100,
    max: 1_000_000,
    help: "401/407 challenges one source leaves unanswered before it is blacklisted",
};
/// See docs/security.md for how the flood defaults were chosen: a 500-phone office rebooting at once behind one
/// NAT address stays below amber.
pub const FLOOD_AMBER_PPS: Limit = Limit {
    key: "flood_amber_pps",
    default: 1000,
    min: 10,
    max: 10_000_000,
    help: "packets per second from one source above which it is throttled",
};
pub const FLOOD_RED_PPS: Limit = Limit {
    key: "flood_red_pps",
    default: 5000,
    min: 20,
    max: 10_000_000,
    help: "packets per second from one source above which it is blacklisted",
};
pub const THROTTLE_SECONDS: Limit = Limit {
    key: "throttle_seconds",
    default: 5,
    min: 1,
    max: 3600,
    help: "how long a throttled source's packets are dropped",
};
pub const BAN_SECONDS: Limit = Limit {
    key: "ban_seconds",
    default: 86_400,
    min: 1,
    max: 1_000_000_000,
    help: "how long an automatic blacklist entry lasts",
};

/// Every setting, in display order.
pub const SETTINGS: [Limit; 6] = [
    AUTH_FAILURES_BEFORE_BAN,
    UNANSWERED_CHALLENGES_BEFORE_BAN,
    FLOOD_AMBER_PPS,
    FLOOD_RED_PPS,
    THROTTLE_SECONDS,
    BAN_SECONDS,
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown setting `{0}`; known settings: {known}", known = SETTINGS.map(|l| l.key).join(", "))]
    UnknownKey(String),
    #[error("{key} must be a whole number from {min} to {max}, got `{value}`")]
    OutOfRange {
        key: &'static str,
        value: String,
        min: u64,
        max: u64,
    },
    #[error("flood_red_pps ({red}) must be greater than flood_amber_pps ({amber})")]
    RedNotAboveAmber { amber: u64, red: u64 },
}

/// Checks one value against its limits; returns it parsed.
pub fn validate(key: &str, value: &str) -> Result<u64, ConfigError> {
    let limit = SETTINGS
        .iter()
        .find(|l| l.key == key)
        .ok_or_else(|| ConfigError::UnknownKey(key.to_string()))?;
    value
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|v| (limit.min..=limit.max).contains(v))
        .ok_or(ConfigError::OutOfRange {
            key: limit.key,
            value: value.to_string(),
            min: limit.min,
            max: limit.max,
        })
}

/// The guard's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardConfig {
    pub auth_failures_before_ban: u32,
    pub unanswered_challenges_before_ban: u32,
    pub flood_amber_pps: u32,
    pub flood_red_pps: u32,
    pub throttle_seconds: u32,
    pub ban_seconds: u64,
    /// IPv6 sources are counted per prefix of this length (one subscriber usually holds a whole /64).
    pub ipv6_prefix_len: u8,
    /// Most sources tracked at once; beyond it the longest-tracked are forgotten (bans are kept in the lists).
    pub max_sources: usize,
    /// Most automatic blacklist entries; beyond it the one closest to expiry is dropped.
    pub max_auto_bans: usize,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            auth_failures_before_ban: AUTH_FAILURES_BEFORE_BAN.default as u32,
            unanswered_challenges_before_ban: UNANSWERED_CHALLENGES_BEFORE_BAN.default as u32,
            flood_amber_pps: FLOOD_AMBER_PPS.default as u32,
            flood_red_pps: FLOOD_RED_PPS.default as u32,
            throttle_seconds: THROTTLE_SECONDS.default as u32,
            ban_seconds: BAN_SECONDS.default,
            ipv6_prefix_len: 64,
            max_sources: 100_000,
            max_auto_bans: 100_000,
        }
    }
}

impl GuardConfig {
    /// Builds a configuration from `key = value` settings (unknown keys and bad values are errors); settings not
    /// given keep their defaults.
    pub fn from_settings<'a>(
        settings: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ConfigError> {
        let mut c = GuardConfig::default();
        for (key, value) in settings {
            let v = validate(key, value)?;
            // validate() bounds every value below u32::MAX except ban_seconds, which is a u64.
            let small = u32::try_from(v).unwrap_or(u32::MAX);
            match key {
                "auth_failures_before_ban" => c.auth_failures_before_ban = small,
                "unanswered_challenges_before_ban" => c.unanswered_challenges_before_ban = small,
                "flood_amber_pps" => c.flood_amber_pps = small,
                "flood_red_pps" => c.flood_red_pps = small,
                "throttle_seconds" => c.throttle_seconds = small,
                "ban_seconds" => c.ban_seconds = v,
                _ => return Err(ConfigError::UnknownKey(key.to_string())),
            }
        }
        if c.flood_red_pps <= c.flood_amber_pps {
            return Err(ConfigError::RedNotAboveAmber {
                amber: u64::from(c.flood_amber_pps),
                red: u64::from(c.flood_red_pps),
            });
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_enforced_with_clear_errors() {
        assert_eq!(validate("auth_failures_before_ban", "3"), Ok(3));
        let e = validate("auth_failures_before_ban", "2").unwrap_err();
        assert_eq!(
            e.to_string(),
            "auth_failures_before_ban must be a whole number from 3 to 1000000, got `2`"
        );
        assert!(validate("unanswered_challenges_before_ban", "99").is_err());
        assert_eq!(validate("ban_seconds", "1000000000"), Ok(1_000_000_000));
        assert!(validate("ban_seconds", "1000000001").is_err());
        assert!(validate("ban_seconds", "-1").is_err());
        assert!(
            validate("nope", "1")
                .unwrap_err()
                .to_string()
                .contains("known settings: auth_failures_before_ban")
        );
    }

    #[test]
    fn from_settings_applies_and_checks_tiers() {
        let c =
            GuardConfig::from_settings([("auth_failures_before_ban", "3"), ("ban_seconds", "60")])
                .unwrap();
        assert_eq!((c.auth_failures_before_ban, c.ban_seconds), (3, 60));
        assert!(matches!(
            GuardConfig::from_settings([("flood_amber_pps", "500"), ("flood_red_pps", "400")]),
            Err(ConfigError::RedNotAboveAmber { .. })
        ));
    }
}
