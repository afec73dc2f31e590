//! Call records (CDRs) and the calls in progress.
//!
//! The server appends a [`CdrRow`] per finished call attempt (in batches, one transaction and one fsync each) and
//! replaces the set of [`ActiveCallRow`]s whenever it changes; `palisade cdr` and `palisade calls` read them.
//! Text fields come from the network (the Call-ID, the dialled number, the reason), so they are truncated to
//! [`MAX_CALL_FIELD_LEN`] bytes and control characters are replaced with U+FFFD: a caller cannot grow rows without
//! bound nor put terminal escape sequences in an administrator's table.

use std::borrow::Cow;

use super::registrations::truncate;
use super::{Db, Result, StoreError, now_ms};

/// Most rows one [`Db::list_cdrs`] call returns.
pub const MAX_CDR_LIST: u32 = 10_000;

/// Longest stored text field (call_id, caller, callee, reason), in bytes; longer values are truncated.
pub const MAX_CALL_FIELD_LEN: usize = 256;

/// The values of [`CdrRow::disposition`].
pub const DISPOSITIONS: [&str; 7] = [
    "answered",
    "busy",
    "no_answer",
    "cancelled",
    "failed",
    "not_found",
    "unavailable",
];

/// The values of [`CdrRow::hung_up_by`].
pub const HUNG_UP_BY: [&str; 3] = ["caller", "callee", "system"];

/// The values of [`ActiveCallRow::state`]: INVITEs out, 2xx sent to the caller but not yet ACKed, confirmed.
pub const CALL_STATES: [&str; 3] = ["ringing", "answering", "talking"];

/// A finished call attempt, to append with [`Db::append_cdrs`].
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CdrRow {
    /// The caller's Call-ID.
    pub call_id: String,
    /// The calling extension.
    pub caller: String,
    /// The number dialled (may be empty, or not an extension, for `not_found`).
    pub callee: String,
    /// Unix milliseconds: when the INVITE arrived.
    pub started_at: i64,
    /// Unix milliseconds; `None` if never answered.
    pub answered_at: Option<i64>,
    /// Unix milliseconds.
    pub ended_at: i64,
    /// Talk time in whole seconds; 0 if never answered.
    pub duration_secs: i64,
    /// One of [`DISPOSITIONS`].
    pub disposition: String,
    /// One of [`HUNG_UP_BY`].
    pub hung_up_by: String,
    /// Why the call ended, e.g. "bye", "media_timeout", "max_duration", "486".
    pub reason: String,
}

/// A stored call record with its id (ids grow with insertion order).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredCdr {
    pub id: i64,
    #[sqlx(flatten)]
    pub cdr: CdrRow,
}

/// A call in progress, for [`Db::replace_active_calls`].
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ActiveCallRow {
    pub call_id: String,
    pub caller: String,
    pub callee: String,
    /// Unix milliseconds.
    pub started_at: i64,
    /// Unix milliseconds; `None` while ringing.
    pub answered_at: Option<i64>,
    /// One of [`CALL_STATES`].
    pub state: String,
}

/// A call in progress as stored, with when the server wrote it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredActiveCall {
    #[sqlx(flatten)]
    pub call: ActiveCallRow,
    /// Unix milliseconds: when the server last replaced the set.
    pub updated_at: i64,
}

/// Truncated to [`MAX_CALL_FIELD_LEN`] bytes, control characters replaced with U+FFFD.
fn clean(s: &str) -> Cow<'_, str> {
    let s = truncate(s, MAX_CALL_FIELD_LEN);
    if s.chars().any(char::is_control) {
        Cow::Owned(
            s.chars()
                .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
                .collect(),
        )
    } else {
        Cow::Borrowed(s)
    }
}

fn check_one_of(what: &str, value: &str, allowed: &[&str]) -> Result<()> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "invalid {what} '{}': expected one of {}",
            clean(value),
            allowed.join(", ")
        )))
    }
}

