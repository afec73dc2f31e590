//! The guard: a verdict for every packet before it is parsed, keyed on the transport source address only, plus
//! the counters that turn failed authentications, unanswered challenges and floods into bans.
//!
//! Sans-IO: every input carries `now` (unix milliseconds); decisions come back as verdicts and as events for the
//! security log and the store.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr};

use ipnet::IpNet;

use crate::config::GuardConfig;
use crate::lists::{Action, BanReason, IpLists, Origin, Rule, canonical};
use crate::shared::{Counts, Shared};

/// An IPv4-mapped IPv6 prefix as its IPv4 prefix, so that it matches the canonical addresses lookups use.
fn canonical_net(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => IpNet::new(IpAddr::V4(v4), v6.prefix_len() - 96)
                .map(|n| n.trunc())
                .unwrap_or(net),
            None => net,
        },
        other => other.trunc(),
    }
}

/// What to do with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Process it.
    Pass,
    /// On the allow list: process it, and never count it toward a ban.
    Trusted,
    /// Drop it silently: blacklisted, or throttled.
    Drop,
}

/// A decision for the security log (and, for bans, the store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuardEvent {
    /// A source was blacklisted automatically.
    Banned { rule: Rule },
    /// A source crossed the amber tier; its packets are dropped until `until` (unix ms).
    Throttled { source: IpNet, until: u64, pps: u32 },
    /// An automatic or manual entry reached its expiry.
    Expired { rule: Rule },
}

/// How the counters are keyed: an IPv4 address, or an IPv6 prefix (a /64 by default).
type SourceKey = IpNet;

#[derive(Debug, Clone, Default)]
struct SourceState {
    /// The second (unix ms / 1000) `packets` counts.
    second: u64,
    packets: u32,
    throttled_until: u64,
    auth_failures: u32,
    unanswered_challenges: u32,
    /// The eviction tier the state is queued in (see [`Tier`]); it only rises while the state lives.
    tier: Tier,
    /// Tells this life of the key apart from an earlier one in the eviction queues (entries are removed lazily).
    generation: u64,
}

/// How much a source's state is worth keeping when the table is full. A source that left challenges unanswered
/// or failed to authenticate (or was throttled) is kept in preference to a clean one, so that spraying packets
/// from many (spoofed) addresses evicts the clean sources first and cannot wipe an attacker's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
enum Tier {
    #[default]
    Clean = 0,
    Challenged = 1,
    Failed = 2,
}

impl SourceState {
    fn tier(&self) -> Tier {
        if self.auth_failures > 0 || self.throttled_until > 0 {
            Tier::Failed
        } else if self.unanswered_challenges > 0 {
            Tier::Challenged
        } else {
            Tier::Clean
        }
    }
}

#[derive(Debug)]
pub struct Guard {
    config: GuardConfig,
    lists: IpLists,
    sources: HashMap<SourceKey, SourceState>,
    /// Per tier, the keys in the order they entered it: eviction takes the oldest of the lowest tier. Entries
    /// whose state left the tier (or the table) are skipped when they come up.
    queues: [VecDeque<(SourceKey, u64)>; 3],
    next_generation: u64,
    /// Where configured trunks send from (kept current by the server as trunks and their DNS change): counted
    /// toward the flood tiers but never banned by a counter, since a trunk does not authenticate to us and its
    /// address is the easiest one to spoof (see docs/security.md, "Trunk sources").
    trunk_sources: Vec<IpNet>,
    events: Vec<GuardEvent>,
    dropped: u64,
    auth_successes: u64,
    /// The counters of the other nodes of a cluster (off with one node): see [`crate::shared`].
    shared: Shared,
}

impl Guard {
    pub fn new(config: GuardConfig) -> Self {
        Guard {
            config,
            lists: IpLists::new(),
            sources: HashMap::new(),
            queues: Default::default(),
            next_generation: 0,
            trunk_sources: Vec::new(),
            events: Vec::new(),
            dropped: 0,
            auth_successes: 0,
            shared: Shared::default(),
        }
    }

    pub fn config(&self) -> &GuardConfig {
        &self.config
    }

    /// New settings take effect for the next packet; counters are kept.
    pub fn set_config(&mut self, config: GuardConfig) {
        self.config = config;
    }

