//! Feature codes: what a phone dials to reach an office feature rather than a person (`*8` pickup, `**201`
//! directed pickup, …). Defaults here; each is overridable (`palisade features set KEY VALUE`), with the same
//! validation for the CLI, console and API.

/// One overridable feature code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeatureKey {
    /// The setting's name (`palisade features set NAME VALUE`); stored as `feature.NAME`.
    pub name: &'static str,
    pub default: &'static str,
    pub meaning: &'static str,
}

/// Every feature code, in the order shown to operators.
pub const FEATURE_KEYS: [FeatureKey; 8] = [
    FeatureKey {
        name: "pickup",
        default: "*8",
        meaning: "pick up a call ringing in your pickup group",
    },
    FeatureKey {
        name: "directed_pickup",
        default: "**",
        meaning: "followed by an extension (**201): pick up that extension's ringing call",
    },
    FeatureKey {
        name: "park",
        default: "800",
        meaning: "transfer a call here to park it on the first free slot",
    },
    FeatureKey {
        name: "park_slots",
        default: "801-809",
        meaning: "the park slots (FIRST-LAST); dial a slot to retrieve its call",
    },
    FeatureKey {
        name: "park_seconds",
        default: "120",
        meaning: "how long a call stays parked before it rings the parker again (10-3600)",
    },
    FeatureKey {
        name: "queue_login",
        default: "*45",
        meaning: "log in to every queue you are an agent of",
    },
    FeatureKey {
        name: "queue_logout",
        default: "*46",
        meaning: "log out of every queue you are an agent of",
    },
    FeatureKey {
        name: "record",
        default: "*1",
        meaning: "keyed during a call (extensions recorded on demand): start and stop recording",
    },
];

/// The two keys of the in-call recording code (`record`, e.g. `*1`): `*` or `#`, then a digit, `*` or `#`.
/// `None` for "" (no code) or anything else.
pub fn record_keys(value: &str) -> Option<[char; 2]> {
    let mut keys = value.chars();
    match (keys.next(), keys.next(), keys.next()) {
        (Some(first @ ('*' | '#')), Some(second), None)
            if second.is_ascii_digit() || matches!(second, '*' | '#') =>
        {
            Some([first, second])
        }
        _ => None,
    }
}

/// Most park slots.
pub const MAX_PARK_SLOTS: u32 = 100;

/// The store key of feature `name`.
pub fn setting_key(name: &str) -> String {
    format!("feature.{name}")
}

/// The feature codes in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureCodes {
    pub pickup: String,
    pub directed_pickup: String,
    /// The number a call is transferred to for parking ("" : no parking).
    pub park: String,
    /// The park slots, in the order they are taken.
    pub park_slots: Vec<String>,
    pub park_timeout: std::time::Duration,
    pub queue_login: String,
    pub queue_logout: String,
}

impl Default for FeatureCodes {
    fn default() -> Self {
        FeatureCodes {
            pickup: FEATURE_KEYS[0].default.into(),
            directed_pickup: FEATURE_KEYS[1].default.into(),
            park: FEATURE_KEYS[2].default.into(),
            park_slots: slot_range(FEATURE_KEYS[3].default).unwrap_or_default(),
            park_timeout: std::time::Duration::from_secs(120),
            queue_login: FEATURE_KEYS[5].default.into(),
            queue_logout: FEATURE_KEYS[6].default.into(),
        }
    }
}

/// The slots of a `FIRST-LAST` range (same number of digits, at most [`MAX_PARK_SLOTS`]); "" is none.
pub fn slot_range(value: &str) -> Result<Vec<String>, String> {
    if value.is_empty() {
        return Ok(Vec::new());
    }
    let bad = || {
        format!(
            "park slots must be FIRST-LAST with numbers of the same length, at most {MAX_PARK_SLOTS} slots, got '{}'",
            value.escape_debug()
        )
    };
    let (a, b) = value.split_once('-').ok_or_else(bad)?;
    let digits = |s: &str| !s.is_empty() && s.len() <= 8 && s.bytes().all(|c| c.is_ascii_digit());
    if !digits(a) || !digits(b) || a.len() != b.len() {
        return Err(bad());
    }
    let (first, last): (u32, u32) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
    if last < first || last - first >= MAX_PARK_SLOTS {
        return Err(bad());
    }
    Ok((first..=last)
        .map(|n| format!("{n:0width$}", width = a.len()))
        .collect())
}

/// What a dialled number asks for, if it is a feature code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feature {
    /// Pick up any call ringing in the caller's pickup group.
    Pickup,
    /// Pick up the call ringing at this extension.
    DirectedPickup(String),
    /// Retrieve the call parked on this slot.
    Retrieve(String),
    /// Log in to (true) or out of (false) the caller's queues.
    QueueLogin(bool),
}

impl FeatureCodes {
    /// The codes with the stored overrides applied (`get` answers a feature name with its stored value); a stored
    /// value that is no longer valid is ignored with a warning (the default applies).
    pub fn from_settings(get: impl Fn(&str) -> Option<String>) -> FeatureCodes {
        let mut codes = FeatureCodes::default();
        for key in FEATURE_KEYS {
            let Some(v) = get(key.name) else { continue };
            if let Err(e) = validate(key.name, &v) {
                tracing::warn!(feature = key.name, error = %e, "stored feature code ignored");
                continue;
            }
            match key.name {
                "pickup" => codes.pickup = v,
                "directed_pickup" => codes.directed_pickup = v,
                "park" => codes.park = v,
                "park_slots" => codes.park_slots = slot_range(&v).unwrap_or_default(),
                "queue_login" => codes.queue_login = v,
                "queue_logout" => codes.queue_logout = v,
                "park_seconds" => {
                    codes.park_timeout = std::time::Duration::from_secs(v.parse().unwrap_or(120))
                }
                _ => {}
            }
        }
        codes
    }

