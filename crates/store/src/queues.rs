//! Call queues ([`pbx::office::QueueConfig`]): a queue row and its agents in order (with their login state), and
//! one row per caller who left a queue for the statistics. Configuration writes validate with the same rules the
//! console and API use and bump the configuration version; login changes made by agents' feature codes and the
//! statistics rows are the server's state (no bump).

use std::collections::HashSet;

use pbx::office::groups::Fallback;
use pbx::office::{QueueConfig, QueueStrategy};
use serde::Serialize;

use super::{Db, Result, StoreError, bump_version, now_ms};

/// Most queues.
pub const MAX_QUEUES: i64 = 200;

/// One caller who left a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueCallRow {
    pub queue: String,
    pub caller: String,
    pub entered_at: i64,
    pub left_at: i64,
    /// `answered`, `abandoned` or `timeout`.
    pub outcome: String,
    pub agent: Option<String>,
    pub wait_ms: i64,
}

/// A queue's statistics over its recorded callers.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QueueStats {
    pub answered: i64,
    pub abandoned: i64,
    pub timeout: i64,
    /// Average wait of every caller who left, in seconds.
    pub average_wait_secs: f64,
}

#[derive(sqlx::FromRow)]
struct QueueRow {
    number: String,
    strategy: String,
    max_wait_secs: i64,
    music: String,
    fallback: String,
}

impl Db {
    /// Adds a queue. [`StoreError::Conflict`] when the number is an extension's, a ring group's or another queue's.
    pub async fn add_queue(&self, q: &QueueConfig) -> Result<()> {
        self.write_queue(q, false).await
    }

    /// Replaces queue `q.number` (agents keep their login state).
    pub async fn update_queue(&self, q: &QueueConfig) -> Result<()> {
        self.write_queue(q, true).await
    }

