//! Per-extension and per-trunk resource limits (issue 12 item 3): one registered phone — or someone holding its
//! password — must not be able to hold every relay port, every trunk channel or every message-waiting
//! subscription.
//!
//! Pure: the caller passes what is in use now ([`CallUse`] per call in progress, the subscription count) and gets a
//! decision. What counts:
//! - **Calls of an extension** are the calls it placed (it is the caller), whatever they reach (another extension,
//!   voicemail, a trunk). Calls *to* it are not counted: otherwise anyone could make it unreachable by calling it.
//!   `max_calls_per_extension` (default [`DEFAULT_MAX_CALLS_PER_EXTENSION`]), per-extension override.
//! - **External calls of an extension**: its calls through a trunk; optional cap per extension (default none).
//! - **Calls of a trunk**: every call in progress through it, in or out; optional cap per trunk (default none).
//!   A trunk at its cap is skipped (the next trunk of the rule is tried).
//! - **Subscriptions of an extension**: its message-waiting subscriptions, `max_subscriptions_per_extension`
//!   (default [`DEFAULT_MAX_SUBSCRIPTIONS_PER_EXTENSION`]).
//!
//! Emergency calls are never refused by these limits.

use std::collections::HashMap;

/// Four concurrent calls: a desk phone's lines (two calls plus a consultation call during a transfer, and one
/// being set up). Above that one set of credentials is more likely abused than busy.
pub const DEFAULT_MAX_CALLS_PER_EXTENSION: u32 = 4;
/// Four subscriptions: a desk phone, a softphone, a mobile app and one spare, each subscribing once to its own
/// mailbox (a refresh reuses its subscription and does not count again).
pub const DEFAULT_MAX_SUBSCRIPTIONS_PER_EXTENSION: u32 = 4;
/// The highest value any of these limits accepts.
pub const MAX_LIMIT: u32 = 1000;

/// An extension's own limits; `None`: the setting's default (`max_calls`) or no cap (`max_external_calls`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ExtensionLimits {
    pub max_calls: Option<u32>,
    pub max_external_calls: Option<u32>,
}

/// The limits in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceLimits {
    pub max_calls_per_extension: u32,
    pub max_subscriptions_per_extension: u32,
    /// Per-extension overrides, by number.
    pub extensions: HashMap<String, ExtensionLimits>,
    /// Per-trunk caps, by trunk name (absent: no cap).
    pub trunk_max_calls: HashMap<String, u32>,
}

impl Default for ResourceLimits {
    fn default() -> Self {
        ResourceLimits {
            max_calls_per_extension: DEFAULT_MAX_CALLS_PER_EXTENSION,
            max_subscriptions_per_extension: DEFAULT_MAX_SUBSCRIPTIONS_PER_EXTENSION,
            extensions: HashMap::new(),
            trunk_max_calls: HashMap::new(),
        }
    }
}

/// One call in progress, as the limits see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallUse {
    /// The extension that placed it, if an extension did.
    pub caller_extension: Option<String>,
    /// The trunks it goes through (in or out), by name.
    pub trunks: Vec<String>,
}

/// Why a call or subscription is refused by a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitRefusal {
    /// The extension already has `limit` calls in progress.
    ExtensionCalls { limit: u32 },
    /// The extension already has `limit` external calls in progress.
    ExternalCalls { limit: u32 },
    /// Every trunk the call could take is at its cap.
    TrunkCalls,
    /// The extension already has `limit` message-waiting subscriptions.
    Subscriptions { limit: u32 },
}

impl LimitRefusal {
    /// 486 for the extension's own limits (it is busy), 503 when a trunk is full.
    pub fn status(self) -> u16 {
        match self {
            LimitRefusal::ExtensionCalls { .. }
            | LimitRefusal::ExternalCalls { .. }
            | LimitRefusal::Subscriptions { .. } => 486,
            LimitRefusal::TrunkCalls => 503,
        }
    }

    /// The reason code (policy event, Warning header).
    pub fn reason_code(self) -> &'static str {
        match self {
            LimitRefusal::ExtensionCalls { .. } => "call_limit",
            LimitRefusal::ExternalCalls { .. } => "external_call_limit",
            LimitRefusal::TrunkCalls => "trunk_call_limit",
            LimitRefusal::Subscriptions { .. } => "subscription_limit",
        }
    }

    /// The reason phrase.
    pub fn phrase(self) -> String {
        match self {
            LimitRefusal::ExtensionCalls { limit } => {
                format!("Busy Here (this extension has {limit} calls in progress, its limit)")
            }
            LimitRefusal::ExternalCalls { limit } => {
                format!(
                    "Busy Here (this extension has {limit} external calls in progress, its limit)"
                )
            }
            LimitRefusal::TrunkCalls => {
                "Service Unavailable (every trunk for this number is at its call limit)".into()
            }
            LimitRefusal::Subscriptions { limit } => {
                format!("Busy Here (this extension has {limit} subscriptions, its limit)")
            }
        }
    }
}

