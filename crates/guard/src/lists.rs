//! The IP blacklist and whitelist (hardening step 8): allow and block entries for single addresses or CIDR
//! prefixes, IPv4 and IPv6, with optional expiry. The most specific prefix wins, whatever the order of entry.
//!
//! Lookup is one hash probe per prefix length in use (typically one or two), so a banned source costs well
//! under a microsecond to recognise. Entries are also indexed by expiry, so expiring them and evicting the
//! automatic entry closest to expiry cost O(log n) each, never a scan of the table.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Allow,
    Block,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Block => "block",
        }
    }
}

/// Who made an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// An administrator; `note` is their description.
    Manual,
    /// The guard; the reason code says why ([`BanReason::as_str`] for the guard's own; kept as text because a
    /// rule loaded from the store carries whatever was written then).
    Auto { reason: String },
}

/// Why an address was blocked (or throttled) automatically. Stored and shown as [`Self::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BanReason {
    /// More packets per second than the red tier (ban) or the amber tier (throttle).
    Flood,
    UnansweredChallenges,
    AuthFailures,
}

impl BanReason {
    pub fn as_str(self) -> &'static str {
        match self {
            BanReason::Flood => "flood",
            BanReason::UnansweredChallenges => "unanswered_challenges",
            BanReason::AuthFailures => "auth_failures",
        }
    }
}

impl Origin {
    /// An automatic rule for `reason`.
    pub fn auto(reason: BanReason) -> Origin {
        Origin::Auto {
            reason: reason.as_str().to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Always in canonical (truncated) form: `10.1.2.0/24`, never `10.1.2.3/24`.
    pub net: IpNet,
    pub action: Action,
    /// Unix milliseconds; `None` never expires.
    pub expires_at: Option<u64>,
    pub note: Option<String>,
    pub origin: Origin,
    /// Unix milliseconds.
    pub created_at: u64,
}

impl Rule {
    pub fn is_live(&self, now_ms: u64) -> bool {
        self.expires_at.is_none_or(|t| t > now_ms)
    }

    pub fn is_auto(&self) -> bool {
        matches!(self.origin, Origin::Auto { .. })
    }
}

/// Parses `ADDRESS` or `ADDRESS/LEN` into its canonical prefix, with an error that says what is expected.
pub fn parse_net(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    if let Ok(net) = s.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(IpNet::from(ip));
    }
    Err(format!(
        "`{s}` is not an IP address or CIDR prefix (examples: 203.0.113.7, 198.51.100.0/24, 2001:db8::/32)"
    ))
}

/// The entries, indexed by prefix length for longest-prefix lookup.
#[derive(Debug, Default)]
pub struct IpLists {
    rules: HashMap<IpNet, Rule>,
    /// How many entries use each prefix length, per family (iterated longest first for lookups).
    v4_lens: BTreeMap<u8, usize>,
    v6_lens: BTreeMap<u8, usize>,
    /// Entries that expire, by (expiry, prefix): [`IpLists::expire`] takes them from the front.
    by_expiry: BTreeSet<(u64, IpNet)>,
    /// Automatic entries by (expiry or `u64::MAX`, prefix): [`IpLists::evict_one_auto`] takes the first, so an
    /// expired ban is always evicted before a live one.
    auto_by_expiry: BTreeSet<(u64, IpNet)>,
}

impl IpLists {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces the entry for `rule.net`.
    pub fn insert(&mut self, rule: Rule) {
        let net = rule.net.trunc();
        let rule = Rule { net, ..rule };
        self.index(&rule);
        match self.rules.insert(net, rule) {
            Some(old) => self.unindex(&old),
            None => *self.lens_mut(&net).entry(net.prefix_len()).or_insert(0) += 1,
        }
    }

    fn index(&mut self, rule: &Rule) {
        if let Some(at) = rule.expires_at {
            self.by_expiry.insert((at, rule.net));
        }
        if rule.is_auto() {
            self.auto_by_expiry
                .insert((rule.expires_at.unwrap_or(u64::MAX), rule.net));
        }
    }

