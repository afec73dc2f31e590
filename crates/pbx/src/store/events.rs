//! The security event log: one row per security decision (DESIGN.md principle 6), read by the CLI and the
//! dashboard. Fields that come from the network are truncated so an attacker cannot grow rows without bound.

use super::registrations::truncate;
use super::{Db, Result};

/// Most rows one [`Db::list_events`] call returns.
pub const MAX_EVENT_LIST: u32 = 10_000;

/// Rows per INSERT statement in [`Db::append_events`] (6 parameters each, well under SQLite's 32,766).
const EVENTS_PER_STATEMENT: usize = 500;

/// Longest stored text field.
const MAX_FIELD_LEN: usize = 512;

/// An event to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityEvent {
    /// Unix milliseconds.
    pub at: i64,
    /// What kind of decision, e.g. "auth_failure", "ban", "challenge".
    pub kind: String,
    /// The reason code, e.g. "wrong_password", "unknown_user".
    pub reason: String,
    /// The transport source address.
    pub source: String,
    /// The user named in the request, if any (attacker-controlled).
    pub user: Option<String>,
    pub detail: Option<String>,
}

/// A recorded event with its id.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredEvent {
    pub id: i64,
    pub at: i64,
    pub kind: String,
    pub reason: String,
    pub source: String,
    #[sqlx(rename = "username")]
    pub user: Option<String>,
    pub detail: Option<String>,
}

impl Db {
    /// Appends an event durably; returns its id.
    pub async fn append_event(&self, e: &SecurityEvent) -> Result<i64> {
        match self {
            Db::Sqlite(pool) => {
                let done = sqlx::query(
                    "INSERT INTO security_events (at, kind, reason, source, username, detail) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(e.at)
                .bind(truncate(&e.kind, MAX_FIELD_LEN))
                .bind(truncate(&e.reason, MAX_FIELD_LEN))
                .bind(truncate(&e.source, MAX_FIELD_LEN))
                .bind(e.user.as_deref().map(|u| truncate(u, MAX_FIELD_LEN)))
                .bind(e.detail.as_deref().map(|d| truncate(d, MAX_FIELD_LEN)))
                .execute(pool)
                .await?;
                Ok(done.last_insert_rowid())
            }
        }
    }

    /// The most recent events (newest first), at or after `since` (unix ms) and of `kind` if given, at most
    /// `limit` (capped at [`MAX_EVENT_LIST`]).
    pub async fn list_events(
        &self,
        since: Option<i64>,
        kind: Option<&str>,
        limit: u32,
    ) -> Result<Vec<StoredEvent>> {
        let limit = i64::from(limit.min(MAX_EVENT_LIST));
        let since = since.unwrap_or(i64::MIN);
        match self {
            Db::Sqlite(pool) => {
                let q = match kind {
                    Some(kind) => sqlx::query_as(
                        "SELECT id, at, kind, reason, source, username, detail FROM security_events \
                         WHERE at >= $1 AND kind = $2 ORDER BY at DESC, id DESC LIMIT $3",
                    )
                    .bind(since)
                    .bind(kind),
                    None => sqlx::query_as(
                        "SELECT id, at, kind, reason, source, username, detail FROM security_events \
                         WHERE at >= $1 ORDER BY at DESC, id DESC LIMIT $2",
                    )
                    .bind(since),
                };
                Ok(q.bind(limit).fetch_all(pool).await?)
            }
        }
    }

    /// Deletes events older than `before` (unix ms), for retention; returns how many.
    pub async fn prune_events(&self, before: i64) -> Result<u64> {
        match self {
            Db::Sqlite(pool) => {
                let done = sqlx::query("DELETE FROM security_events WHERE at < $1")
                    .bind(before)
                    .execute(pool)
                    .await?;
                Ok(done.rows_affected())
            }
        }
    }
}

impl Db {
    /// Appends many events in one transaction (the server's write-behind: one fsync per batch, not per event).
    pub async fn append_events(&self, events: &[SecurityEvent]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        match self {
            Db::Sqlite(pool) => {
                let mut tx = super::begin_write(pool).await?;
                // Many rows per statement: under load the server writes thousands of events a second, and one
                // statement per row would cost more CPU than handling the SIP traffic that caused them.
                for chunk in events.chunks(EVENTS_PER_STATEMENT) {
                    let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                        "INSERT INTO security_events (at, kind, reason, source, username, detail) ",
                    );
                    q.push_values(chunk, |mut row, e| {
                        row.push_bind(e.at)
                            .push_bind(truncate(&e.kind, MAX_FIELD_LEN))
                            .push_bind(truncate(&e.reason, MAX_FIELD_LEN))
                            .push_bind(truncate(&e.source, MAX_FIELD_LEN))
                            .push_bind(e.user.as_deref().map(|u| truncate(u, MAX_FIELD_LEN)))
                            .push_bind(e.detail.as_deref().map(|d| truncate(d, MAX_FIELD_LEN)));
                    });
                    q.build().execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(())
            }
        }
    }
}
