//! `palisade cluster`: the nodes sharing this PostgreSQL database (docs/cluster.md) — which are alive, where they
//! take internal hops, how many phones each holds and which trunk registrations each drives.

use clap::{Args, Subcommand};
use serde::Serialize;

use super::{CommonArgs, output};

#[derive(Debug, Args)]
pub struct ClusterArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(subcommand)]
    pub command: ClusterCommand,
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// List the nodes: live or stale (no heartbeat for 6 s), address, registrations, and the trunks whose
    /// registration each holds the lease of now.
    Nodes,
    /// Forget a node taken out of service for good (a running node writes its row again within 2 s).
    Forget {
        /// The node's name (see `palisade cluster nodes`).
        name: String,
    },
}

#[derive(Debug, Serialize)]
struct NodeView {
    name: String,
    sip_addr: String,
    live: bool,
    /// Seconds since its last heartbeat.
    heartbeat_age_secs: i64,
    started_at: String,
    registrations: i64,
    trunks: Vec<String>,
}

pub async fn run(args: ClusterArgs) -> anyhow::Result<()> {
    let common = args.common;
    let db = common.open().await?;
    let result = async {
        match args.command {
            ClusterCommand::Nodes => nodes(&db, common.json).await,
            ClusterCommand::Forget { name } => {
                if db.forget_node(&name).await? {
                    crate::say!("Node {} forgotten.", output::clean(&name));
                    Ok(())
                } else {
                    anyhow::bail!(
                        "no node named `{}` (see `palisade cluster nodes`)",
                        output::clean(&name)
                    )
                }
            }
        }
    }
    .await;
    db.close().await;
    result
}

async fn nodes(db: &store::Db, json: bool) -> anyhow::Result<()> {
    let now_ms =
        i64::try_from(crate::service::unix_ms(std::time::SystemTime::now())).unwrap_or(i64::MAX);
    let stale_ms = i64::try_from(crate::cluster::node::STALE_AFTER.as_millis()).unwrap_or(i64::MAX);
    let holders = db.trunk_lease_holders().await?;
    let views: Vec<NodeView> = db
        .cluster_overview(now_ms / 1000)
        .await?
        .into_iter()
        .map(|n| NodeView {
            live: now_ms - n.heartbeat_at < stale_ms,
            heartbeat_age_secs: (now_ms - n.heartbeat_at).max(0) / 1000,
            started_at: super::time::format_ms(n.started_at),
            registrations: n.registrations,
            trunks: holders
                .iter()
                .filter(|(_, node)| *node == n.name)
                .map(|(trunk, _)| trunk.clone())
                .collect(),
            name: n.name,
            sip_addr: n.sip_addr,
        })
        .collect();
    if json {
        return output::json(&views);
    }
    if views.is_empty() {
        crate::say!(
            "No cluster nodes: Palisade runs as one node unless several share a PostgreSQL database (--database; \
             docs/cluster.md)."
        );
        return Ok(());
    }
    let rows: Vec<Vec<String>> = views
        .iter()
        .map(|v| {
            vec![
                v.name.clone(),
                v.sip_addr.clone(),
                if v.live {
                    "live".into()
                } else {
                    "stale".into()
                },
                format!("{} s ago", v.heartbeat_age_secs),
                v.started_at.clone(),
                v.registrations.to_string(),
                if v.trunks.is_empty() {
                    "-".into()
                } else {
                    v.trunks.join(",")
                },
            ]
        })
        .collect();
    output::table(
        &[
            "NODE",
            "SIP ADDRESS",
            "STATE",
            "HEARTBEAT",
            "STARTED",
            "REGISTRATIONS",
            "TRUNKS",
        ],
        &rows,
    );
    Ok(())
}
