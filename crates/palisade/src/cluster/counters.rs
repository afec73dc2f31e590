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
use store::Db;
use store::cluster::{AUTH_FAILURES, GuardCount, UNANSWERED_CHALLENGES};

use crate::service::unix_ms;
use crate::transport::Edge;

/// Counts older than this are ignored and deleted: a slow attacker's guesses at other nodes stop adding up
/// after an hour (its guesses at this node stay counted as on a single node, until it authenticates or is banned).
pub const WINDOW: Duration = Duration::from_secs(3600);

/// Writes this node's changed counters, reads the other nodes' back into the guard.
pub async fn exchange(db: &Db, edge: &Edge, node: &str) -> anyhow::Result<()> {
    let changes = edge.with_service(|s| s.guard_mut().take_shared_changes());
    let now_ms = i64::try_from(unix_ms(SystemTime::now())).unwrap_or(i64::MAX);
    let rows: Vec<GuardCount> = changes
        .iter()
        .flat_map(|(source, counts)| {
            [
                (AUTH_FAILURES, counts.auth_failures),
                (UNANSWERED_CHALLENGES, counts.unanswered_challenges),
            ]
            .map(|(kind, count)| GuardCount {
                source: source.to_string(),
                kind: kind.to_string(),
                count: i64::from(count),
            })
        })
        .collect();
    if let Err(e) = db.write_guard_counts(node, &rows, now_ms).await {
        // Written again at the next change; meanwhile the other nodes miss them (as if partitioned).
        edge.with_service(|s| {
            let g = s.guard_mut();
            for (source, _) in &changes {
                g.mark_shared_changed(*source);
            }
        });
        return Err(e.into());
    }
    let window_ms = i64::try_from(WINDOW.as_millis()).unwrap_or(i64::MAX);
    let remote = db
        .remote_guard_counts(node, now_ms.saturating_sub(window_ms))
        .await?;
    let mut sums: HashMap<ipnet::IpNet, SharedCounts> = HashMap::new();
    for r in remote {
        let Ok(net) = r.source.parse::<ipnet::IpNet>() else {
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

/// Deletes every node's counters older than [`WINDOW`].
pub async fn prune(db: &Db) -> anyhow::Result<()> {
    let now_ms = i64::try_from(unix_ms(SystemTime::now())).unwrap_or(i64::MAX);
    let window_ms = i64::try_from(WINDOW.as_millis()).unwrap_or(i64::MAX);
    db.prune_guard_counts(now_ms.saturating_sub(window_ms))
        .await?;
    Ok(())
}
