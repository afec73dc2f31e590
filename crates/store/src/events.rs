//! The security event log: one row per security decision (docs/architecture.md, principle 6), read by the CLI and the
//! dashboard. Fields that come from the network are truncated so an attacker cannot grow rows without bound.
//!
//! Routine decisions (a challenge to a request without credentials, a successful digest authentication) are
//! counted per day in `event_counts` instead ([`is_routine`]); the rows are pruned by age and by count
//! ([`EVENT_RETENTION_DAYS`], [`EVENT_MAX_ROWS`]), so neither table grows without end.

use guard::config::Limit;

use super::registrations::truncate;
use super::{Db, Result};

/// Days security event rows (and daily counters) are kept.
pub const EVENT_RETENTION_DAYS: Limit = Limit {
    key: "event_retention_days",
    default: 90,
    min: 1,
    max: 36_500,
    help: "days security events are kept",
};
/// Most security event rows kept: beyond it the oldest are deleted.
pub const EVENT_MAX_ROWS: Limit = Limit {
    key: "event_max_rows",
    default: 1_000_000,
    min: 100,
    max: 100_000_000,
    help: "most security event rows kept (the oldest are deleted beyond it)",
};
/// The event log settings, in display order.
pub const EVENT_SETTINGS: [Limit; 2] = [EVENT_RETENTION_DAYS, EVENT_MAX_ROWS];

/// Rows deleted per statement when pruning, so one prune never holds the write lock for long.
const PRUNE_BATCH: i64 = 20_000;

/// Whether an event is a routine decision that is counted rather than stored as a row: a challenge to a request
/// that carried no credentials or a stale nonce, and a successful digest authentication. Everything else —
/// failures, bans, throttles, refusals, PIN unlocks, expiries — is always a row.
pub fn is_routine(kind: &str, reason: &str) -> bool {
    matches!(
        (kind, reason),
        ("auth_challenge", "no_credentials")
            | ("auth_challenge", "stale_nonce")
            | ("auth_success", "ok")
    )
}

/// Routine events counted together: one per (day, kind, reason).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct EventCount {
    /// Days since 1970-01-01, UTC.
    pub day: i64,
    pub kind: String,
    pub reason: String,
    pub count: i64,
    /// Unix ms of the last one counted.
    pub last_at: i64,
}

/// Splits events into the rows to store and the routine ones, counted per (day, kind, reason).
pub fn split_routine(events: Vec<SecurityEvent>) -> (Vec<SecurityEvent>, Vec<EventCount>) {
    let mut rows = Vec::new();
    let mut counts: Vec<EventCount> = Vec::new();
    for e in events {
        if !is_routine(&e.kind, &e.reason) {
            rows.push(e);
            continue;
        }
        let day = e.at.div_euclid(86_400_000);
        match counts
            .iter_mut()
            .find(|c| c.day == day && c.kind == e.kind && c.reason == e.reason)
        {
            Some(c) => {
                c.count += 1;
                c.last_at = c.last_at.max(e.at);
            }
            None => counts.push(EventCount {
                day,
                kind: e.kind,
                reason: e.reason,
                count: 1,
                last_at: e.at,
            }),
        }
    }
    (rows, counts)
}

/// What [`Db::prune_events_by`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub too_old: u64,
    pub over_max: u64,
}

/// Most rows one [`Db::list_events`] call returns.
pub const MAX_EVENT_LIST: u32 = 10_000;

/// Rows per INSERT statement in [`Db::append_events`] (6 parameters each, well under SQLite's 32,766).
const EVENTS_PER_STATEMENT: usize = 500;

/// Longest stored text field.
const MAX_FIELD_LEN: usize = 512;

/// An event to record (the PBX core's vocabulary).
pub use pbx::model::SecurityEvent;

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
        on_both!(self, pool, {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO security_events (at, kind, reason, source, username, detail) \
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .bind(e.at)
            .bind(truncate(&e.kind, MAX_FIELD_LEN))
            .bind(truncate(&e.reason, MAX_FIELD_LEN))
            .bind(truncate(&e.source, MAX_FIELD_LEN))
            .bind(e.user.as_deref().map(|u| truncate(u, MAX_FIELD_LEN)))
            .bind(e.detail.as_deref().map(|d| truncate(d, MAX_FIELD_LEN)))
            .fetch_one(pool)
            .await?;
            Ok(id)
        })
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
        on_both!(self, pool, {
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
        })
    }

    /// A page of events, newest first by id: at or after `since`, of `kind` if given, with an id below
    /// `before_id` if given (the last id of the previous page), at most `limit` (capped at [`MAX_EVENT_LIST`]).
    /// Walks the primary key, so a page costs the same at the millionth event as at the first.
    pub async fn list_events_page(
        &self,
        since: Option<i64>,
        kind: Option<&str>,
        before_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<StoredEvent>> {
        let limit = i64::from(limit.min(MAX_EVENT_LIST));
        on_both!(self, pool, Ok(sqlx::query_as(
                "SELECT id, at, kind, reason, source, username, detail FROM security_events \
                 WHERE id < $1 AND at >= $2 AND ($3 IS NULL OR kind = $3) ORDER BY id DESC LIMIT $4",
            )
            .bind(before_id.unwrap_or(i64::MAX))
            .bind(since.unwrap_or(i64::MIN))
            .bind(kind)
            .bind(limit)
            .fetch_all(pool)
            .await?))
    }

    /// Deletes events older than `before` (unix ms), for retention; returns how many.
    pub async fn prune_events(&self, before: i64) -> Result<u64> {
        on_both!(self, pool, {
            let done = sqlx::query("DELETE FROM security_events WHERE at < $1")
                .bind(before)
                .execute(pool)
                .await?;
            Ok(done.rows_affected())
        })
    }
}

