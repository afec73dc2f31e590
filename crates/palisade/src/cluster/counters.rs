//! The ban counters summed across nodes: every tick (250 ms in cluster mode) a node writes the counters that
//! changed since the last tick as its own rows of `guard_counts`, reads the other nodes' sums back and hands them
//! to its guard, which bans a source when its own count plus the others' reaches the configured limit.
//!
//! Tolerance: a node sees another node's guesses at most two ticks late (the other's write, then its own read),
//! so an attacker alternating between nodes faster than that can get up to (guesses per second × 0.5 s) more
//! guesses than the limit before the ban; slower than one guess per 0.5 s, the ban comes exactly at the limit.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use guard::SharedCounts;
use ipnet::IpNet;
use store::Db;
use store::cluster::{AUTH_FAILURES, GuardCount, UNANSWERED_CHALLENGES};

use crate::service::unix_ms;
use crate::transport::Edge;

/// Counts older than this are ignored and deleted: a slow attacker's guesses at other nodes stop adding up
/// after an hour (its guesses at this node stay counted as on a single node, until it authenticates or is banned).
pub const WINDOW: Duration = Duration::from_secs(3600);

/// Most counter rows written per tick: under a flood of failures from many (spoofed) sources the rest wait for the
/// next ticks, largest counts first, so the sync loop (which also applies bans and configuration) keeps its pace.
pub const MAX_WRITES_PER_TICK: usize = 1_000;

/// What this node last wrote for each source with a non-zero count, so that unchanged values (and the challenge
/// every phone's REGISTER gets and answers within one tick) cost no write.
#[derive(Debug, Default)]
pub struct CounterSync {
    written: HashMap<IpNet, SharedCounts>,
}

impl CounterSync {
    /// The rows to write for `changes` (at most `max`, largest counts first) and the sources deferred to a later
    /// tick. Pure: `self` changes only in [`CounterSync::written`].
    pub fn plan(
        &self,
        changes: Vec<(IpNet, SharedCounts)>,
        max: usize,
    ) -> (Vec<(IpNet, SharedCounts)>, Vec<IpNet>) {
        let mut todo: Vec<(IpNet, SharedCounts)> = changes
            .into_iter()
            .filter(|(key, counts)| self.written.get(key).copied().unwrap_or_default() != *counts)
            .collect();
        todo.sort_by_key(|(key, c)| {
            (
                std::cmp::Reverse(c.auth_failures.max(c.unanswered_challenges)),
                *key,
            )
        });
        let deferred = todo.split_off(todo.len().min(max));
        (todo, deferred.into_iter().map(|(key, _)| key).collect())
    }

    /// Records that `rows` were written.
    pub fn written(&mut self, rows: &[(IpNet, SharedCounts)]) {
        for (key, counts) in rows {
            if *counts == SharedCounts::default() {
                self.written.remove(key);
            } else {
                self.written.insert(*key, *counts);
            }
        }
    }

    /// The stored rows for `rows`: one per kind whose value differs from what was last written (0 deletes).
    fn rows(&self, rows: &[(IpNet, SharedCounts)]) -> Vec<GuardCount> {
        let mut out = Vec::new();
        for (key, counts) in rows {
            let last = self.written.get(key).copied().unwrap_or_default();
            for (kind, now, before) in [
                (AUTH_FAILURES, counts.auth_failures, last.auth_failures),
                (
                    UNANSWERED_CHALLENGES,
                    counts.unanswered_challenges,
                    last.unanswered_challenges,
                ),
            ] {
                if now != before {
                    out.push(GuardCount {
                        source: key.to_string(),
                        kind: kind.to_string(),
                        count: i64::from(now),
                    });
                }
            }
        }
        out
    }