    pub fn lists(&self) -> &IpLists {
        &self.lists
    }

    /// Replaces the manual entries (after an admin change); automatic entries are kept unless the store
    /// dropped them (an unban), which `keep_auto` decides.
    pub fn replace_rules(&mut self, rules: Vec<Rule>) {
        let mut lists = IpLists::new();
        for r in rules {
            if self.shared.is_enabled() && r.action == Action::Block {
                // Banned by another node: this node's counts toward the ban are spent too.
                self.reset_counts(r.net);
            }
            lists.insert(r);
        }
        self.lists = lists;
    }

    /// Shares the ban counters with the other nodes of a cluster: from now on the guard records which sources'
    /// counters changed ([`Guard::take_shared_changes`]) and adds the other nodes' counts
    /// ([`Guard::set_remote_counts`]) to its own when deciding a ban.
    pub fn share_counters(&mut self) {
        self.shared.enable();
    }

    /// This node's current counters of every source that changed since the last call (zero: forgotten or
    /// spent), for the server to write to the database.
    pub fn take_shared_changes(&mut self) -> Vec<(IpNet, Counts)> {
        self.shared
            .take_changed()
            .into_iter()
            .map(|key| (key, self.local_counts(&key)))
            .collect()
    }

    /// The other nodes' counts (summed over nodes), as last read from the database. A source whose total now
    /// reaches a limit is banned here at once if this node counted it too (the node that counted alone bans it
    /// itself, so one attacker gets one ban, not one per node).
    pub fn set_remote_counts(
        &mut self,
        remote: std::collections::HashMap<IpNet, Counts>,
        now_ms: u64,
    ) {
        self.shared.set_remote(remote);
        for key in self.shared.remote_keys() {
            let local = self.local_counts(&key);
            if local != Counts::default() {
                self.ban_on_total(key, BanReason::AuthFailures, now_ms);
                self.ban_on_total(key, BanReason::UnansweredChallenges, now_ms);
            }
        }
    }

    /// Marks `key`'s counters as changed again (their write failed; the next take retries).
    pub fn mark_shared_changed(&mut self, key: IpNet) {
        self.shared.touch(key);
    }

    fn local_counts(&self, key: &IpNet) -> Counts {
        self.sources
            .get(key)
            .map(|s| Counts {
                auth_failures: s.auth_failures,
                unanswered_challenges: s.unanswered_challenges,
            })
            .unwrap_or_default()
    }

    fn reset_counts(&mut self, key: IpNet) {
        if let Some(state) = self.sources.get_mut(&key)
            && (state.auth_failures > 0 || state.unanswered_challenges > 0)
        {
            state.auth_failures = 0;
            state.unanswered_challenges = 0;
            self.shared.touch(key);
        }
        self.shared.forget_remote(&key);
    }

    /// Bans `key` if this node's count of `which` plus the other nodes' reaches its limit.
    fn ban_on_total(&mut self, key: IpNet, which: BanReason, now_ms: u64) {
        let local = self.local_counts(&key);
        let remote = self.shared.remote(&key);
        let failures = local.auth_failures.saturating_add(remote.auth_failures);
        let unanswered = local
            .unanswered_challenges
            .saturating_add(remote.unanswered_challenges);
        let (failure_limit, challenge_limit) = (
            self.config.auth_failures_before_ban,
            self.config.unanswered_challenges_before_ban,
        );
        if which == BanReason::AuthFailures && failures >= failure_limit {
            self.ban(
                key,
                BanReason::AuthFailures,
                now_ms,
                format!("{failure_limit} failed authentications"),
            );
        } else if which == BanReason::UnansweredChallenges && unanswered >= challenge_limit {
            self.ban(
                key,
                BanReason::UnansweredChallenges,
                now_ms,
                format!("{challenge_limit} challenges left unanswered"),
            );
        }
    }

    /// Adds one entry (a manual ban, or an automatic one restored from the store).
    pub fn insert_rule(&mut self, rule: Rule) {
        self.lists.insert(rule);
    }

    /// The addresses configured trunks send from: never banned by authentication counters or floods (a flood
    /// from them is throttled).
    pub fn set_trunk_sources(&mut self, mut nets: Vec<IpNet>) {
        for n in &mut nets {
            *n = canonical_net(*n);
        }
        nets.sort();
        nets.dedup();
        self.trunk_sources = nets;
    }

