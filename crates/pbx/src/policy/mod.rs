//! Call policy (hardening steps 3 and 4), as pure functions: may this extension make this call now, and where does
//! it go? Deny by default: international calls need a matching outbound rule *and* an allowed country code,
//! checked on the final E.164 number after the rule rewrote it. Emergency numbers are the one standing exemption.
//!
//! Time is an input (`now`), so office-hours boundaries and PIN-unlock expiry are tested in microseconds.

pub mod e164;
pub mod hours;

use std::collections::BTreeSet;
use std::time::SystemTime;

pub use e164::{NumberPlan, country_code};
pub use hours::OfficeHours;

/// One outbound rule: which dialled numbers it takes (prefix, length, calling extensions), how it rewrites them,
/// and the trunks to try in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundRule {
    pub name: String,
    /// Dialled numbers starting with this (empty: any).
    pub prefix: String,
    pub min_len: usize,
    pub max_len: usize,
    /// Calling extensions allowed to use the rule; empty: all.
    pub extensions: Vec<String>,
    /// Digits removed from the front of the dialled number.
    pub strip: usize,
    /// Digits put in front after stripping.
    pub prepend: String,
    /// Trunk names, in failover order.
    pub trunks: Vec<String>,
}

impl OutboundRule {
    pub fn matches(&self, dialed: &str, caller: &str) -> bool {
        dialed.starts_with(&self.prefix)
            && (self.min_len..=self.max_len).contains(&dialed.len())
            && (self.extensions.is_empty() || self.extensions.iter().any(|e| e == caller))
    }

    /// The number as sent to the trunk.
    pub fn rewrite(&self, dialed: &str) -> String {
        let rest = dialed.get(self.strip.min(dialed.len())..).unwrap_or("");
        format!("{}{rest}", self.prepend)
    }
}

/// The call-policy settings of the PBX.
#[derive(Debug, Clone)]
pub struct PolicySettings {
    pub plan: NumberPlan,
    pub rules: Vec<OutboundRule>,
    /// ITU country calling codes international calls may reach. Default: the home country only.
    pub allowed_country_codes: BTreeSet<String>,
    /// Always allowed, whatever the caller's restrictions (default 112, 911, 999).
    pub emergency_numbers: Vec<String>,
    /// Dialled before the voicemail PIN to lift PIN protection (default 777).
    pub pin_unlock_prefix: String,
    /// The voicemail access number (default 999). An emergency number with an outbound rule wins over it.
    pub voicemail_number: String,
    pub office_hours: Option<OfficeHours>,
}

impl PolicySettings {
    /// Defaults for a home country: only national calls allowed abroad-wise, the usual emergency numbers.
    pub fn new(plan: NumberPlan) -> Self {
        let home = plan.country_code.clone();
        PolicySettings {
            plan,
            rules: Vec::new(),
            allowed_country_codes: BTreeSet::from([home]),
            emergency_numbers: vec!["112".into(), "911".into(), "999".into()],
            pin_unlock_prefix: "777".into(),
            voicemail_number: "999".into(),
            office_hours: None,
        }
    }
}

/// The calling extension's restrictions (hardening step 3).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CallerRestrictions {
    pub number: String,
    /// No external calls at all.
    pub internal_only: bool,
    /// External calls need a PIN unlock first.
    pub pin_protect: bool,
    /// Until when a PIN unlock lasts.
    pub unlocked_until: Option<SystemTime>,
    /// No outbound external calls outside office hours.
    pub office_hours_only: bool,
}

/// Why a call is refused: a reason code for the security event and the status for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no outbound rule matches")]
    NoRoute,
    #[error("this extension may only call internally")]
    InternalOnly,
    #[error(
        "external calls from this extension are PIN protected: dial the unlock prefix and the voicemail PIN first"
    )]
    PinProtected,
    #[error("outbound calls are not allowed outside office hours")]
    OutsideOfficeHours,
    #[error("calls to country code {0} are not allowed")]
    CountryNotAllowed(String),
    #[error("the dialled number is not a phone number")]
    BadNumber,
}

impl Refusal {
    pub fn reason_code(&self) -> &'static str {
        match self {
            Refusal::NoRoute => "no_route",
            Refusal::InternalOnly => "internal_only",
            Refusal::PinProtected => "pin_protected",
            Refusal::OutsideOfficeHours => "outside_office_hours",
            Refusal::CountryNotAllowed(_) => "country_not_allowed",
            Refusal::BadNumber => "bad_number",
        }
    }

    /// The SIP status: 404 when nothing could route it, 403 when policy forbids it.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::NoRoute | Refusal::BadNumber => 404,
            _ => 403,
        }
    }
}

/// Where a dialled number goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Another extension of this PBX.
    Extension(String),
    /// Out through a trunk: the rule that matched, the number as sent, its E.164 form, the trunks in order.
    External {
        rule: String,
        number: String,
        e164: String,
        trunks: Vec<String>,
    },
    /// An emergency number: out through its rule, whatever the caller's restrictions.
    Emergency {
        rule: String,
        number: String,
        trunks: Vec<String>,
    },
    /// The caller asks to lift its PIN protection with this PIN (empty: dialled the prefix alone, so the PIN is
    /// asked for by prompt).
    PinUnlock {
        pin: String,
    },
    /// The caller's own mailbox (the voicemail access number).
    Voicemail,
    Refused(Refusal),
}

