//! A periodic `service state` log line: the sizes of the state traffic can grow (transactions, guard sources,
//! automatic bans, open connections), so an operator — and the e2e tests — can see that they stay bounded under
//! load or attack. Written only when a value changed since the last line.

use std::sync::Arc;
use std::time::Duration;

use crate::service::StateSizes;
use crate::transport::Edge;

/// How often the sizes are read.
pub const INTERVAL: Duration = Duration::from_secs(5);

/// The task: runs until the server stops.
pub async fn run(edge: Arc<Edge>) {
    let mut last: Option<(StateSizes, usize)> = None;
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let sizes = edge.with_service(|s| s.state_sizes());
        let now = (sizes, edge.open_connections());
        if last != Some(now) {
            tracing::info!(
                server_transactions = sizes.server_transactions,
                client_transactions = sizes.client_transactions,
                guard_sources = sizes.guard_sources,
                blacklist_auto = sizes.blacklist_auto,
                connections = now.1,
                "service state"
            );
            last = Some(now);
        }
    }
}