    pub fn trunk_sources(&self) -> &[IpNet] {
        &self.trunk_sources
    }

    fn is_trunk(&self, ip: IpAddr) -> bool {
        self.trunk_sources.iter().any(|n| n.contains(&ip))
    }

    /// Packets dropped so far (blacklisted or throttled).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Successful authentications seen so far (whatever the source), so the edge can tell whether a message it
    /// handed over authenticated its connection.
    pub fn auth_successes(&self) -> u64 {
        self.auth_successes
    }

    pub fn tracked_sources(&self) -> usize {
        self.sources.len()
    }

    /// Decisions since the last call.
    pub fn take_events(&mut self) -> Vec<GuardEvent> {
        std::mem::take(&mut self.events)
    }

    /// The verdict for one packet from `ip`, counted toward the flood tiers.
    pub fn check_packet(&mut self, ip: IpAddr, now_ms: u64) -> Verdict {
        let ip = canonical(ip);
        match self.lists.lookup(ip, now_ms).map(|r| r.action) {
            Some(Action::Allow) => return Verdict::Trusted,
            Some(Action::Block) => {
                self.dropped += 1;
                return Verdict::Drop;
            }
            None => {}
        }
        let key = self.key(ip);
        let (amber, red, throttle_ms) = (
            self.config.flood_amber_pps,
            self.config.flood_red_pps,
            u64::from(self.config.throttle_seconds) * 1000,
        );
        let trunk = self.is_trunk(ip);
        let state = self.state(key);
        let second = now_ms / 1000;
        if state.second != second {
            state.second = second;
            state.packets = 0;
        }
        state.packets = state.packets.saturating_add(1);
        let packets = state.packets;
        // A trunk's flood is throttled like any amber flood, never banned: spoofed packets must not cut the
        // provider off for a day.
        if packets > red && !trunk {
            self.dropped += 1;
            self.ban(
                key,
                BanReason::Flood,
                now_ms,
                format!("more than {red} packets in one second"),
            );
            return Verdict::Drop;
        }
        let mut throttled = None;
        if packets > amber && state.throttled_until <= now_ms {
            state.throttled_until = now_ms + throttle_ms;
            throttled = Some(state.throttled_until);
        }
        let dropping = state.throttled_until > now_ms;
        if let Some(until) = throttled {
            self.requeue(key);
            self.events.push(GuardEvent::Throttled {
                source: key,
                until,
                pps: packets,
            });
        }
        if dropping {
            self.dropped += 1;
            return Verdict::Drop;
        }
        Verdict::Pass
    }

    /// Whether a new TCP/TLS connection from `ip` may be accepted (no counting).
    pub fn allows_connection(&self, ip: IpAddr, now_ms: u64) -> bool {
        let ip = canonical(ip);
        if self
            .lists
            .lookup(ip, now_ms)
            .is_some_and(|r| r.action == Action::Block)
        {
            return false;
        }
        self.sources
            .get(&self.key(ip))
            .is_none_or(|s| s.throttled_until <= now_ms)
    }

    /// A 401/407 challenge was sent to `ip`.
    pub fn on_challenge(&mut self, ip: IpAddr, now_ms: u64) {
        let Some(key) = self.countable(ip, now_ms) else {
            return;
        };
        let state = self.state(key);
        state.unanswered_challenges = state.unanswered_challenges.saturating_add(1);
        self.requeue(key);
        self.shared.touch(key);
        if self.sources.contains_key(&key) {
            self.ban_on_total(key, BanReason::UnansweredChallenges, now_ms);
        }
    }

    /// A request from `ip` authenticated successfully: its failures are forgiven and one challenge answered.
    pub fn on_auth_success(&mut self, ip: IpAddr, now_ms: u64) {
        self.auth_successes += 1;
        let Some(key) = self.countable(ip, now_ms) else {
            return;
        };
        let state = self.state(key);
        let changed = state.auth_failures > 0 || state.unanswered_challenges > 0;
        state.auth_failures = 0;
        state.unanswered_challenges = state.unanswered_challenges.saturating_sub(1);
        if changed {
            self.shared.touch(key);
        }
    }