impl Db {
    /// Adds routine events to the daily counters.
    pub async fn add_event_counts(&self, counts: &[EventCount]) -> Result<()> {
        if counts.is_empty() {
            return Ok(());
        }
        on_both!(self, pool, {
            let mut tx = super::begin_write(pool).await?;
            for c in counts {
                sqlx::query(
                        "INSERT INTO event_counts (day, kind, reason, count, last_at) VALUES ($1, $2, $3, $4, $5) \
                         ON CONFLICT (day, kind, reason) DO UPDATE SET count = event_counts.count + $4, \
                         last_at = CASE WHEN event_counts.last_at > $5 THEN event_counts.last_at ELSE $5 END",
                    )
                    .bind(c.day)
                    .bind(truncate(&c.kind, MAX_FIELD_LEN))
                    .bind(truncate(&c.reason, MAX_FIELD_LEN))
                    .bind(c.count)
                    .bind(c.last_at)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// The daily counters at or after `since_day`, oldest day first.
    pub async fn event_counts(&self, since_day: i64) -> Result<Vec<EventCount>> {
        on_both!(
            self,
            pool,
            Ok(sqlx::query_as(
                "SELECT day, kind, reason, count, last_at FROM event_counts WHERE day >= $1 \
                 ORDER BY day, kind, reason",
            )
            .bind(since_day)
            .fetch_all(pool)
            .await?)
        )
    }

    /// How many event rows there are, and the time of the oldest (for `palisade events --summary`).
    pub async fn event_rows(&self) -> Result<(i64, Option<i64>)> {
        on_both!(
            self,
            pool,
            Ok(sqlx::query_as::<_, (i64, Option<i64>)>(
                "SELECT COUNT(*), MIN(at) FROM security_events",
            )
            .fetch_one(pool)
            .await?)
        )
    }

    /// The retention settings in force: (days, most rows); a stored value that does not validate counts as its
    /// default.
    pub async fn event_retention(&self) -> Result<(u64, u64)> {
        let mut out = [0u64; 2];
        for (slot, limit) in out.iter_mut().zip(EVENT_SETTINGS.iter()) {
            *slot = self
                .get_setting(limit.key)
                .await?
                .and_then(|v| super::settings::validate_limit(limit, &v).ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(limit.default);
        }
        Ok((out[0], out[1]))
    }

    /// Deletes event rows older than `days` before `now_ms` and, beyond that, the oldest rows past `max_rows`;
    /// daily counters older than `days` go too. Deletes in batches of [`PRUNE_BATCH`] rows (by id, which grows
    /// with time), so a large backlog never holds the write lock for long.
    pub async fn prune_events_by(&self, now_ms: i64, days: u64, max_rows: u64) -> Result<Pruned> {
        let days = i64::try_from(days).unwrap_or(i64::MAX / 86_400_000);
        let before = now_ms.saturating_sub(days.saturating_mul(86_400_000));
        let mut pruned = Pruned::default();
        on_both!(self, pool, {
            loop {
                let done = sqlx::query(
                    "DELETE FROM security_events WHERE id IN \
                         (SELECT id FROM security_events WHERE at < $1 ORDER BY at LIMIT $2)",
                )
                .bind(before)
                .bind(PRUNE_BATCH)
                .execute(pool)
                .await?;
                pruned.too_old += done.rows_affected();
                if done.rows_affected() < PRUNE_BATCH as u64 {
                    break;
                }
            }
            let max_rows = i64::try_from(max_rows).unwrap_or(i64::MAX);
            // Ids only grow, and rows are only ever deleted oldest first: the rows past the limit are the ones
            // with an id up to the newest id minus the limit.
            let (min_id, max_id): (Option<i64>, Option<i64>) =
                sqlx::query_as("SELECT MIN(id), MAX(id) FROM security_events")
                    .fetch_one(pool)
                    .await?;
            if let (Some(min_id), Some(max_id)) = (min_id, max_id) {
                let last = max_id.saturating_sub(max_rows);
                let mut from = min_id;
                while from <= last {
                    let to = last.min(from.saturating_add(PRUNE_BATCH - 1));
                    let done =
                        sqlx::query("DELETE FROM security_events WHERE id BETWEEN $1 AND $2")
                            .bind(from)
                            .bind(to)
                            .execute(pool)
                            .await?;
                    pruned.over_max += done.rows_affected();
                    from = to + 1;
                }
            }
            sqlx::query("DELETE FROM event_counts WHERE day < $1")
                .bind(before.div_euclid(86_400_000))
                .execute(pool)
                .await?;
        });
        Ok(pruned)
    }

    /// Appends many events in one transaction (the server's write-behind: one fsync per batch, not per event).
    pub async fn append_events(&self, events: &[SecurityEvent]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        on_both!(self, pool, {
            let mut tx = super::begin_write(pool).await?;
            // Many rows per statement: under load the server writes thousands of events a second, and one
            // statement per row would cost more CPU than handling the SIP traffic that caused them.
            for chunk in events.chunks(EVENTS_PER_STATEMENT) {
                let mut q = sqlx::QueryBuilder::new(
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
                // Not cached: the text differs with every batch size (see Db::apply_binding_changes).
                q.build().persistent(false).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(at: i64, kind: &str, reason: &str) -> SecurityEvent {
        SecurityEvent {
            at,
            kind: kind.into(),
            reason: reason.into(),
            source: "127.0.0.9:5060".into(),
            user: None,
            detail: None,
        }
    }

    #[test]
    fn routine_decisions_are_counted_per_day_and_the_rest_kept_as_rows() {
        let day = 86_400_000;
        let (rows, counts) = split_routine(vec![
            event(1, "auth_challenge", "no_credentials"),
            event(2, "auth_success", "ok"),
            event(3, "auth_challenge", "no_credentials"),
            event(day + 1, "auth_challenge", "no_credentials"),
            event(4, "auth_failure", "wrong_password"),
            event(5, "auth_success", "pin_unlock"),
            event(6, "ban", "auth_failures"),
        ]);
        let kinds: Vec<(&str, &str)> = rows
            .iter()
            .map(|e| (e.kind.as_str(), e.reason.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("auth_failure", "wrong_password"),
                ("auth_success", "pin_unlock"),
                ("ban", "auth_failures")
            ]
        );
        let got: Vec<(i64, &str, i64, i64)> = counts
            .iter()
            .map(|c| (c.day, c.kind.as_str(), c.count, c.last_at))
            .collect();
        assert_eq!(
            got,
            [
                (0, "auth_challenge", 2, 3),
                (0, "auth_success", 1, 2),
                (1, "auth_challenge", 1, day + 1)
            ]
        );
    }

    #[tokio::test]
    async fn counters_add_up_and_rows_are_pruned_by_age_then_count() {
        crate::tests::on_each_backend(check_counters_add_up_and_rows_are_pruned_by_age_then_count)
            .await;
    }

    async fn check_counters_add_up_and_rows_are_pruned_by_age_then_count(db: Db) {
        let (_, counts) = split_routine(vec![event(10, "auth_success", "ok")]);
        db.add_event_counts(&counts).await.unwrap();
        db.add_event_counts(&counts).await.unwrap();
        let stored = db.event_counts(0).await.unwrap();
        assert_eq!((stored.len(), stored[0].count), (1, 2));

        let day = 86_400_000i64;
        let now = 100 * day;
        // 50 rows 91 days old, 300 recent ones.
        let old: Vec<_> = (0..50)
            .map(|i| event(now - 91 * day + i, "auth_failure", "x"))
            .collect();
        let recent: Vec<_> = (0..300)
            .map(|i| event(now - day + i, "auth_failure", "x"))
            .collect();
        db.append_events(&old).await.unwrap();
        db.append_events(&recent).await.unwrap();
        assert_eq!(db.event_retention().await.unwrap(), (90, 1_000_000));
        let p = db.prune_events_by(now, 90, 1_000_000).await.unwrap();
        assert_eq!(
            p,
            Pruned {
                too_old: 50,
                over_max: 0
            }
        );
        let p = db.prune_events_by(now, 90, 120).await.unwrap();
        assert_eq!(
            p,
            Pruned {
                too_old: 0,
                over_max: 180
            }
        );
        let (n, oldest) = db.event_rows().await.unwrap();
        assert_eq!(
            (n, oldest),
            (120, Some(now - day + 180)),
            "the newest are kept"
        );
        assert!(
            db.event_counts(0).await.unwrap().is_empty(),
            "day 0 is past retention"
        );
        // The settings are validated like the others.
        assert!(super::super::settings::normalize("event_max_rows", "99").is_err());
        assert_eq!(
            super::super::settings::normalize("event_retention_days", " 30 ").unwrap(),
            "30"
        );
        db.set_setting("event_max_rows", "500").await.unwrap();
        assert_eq!(db.event_retention().await.unwrap(), (90, 500));
    }
}
