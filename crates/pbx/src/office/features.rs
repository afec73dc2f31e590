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
pub const FEATURE_KEYS: [FeatureKey; 2] = [
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
];

/// The store key of feature `name`.
pub fn setting_key(name: &str) -> String {
    format!("feature.{name}")
}

/// The feature codes in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureCodes {
    pub pickup: String,
    pub directed_pickup: String,
}

impl Default for FeatureCodes {
    fn default() -> Self {
        FeatureCodes {
            pickup: FEATURE_KEYS[0].default.into(),
            directed_pickup: FEATURE_KEYS[1].default.into(),
        }
    }
}

/// What a dialled number asks for, if it is a feature code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feature {
    /// Pick up any call ringing in the caller's pickup group.
    Pickup,
    /// Pick up the call ringing at this extension.
    DirectedPickup(String),
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
    if value.is_empty() {
        return Ok(());
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
    }
}