    /// Removes `old`'s index entries, unless the entry that replaced it has the very same ones.
    fn unindex(&mut self, old: &Rule) {
        let current = self.rules.get(&old.net);
        let same = |r: &Rule| r.expires_at == old.expires_at;
        if let Some(at) = old.expires_at
            && !current.is_some_and(same)
        {
            self.by_expiry.remove(&(at, old.net));
        }
        if old.is_auto() && !current.is_some_and(|c| c.is_auto() && same(c)) {
            self.auto_by_expiry
                .remove(&(old.expires_at.unwrap_or(u64::MAX), old.net));
        }
    }

    /// Removes the entry for exactly this prefix.
    pub fn remove(&mut self, net: &IpNet) -> Option<Rule> {
        let net = net.trunc();
        let removed = self.rules.remove(&net)?;
        self.unindex(&removed);
        let lens = self.lens_mut(&net);
        if let Some(count) = lens.get_mut(&net.prefix_len()) {
            *count -= 1;
            if *count == 0 {
                lens.remove(&net.prefix_len());
            }
        }
        Some(removed)
    }

    fn lens_mut(&mut self, net: &IpNet) -> &mut BTreeMap<u8, usize> {
        match net {
            IpNet::V4(_) => &mut self.v4_lens,
            IpNet::V6(_) => &mut self.v6_lens,
        }
    }

    /// The most specific live entry covering `ip`. Expired entries are skipped (and removed by [`Self::expire`]).
    pub fn lookup(&self, ip: IpAddr, now_ms: u64) -> Option<&Rule> {
        let ip = canonical(ip);
        let lens = if ip.is_ipv4() {
            &self.v4_lens
        } else {
            &self.v6_lens
        };
        for &len in lens.keys().rev() {
            let Ok(net) = IpNet::new(ip, len) else {
                continue;
            };
            if let Some(rule) = self.rules.get(&net.trunc())
                && rule.is_live(now_ms)
            {
                return Some(rule);
            }
        }
        None
    }

    /// Removes expired entries and returns them.
    pub fn expire(&mut self, now_ms: u64) -> Vec<Rule> {
        let mut out = Vec::new();
        while let Some(&(at, net)) = self.by_expiry.first()
            && at <= now_ms
        {
            match self.remove(&net) {
                Some(rule) => out.push(rule),
                // Not expected (the index follows the table); never loop on a stale index entry.
                None => {
                    self.by_expiry.remove(&(at, net));
                }
            }
        }
        out
    }

    /// Drops the automatic entry closest to expiry (to keep automatic entries bounded): an expired one before
    /// any live one, and never a ban that outlives another. O(log n).
    pub fn evict_one_auto(&mut self) -> Option<Rule> {
        while let Some(&(at, net)) = self.auto_by_expiry.first() {
            match self.remove(&net) {
                Some(rule) => return Some(rule),
                None => {
                    self.auto_by_expiry.remove(&(at, net));
                }
            }
        }
        None
    }