impl Db {
    /// Appends call records durably, all in one transaction (one fsync for the batch): when this returns `Ok`,
    /// every record is on disk; on error, none is. [`StoreError::Invalid`] (nothing written) if a disposition or
    /// hung_up_by is not one of the known values. Text fields are cleaned (see the module doc); a negative
    /// duration is stored as 0.
    pub async fn append_cdrs(&self, rows: &[CdrRow]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        for r in rows {
            check_one_of("disposition", &r.disposition, &DISPOSITIONS)?;
            check_one_of("hung_up_by", &r.hung_up_by, &HUNG_UP_BY)?;
        }
        on_both!(self, pool, {
            let mut tx = super::begin_write(pool).await?;
            for r in rows {
                sqlx::query(
                    "INSERT INTO cdr (call_id, caller, callee, started_at, answered_at, ended_at, \
                         duration_secs, disposition, hung_up_by, reason) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(clean(&r.call_id))
                .bind(clean(&r.caller))
                .bind(clean(&r.callee))
                .bind(r.started_at)
                .bind(r.answered_at)
                .bind(r.ended_at)
                .bind(r.duration_secs.max(0))
                .bind(&r.disposition)
                .bind(&r.hung_up_by)
                .bind(clean(&r.reason))
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Call records, newest first (by start time, then id): started at or after `since_ms` if given, with
    /// `extension` as caller or callee if given, at most `limit` (capped at [`MAX_CDR_LIST`]).
    pub async fn list_cdrs(
        &self,
        since_ms: Option<i64>,
        extension: Option<&str>,
        limit: u32,
    ) -> Result<Vec<StoredCdr>> {
        let limit = i64::from(limit.min(MAX_CDR_LIST));
        let since = since_ms.unwrap_or(i64::MIN);
        on_both!(self, pool, {
            let rows = match extension {
                    // Two index-friendly halves instead of `caller = $2 OR callee = $2`; UNION drops the
                    // duplicate of a call from an extension to itself.
                    Some(ext) => sqlx::query_as(
                        "SELECT id, call_id, caller, callee, started_at, answered_at, ended_at, duration_secs, \
                         disposition, hung_up_by, reason FROM cdr WHERE started_at >= $1 AND caller = $2 \
                         UNION \
                         SELECT id, call_id, caller, callee, started_at, answered_at, ended_at, duration_secs, \
                         disposition, hung_up_by, reason FROM cdr WHERE started_at >= $1 AND callee = $2 \
                         ORDER BY started_at DESC, id DESC LIMIT $3",
                    )
                    .bind(since)
                    .bind(ext)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?,
                    None => sqlx::query_as(
                        "SELECT id, call_id, caller, callee, started_at, answered_at, ended_at, duration_secs, \
                         disposition, hung_up_by, reason FROM cdr WHERE started_at >= $1 \
                         ORDER BY started_at DESC, id DESC LIMIT $2",
                    )
                    .bind(since)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?,
                };
            Ok(rows)
        })
    }

    /// Replaces the whole set of calls in progress with `calls`, in one transaction (readers see the old set or
    /// the new one, never a mix). No configuration version bump: this is the server's state, not configuration.
    /// [`StoreError::Invalid`] (nothing changed) if a state is not one of [`CALL_STATES`]. Should `calls` hold
    /// the same Call-ID twice, the last one is kept.
    pub async fn replace_active_calls(&self, calls: &[ActiveCallRow]) -> Result<()> {
        for c in calls {
            check_one_of("call state", &c.state, &CALL_STATES)?;
        }
        let now = now_ms();
        on_both!(self, pool, {
            let mut tx = super::begin_write(pool).await?;
            sqlx::query("DELETE FROM active_calls")
                .execute(&mut *tx)
                .await?;
            for c in calls {
                sqlx::query(
                        "INSERT INTO active_calls (call_id, caller, callee, started_at, answered_at, state, \
                         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                         ON CONFLICT (call_id) DO UPDATE SET caller = $2, callee = $3, started_at = $4, \
                         answered_at = $5, state = $6, updated_at = $7",
                    )
                    .bind(clean(&c.call_id))
                    .bind(clean(&c.caller))
                    .bind(clean(&c.callee))
                    .bind(c.started_at)
                    .bind(c.answered_at)
                    .bind(&c.state)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// The calls in progress as the server last wrote them, oldest first.
    pub async fn list_active_calls(&self) -> Result<Vec<StoredActiveCall>> {
        on_both!(
            self,
            pool,
            Ok(sqlx::query_as(
                "SELECT call_id, caller, callee, started_at, answered_at, state, updated_at \
                 FROM active_calls ORDER BY started_at, call_id",
            )
            .fetch_all(pool)
            .await?)
        )
    }

    /// Forgets every call in progress (the server, at start: calls do not survive a restart); returns how many.
    pub async fn clear_active_calls(&self) -> Result<u64> {
        on_both!(self, pool, {
            let done = sqlx::query("DELETE FROM active_calls")
                .execute(pool)
                .await?;
            Ok(done.rows_affected())
        })
    }
}