impl ResourceLimits {
    /// May `caller` place another call now (`external`: through a trunk)?
    pub fn check_call(
        &self,
        caller: &str,
        external: bool,
        uses: &[CallUse],
    ) -> Option<LimitRefusal> {
        let own = self.extensions.get(caller).copied().unwrap_or_default();
        let mine = uses
            .iter()
            .filter(|u| u.caller_extension.as_deref() == Some(caller));
        let limit = own.max_calls.unwrap_or(self.max_calls_per_extension);
        if count(mine.clone()) >= limit {
            return Some(LimitRefusal::ExtensionCalls { limit });
        }
        if external
            && let Some(limit) = own.max_external_calls
            && count(mine.filter(|u| !u.trunks.is_empty())) >= limit
        {
            return Some(LimitRefusal::ExternalCalls { limit });
        }
        None
    }

    /// Whether `trunk` can carry another call now.
    pub fn trunk_has_room(&self, trunk: &str, uses: &[CallUse]) -> bool {
        self.trunk_max_calls.get(trunk).is_none_or(|&limit| {
            count(uses.iter().filter(|u| u.trunks.iter().any(|t| t == trunk))) < limit
        })
    }

    /// May `subscriber`, which has `current` subscriptions, add one?
    pub fn check_subscription(&self, current: usize) -> Option<LimitRefusal> {
        let limit = self.max_subscriptions_per_extension;
        (current >= limit as usize).then_some(LimitRefusal::Subscriptions { limit })
    }
}

fn count<'a>(uses: impl Iterator<Item = &'a CallUse>) -> u32 {
    u32::try_from(uses.count()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(caller: Option<&str>, trunks: &[&str]) -> CallUse {
        CallUse {
            caller_extension: caller.map(str::to_string),
            trunks: trunks.iter().map(|t| t.to_string()).collect(),
        }
    }

    #[test]
    fn the_fifth_call_of_an_extension_is_refused_calls_to_it_do_not_count() {
        let l = ResourceLimits::default();
        let mut uses = vec![call(Some("200"), &[]), call(Some("100"), &[])];
        for _ in 0..3 {
            assert_eq!(l.check_call("100", false, &uses), None);
            uses.push(call(Some("100"), &[]));
        }
        // four calls placed by 100 (calls from others to 100 are not in its count)
        assert_eq!(
            l.check_call("100", false, &uses),
            Some(LimitRefusal::ExtensionCalls { limit: 4 })
        );
        assert_eq!(l.check_call("200", false, &uses), None);
    }

    #[test]
    fn per_extension_overrides_and_external_caps() {
        let mut l = ResourceLimits::default();
        l.extensions.insert(
            "100".into(),
            ExtensionLimits {
                max_calls: Some(2),
                max_external_calls: Some(1),
            },
        );
        let uses = vec![call(Some("100"), &["carrier"])];
        assert_eq!(
            l.check_call("100", true, &uses),
            Some(LimitRefusal::ExternalCalls { limit: 1 })
        );
        assert_eq!(l.check_call("100", false, &uses), None);
        let uses = vec![call(Some("100"), &[]), call(Some("100"), &[])];
        assert_eq!(
            l.check_call("100", false, &uses),
            Some(LimitRefusal::ExtensionCalls { limit: 2 })
        );
    }

    #[test]
    fn a_trunk_at_its_cap_has_no_room_others_and_uncapped_ones_do() {
        let mut l = ResourceLimits::default();
        l.trunk_max_calls.insert("carrier".into(), 2);
        let mut uses = vec![call(None, &["carrier"])];
        assert!(l.trunk_has_room("carrier", &uses));
        uses.push(call(Some("100"), &["carrier"]));
        assert!(!l.trunk_has_room("carrier", &uses));
        assert!(l.trunk_has_room("backup", &uses));
    }

    #[test]
    fn subscriptions_and_refusal_answers() {
        let l = ResourceLimits::default();
        assert_eq!(l.check_subscription(3), None);
        let r = l.check_subscription(4).unwrap();
        assert_eq!((r.status(), r.reason_code()), (486, "subscription_limit"));
        assert_eq!(LimitRefusal::TrunkCalls.status(), 503);
        assert!(
            LimitRefusal::ExtensionCalls { limit: 4 }
                .phrase()
                .starts_with("Busy Here (")
        );
    }
}