    /// An authentication from `ip` failed (wrong password, unknown user, disabled extension, bad PIN, …).
    pub fn on_auth_failure(&mut self, ip: IpAddr, now_ms: u64) {
        let Some(key) = self.countable(ip, now_ms) else {
            return;
        };
        let state = self.state(key);
        state.auth_failures = state.auth_failures.saturating_add(1);
        self.requeue(key);
        self.shared.touch(key);
        if self.sources.contains_key(&key) {
            self.ban_on_total(key, BanReason::AuthFailures, now_ms);
        }
    }

    /// Removes expired entries; each becomes an event.
    pub fn expire(&mut self, now_ms: u64) {
        for rule in self.lists.expire(now_ms) {
            self.events.push(GuardEvent::Expired { rule });
        }
    }

    /// The counter key of `ip` for authentication counters, or `None` when it must not be counted: allow-listed,
    /// or a trunk's source (trunks do not authenticate to us, and a spoofer must not get the provider banned).
    fn countable(&self, ip: IpAddr, now_ms: u64) -> Option<SourceKey> {
        let ip = canonical(ip);
        if self.is_trunk(ip) {
            return None;
        }
        match self.lists.lookup(ip, now_ms) {
            Some(r) if r.action == Action::Allow => None,
            _ => Some(self.key(ip)),
        }
    }

    fn key(&self, ip: IpAddr) -> SourceKey {
        match ip {
            IpAddr::V4(v4) => IpNet::from(IpAddr::V4(v4)),
            IpAddr::V6(v6) => IpNet::new(IpAddr::V6(v6), self.config.ipv6_prefix_len.min(128))
                .map(|n| n.trunc())
                .unwrap_or_else(|_| IpNet::from(IpAddr::V6(Ipv6Addr::UNSPECIFIED))),
        }
    }

    /// The state of `key`, created if new. The table is bounded: at capacity one source is forgotten — the
    /// longest-tracked clean one, else the longest-tracked that only left challenges unanswered, else the
    /// longest-tracked of the rest (a flood of spoofed addresses cannot grow memory, nor wipe the counters of
    /// a source that is failing to authenticate; bans live in the lists, not here).
    fn state(&mut self, key: SourceKey) -> &mut SourceState {
        if !self.sources.contains_key(&key) {
            while self.sources.len() >= self.config.max_sources.max(1) {
                if !self.evict_one() {
                    break;
                }
            }
            let generation = self.next_generation;
            self.next_generation += 1;
            self.queues[Tier::Clean as usize].push_back((key, generation));
            self.sources.insert(
                key,
                SourceState {
                    generation,
                    ..SourceState::default()
                },
            );
        }
        self.sources.entry(key).or_default()
    }

    /// Moves `key` to the queue of its tier when its counters raised it.
    fn requeue(&mut self, key: SourceKey) {
        let Some(state) = self.sources.get_mut(&key) else {
            return;
        };
        let tier = state.tier();
        if tier > state.tier {
            state.tier = tier;
            self.queues[tier as usize].push_back((key, state.generation));
        }
    }

    /// Forgets the oldest source of the lowest tier; `false` when nothing could be evicted.
    fn evict_one(&mut self) -> bool {
        for tier in [Tier::Clean, Tier::Challenged, Tier::Failed] {
            while let Some((key, generation)) = self.queues[tier as usize].pop_front() {
                let current = self
                    .sources
                    .get(&key)
                    .is_some_and(|s| s.generation == generation && s.tier == tier);
                if current {
                    self.sources.remove(&key);
                    self.shared.touch(key);
                    return true;
                }
            }
        }
        false
    }

    /// Entries waiting in the eviction queues (live and stale), for the bound check in tests.
    #[cfg(test)]
    fn queued(&self) -> usize {
        self.queues.iter().map(VecDeque::len).sum()
    }

