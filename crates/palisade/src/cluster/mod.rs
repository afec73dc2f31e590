//! Several nodes on one PostgreSQL database (issue 17, docs/cluster.md), the I/O side: this node's identity and
//! heartbeat, the view of the other nodes the endpoint routes internal hops with (`node`), and trunk registrations
//! held by one node at a time (`trunk_lease`). On SQLite (one node) none of this runs.

pub mod node;
pub mod trunk_lease;