    /// The feature `dialled` asks for. The exact codes are tried first, then the prefixes followed by digits.
    pub fn parse(&self, dialled: &str) -> Option<Feature> {
        if !self.pickup.is_empty() && dialled == self.pickup {
            return Some(Feature::Pickup);
        }
        if !self.queue_login.is_empty() && dialled == self.queue_login {
            return Some(Feature::QueueLogin(true));
        }
        if !self.queue_logout.is_empty() && dialled == self.queue_logout {
            return Some(Feature::QueueLogin(false));
        }
        if self.park_slots.iter().any(|s| s == dialled) {
            return Some(Feature::Retrieve(dialled.to_string()));
        }
        let rest = dialled.strip_prefix(self.directed_pickup.as_str())?;
        (!self.directed_pickup.is_empty()
            && !rest.is_empty()
            && rest.len() <= 10
            && rest.bytes().all(|b| b.is_ascii_digit()))
        .then(|| Feature::DirectedPickup(rest.to_string()))
    }
}

/// Checks a feature code as an operator sets it: 1 to 8 of `0-9 * #`, starting with `*` or `#` (so it can never
/// shadow an extension or an external number); "" turns the feature off.
pub fn validate(name: &str, value: &str) -> Result<(), String> {
    if !FEATURE_KEYS.iter().any(|k| k.name == name) {
        let names: Vec<&str> = FEATURE_KEYS.iter().map(|k| k.name).collect();
        return Err(format!(
            "unknown feature '{}': expected one of {}",
            name.escape_debug(),
            names.join(", ")
        ));
    }
    if value.is_empty() && name != "park_seconds" {
        return Ok(());
    }
    match name {
        "park" => return super::groups::validate_number("park number", value),
        "park_slots" => return slot_range(value).map(|_| ()),
        "record" => {
            // Keyed during a call (RFC 4733), two keys: it never reaches the dial plan.
            return record_keys(value).map(|_| ()).ok_or_else(|| {
                format!(
                    "record must be two keys: * or # then a digit, * or # (e.g. *1), got '{}'",
                    value.escape_debug()
                )
            });
        }
        "park_seconds" => {
            return match value.parse::<u32>() {
                Ok(10..=3600) => Ok(()),
                _ => Err(format!(
                    "park_seconds must be 10 to 3600, got '{}'",
                    value.escape_debug()
                )),
            };
        }
        _ => {}
    }
    let ok = value.len() <= 8
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#')
        && matches!(value.as_bytes()[0], b'*' | b'#');
    if !ok {
        return Err(format!(
            "feature code '{}' for {name} must be 1 to 8 of 0-9 * #, starting with * or # (\"\" turns it off)",
            value.escape_debug()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_parse_exact_and_prefixed() {
        let c = FeatureCodes::default();
        assert_eq!(c.parse("*8"), Some(Feature::Pickup));
        assert_eq!(
            c.parse("**201"),
            Some(Feature::DirectedPickup("201".into()))
        );
        for other in ["*80", "**", "**2a", "201", "8", ""] {
            assert_eq!(c.parse(other), None, "{other}");
        }
        let c = FeatureCodes::from_settings(|k| match k {
            "pickup" => Some("#8".into()),
            "directed_pickup" => Some("bad".into()),
            _ => None,
        });
        assert_eq!(c.pickup, "#8");
        assert_eq!(
            c.directed_pickup, "**",
            "an invalid stored value is ignored"
        );
        let off = FeatureCodes {
            pickup: String::new(),
            directed_pickup: String::new(),
            ..FeatureCodes::default()
        };
        assert_eq!(off.parse(""), None);
        assert_eq!(off.parse("201"), None);
    }

    #[test]
    fn validation_keeps_codes_away_from_numbers() {
        assert!(validate("pickup", "*8").is_ok());
        assert!(validate("pickup", "").is_ok());
        assert!(validate("pickup", "8").is_err());
        assert!(validate("pickup", "*8x").is_err());
        assert!(validate("pickup", "*123456789").is_err());
        assert!(validate("parking", "*9").unwrap_err().contains("pickup"));
        assert!(validate("park", "800").is_ok());
        assert!(validate("park", "*800").is_err());
        assert!(validate("park_seconds", "5").is_err());
        assert!(validate("park_seconds", "").is_err());
        assert_eq!(slot_range("801-803").unwrap(), ["801", "802", "803"]);
        assert_eq!(slot_range("08-10").unwrap(), ["08", "09", "10"]);
        for bad in ["803-801", "8-10", "801", "1-999", "a-b"] {
            assert!(slot_range(bad).is_err(), "{bad}");
        }
        assert_eq!(
            FeatureCodes::default().parse("805"),
            Some(Feature::Retrieve("805".into()))
        );
    }

    #[test]
    fn the_recording_code_is_two_keys() {
        assert_eq!(record_keys("*1"), Some(['*', '1']));
        assert_eq!(record_keys("##"), Some(['#', '#']));
        for bad in ["", "1*", "*12", "*a", "*"] {
            assert_eq!(record_keys(bad), None, "{bad}");
        }
        assert!(validate("record", "#9").is_ok());
        assert!(validate("record", "").is_ok(), "no code");
        assert!(validate("record", "*123").is_err());
    }
}