    /// Writes this node's changed counters, reads the other nodes' back into the guard.
    pub async fn exchange(&mut self, db: &Db, edge: &Edge, node: &str) -> anyhow::Result<()> {
        let changes = edge.with_service(|s| s.guard_mut().take_shared_changes());
        let (write, deferred) = self.plan(changes, MAX_WRITES_PER_TICK);
        let now_ms = i64::try_from(unix_ms(SystemTime::now())).unwrap_or(i64::MAX);
        let remark = |keys: &mut dyn Iterator<Item = IpNet>| {
            edge.with_service(|s| {
                let g = s.guard_mut();
                keys.for_each(|k| g.mark_shared_changed(k));
            })
        };
        remark(&mut deferred.into_iter());
        if let Err(e) = db
            .write_guard_counts(node, &self.rows(&write), now_ms)
            .await
        {
            // Tried again at the next tick; meanwhile the other nodes miss them (as if partitioned).
            remark(&mut write.iter().map(|(k, _)| *k));
            return Err(e.into());
        }
        self.written(&write);
        let window_ms = i64::try_from(WINDOW.as_millis()).unwrap_or(i64::MAX);
        let remote = db
            .remote_guard_counts(node, now_ms.saturating_sub(window_ms))
            .await?;
        let mut sums: HashMap<IpNet, SharedCounts> = HashMap::new();
        for r in remote {
            let Ok(net) = r.source.parse::<IpNet>() else {
                continue;
            };
            let count = u32::try_from(r.count.max(0)).unwrap_or(u32::MAX);
            let entry = sums.entry(net).or_default();
            match r.kind.as_str() {
                AUTH_FAILURES => entry.auth_failures = count,
                UNANSWERED_CHALLENGES => entry.unanswered_challenges = count,
                _ => {}
            }
        }
        edge.with_service(|s| {
            let now = unix_ms(s.wall(std::time::Instant::now()));
            s.guard_mut().set_remote_counts(sums, now)
        });
        Ok(())
    }
}

/// Deletes every node's counters older than [`WINDOW`].
pub async fn prune(db: &Db) -> anyhow::Result<()> {
    let now_ms = i64::try_from(unix_ms(SystemTime::now())).unwrap_or(i64::MAX);
    let window_ms = i64::try_from(WINDOW.as_millis()).unwrap_or(i64::MAX);
    db.prune_guard_counts(now_ms.saturating_sub(window_ms))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn counts(auth_failures: u32, unanswered_challenges: u32) -> SharedCounts {
        SharedCounts {
            auth_failures,
            unanswered_challenges,
        }
    }

    #[test]
    fn unchanged_values_cost_no_write_and_only_changed_kinds_are_written() {
        let mut sync = CounterSync::default();
        // A phone's challenge, answered within the tick: zero before, zero now.
        let (write, deferred) = sync.plan(vec![(net("10.0.0.1/32"), counts(0, 0))], 10);
        assert!(write.is_empty() && deferred.is_empty());
        let (write, _) = sync.plan(vec![(net("10.0.0.2/32"), counts(3, 1))], 10);
        assert_eq!(sync.rows(&write).len(), 2);
        sync.written(&write);
        let (write, _) = sync.plan(vec![(net("10.0.0.2/32"), counts(4, 1))], 10);
        let rows = sync.rows(&write);
        assert_eq!(rows.len(), 1, "only auth_failures changed: {rows:?}");
        assert_eq!((rows[0].kind.as_str(), rows[0].count), (AUTH_FAILURES, 4));
        sync.written(&write);
        let (write, _) = sync.plan(vec![(net("10.0.0.2/32"), counts(0, 0))], 10);
        assert_eq!(sync.rows(&write).len(), 2, "both rows deleted");
        sync.written(&write);
        assert!(sync.written.is_empty());
    }

    #[test]
    fn a_flood_of_changes_is_written_largest_first_and_bounded() {
        let sync = CounterSync::default();
        let changes: Vec<_> = (1..=50u32)
            .map(|i| (net(&format!("10.0.1.{i}/32")), counts(i, 0)))
            .collect();
        let (write, deferred) = sync.plan(changes, 10);
        assert_eq!(write.len(), 10);
        assert_eq!(deferred.len(), 40);
        assert_eq!(write[0].1, counts(50, 0));
        assert!(write.iter().all(|(_, c)| c.auth_failures > 40));
    }
}
