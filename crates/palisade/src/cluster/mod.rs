//! Several nodes on one PostgreSQL database (issue 17, docs/cluster.md), the I/O side: changes made on any node
//! are announced with NOTIFY and picked up by every node's listener ([`notify`]); the ban counters are summed
//! across nodes ([`counters`]); this node's identity and heartbeat, the view of the other nodes the endpoint routes
//! internal hops with ([`node`]), and trunk registrations held by one node at a time ([`trunk_lease`]). On SQLite
//! (one node) none of this runs.

pub mod counters;
pub mod node;
pub mod notify;
pub mod trunk_lease;

/// A random key naming this process in the shared tables (`guard_counts.node`): unique per run, so a restarted
/// node starts from zero, as its memory does.
pub fn node_key() -> String {
    let bytes: [u8; 8] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the store sync of a cluster node needs besides the database: its key and the listener's wake-up.
pub struct Node {
    pub key: String,
    /// Notified by the change listener ([`notify::listen`]).
    pub wake: std::sync::Arc<tokio::sync::Notify>,
}

/// On PostgreSQL: shares the guard's ban counters and starts the change listener; `None` on SQLite.
pub fn start(
    db: &store::Db,
    edge: &crate::transport::Edge,
    tasks: &mut tokio::task::JoinSet<()>,
) -> Option<Node> {
    let store::Db::Pg(pool) = db else {
        return None;
    };
    edge.with_service(|s| s.guard_mut().share_counters());
    let wake = std::sync::Arc::new(tokio::sync::Notify::new());
    tasks.spawn(notify::listen(pool.clone(), wake.clone()));
    let key = node_key();
    tracing::info!(node = %key, "cluster node: changes from other nodes apply at once, ban counters are summed");
    Some(Node { key, wake })
}
