//! Counters shared across the nodes of a cluster (issue 17, docs/cluster.md): the bookkeeping that lets a ban
//! decision use the sum of every node's count for a source, so an attacker spreading guesses over N nodes does
//! not get N times the limit.
//!
//! Sans-IO: the guard records which sources' counters changed; the server takes those changes (about every
//! 250 ms), writes them to the database as this node's values, reads the other nodes' values back and hands
//! them in. Off (and empty) unless the server enables it: one node on SQLite keeps exactly its own counters.

use std::collections::{HashMap, HashSet};

use ipnet::IpNet;

/// Most sources whose changes wait for the next take; beyond it changes are dropped (the guard's own table is
/// bounded by `max_sources`, and the server takes them four times a second).
pub const MAX_PENDING: usize = 100_000;

/// The counters of one source that lead to a ban.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub auth_failures: u32,
    pub unanswered_challenges: u32,
}

/// What the guard keeps for sharing: changed sources, and the other nodes' latest sums.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    enabled: bool,
    changed: HashSet<IpNet>,
    remote: HashMap<IpNet, Counts>,
}

impl Shared {
    pub(crate) fn enable(&mut self) {
        self.enabled = true;
    }

    pub(crate) fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Notes that `key`'s counters changed (nothing when sharing is off).
    pub(crate) fn touch(&mut self, key: IpNet) {
        if self.enabled && (self.changed.len() < MAX_PENDING || self.changed.contains(&key)) {
            self.changed.insert(key);
        }
    }

    /// The sources changed since the last take.
    pub(crate) fn take_changed(&mut self) -> Vec<IpNet> {
        self.changed.drain().collect()
    }

    /// The other nodes' counts for `key` (zero when sharing is off or they have none).
    pub(crate) fn remote(&self, key: &IpNet) -> Counts {
        self.remote.get(key).copied().unwrap_or_default()
    }

    pub(crate) fn set_remote(&mut self, remote: HashMap<IpNet, Counts>) {
        if self.enabled {
            self.remote = remote;
        }
    }

    pub(crate) fn remote_keys(&self) -> Vec<IpNet> {
        self.remote.keys().copied().collect()
    }

    /// Forgets the other nodes' counts for `key` (after a ban: they are spent, as the local ones are).
    pub(crate) fn forget_remote(&mut self, key: &IpNet) {
        self.remote.remove(key);
    }
}