    pub fn auto_count(&self) -> usize {
        self.auto_by_expiry.len()
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Rule> {
        self.rules.values()
    }

    pub fn get(&self, net: &IpNet) -> Option<&Rule> {
        self.rules.get(&net.trunc())
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, from dual-stack sockets) are their IPv4 address.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(net: &str, action: Action, expires_at: Option<u64>) -> Rule {
        Rule {
            net: parse_net(net).unwrap(),
            action,
            expires_at,
            note: None,
            origin: Origin::Manual,
            created_at: 0,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn most_specific_prefix_wins_whatever_the_order() {
        for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0]] {
            let rules = [
                rule("10.0.0.0/8", Action::Block, None),
                rule("10.1.0.0/16", Action::Allow, None),
                rule("10.1.2.3", Action::Block, None),
            ];
            let mut l = IpLists::new();
            for i in order {
                l.insert(rules[i].clone());
            }
            assert_eq!(l.lookup(ip("10.9.9.9"), 0).unwrap().action, Action::Block);
            assert_eq!(l.lookup(ip("10.1.9.9"), 0).unwrap().action, Action::Allow);
            assert_eq!(l.lookup(ip("10.1.2.3"), 0).unwrap().action, Action::Block);
            assert!(l.lookup(ip("11.0.0.1"), 0).is_none());
        }
    }

    #[test]
    fn ipv6_and_mapped_addresses() {
        let mut l = IpLists::new();
        l.insert(rule("2001:db8::/32", Action::Block, None));
        l.insert(rule("192.0.2.0/24", Action::Block, None));
        assert!(l.lookup(ip("2001:db8:1::5"), 0).is_some());
        assert!(l.lookup(ip("2001:db9::5"), 0).is_none());
        assert!(
            l.lookup(ip("::ffff:192.0.2.9"), 0).is_some(),
            "IPv4-mapped counts as IPv4"
        );
    }

    #[test]
    fn expiry_and_removal() {
        let mut l = IpLists::new();
        l.insert(rule("192.0.2.1", Action::Block, Some(1_000)));
        l.insert(rule("192.0.2.0/24", Action::Allow, None));
        assert_eq!(
            l.lookup(ip("192.0.2.1"), 999).unwrap().action,
            Action::Block
        );
        assert_eq!(
            l.lookup(ip("192.0.2.1"), 1_000).unwrap().action,
            Action::Allow,
            "expired entry skipped"
        );
        assert_eq!(l.expire(1_000).len(), 1);
        assert_eq!(l.len(), 1);
        assert!(l.remove(&parse_net("192.0.2.0/24").unwrap()).is_some());
        assert!(l.lookup(ip("192.0.2.1"), 0).is_none());
        assert!(l.v4_lens.is_empty());
    }

    fn auto(net: &str, expires_at: Option<u64>) -> Rule {
        Rule {
            origin: Origin::Auto {
                reason: "auth_failures".into(),
            },
            ..rule(net, Action::Block, expires_at)
        }
    }

    #[test]
    fn eviction_takes_the_entry_closest_to_expiry_and_indexes_follow_replacements() {
        let mut l = IpLists::new();
        l.insert(auto("192.0.2.1", Some(5_000)));
        l.insert(auto("192.0.2.2", Some(1_000)));
        l.insert(auto("192.0.2.3", None));
        l.insert(rule("192.0.2.4", Action::Block, Some(500)));
        assert_eq!(l.auto_count(), 3);
        // Replacing an entry re-indexes it: .1 now expires first, .2 last among the timed ones.
        l.insert(auto("192.0.2.1", Some(100)));
        l.insert(auto("192.0.2.2", Some(9_000)));
        assert_eq!(l.auto_count(), 3);
        let order: Vec<String> = std::iter::from_fn(|| l.evict_one_auto())
            .map(|r| r.net.to_string())
            .collect();
        assert_eq!(order, ["192.0.2.1/32", "192.0.2.2/32", "192.0.2.3/32"]);
        assert_eq!(l.len(), 1, "manual entries are never evicted");
        // A manual entry replacing an automatic one leaves the automatic index.
        l.insert(auto("192.0.2.9", Some(10)));
        l.insert(rule("192.0.2.9", Action::Block, None));
        assert_eq!(l.auto_count(), 0);
        assert!(l.evict_one_auto().is_none());
        assert_eq!(
            l.expire(10).len(),
            0,
            "the replaced expiry is not in the index any more"
        );
        assert_eq!(l.expire(500).len(), 1);
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn parse_canonicalises_and_explains() {
        assert_eq!(parse_net("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(
            parse_net("2001:db8::1").unwrap().to_string(),
            "2001:db8::1/128"
        );
        assert!(
            parse_net("10.0.0.0/33")
                .unwrap_err()
                .contains("not an IP address or CIDR prefix")
        );
    }
}
