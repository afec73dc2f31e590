//! Several nodes on one PostgreSQL database (issue 17, docs/cluster.md): each node's heartbeat row, the
//! registrations other nodes hold (a call for such a phone is forwarded to that node over an internal hop), the
//! shared cluster secret that authenticates those hops, and voicemail audio kept in the database so any node plays
//! it. Every method runs on both back ends; on SQLite (one node) only the heartbeat and the secret are ever written.

use super::{Binding, Db, Result, StoreError, now_ms};

/// The settings key of the secret nodes authenticate internal hops with (hex; never shown by the CLI).
pub const CLUSTER_SECRET: &str = "cluster_secret";

/// Longest node name (the `cluster_nodes.name` CHECK).
pub const MAX_NODE_NAME_LEN: usize = 64;

/// One node's row.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ClusterNode {
    pub name: String,
    /// Where other nodes send internal SIP hops ("ip:port", UDP).
    pub sip_addr: String,
    /// Unix milliseconds.
    pub started_at: i64,
    /// Unix milliseconds of the last heartbeat.
    pub heartbeat_at: i64,
}

/// A registration held by another node: calls for `aor` go to `node` at `sip_addr`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RemoteBinding {
    pub aor: String,
    pub node: String,
    pub sip_addr: String,
}

impl Db {
    /// Writes this node's heartbeat (creating its row at first start).
    pub async fn node_heartbeat(
        &self,
        name: &str,
        sip_addr: &str,
        started_at: i64,
        now: i64,
    ) -> Result<()> {
        if name.is_empty() || name.len() > MAX_NODE_NAME_LEN {
            return Err(StoreError::Invalid(format!(
                "a node name is 1 to {MAX_NODE_NAME_LEN} characters"
            )));
        }
        on_both!(self, pool, {
            sqlx::query(
                "INSERT INTO cluster_nodes (name, sip_addr, started_at, heartbeat_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (name) DO UPDATE SET sip_addr = $2, started_at = $3, heartbeat_at = $4",
            )
            .bind(name)
            .bind(sip_addr)
            .bind(started_at)
            .bind(now)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// Every node row, live or stale, by name.
    pub async fn cluster_nodes(&self) -> Result<Vec<ClusterNode>> {
        on_both!(
            self,
            pool,
            Ok(sqlx::query_as(
                "SELECT name, sip_addr, started_at, heartbeat_at FROM cluster_nodes ORDER BY name"
            )
            .fetch_all(pool)
            .await?)
        )
    }

    /// Registrations held by live nodes other than `this_node` (heartbeat at or after `live_since`, unix ms), not
    /// expired at `now_secs`, by AoR.
    pub async fn remote_bindings(
        &self,
        this_node: &str,
        live_since: i64,
        now_secs: i64,
    ) -> Result<Vec<RemoteBinding>> {
        on_both!(self, pool, Ok(sqlx::query_as(
            "SELECT DISTINCT r.aor, n.name AS node, n.sip_addr FROM registrations r \
             JOIN cluster_nodes n ON n.name = r.node \
             WHERE r.node <> $1 AND n.heartbeat_at >= $2 AND r.expires_at > $3 ORDER BY r.aor, n.name",
        )
        .bind(this_node)
        .bind(live_since)
        .bind(now_secs)
        .fetch_all(pool)
        .await?))
    }

    /// The bindings a node restores at start: its own, and those written before clustering (no node).
    pub async fn list_bindings_of_node(&self, node: &str) -> Result<Vec<Binding>> {
        on_both!(self, pool, Ok(sqlx::query_as(
            "SELECT aor, contact_uri, transport, source_addr, local_addr, expires_at, call_id, cseq, user_agent, q, \
             node FROM registrations WHERE node = $1 OR node IS NULL ORDER BY length(aor), aor, contact_uri",
        )
        .bind(node)
        .fetch_all(pool)
        .await?))
    }

    /// The cluster secret: the stored one, or `candidate` when none is stored yet (the first node to start
    /// writes it; every later one reads the same value).
    pub async fn cluster_secret_or(&self, candidate: &str) -> Result<String> {
        let now = now_ms();
        on_both!(self, pool, {
            sqlx::query(
                "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING",
            )
            .bind(CLUSTER_SECRET)
            .bind(candidate)
            .bind(now)
            .execute(pool)
            .await?;
            Ok(
                sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
                    .bind(CLUSTER_SECRET)
                    .fetch_one(pool)
                    .await?,
            )
        })
    }

    /// Stores (or replaces) the audio of a voicemail file (a message or a greeting) under its relative name.
    pub async fn put_voicemail_audio(&self, file: &str, audio: &[u8]) -> Result<()> {
        let now = now_ms();
        on_both!(self, pool, {
            sqlx::query(
                "INSERT INTO voicemail_audio (file, audio, stored_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (file) DO UPDATE SET audio = $2, stored_at = $3",
            )
            .bind(file)
            .bind(audio)
            .bind(now)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// The stored audio of a voicemail file, if any.
    pub async fn voicemail_audio(&self, file: &str) -> Result<Option<Vec<u8>>> {
        on_both!(
            self,
            pool,
            Ok(
                sqlx::query_scalar("SELECT audio FROM voicemail_audio WHERE file = $1")
                    .bind(file)
                    .fetch_optional(pool)
                    .await?
            )
        )
    }

    /// Deletes the stored audio of every file of mailbox `number` (its files are named `NUMBER/…`); returns how
    /// many.
    pub async fn delete_mailbox_audio(&self, number: &str) -> Result<u64> {
        let prefix = format!("{number}/");
        on_both!(self, pool, {
            let done =
                sqlx::query("DELETE FROM voicemail_audio WHERE substr(file, 1, length($1)) = $1")
                    .bind(&prefix)
                    .execute(pool)
                    .await?;
            Ok(done.rows_affected())
        })
    }

    /// Deletes the stored audio of a voicemail file; true if there was some.
    pub async fn delete_voicemail_audio(&self, file: &str) -> Result<bool> {
        on_both!(self, pool, {
            let done = sqlx::query("DELETE FROM voicemail_audio WHERE file = $1")
                .bind(file)
                .execute(pool)
                .await?;
            Ok(done.rows_affected() > 0)
        })
    }
}

/// A dedicated PostgreSQL connection holding session advisory locks (trunk leases, docs/cluster.md): a lock lasts
/// as long as this connection, so when its node dies (even by `kill -9`) the server ends the session and the
/// lock is free for another node at once.
pub struct LeaseConn(sqlx::PgConnection);

impl std::fmt::Debug for LeaseConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LeaseConn")
    }
}

impl Db {
    /// A connection of its own for advisory locks (taken out of the pool). PostgreSQL only: one SQLite node
    /// holds everything.
    pub async fn lease_connection(&self) -> Result<LeaseConn> {
        match self {
            Db::Sqlite(_) => Err(StoreError::NotPorted("leases (several nodes)")),
            Db::Pg(pool) => Ok(LeaseConn(pool.acquire().await?.detach())),
        }
    }
}

impl LeaseConn {
    /// Takes the lease named `key` if no other session holds it; true when this connection holds it (taking a
    /// lease this connection already holds again is true too, but then needs two releases: callers keep track).
    pub async fn try_take(&mut self, key: &str) -> Result<bool> {
        Ok(
            sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
                .bind(key)
                .fetch_one(&mut self.0)
                .await?,
        )
    }

    /// Gives the lease up; true if this connection held it.
    pub async fn release(&mut self, key: &str) -> Result<bool> {
        Ok(
            sqlx::query_scalar("SELECT pg_advisory_unlock(hashtextextended($1, 0))")
                .bind(key)
                .fetch_one(&mut self.0)
                .await?,
        )
    }

    /// A round trip: an error when the connection (and with it every lease) is gone.
    pub async fn ping(&mut self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&mut self.0).await?;
        Ok(())
    }
}
