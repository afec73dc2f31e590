//! Trunk registrations held by exactly one node (issue 17, docs/cluster.md): each trunk with registration on is
//! registered by the node holding the PostgreSQL advisory lock `trunk:NAME` on a dedicated connection. Every
//! [`ATTEMPT_INTERVAL`] each node tries to take the leases it lacks; when the holder dies (even `kill -9`) its
//! session ends, the lock is released, and another node takes it at its next attempt and registers the trunk.
//! A node that loses its lease connection stops registering at once (another node may hold the lock by then).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use store::Db;
use store::cluster_nodes::LeaseConn;

use crate::transport::Edge;

/// How often leases are checked and missing ones tried.
pub const ATTEMPT_INTERVAL: Duration = Duration::from_secs(2);

/// The advisory-lock name of a trunk's registration.
pub fn lease_key(trunk: &str) -> String {
    format!("trunk:{trunk}")
}

/// The lease task: runs until the server stops.
pub async fn run(db: Db, edge: Arc<Edge>) {
    let mut conn: Option<LeaseConn> = None;
    let mut held: BTreeSet<String> = BTreeSet::new();
    let mut tick = tokio::time::interval(ATTEMPT_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = attempt(&db, &mut conn, &mut held).await {
            if !held.is_empty() {
                tracing::warn!(error = %e, trunks = ?held,
                    "lost the trunk leases (database connection); another node will register these trunks");
            } else {
                tracing::debug!(error = %e, "cannot take trunk leases; will retry");
            }
            conn = None;
            held.clear();
        }
        let held = held.clone();
        edge.with_service(|s| s.set_held_trunks(Some(held), Instant::now()));
    }
}

/// One round: (re)connects, releases leases of trunks no longer registered, tries the missing ones.
async fn attempt(
    db: &Db,
    conn: &mut Option<LeaseConn>,
    held: &mut BTreeSet<String>,
) -> anyhow::Result<()> {
    let wanted: BTreeSet<String> = db
        .list_trunk_rows()
        .await?
        .into_iter()
        .filter(|t| t.register)
        .map(|t| t.name)
        .collect();
    if conn.is_none() {
        held.clear();
        *conn = Some(db.lease_connection().await?);
    }
    let Some(c) = conn.as_mut() else {
        return Ok(());
    };
    c.ping().await?;
    for gone in held.difference(&wanted).cloned().collect::<Vec<_>>() {
        c.release(&lease_key(&gone)).await?;
        held.remove(&gone);
    }
    for name in wanted.difference(held).cloned().collect::<Vec<_>>() {
        if c.try_take(&lease_key(&name)).await? {
            tracing::info!(trunk = %name, "this node holds the trunk's registration");
            held.insert(name);
        }
    }
    Ok(())
}
