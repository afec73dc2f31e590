//! What several nodes on one PostgreSQL share beyond the configuration itself (issue 17, docs/cluster.md):
//! change notifications (`NOTIFY palisade_config` / `palisade_bans`, sent inside the writing transaction so they
//! are delivered at commit and never for a rolled-back write), the IP lists' own version, and the guard's
//! per-node failure counters, summed for ban decisions.
//!
//! On SQLite (one node) nothing here changes behaviour: the notifications and the IP-list version are not
//! written, and the server never calls the counter methods.

use super::{Db, Result};

/// Channel announcing a new `config_version` (payload: the version). Every admin write sends it.
pub const CONFIG_CHANNEL: &str = "palisade_config";
/// Channel announcing a new IP-list version (payload: the version): manual entries, unbans, automatic bans.
pub const BANS_CHANNEL: &str = "palisade_bans";

/// The guard counter kinds summed across nodes (the ones that lead to a ban).
pub const AUTH_FAILURES: &str = "auth_failures";
pub const UNANSWERED_CHALLENGES: &str = "unanswered_challenges";

/// Rows of other nodes read back at most (the largest counts first): the guard's own table is bounded the same
/// way, and a spoofed flood must not make every node read an unbounded table four times a second.
pub const MAX_REMOTE_COUNTS: i64 = 10_000;

/// The versions a node compares with the ones it loaded: `config` (every admin write) and `ip_rules` (every
/// write to the IP lists on PostgreSQL, automatic bans included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Versions {
    pub config: i64,
    pub ip_rules: i64,
}

/// One node's current value of one counter for one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardCount {
    /// The guard's key: canonical CIDR text (an IPv4 address as `/32`, an IPv6 prefix).
    pub source: String,
    /// [`AUTH_FAILURES`] or [`UNANSWERED_CHALLENGES`].
    pub kind: String,
    /// 0 deletes the node's row.
    pub count: i64,
}

/// A connection inside whose transaction a change is announced; a trait so that one method body, instantiated
/// for both back ends by `on_both!`, can call it: a no-op on SQLite.
pub(crate) trait Announce {
    /// Bumps the IP-list version and sends `NOTIFY palisade_bans` (PostgreSQL).
    fn bump_ip_rules_version(&mut self) -> impl std::future::Future<Output = Result<()>> + Send;
}

impl Announce for sqlx::SqliteConnection {
    async fn bump_ip_rules_version(&mut self) -> Result<()> {
        Ok(())
    }
}

impl Announce for sqlx::PgConnection {
    async fn bump_ip_rules_version(&mut self) -> Result<()> {
        let version: i64 = sqlx::query_scalar(
            "UPDATE ip_rules_version SET version = version + 1 WHERE id = 1 RETURNING version",
        )
        .fetch_one(&mut *self)
        .await?;
        notify(self, BANS_CHANNEL, version).await
    }
}

impl<DB: sqlx::Database> Announce for sqlx::Transaction<'_, DB>
where
    DB::Connection: Announce,
{
    async fn bump_ip_rules_version(&mut self) -> Result<()> {
        (**self).bump_ip_rules_version().await
    }
}

/// Bumps the IP-list version inside the caller's transaction (PostgreSQL; nothing on SQLite).
pub(crate) async fn bump_ip_rules_version<C: Announce + ?Sized>(tx: &mut C) -> Result<()> {
    tx.bump_ip_rules_version().await
}

/// `NOTIFY channel, 'version'` inside the caller's transaction: PostgreSQL delivers it when (and only if) the
/// transaction commits.
pub(crate) async fn notify(
    conn: &mut sqlx::PgConnection,
    channel: &str,
    version: i64,
) -> Result<()> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(channel)
        .bind(version.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

impl Db {
    /// The configuration and IP-list versions, read together.
    pub async fn versions(&self) -> Result<Versions> {
        const SQL: &str = "SELECT (SELECT value FROM settings WHERE key = 'config_version'), \
             (SELECT version FROM ip_rules_version WHERE id = 1)";
        let (config, ip_rules): (Option<String>, Option<i64>) =
            on_both!(self, pool, sqlx::query_as(SQL).fetch_one(pool).await?);
        Ok(Versions {
            config: config.and_then(|v| v.parse().ok()).unwrap_or(0),
            ip_rules: ip_rules.unwrap_or(0),
        })
    }

    /// Writes this node's current counter values (a count of 0 deletes the row) in one transaction.
    pub async fn write_guard_counts(
        &self,
        node: &str,
        counts: &[GuardCount],
        now_ms: i64,
    ) -> Result<()> {
        if counts.is_empty() {
            return Ok(());
        }
        on_both!(self, pool, {
            let mut tx = pool.begin().await?;
            for c in counts {
                if c.count > 0 {
                    sqlx::query(
                        "INSERT INTO guard_counts (source, kind, node, count, updated_at) \
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (source, kind, node) \
                         DO UPDATE SET count = $4, updated_at = $5",
                    )
                    .bind(&c.source)
                    .bind(&c.kind)
                    .bind(node)
                    .bind(c.count)
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?;
                } else {
                    sqlx::query(
                        "DELETE FROM guard_counts WHERE source = $1 AND kind = $2 AND node = $3",
                    )
                    .bind(&c.source)
                    .bind(&c.kind)
                    .bind(node)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// The other nodes' counters updated since `since_ms`, summed per source and kind (largest first, at most
    /// [`MAX_REMOTE_COUNTS`]).
    pub async fn remote_guard_counts(&self, node: &str, since_ms: i64) -> Result<Vec<GuardCount>> {
        const SQL: &str = "SELECT source, kind, CAST(SUM(count) AS BIGINT) AS total FROM guard_counts \
             WHERE node <> $1 AND updated_at > $2 GROUP BY source, kind ORDER BY total DESC LIMIT $3";
        let rows: Vec<(String, String, i64)> = on_both!(
            self,
            pool,
            sqlx::query_as(SQL)
                .bind(node)
                .bind(since_ms)
                .bind(MAX_REMOTE_COUNTS)
                .fetch_all(pool)
                .await?
        );
        Ok(rows
            .into_iter()
            .map(|(source, kind, count)| GuardCount {
                source,
                kind,
                count,
            })
            .collect())
    }

    /// Deletes counters not updated since `before_ms`, any node's (a node that died leaves its rows behind).
    pub async fn prune_guard_counts(&self, before_ms: i64) -> Result<u64> {
        on_both!(self, pool, {
            let done = sqlx::query("DELETE FROM guard_counts WHERE updated_at <= $1")
                .bind(before_ms)
                .execute(pool)
                .await?;
            Ok(done.rows_affected())
        })
    }
}
