//! The change listener: one dedicated PostgreSQL connection per node, `LISTEN palisade_config, palisade_bans`.
//! A notification wakes the store sync, which compares the stored versions with the loaded ones and reloads what
//! changed. The sync's own poll (every tick) is the catch-up: a node that missed notifications while its listener
//! was disconnected converges at the next tick after it reconnects; the listener only makes it fast.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool};
use store::cluster::{BANS_CHANNEL, CONFIG_CHANNEL};
use tokio::sync::Notify;

/// First wait before reconnecting a lost listener; doubled at each failure up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Listens until the server stops, reconnecting with backoff; `wake` is notified for every change announced
/// (and once after each (re)connection, to catch up with what was missed).
pub async fn listen(pool: PgPool, wake: Arc<Notify>) {
    let mut backoff = MIN_BACKOFF;
    let mut lost = false;
    loop {
        match subscribe(&pool).await {
            Ok(mut listener) => {
                if lost {
                    tracing::info!("change listener reconnected to the database");
                }
                backoff = MIN_BACKOFF;
                wake.notify_one();
                let why = loop {
                    match listener.try_recv().await {
                        Ok(Some(_)) => wake.notify_one(),
                        Ok(None) => break "connection lost".to_string(),
                        Err(e) => break e.to_string(),
                    }
                };
                tracing::warn!(error = %why, "change listener disconnected from the database; reconnecting");
                lost = true;
            }
            Err(e) => {
                if !lost {
                    tracing::warn!(error = %e, "cannot listen for changes from the other nodes; will retry");
                }
                lost = true;
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn subscribe(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    // Reconnect here, with backoff, rather than inside the listener (which retries at once).
    listener.eager_reconnect(false);
    listener.listen_all([CONFIG_CHANNEL, BANS_CHANNEL]).await?;
    Ok(listener)
}