/// Decides where `dialed` from `caller` goes at `now`. `is_extension` tells whether a number is an extension.
pub fn route(
    settings: &PolicySettings,
    caller: &CallerRestrictions,
    dialed: &str,
    is_extension: impl Fn(&str) -> bool,
    now: SystemTime,
) -> Route {
    let dialed = dialed.trim();
    let rule_for = |number: &str| {
        settings
            .rules
            .iter()
            .find(|r| r.matches(number, &caller.number))
    };
    let is_voicemail = !settings.voicemail_number.is_empty() && dialed == settings.voicemail_number;
    // Emergency numbers first: no restriction may stand in their way. Where an emergency number is also the
    // voicemail number (999 in the UK), a rule that routes it out makes it an emergency call.
    if settings.emergency_numbers.iter().any(|e| e == dialed) {
        return match rule_for(dialed) {
            Some(rule) => Route::Emergency {
                rule: rule.name.clone(),
                number: rule.rewrite(dialed),
                trunks: rule.trunks.clone(),
            },
            None if is_voicemail => Route::Voicemail,
            None => Route::Refused(Refusal::NoRoute),
        };
    }
    if is_voicemail {
        return Route::Voicemail;
    }
    if caller.pin_protect
        && !settings.pin_unlock_prefix.is_empty()
        && let Some(pin) = dialed.strip_prefix(&settings.pin_unlock_prefix)
        && pin.len() <= crate::voicemail::pin::MAX_LEN
        && pin.bytes().all(|b| b.is_ascii_digit())
    {
        return Route::PinUnlock {
            pin: pin.to_string(),
        };
    }
    if is_extension(dialed) {
        return Route::Extension(dialed.to_string());
    }
    if caller.internal_only {
        return Route::Refused(Refusal::InternalOnly);
    }
    if caller.office_hours_only
        && settings
            .office_hours
            .as_ref()
            .is_some_and(|h| !h.is_open(now))
    {
        return Route::Refused(Refusal::OutsideOfficeHours);
    }
    if caller.pin_protect && caller.unlocked_until.is_none_or(|until| until <= now) {
        return Route::Refused(Refusal::PinProtected);
    }
    let Some(rule) = rule_for(dialed) else {
        return Route::Refused(Refusal::NoRoute);
    };
    let number = rule.rewrite(dialed);
    let Some(e164) = settings.plan.to_e164(&number) else {
        return Route::Refused(Refusal::BadNumber);
    };
    let Some(cc) = country_code(&e164) else {
        return Route::Refused(Refusal::BadNumber);
    };
    if !settings.allowed_country_codes.contains(cc) {
        return Route::Refused(Refusal::CountryNotAllowed(cc.to_string()));
    }
    Route::External {
        rule: rule.name.clone(),
        number,
        e164,
        trunks: rule.trunks.clone(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn settings() -> PolicySettings {
        let mut s = PolicySettings::new(NumberPlan {
            country_code: "49".into(),
            international_prefix: "00".into(),
            national_prefix: "0".into(),
        });
        // "0" + number: external; the trunk wants E.164 with "+".
        s.rules.push(OutboundRule {
            name: "external".into(),
            prefix: "0".into(),
            min_len: 3,
            max_len: 20,
            extensions: Vec::new(),
            strip: 1,
            prepend: String::new(),
            trunks: vec!["carrier".into(), "backup".into()],
        });
        s.rules.push(OutboundRule {
            name: "emergency".into(),
            prefix: "1".into(),
            min_len: 3,
            max_len: 3,
            extensions: Vec::new(),
            strip: 0,
            prepend: String::new(),
            trunks: vec!["carrier".into()],
        });
        s
    }

    fn caller() -> CallerRestrictions {
        CallerRestrictions {
            number: "201".into(),
            ..Default::default()
        }
    }

    fn ext(n: &str) -> bool {
        matches!(n, "201" | "202")
    }

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    #[test]
    fn extensions_and_national_calls() {
        let s = settings();
        assert_eq!(
            route(&s, &caller(), "202", ext, now()),
            Route::Extension("202".into())
        );
        let r = route(&s, &caller(), "0301234567", ext, now());
        assert_eq!(
            r,
            Route::External {
                rule: "external".into(),
                number: "301234567".into(),
                e164: "49301234567".into(),
                trunks: vec!["carrier".into(), "backup".into()]
            }
        );
    }

    #[test]
    fn international_needs_an_allowed_country_after_rewriting() {
        let mut s = settings();
        // 0 + 00252… → rule strips the 0 → 00252… → E.164 252…: Somalia, not allowed by default
        assert_eq!(
            route(&s, &caller(), "000252611234567", ext, now()),
            Route::Refused(Refusal::CountryNotAllowed("252".into()))
        );
        s.allowed_country_codes.insert("44".into());
        assert!(matches!(
            route(&s, &caller(), "00044207946000", ext, now()),
            Route::External { .. }
        ));
        assert_eq!(
            route(&s, &caller(), "000252611234567", ext, now()).clone(),
            Route::Refused(Refusal::CountryNotAllowed("252".into()))
        );
        // exact match: allowing "25" (not a code) does not allow 252
        s.allowed_country_codes.insert("25".into());
        assert!(matches!(
            route(&s, &caller(), "000252611234567", ext, now()),
            Route::Refused(_)
        ));
        // no rule matches: refused even for an allowed country
        assert_eq!(
            route(&s, &caller(), "4420794", ext, now()),
            Route::Refused(Refusal::NoRoute)
        );
    }

    #[test]
    fn restrictions() {
        let s = settings();
        let internal = CallerRestrictions {
            internal_only: true,
            ..caller()
        };
        assert_eq!(
            route(&s, &internal, "0301234567", ext, now()),
            Route::Refused(Refusal::InternalOnly)
        );
        assert_eq!(
            route(&s, &internal, "202", ext, now()),
            Route::Extension("202".into())
        );
        let pin = CallerRestrictions {
            pin_protect: true,
            ..caller()
        };
        assert_eq!(
            route(&s, &pin, "0301234567", ext, now()),
            Route::Refused(Refusal::PinProtected)
        );
        assert_eq!(
            route(&s, &pin, "7771234", ext, now()),
            Route::PinUnlock { pin: "1234".into() }
        );
        let unlocked = CallerRestrictions {
            unlocked_until: Some(now() + Duration::from_secs(60)),
            ..pin.clone()
        };
        assert!(matches!(
            route(&s, &unlocked, "0301234567", ext, now()),
            Route::External { .. }
        ));
        let expired = CallerRestrictions {
            unlocked_until: Some(now()),
            ..pin
        };
        assert_eq!(
            route(&s, &expired, "0301234567", ext, now()),
            Route::Refused(Refusal::PinProtected)
        );
    }

    #[test]
    fn emergency_numbers_always_pass_through_their_rule() {
        let s = settings();
        let locked = CallerRestrictions {
            internal_only: true,
            pin_protect: true,
            office_hours_only: true,
            ..caller()
        };
        assert_eq!(
            route(&s, &locked, "112", ext, now()),
            Route::Emergency {
                rule: "emergency".into(),
                number: "112".into(),
                trunks: vec!["carrier".into()]
            }
        );
        let mut no_rule = settings();
        no_rule.rules.retain(|r| r.name != "emergency");
        assert_eq!(
            route(&no_rule, &locked, "112", ext, now()),
            Route::Refused(Refusal::NoRoute)
        );
    }

    #[test]
    fn voicemail_number_and_unlock_prefix() {
        let s = settings();
        let locked = CallerRestrictions {
            internal_only: true,
            pin_protect: true,
            ..caller()
        };
        // 999 is an emergency number by default, but without a rule routing it out it reaches voicemail.
        let mut no_999_rule = settings();
        no_999_rule.rules.retain(|r| !r.matches("999", "201"));
        assert_eq!(
            route(&no_999_rule, &locked, "999", ext, now()),
            Route::Voicemail
        );
        // The PIN prefix alone asks for the PIN by prompt; too long a "PIN" is just a number.
        assert_eq!(
            route(&s, &locked, "777", ext, now()),
            Route::PinUnlock { pin: String::new() }
        );
        assert_ne!(
            route(&s, &locked, "77712345678901", ext, now()),
            Route::PinUnlock {
                pin: "12345678901".into()
            }
        );
        // Without PIN protection 777… is an ordinary number.
        assert!(!matches!(
            route(&s, &caller(), "7771234", ext, now()),
            Route::PinUnlock { .. }
        ));
        let mut other = settings();
        other.voicemail_number = "8000".into();
        assert_eq!(
            route(&other, &caller(), "8000", ext, now()),
            Route::Voicemail
        );
    }

    #[test]
    fn an_emergency_rule_wins_over_the_voicemail_number() {
        let mut s = settings();
        s.emergency_numbers.push("8000".into());
        s.voicemail_number = "8000".into();
        s.rules.insert(
            0,
            OutboundRule {
                name: "uk-emergency".into(),
                prefix: "8000".into(),
                min_len: 4,
                max_len: 4,
                extensions: Vec::new(),
                strip: 0,
                prepend: String::new(),
                trunks: vec!["carrier".into()],
            },
        );
        assert!(matches!(
            route(&s, &caller(), "8000", ext, now()),
            Route::Emergency { .. }
        ));
    }

    #[test]
    fn rules_can_be_limited_to_extensions() {
        let mut s = settings();
        s.rules[0].extensions = vec!["202".into()];
        assert_eq!(
            route(&s, &caller(), "0301234567", ext, now()),
            Route::Refused(Refusal::NoRoute)
        );
        let other = CallerRestrictions {
            number: "202".into(),
            ..caller()
        };
        assert!(matches!(
            route(&s, &other, "0301234567", ext, now()),
            Route::External { .. }
        ));
    }
}
