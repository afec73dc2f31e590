//! The async edge of trunks: resolves trunk host names (tokio `lookup_host`, the system resolver) at start, when
//! the configured names change (checked every second) and every [`REFRESH`], and hands the addresses to the
//! service, which never resolves anything itself (DNS is never on the packet path). Also writes the trunk
//! registration status to the store when it changes, for `palisade trunk list|show`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use pbx::trunks::registration::{RegState, RegStatus};
use store::{Db, TrunkStatusRow};

use crate::service::{Resolved, unix_ms};
use crate::transport::Edge;

/// How often every trunk host name is resolved again.
pub const REFRESH: Duration = Duration::from_secs(300);
/// How long one lookup may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the configured names and the registration status are checked.
const CHECK: Duration = Duration::from_secs(1);
/// Addresses kept per name.
const MAX_ADDRESSES: usize = 16;

/// Resolves each (name, port); names that do not resolve are logged and left out (calls through their trunk
/// fail over to the next trunk; a trunk without source networks then trusts no one).
pub async fn resolve(names: &[(String, u16)]) -> Resolved {
    let mut out = Resolved::new();
    for (host, port) in names {
        let found = tokio::time::timeout(
            LOOKUP_TIMEOUT,
            tokio::net::lookup_host((host.as_str(), *port)),
        )
        .await;
        match found {
            Ok(Ok(addrs)) => {
                let mut ips: Vec<IpAddr> = Vec::new();
                for a in addrs {
                    if !ips.contains(&a.ip()) && ips.len() < MAX_ADDRESSES {
                        ips.push(a.ip());
                    }
                }
                if ips.is_empty() {
                    tracing::warn!(host = %host, "trunk host resolves to no address; its trunk is skipped");
                } else {
                    tracing::debug!(host = %host, addresses = ?ips, "trunk host resolved");
                    out.insert(host.clone(), ips);
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(host = %host, error = %e, "trunk host does not resolve; its trunk is skipped")
            }
            Err(_) => tracing::warn!(host = %host, timeout_secs = LOOKUP_TIMEOUT.as_secs(),
                "trunk host lookup timed out; its trunk is skipped"),
        }
    }
    out
}

/// The store form of the registration status: one row per trunk (a registration starting over wins over the
/// old one being unregistered).
pub fn status_rows(status: &[RegStatus]) -> Vec<TrunkStatusRow> {
    let ms = |t: SystemTime| i64::try_from(unix_ms(t)).unwrap_or(i64::MAX);
    let mut rows: Vec<TrunkStatusRow> = Vec::new();
    for s in status {
        let row = TrunkStatusRow {
            trunk: s.trunk.clone(),
            state: s.state.as_str().to_string(),
            registered_until: s.registered_until.map(ms),
            last_error: s.last_error.clone(),
            next_attempt: s.next_attempt.map(ms),
            updated_at: 0,
        };
        match rows.iter_mut().find(|r| r.trunk == row.trunk) {
            Some(r) if r.state == RegState::Unregistering.as_str() => *r = row,
            Some(_) => {}
            None => rows.push(row),
        }
    }
    rows.sort_by(|a, b| a.trunk.cmp(&b.trunk));
    rows
}

/// The task: runs until the server stops.
pub async fn run(db: Db, edge: Arc<Edge>) {
    let mut names = edge.with_service(|s| s.trunk_host_names());
    let mut resolved_at = Instant::now();
    let mut written: Option<Vec<TrunkStatusRow>> = None;
    let mut tick = tokio::time::interval(CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now_names = edge.with_service(|s| s.trunk_host_names());
        if now_names != names || resolved_at.elapsed() >= REFRESH {
            let resolved = resolve(&now_names).await;
            edge.with_service(|s| s.set_resolved(resolved, Instant::now()));
            names = now_names;
            resolved_at = Instant::now();
        }
        let (rows, cluster) = edge.with_service(|s| {
            let mut rows = status_rows(&s.trunk_status(Instant::now()));
            // In a cluster a node reports only the trunks whose registration it holds (cluster/trunk_lease.rs).
            let held = s.held_trunks();
            if let Some(held) = held {
                rows.retain(|r| held.contains(&r.trunk));
            }
            (rows, held.is_some())
        });
        if written.as_ref() != Some(&rows) {
            let write = match cluster {
                true => db.upsert_trunk_status(&rows).await,
                false => db.replace_trunk_status(&rows).await,
            };
            match write {
                Ok(()) => written = Some(rows),
                Err(e) => {
                    tracing::error!(error = %e, "cannot write the trunk registration status; will retry")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn localhost_resolves_and_an_invalid_name_does_not() {
        let r = resolve(&[
            ("localhost".into(), 5060),
            ("no-such-host.invalid".into(), 5060),
        ])
        .await;
        let local = r.get("localhost").expect("localhost resolves");
        assert!(local.iter().all(|a| a.is_loopback()), "{local:?}");
        assert!(!r.contains_key("no-such-host.invalid"));
    }

    #[test]
    fn one_row_per_trunk_preferring_the_current_registration() {
        let st = |trunk: &str, state: RegState| RegStatus {
            trunk: trunk.into(),
            state,
            registered_until: None,
            last_error: None,
            next_attempt: None,
        };
        let rows = status_rows(&[
            st("b", RegState::Unregistering),
            st("b", RegState::Registering),
            st("a", RegState::Registered),
        ]);
        let got: Vec<(&str, &str)> = rows
            .iter()
            .map(|r| (r.trunk.as_str(), r.state.as_str()))
            .collect();
        assert_eq!(got, [("a", "registered"), ("b", "registering")]);
    }
}
