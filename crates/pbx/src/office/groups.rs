//! Ring groups: one number that rings several members (extensions, or external numbers routed under the caller's
//! call policy) by a strategy — all at once, in order, or round-robin — each member for `ring_seconds`, then a
//! fallback (a mailbox, another number, or hang up).
//!
//! This module holds the group's definition, its validation (the same rules for the CLI, the console and the API)
//! and the hunt plan: which members ring together, step by step. The endpoint decides who is available.

use std::collections::HashMap;
use std::fmt;

/// Most members in one group.
pub const MAX_MEMBERS: usize = 32;
/// Shortest and longest ring time per step, in seconds.
pub const MIN_RING_SECONDS: u32 = 5;
pub const MAX_RING_SECONDS: u32 = 300;
/// Default ring time per step, in seconds.
pub const DEFAULT_RING_SECONDS: u32 = 20;
/// Longest group number, in digits.
pub const MAX_NUMBER_LEN: usize = 16;

/// How a group's members are rung.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// Every available member at once; the first to answer takes the call.
    #[default]
    All,
    /// One member at a time, in the configured order.
    Order,
    /// One member at a time, starting one further along the list on each call (the load is shared).
    RoundRobin,
}

impl Strategy {
    pub const ALL: [Strategy; 3] = [Strategy::All, Strategy::Order, Strategy::RoundRobin];

    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::All => "all",
            Strategy::Order => "order",
            Strategy::RoundRobin => "round-robin",
        }
    }

    /// Parses a strategy name; the error lists the allowed ones.
    pub fn parse(value: &str) -> Result<Strategy, String> {
        let v = value.trim();
        Strategy::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(v))
            .ok_or_else(|| {
                format!(
                    "unknown ring strategy '{}': expected all, order or round-robin",
                    v.escape_debug()
                )
            })
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a call goes when no member answered (or none was available).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub enum Fallback {
    /// The caller leaves a message in this extension's mailbox.
    Voicemail(String),
    /// The call rings this number, routed as the caller would dial it (same call policy).
    Number(String),
    /// The caller hears "unavailable" (480).
    #[default]
    Hangup,
}

impl Fallback {
    /// Parses `voicemail:EXT`, `ext:NUMBER` or `hangup`; the error says which forms are accepted.
    pub fn parse(value: &str) -> Result<Fallback, String> {
        let v = value.trim();
        let bad = || {
            format!(
                "invalid fallback '{}': expected voicemail:EXT, ext:NUMBER or hangup",
                v.escape_debug()
            )
        };
        if v.eq_ignore_ascii_case("hangup") {
            return Ok(Fallback::Hangup);
        }
        let (kind, number) = v.split_once(':').ok_or_else(bad)?;
        validate_number("fallback number", number)?;
        match kind.to_ascii_lowercase().as_str() {
            "voicemail" | "vm" => Ok(Fallback::Voicemail(number.to_string())),
            "ext" | "number" => Ok(Fallback::Number(number.to_string())),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Fallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fallback::Voicemail(n) => write!(f, "voicemail:{n}"),
            Fallback::Number(n) => write!(f, "ext:{n}"),
            Fallback::Hangup => f.write_str("hangup"),
        }
    }
}

/// A ring group as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingGroup {
    pub number: String,
    /// Extensions or external numbers, in ring order.
    pub members: Vec<String>,
    pub strategy: Strategy,
    /// How long each step rings (all members together with `all`; each member with `order`/`round-robin`).
    pub ring_seconds: u32,
    pub fallback: Fallback,
}

impl RingGroup {
    /// Checks a group as an operator configured it: a number, 1 to [`MAX_MEMBERS`] distinct member numbers not
    /// including the group itself, a ring time in range, a fallback that is not the group itself.
    pub fn validate(&self) -> Result<(), String> {
        validate_number("group number", &self.number)?;
        if self.members.is_empty() || self.members.len() > MAX_MEMBERS {
            return Err(format!(
                "a ring group needs 1 to {MAX_MEMBERS} members, got {}",
                self.members.len()
            ));
        }
        for (i, m) in self.members.iter().enumerate() {
            validate_number("member", m)?;
            if *m == self.number {
                return Err(format!("group {} cannot be its own member", self.number));
            }
            if self.members[..i].contains(m) {
                return Err(format!("member {m} is listed twice"));
            }
        }
        if !(MIN_RING_SECONDS..=MAX_RING_SECONDS).contains(&self.ring_seconds) {
            return Err(format!(
                "ring time must be {MIN_RING_SECONDS} to {MAX_RING_SECONDS} seconds, got {}",
                self.ring_seconds
            ));
        }
        match &self.fallback {
            Fallback::Voicemail(n) | Fallback::Number(n) if *n == self.number => {
                Err(format!("group {} cannot fall back to itself", self.number))
            }
            _ => Ok(()),
        }
    }

    /// The hunt plan: the members to ring together, step by step, from the members `available` says may ring
    /// now (registered, not busy, allowed). `start` is where a round-robin group begins this time.
    pub fn steps(&self, available: impl Fn(&str) -> bool, start: usize) -> Vec<Vec<String>> {
        let n = self.members.len();
        let order: Vec<&String> = match self.strategy {
            Strategy::RoundRobin if n > 0 => {
                (0..n).map(|i| &self.members[(start + i) % n]).collect()
            }
            _ => self.members.iter().collect(),
        };
        let up: Vec<String> = order
            .into_iter()
            .filter(|m| available(m))
            .cloned()
            .collect();
        match self.strategy {
            Strategy::All if up.is_empty() => Vec::new(),
            Strategy::All => vec![up],
            Strategy::Order | Strategy::RoundRobin => up.into_iter().map(|m| vec![m]).collect(),
        }
    }
}

