//! This node's identity (`--node`, else host name and SIP port), its heartbeat row in `cluster_nodes`, and the
//! view of the cluster handed to the endpoint every second: the live peers (heartbeat within [`STALE_AFTER`]) and
//! the extensions registered through them, so a call for such a phone is forwarded to its node by an internal hop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use pbx::cluster::{ClusterView, HopKey, PeerNode, valid_node_name};
use store::Db;

use crate::service::unix_ms;
use crate::transport::Edge;
use crate::transport::bind::Listener;

/// How often this node writes its heartbeat.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(2);
/// How often the view of the other nodes and their registrations is refreshed.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(1);
/// A node whose heartbeat is older than this is stale: its registrations are ignored.
pub const STALE_AFTER: Duration = Duration::from_secs(6);
/// How often expired registrations are deleted: a dead node's rows are otherwise never removed (a node only
/// removes its own, as its registrar expires them).
pub const PURGE_INTERVAL: Duration = Duration::from_secs(60);

/// Who this node is in the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    /// Where other nodes send internal hops (this node's UDP SIP listener).
    pub sip_addr: SocketAddr,
}

/// The configured name, else `HOSTNAME-PORT` (characters a node name may not hold become `-`).
pub fn node_name(configured: Option<&str>, host: &str, sip_port: u16) -> String {
    if let Some(name) = configured {
        return name.to_string();
    }
    let host: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(56)
        .collect();
    let host = if host.is_empty() { "palisade" } else { &host };
    format!("{host}-{sip_port}")
}

/// This node's identity from the configuration and its listeners: the internal address is the first UDP listener
/// (its unspecified address replaced by `advertise`).
pub fn identity(
    configured: Option<&str>,
    listeners: &[Listener],
    advertise: std::net::IpAddr,
) -> anyhow::Result<Identity> {
    let udp = listeners
        .iter()
        .find(|l| matches!(l, Listener::Udp(_)))
        .map(Listener::local)
        .context(
            "several nodes on one database forward calls to each other over UDP: add a UDP listener \
             (--listen udp:IP:PORT)",
        )?;
    let sip_addr = if udp.ip().is_unspecified() {
        SocketAddr::new(advertise, udp.port())
    } else {
        udp
    };
    let name = node_name(
        configured,
        &store::settings::default_domain(),
        sip_addr.port(),
    );
    anyhow::ensure!(
        valid_node_name(&name),
        "invalid node name `{name}`: set one with --node (1 to 64 of A-Z a-z 0-9 . _ -)"
    );
    Ok(Identity { name, sip_addr })
}

/// Joins the cluster: reads (or creates) the shared secret, writes the first heartbeat and loads the first view,
/// so the endpoint knows its peers before the first call. Returns when it started and the hop key, for [`run`].
pub async fn join(db: &Db, me: &Identity, edge: &Edge) -> anyhow::Result<(i64, HopKey)> {
    let candidate: String = (0..32)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect();
    let secret = db
        .cluster_secret_or(&candidate)
        .await
        .context("cannot read the cluster secret")?;
    let key = HopKey::new(secret.as_bytes());
    let started_at = now_ms();
    db.node_heartbeat(&me.name, &me.sip_addr.to_string(), started_at, started_at)
        .await
        .context("cannot write this node's heartbeat")?;
    refresh(db, me, &key, edge).await?;
    tracing::info!(node = %me.name, sip = %me.sip_addr, "joined the cluster");
    Ok((started_at, key))
}

/// The heartbeat and view task: runs until the server stops. Database errors keep the last view (calls to phones
/// of live peers go on) and are retried at the next tick.
pub async fn run(db: Db, me: Identity, edge: Arc<Edge>, (started_at, key): (i64, HopKey)) {
    let mut tick = tokio::time::interval(REFRESH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_beat = std::time::Instant::now();
    let mut last_purge = std::time::Instant::now();
    loop {
        tick.tick().await;
        if last_beat.elapsed() >= HEARTBEAT_INTERVAL {
            last_beat = std::time::Instant::now();
            if let Err(e) = db
                .node_heartbeat(&me.name, &me.sip_addr.to_string(), started_at, now_ms())
                .await
            {
                tracing::warn!(error = %e, "cannot write this node's heartbeat; will retry");
            }
        }
        if last_purge.elapsed() >= PURGE_INTERVAL {
            last_purge = std::time::Instant::now();
            if let Err(e) = db.purge_expired_bindings(now_ms() / 1000).await {
                tracing::warn!(error = %e, "cannot delete expired registrations; will retry");
            }
        }
        if let Err(e) = refresh(&db, &me, &key, &edge).await {
            tracing::warn!(error = %e, "cannot refresh the cluster view; will retry");
        }
    }
}

/// Reads the live peers and the registrations they hold and hands them to the endpoint.
async fn refresh(db: &Db, me: &Identity, key: &HopKey, edge: &Edge) -> anyhow::Result<()> {
    let now = now_ms();
    let live_since = now - i64::try_from(STALE_AFTER.as_millis()).unwrap_or(i64::MAX);
    let peers: Vec<PeerNode> = db
        .cluster_nodes()
        .await?
        .into_iter()
        .filter(|n| n.name != me.name && n.heartbeat_at >= live_since)
        .filter_map(|n| {
            Some(PeerNode {
                addr: n.sip_addr.parse().ok()?,
                name: n.name,
            })
        })
        .collect();
    let remote = db
        .remote_bindings(&me.name, live_since, now / 1000)
        .await?
        .into_iter()
        .map(|r| (r.aor, r.node));
    let view = ClusterView::new(&me.name, key.clone(), peers, remote);
    edge.with_service(|s| s.set_cluster(view));
    Ok(())
}

fn now_ms() -> i64 {
    i64::try_from(unix_ms(SystemTime::now())).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_name_is_the_host_and_port() {
        assert_eq!(
            node_name(None, "pbx1.example.com", 5060),
            "pbx1.example.com-5060"
        );
        assert_eq!(node_name(None, "odd host/ü", 5062), "odd-host---5062");
        assert_eq!(node_name(None, "", 5060), "palisade-5060");
        assert_eq!(node_name(Some("east"), "pbx1", 5060), "east");
        assert!(valid_node_name(&node_name(None, &"h".repeat(300), 65535)));
    }
}