    fn ban(&mut self, key: SourceKey, reason: BanReason, now_ms: u64, detail: String) {
        // Already banned (e.g. several packets of one flood): nothing new to record.
        if self
            .lists
            .get(&key)
            .is_some_and(|r| r.action == Action::Block && r.is_live(now_ms))
        {
            return;
        }
        while self.lists.auto_count() >= self.config.max_auto_bans.max(1) {
            if self.lists.evict_one_auto().is_none() {
                break;
            }
        }
        let rule = Rule {
            net: key,
            action: Action::Block,
            expires_at: Some(now_ms.saturating_add(self.config.ban_seconds.saturating_mul(1000))),
            note: Some(detail),
            origin: Origin::auto(reason),
            created_at: now_ms,
        };
        self.lists.insert(rule.clone());
        // A fresh start if the ban is lifted: the counters that led to it are spent. (The entry stays in its
        // tier, so the eviction queues keep matching the table.)
        if let Some(state) = self.sources.get_mut(&key) {
            *state = SourceState {
                tier: state.tier,
                generation: state.generation,
                ..SourceState::default()
            };
        }
        self.shared.touch(key);
        self.shared.forget_remote(&key);
        self.events.push(GuardEvent::Banned { rule });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lists::parse_net;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn v4(i: u32) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::from(i))
    }

    fn guard(f: impl FnOnce(&mut GuardConfig)) -> Guard {
        let mut c = GuardConfig::default();
        f(&mut c);
        Guard::new(c)
    }

    #[test]
    fn auth_failures_ban_at_exactly_the_limit_then_drop() {
        let mut g = guard(|c| c.auth_failures_before_ban = 3);
        let a = ip("127.0.0.2");
        g.on_auth_failure(a, 0);
        g.on_auth_failure(a, 0);
        assert_eq!(g.check_packet(a, 1), Verdict::Pass);
        g.on_auth_failure(a, 2);
        assert_eq!(g.check_packet(a, 3), Verdict::Drop);
        let ev = g.take_events();
        assert!(
            matches!(&ev[..], [GuardEvent::Banned { rule }] if rule.origin == Origin::Auto { reason: "auth_failures".into() }
            && rule.expires_at == Some(2 + 86_400_000))
        );
        assert_eq!(
            g.check_packet(ip("127.0.0.3"), 3),
            Verdict::Pass,
            "other sources unaffected"
        );
    }

    /// Two guards standing for two nodes, exchanging counts as the server does through the database.
    fn exchange(from: &mut Guard, to: &mut Guard, now: u64) {
        let remote = from
            .take_shared_changes()
            .into_iter()
            .filter(|(_, c)| *c != crate::SharedCounts::default())
            .collect();
        to.set_remote_counts(remote, now);
    }

    #[test]
    fn guesses_split_over_two_nodes_ban_at_the_configured_total() {
        let (mut a, mut b) = (
            guard(|c| c.auth_failures_before_ban = 6),
            guard(|c| c.auth_failures_before_ban = 6),
        );
        a.share_counters();
        b.share_counters();
        let src = ip("203.0.113.9");
        for i in 0..5 {
            if i % 2 == 0 {
                a.on_auth_failure(src, i);
            } else {
                b.on_auth_failure(src, i);
            }
            exchange(&mut a, &mut b, i);
            exchange(&mut b, &mut a, i);
        }
        assert_eq!(a.check_packet(src, 10), Verdict::Pass, "5 of 6: not yet");
        assert_eq!(b.check_packet(src, 10), Verdict::Pass);
        b.on_auth_failure(src, 11);
        assert_eq!(
            b.check_packet(src, 12),
            Verdict::Drop,
            "the 6th guess, on b, bans"
        );
        assert!(matches!(&b.take_events()[..], [GuardEvent::Banned { .. }]));
        // b's counters are spent and its row is deleted (count 0).
        assert_eq!(
            b.take_shared_changes(),
            vec![(IpNet::from(src), crate::SharedCounts::default())]
        );
    }

    #[test]
    fn a_stale_remote_count_bans_when_it_arrives_if_this_node_counted_too() {
        let mut a = guard(|c| c.auth_failures_before_ban = 4);
        a.share_counters();
        let src = ip("203.0.113.10");
        a.on_auth_failure(src, 0);
        a.on_auth_failure(src, 0);
        assert_eq!(a.check_packet(src, 1), Verdict::Pass);
        let remote = [(
            IpNet::from(src),
            crate::SharedCounts {
                auth_failures: 2,
                unanswered_challenges: 0,
            },
        )];
        a.set_remote_counts(remote.into_iter().collect(), 2);
        assert_eq!(a.check_packet(src, 3), Verdict::Drop);
        // A source this node never counted is left to the nodes that did.
        let other = ip("203.0.113.11");
        let remote = [(
            IpNet::from(other),
            crate::SharedCounts {
                auth_failures: 99,
                unanswered_challenges: 0,
            },
        )];
        a.set_remote_counts(remote.into_iter().collect(), 4);
        assert_eq!(a.check_packet(other, 5), Verdict::Pass);
    }

    #[test]
    fn without_sharing_remote_counts_are_ignored_and_nothing_is_recorded() {
        let mut g = guard(|c| c.auth_failures_before_ban = 3);
        let src = ip("203.0.113.12");
        g.on_auth_failure(src, 0);
        let remote = [(
            IpNet::from(src),
            crate::SharedCounts {
                auth_failures: 10,
                unanswered_challenges: 0,
            },
        )];
        g.set_remote_counts(remote.into_iter().collect(), 1);
        g.on_auth_failure(src, 2);
        assert_eq!(g.check_packet(src, 3), Verdict::Pass);
        assert!(g.take_shared_changes().is_empty());
    }

    #[test]
    fn a_ban_from_another_node_spends_this_nodes_counts() {
        let mut g = guard(|c| c.auth_failures_before_ban = 5);
        g.share_counters();
        let src = ip("203.0.113.13");
        for _ in 0..4 {
            g.on_auth_failure(src, 0);
        }
        g.take_shared_changes();
        let ban = Rule {
            net: IpNet::from(src),
            action: Action::Block,
            expires_at: Some(1000),
            note: None,
            origin: Origin::auto(BanReason::AuthFailures),
            created_at: 0,
        };
        g.replace_rules(vec![ban]);
        assert_eq!(g.check_packet(src, 1), Verdict::Drop);
        g.replace_rules(Vec::new());
        g.on_auth_failure(src, 2);
        assert_eq!(
            g.check_packet(src, 3),
            Verdict::Pass,
            "after an unban it starts from zero"
        );
    }

    #[test]
    fn success_forgives_failures() {
        let mut g = guard(|c| c.auth_failures_before_ban = 3);
        let a = ip("192.0.2.1");
        g.on_auth_failure(a, 0);
        g.on_auth_failure(a, 0);
        g.on_auth_success(a, 0);
        g.on_auth_failure(a, 0);
        g.on_auth_failure(a, 0);
        assert_eq!(g.check_packet(a, 0), Verdict::Pass);
    }

    #[test]
    fn unanswered_challenges_ban_but_answered_ones_do_not() {
        let mut g = guard(|c| c.unanswered_challenges_before_ban = 100);
        let phone = ip("192.0.2.10");
        for _ in 0..1000 {
            g.on_challenge(phone, 0);
            g.on_auth_success(phone, 0);
        }
        assert_eq!(g.check_packet(phone, 0), Verdict::Pass);
        let scanner = ip("192.0.2.66");
        for _ in 0..99 {
            g.on_challenge(scanner, 0);
        }
        assert_eq!(g.check_packet(scanner, 0), Verdict::Pass);
        g.on_challenge(scanner, 0);
        assert_eq!(g.check_packet(scanner, 0), Verdict::Drop);
    }

    #[test]
    fn flood_tiers_throttle_at_amber_and_ban_at_red() {
        let mut g = guard(|c| {
            c.flood_amber_pps = 100;
            c.flood_red_pps = 300;
            c.throttle_seconds = 5;
        });
        let a = ip("127.0.0.2");
        let passed = (0..100)
            .filter(|_| g.check_packet(a, 10_000) == Verdict::Pass)
            .count();
        assert_eq!(passed, 100, "up to amber nothing happens");
        assert_eq!(
            g.check_packet(a, 10_000),
            Verdict::Drop,
            "above amber: throttled"
        );
        assert!(matches!(
            &g.take_events()[..],
            [GuardEvent::Throttled { until: 15_000, .. }]
        ));
        // still throttled in the next seconds, at a low rate
        assert_eq!(g.check_packet(a, 12_000), Verdict::Drop);
        assert_eq!(g.check_packet(a, 15_000), Verdict::Pass, "throttle over");
        // a red flood in one second is banned
        let drops = (0..400)
            .filter(|_| g.check_packet(a, 20_000) == Verdict::Drop)
            .count();
        assert!(drops >= 300);
        assert!(
            g.take_events()
                .iter()
                .any(|e| matches!(e, GuardEvent::Banned { .. }))
        );
        assert_eq!(
            g.check_packet(a, 30_000),
            Verdict::Drop,
            "banned, not just throttled"
        );
    }

    #[test]
    fn allow_list_exempts_from_everything_and_block_list_drops() {
        let mut g = guard(|c| {
            c.auth_failures_before_ban = 3;
            c.flood_amber_pps = 10;
            c.flood_red_pps = 20;
        });
        let rule = |net: &str, action| Rule {
            net: parse_net(net).unwrap(),
            action,
            expires_at: None,
            note: None,
            origin: Origin::Manual,
            created_at: 0,
        };
        g.insert_rule(rule("10.0.0.0/8", Action::Allow));
        g.insert_rule(rule("10.6.6.6", Action::Block));
        let office = ip("10.1.1.1");
        for _ in 0..100 {
            g.on_auth_failure(office, 0);
            assert_eq!(g.check_packet(office, 0), Verdict::Trusted);
        }
        assert_eq!(g.check_packet(ip("10.6.6.6"), 0), Verdict::Drop);
        assert!(g.take_events().is_empty());
        assert_eq!(
            g.tracked_sources(),
            0,
            "trusted sources are not even tracked"
        );
    }

    #[test]
    fn ipv6_sources_are_counted_per_64() {
        let mut g = guard(|c| c.auth_failures_before_ban = 3);
        g.on_auth_failure(ip("2001:db8:1:2::1"), 0);
        g.on_auth_failure(ip("2001:db8:1:2::2"), 0);
        g.on_auth_failure(ip("2001:db8:1:2:ffff::9"), 0);
        assert_eq!(g.check_packet(ip("2001:db8:1:2::77"), 0), Verdict::Drop);
        assert_eq!(g.check_packet(ip("2001:db8:1:3::1"), 0), Verdict::Pass);
    }

    #[test]
    fn bans_expire() {
        let mut g = guard(|c| {
            c.auth_failures_before_ban = 3;
            c.ban_seconds = 60;
        });
        let a = ip("198.51.100.1");
        for _ in 0..3 {
            g.on_auth_failure(a, 0);
        }
        assert_eq!(g.check_packet(a, 59_999), Verdict::Drop);
        assert_eq!(
            g.check_packet(a, 60_000),
            Verdict::Pass,
            "expired entries no longer match"
        );
        g.take_events();
        g.expire(60_000);
        assert!(matches!(&g.take_events()[..], [GuardEvent::Expired { .. }]));
        assert!(g.lists().is_empty());
    }

    #[test]
    fn memory_is_bounded_under_a_spoofed_flood() {
        let mut g = guard(|c| {
            c.max_sources = 1000;
            c.max_auto_bans = 50;
            c.auth_failures_before_ban = 3;
        });
        for i in 0..200_000u32 {
            let a = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            g.check_packet(a, u64::from(i));
            if i % 3 == 0 {
                for _ in 0..3 {
                    g.on_auth_failure(a, u64::from(i));
                }
            }
        }
        assert!(g.tracked_sources() <= 1000);
        assert!(
            g.queued() <= 2 * 1000 + 3,
            "stale queue entries stay bounded too"
        );
        assert!(g.lists().auto_count() <= 50);
    }

    #[test]
    fn spraying_many_sources_does_not_wipe_an_attackers_counters() {
        let mut g = guard(|c| {
            c.max_sources = 1000;
            c.auth_failures_before_ban = 3;
            c.unanswered_challenges_before_ban = 100;
        });
        let attacker = ip("203.0.113.66");
        g.on_auth_failure(attacker, 0);
        g.on_auth_failure(attacker, 0);
        let scanner = ip("203.0.113.77");
        for _ in 0..99 {
            g.on_challenge(scanner, 0);
        }
        // Ten times the table's size in fresh (spoofed) sources, each sending one packet.
        for i in 0..10_000u32 {
            g.check_packet(v4(0x0a00_0000 + i), 1);
        }
        assert!(g.tracked_sources() <= 1000);
        g.on_auth_failure(attacker, 2);
        g.on_challenge(scanner, 2);
        assert_eq!(
            g.check_packet(attacker, 3),
            Verdict::Drop,
            "third failure bans"
        );
        assert_eq!(
            g.check_packet(scanner, 3),
            Verdict::Drop,
            "100th challenge bans"
        );
        // Under a spray of challenged sources, the ones that failed authentication still outlast them.
        let mut g = guard(|c| {
            c.max_sources = 100;
            c.auth_failures_before_ban = 3;
        });
        g.on_auth_failure(attacker, 0);
        g.on_auth_failure(attacker, 0);
        for i in 0..1_000u32 {
            g.on_challenge(v4(0x0a00_0000 + i), 1);
        }
        g.on_auth_failure(attacker, 2);
        assert_eq!(g.check_packet(attacker, 3), Verdict::Drop);
    }

    #[test]
    fn a_ban_at_the_cap_evicts_the_expired_ban_first() {
        let mut g = guard(|c| {
            c.max_auto_bans = 2;
            c.auth_failures_before_ban = 3;
            c.ban_seconds = 60;
        });
        let ban = |g: &mut Guard, who: &str, at: u64| {
            for _ in 0..3 {
                g.on_auth_failure(ip(who), at);
            }
        };
        ban(&mut g, "192.0.2.1", 0); // expires at 60 s, not yet purged at 100 s
        g.set_config(GuardConfig {
            ban_seconds: 10_000,
            ..g.config().clone()
        });
        ban(&mut g, "192.0.2.2", 50_000); // expires at 10,050 s
        ban(&mut g, "192.0.2.3", 100_000);
        assert_eq!(g.lists().auto_count(), 2);
        assert_eq!(
            g.check_packet(ip("192.0.2.2"), 100_001),
            Verdict::Drop,
            "the live ban was kept"
        );
        assert_eq!(g.check_packet(ip("192.0.2.3"), 100_001), Verdict::Drop);
    }

    #[test]
    fn a_full_table_forgets_clean_sources_oldest_first() {
        let mut g = guard(|c| c.max_sources = 3);
        for i in 1..=3 {
            g.check_packet(v4(i), 0);
        }
        g.on_challenge(v4(1), 0);
        g.check_packet(v4(4), 0);
        assert!(g.sources.contains_key(&g.key(v4(1))), "challenged kept");
        assert!(
            !g.sources.contains_key(&g.key(v4(2))),
            "oldest clean forgotten"
        );
        assert!(g.sources.contains_key(&g.key(v4(3))));
    }

    #[test]
    fn trunk_sources_are_never_banned_by_counters_and_their_floods_are_only_throttled() {
        let mut g = guard(|c| {
            c.auth_failures_before_ban = 3;
            c.unanswered_challenges_before_ban = 100;
            c.flood_amber_pps = 10;
            c.flood_red_pps = 20;
        });
        g.set_trunk_sources(vec![parse_net("198.51.100.0/29").unwrap()]);
        let trunk = ip("198.51.100.5");
        for _ in 0..1000 {
            g.on_auth_failure(trunk, 0);
            g.on_challenge(trunk, 0);
        }
        assert_eq!(g.check_packet(trunk, 0), Verdict::Pass);
        let drops = (0..100)
            .filter(|_| g.check_packet(trunk, 1_000) == Verdict::Drop)
            .count();
        assert!(drops >= 80, "flood throttled");
        let events = g.take_events();
        assert!(
            events
                .iter()
                .all(|e| matches!(e, GuardEvent::Throttled { .. })),
            "{events:?}"
        );
        assert_eq!(
            g.check_packet(trunk, 10_000),
            Verdict::Pass,
            "throttle over"
        );
        // Mapped IPv4 counts as the trunk too; the rest of the world does not.
        assert_eq!(
            g.check_packet(ip("::ffff:198.51.100.5"), 10_000),
            Verdict::Pass
        );
        let other = ip("198.51.100.9");
        for _ in 0..3 {
            g.on_auth_failure(other, 20_000);
        }
        assert_eq!(g.check_packet(other, 20_000), Verdict::Drop);
        // Trunk sources follow the configuration.
        g.set_trunk_sources(Vec::new());
        for _ in 0..3 {
            g.on_auth_failure(trunk, 30_000);
        }
        assert_eq!(g.check_packet(trunk, 30_000), Verdict::Drop);
    }
}