/// Checks a dialable number: 1 to [`MAX_NUMBER_LEN`] digits, optionally after a leading `+`.
pub fn validate_number(what: &str, number: &str) -> Result<(), String> {
    let digits = number.strip_prefix('+').unwrap_or(number);
    if digits.is_empty()
        || digits.len() > MAX_NUMBER_LEN
        || !digits.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(format!(
            "{what} must be 1 to {MAX_NUMBER_LEN} digits (optionally after +), got '{}'",
            number.escape_debug()
        ));
    }
    Ok(())
}

/// The configured ring groups, and where each round-robin group starts next.
#[derive(Debug, Default)]
pub struct RingGroups {
    groups: HashMap<String, RingGroup>,
    next_start: HashMap<String, usize>,
}

impl RingGroups {
    /// Replaces the groups (a configuration reload); round-robin positions of groups that remain are kept.
    pub fn set(&mut self, groups: Vec<RingGroup>) {
        self.groups = groups.into_iter().map(|g| (g.number.clone(), g)).collect();
        let groups = &self.groups;
        self.next_start.retain(|n, _| groups.contains_key(n));
    }

    pub fn get(&self, number: &str) -> Option<&RingGroup> {
        self.groups.get(number)
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Where group `number` starts ringing this call; a round-robin group moves one further for the next.
    pub fn take_start(&mut self, number: &str) -> usize {
        let Some(g) = self.groups.get(number) else {
            return 0;
        };
        if g.strategy != Strategy::RoundRobin || g.members.is_empty() {
            return 0;
        }
        let slot = self.next_start.entry(number.to_string()).or_insert(0);
        let start = *slot % g.members.len();
        *slot = (start + 1) % g.members.len();
        start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(strategy: Strategy) -> RingGroup {
        RingGroup {
            number: "600".into(),
            members: vec!["201".into(), "202".into(), "203".into()],
            strategy,
            ring_seconds: 20,
            fallback: Fallback::Hangup,
        }
    }

    #[test]
    fn all_rings_every_available_member_in_one_step() {
        let g = group(Strategy::All);
        assert_eq!(g.steps(|_| true, 0), vec![vec!["201", "202", "203"]]);
        assert_eq!(g.steps(|m| m != "202", 0), vec![vec!["201", "203"]]);
        assert!(g.steps(|_| false, 0).is_empty());
    }

    #[test]
    fn order_and_round_robin_ring_one_member_per_step() {
        let g = group(Strategy::Order);
        assert_eq!(
            g.steps(|m| m != "201", 2),
            vec![vec!["202".to_string()], vec!["203".to_string()]]
        );
        let g = group(Strategy::RoundRobin);
        assert_eq!(
            g.steps(|_| true, 1),
            vec![
                vec!["202".to_string()],
                vec!["203".into()],
                vec!["201".into()]
            ]
        );
    }

    #[test]
    fn round_robin_moves_on_each_call_and_survives_reloads() {
        let mut groups = RingGroups::default();
        groups.set(vec![group(Strategy::RoundRobin), {
            let mut g = group(Strategy::All);
            g.number = "601".into();
            g
        }]);
        assert_eq!(
            (0..4).map(|_| groups.take_start("600")).collect::<Vec<_>>(),
            [0, 1, 2, 0]
        );
        assert_eq!(groups.take_start("601"), 0);
        assert_eq!(groups.take_start("601"), 0);
        groups.set(vec![group(Strategy::RoundRobin)]);
        assert_eq!(groups.take_start("600"), 1);
        assert!(groups.get("601").is_none());
    }

    #[test]
    fn validation_says_what_is_wrong() {
        assert!(group(Strategy::All).validate().is_ok());
        let mut g = group(Strategy::All);
        g.members.push("201".into());
        assert!(g.validate().unwrap_err().contains("twice"));
        let mut g = group(Strategy::All);
        g.members.push("600".into());
        assert!(g.validate().unwrap_err().contains("own member"));
        let mut g = group(Strategy::All);
        g.members.clear();
        assert!(g.validate().is_err());
        let mut g = group(Strategy::All);
        g.ring_seconds = 2;
        assert!(g.validate().unwrap_err().contains("ring time"));
        let mut g = group(Strategy::All);
        g.fallback = Fallback::Number("600".into());
        assert!(g.validate().unwrap_err().contains("itself"));
        let mut g = group(Strategy::All);
        g.number = "6a0".into();
        assert!(g.validate().is_err());
    }

    #[test]
    fn strategies_and_fallbacks_parse_and_print() {
        for s in Strategy::ALL {
            assert_eq!(Strategy::parse(s.as_str()), Ok(s));
        }
        assert!(
            Strategy::parse("random")
                .unwrap_err()
                .contains("round-robin")
        );
        for f in ["voicemail:201", "ext:210", "ext:+4930123", "hangup"] {
            assert_eq!(Fallback::parse(f).map(|f| f.to_string()).as_deref(), Ok(f));
        }
        for bad in ["voicemail", "ext:", "ext:2x", "queue:700", ""] {
            assert!(Fallback::parse(bad).is_err(), "{bad}");
        }
    }
}