    async fn write_queue(&self, q: &QueueConfig, replace: bool) -> Result<()> {
        q.validate().map_err(StoreError::Invalid)?;
        let now = now_ms();
        on_both!(self, pool, {
            let mut tx = super::begin_write(pool).await?;
            for (sql, what) in [
                (
                    "SELECT number FROM extensions WHERE number = $1",
                    "an extension",
                ),
                (
                    "SELECT number FROM ring_groups WHERE number = $1",
                    "a ring group",
                ),
            ] {
                let taken: Option<String> = sqlx::query_scalar(sql)
                    .bind(&q.number)
                    .fetch_optional(&mut *tx)
                    .await?;
                if taken.is_some() {
                    return Err(StoreError::Conflict(format!(
                        "{} already exists as {what}; a queue needs a number of its own",
                        q.number
                    )));
                }
            }
            let exists: Option<String> =
                sqlx::query_scalar("SELECT number FROM call_queues WHERE number = $1")
                    .bind(&q.number)
                    .fetch_optional(&mut *tx)
                    .await?;
            let logged_out: Vec<String> = sqlx::query_scalar(
                "SELECT agent FROM call_queue_agents WHERE queue_number = $1 AND logged_in = 0",
            )
            .bind(&q.number)
            .fetch_all(&mut *tx)
            .await?;
            match (exists.is_some(), replace) {
                (true, false) => {
                    return Err(StoreError::Conflict(format!(
                        "queue {} already exists; remove it first with `palisade queue remove {}`",
                        q.number, q.number
                    )));
                }
                (false, true) => {
                    return Err(StoreError::NotFound(format!("queue {}", q.number)));
                }
                (false, false) => {
                    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM call_queues")
                        .fetch_one(&mut *tx)
                        .await?;
                    if count >= MAX_QUEUES {
                        return Err(StoreError::Invalid(format!(
                            "at most {MAX_QUEUES} queues; remove some first"
                        )));
                    }
                }
                (true, true) => {
                    sqlx::query("DELETE FROM call_queues WHERE number = $1")
                        .bind(&q.number)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            sqlx::query(
                    "INSERT INTO call_queues (number, strategy, max_wait_secs, music, fallback, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $6)",
                )
                .bind(&q.number)
                .bind(q.strategy.as_str())
                .bind(i64::from(q.max_wait_secs))
                .bind(&q.music)
                .bind(q.fallback.to_string())
                .bind(now)
                .execute(&mut *tx)
                .await?;
            for (i, agent) in q.agents.iter().enumerate() {
                sqlx::query(
                        "INSERT INTO call_queue_agents (queue_number, position, agent, logged_in) VALUES ($1, $2, $3, $4)",
                    )
                    .bind(&q.number)
                    .bind(i64::try_from(i).unwrap_or(i64::MAX))
                    .bind(agent)
                    .bind(i64::from(!logged_out.contains(agent)))
                    .execute(&mut *tx)
                    .await?;
            }
            bump_version(&mut tx, now).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Removes queue `number` and returns it.
    pub async fn remove_queue(&self, number: &str) -> Result<QueueConfig> {
        let q = self
            .queue(number)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("queue {number}")))?;
        let now = now_ms();
        on_both!(self, pool, {
            let mut tx = super::begin_write(pool).await?;
            sqlx::query("DELETE FROM call_queues WHERE number = $1")
                .bind(number)
                .execute(&mut *tx)
                .await?;
            bump_version(&mut tx, now).await?;
            tx.commit().await?;
            Ok(q)
        })
    }

    pub async fn queue(&self, number: &str) -> Result<Option<QueueConfig>> {
        Ok(self
            .list_queues()
            .await?
            .into_iter()
            .find(|q| q.number == number))
    }

    /// Every queue, by number, with its agents in order.
    pub async fn list_queues(&self) -> Result<Vec<QueueConfig>> {
        on_both!(self, pool, {
            let rows: Vec<QueueRow> = sqlx::query_as(
                    "SELECT number, strategy, max_wait_secs, music, fallback FROM call_queues ORDER BY number",
                )
                .fetch_all(pool)
                .await?;
            let agents: Vec<(String, String)> = sqlx::query_as(
                "SELECT queue_number, agent FROM call_queue_agents ORDER BY queue_number, position",
            )
            .fetch_all(pool)
            .await?;
            rows.into_iter()
                .map(|r| {
                    let bad =
                        |e: String| StoreError::Invalid(format!("stored queue {}: {e}", r.number));
                    Ok(QueueConfig {
                        agents: agents
                            .iter()
                            .filter(|(q, _)| *q == r.number)
                            .map(|(_, a)| a.clone())
                            .collect(),
                        strategy: QueueStrategy::parse(&r.strategy).map_err(bad)?,
                        max_wait_secs: u32::try_from(r.max_wait_secs)
                            .map_err(|e| bad(e.to_string()))?,
                        music: r.music,
                        fallback: Fallback::parse(&r.fallback).map_err(bad)?,
                        number: r.number,
                    })
                })
                .collect()
        })
    }

    /// (queue, agent) pairs logged out.
    pub async fn logged_out_agents(&self) -> Result<HashSet<(String, String)>> {
        on_both!(self, pool, {
            let rows: Vec<(String, String)> = sqlx::query_as(
                "SELECT queue_number, agent FROM call_queue_agents WHERE logged_in = 0",
            )
            .fetch_all(pool)
            .await?;
            Ok(rows.into_iter().collect())
        })
    }

    /// Logs `agent` in or out of `queue`. `bump`: an administrator's change (a running server reloads); the
    /// server recording an agent's own feature code passes false.
    pub async fn set_agent_login(
        &self,
        queue: &str,
        agent: &str,
        logged_in: bool,
        bump: bool,
    ) -> Result<()> {
        let now = now_ms();
        on_both!(self, pool, {
            let mut tx = super::begin_write(pool).await?;
            let done = sqlx::query(
                    "UPDATE call_queue_agents SET logged_in = $3 WHERE queue_number = $1 AND agent = $2",
                )
                .bind(queue)
                .bind(agent)
                .bind(i64::from(logged_in))
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!(
                    "agent {agent} of queue {queue}"
                )));
            }
            if bump {
                bump_version(&mut tx, now).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Records callers who left queues.
    pub async fn append_queue_calls(&self, rows: &[QueueCallRow]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        on_both!(self, pool, {
            let mut tx = super::begin_write(pool).await?;
            for r in rows {
                sqlx::query(
                        "INSERT INTO call_queue_calls (queue_number, caller, entered_at, left_at, outcome, agent, wait_ms) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(&r.queue)
                    .bind(&r.caller)
                    .bind(r.entered_at)
                    .bind(r.left_at)
                    .bind(&r.outcome)
                    .bind(&r.agent)
                    .bind(r.wait_ms)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Statistics of queue `queue` over callers who left since `since_ms`.
    pub async fn queue_stats(&self, queue: &str, since_ms: i64) -> Result<QueueStats> {
        on_both!(self, pool, {
            let rows: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT outcome, wait_ms FROM call_queue_calls WHERE queue_number = $1 AND left_at >= $2",
                )
                .bind(queue)
                .bind(since_ms)
                .fetch_all(pool)
                .await?;
            let mut s = QueueStats::default();
            for (outcome, _) in &rows {
                match outcome.as_str() {
                    "answered" => s.answered += 1,
                    "abandoned" => s.abandoned += 1,
                    _ => s.timeout += 1,
                }
            }
            if !rows.is_empty() {
                let total: i64 = rows.iter().map(|(_, w)| *w).sum();
                s.average_wait_secs = (total as f64 / rows.len() as f64 / 100.0).round() / 10.0;
            }
            Ok(s)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue() -> QueueConfig {
        QueueConfig {
            number: "700".into(),
            agents: vec!["201".into(), "202".into()],
            strategy: QueueStrategy::LongestIdle,
            max_wait_secs: 60,
            music: "default".into(),
            fallback: Fallback::Hangup,
        }
    }

    #[tokio::test]
    async fn queues_agents_logins_and_stats() {
        crate::tests::on_each_backend(check_queues).await;
    }

    async fn check_queues(db: Db) {
        db.add_queue(&queue()).await.unwrap();
        assert_eq!(db.list_queues().await.unwrap(), vec![queue()]);
        assert!(matches!(
            db.add_queue(&queue()).await,
            Err(StoreError::Conflict(_))
        ));
        db.set_agent_login("700", "202", false, false)
            .await
            .unwrap();
        assert_eq!(
            db.logged_out_agents().await.unwrap(),
            HashSet::from([("700".to_string(), "202".to_string())])
        );
        // A change keeps the login state of agents that remain.
        let mut q = queue();
        q.strategy = QueueStrategy::All;
        db.update_queue(&q).await.unwrap();
        assert_eq!(db.logged_out_agents().await.unwrap().len(), 1);
        let row = |outcome: &str, wait_ms| QueueCallRow {
            queue: "700".into(),
            caller: "100".into(),
            entered_at: 1_000,
            left_at: 2_000,
            outcome: outcome.into(),
            agent: None,
            wait_ms,
        };
        db.append_queue_calls(&[
            row("answered", 4_000),
            row("abandoned", 2_000),
            row("timeout", 60_000),
        ])
        .await
        .unwrap();
        let s = db.queue_stats("700", 0).await.unwrap();
        assert_eq!((s.answered, s.abandoned, s.timeout), (1, 1, 1));
        assert!((s.average_wait_secs - 22.0).abs() < 0.01, "{s:?}");
        assert_eq!(db.remove_queue("700").await.unwrap(), q);
        assert!(db.list_queues().await.unwrap().is_empty());
    }
}
