//! How each trunk's registration stands, as the running server last wrote it: [`Db::replace_trunk_status`]
//! (by the server, within a second of a change) and [`Db::list_trunk_status`] (for `palisade trunk list|show`).
//! Status, not configuration: writes do not bump the configuration version.

use serde::Serialize;

use super::{Db, Result, now_ms};

/// Longest stored error text, in bytes.
const MAX_ERROR_LEN: usize = 500;

/// One trunk's registration status.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, Serialize)]
pub struct TrunkStatusRow {
    pub trunk: String,
    /// `registered`, `registering`, `failed` or `unregistering`.
    pub state: String,
    /// Unix milliseconds.
    pub registered_until: Option<i64>,
    pub last_error: Option<String>,
    /// Unix milliseconds.
    pub next_attempt: Option<i64>,
    /// Unix milliseconds: when the server wrote it.
    pub updated_at: i64,
}

fn clean(s: &str) -> String {
    let mut end = s.len().min(MAX_ERROR_LEN);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end]
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

impl Db {
    /// Replaces every trunk status with `rows` (their `updated_at` is set to now), in one transaction.
    pub async fn replace_trunk_status(&self, rows: &[TrunkStatusRow]) -> Result<()> {
        let now = now_ms();
        on_both!(self, pool, {
            let mut tx = super::begin_write(pool).await?;
            sqlx::query("DELETE FROM trunk_status")
                .execute(&mut *tx)
                .await?;
            for r in rows {
                sqlx::query(
                        "INSERT INTO trunk_status (trunk, state, registered_until, last_error, next_attempt, \
                         updated_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (trunk) DO NOTHING",
                    )
                    .bind(&r.trunk)
                    .bind(&r.state)
                    .bind(r.registered_until)
                    .bind(r.last_error.as_deref().map(clean))
                    .bind(r.next_attempt)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Writes `rows` (their `updated_at` set to now) and leaves the other trunks' rows alone: in a cluster each
    /// node writes the status of the trunks whose registration it holds (docs/cluster.md).
    pub async fn upsert_trunk_status(&self, rows: &[TrunkStatusRow]) -> Result<()> {
        let now = now_ms();
        on_both!(self, pool, {
            let mut tx = super::begin_write(pool).await?;
            for r in rows {
                sqlx::query(
                    "INSERT INTO trunk_status (trunk, state, registered_until, last_error, next_attempt, \
                     updated_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (trunk) DO UPDATE SET state = $2, \
                     registered_until = $3, last_error = $4, next_attempt = $5, updated_at = $6",
                )
                .bind(&r.trunk)
                .bind(&r.state)
                .bind(r.registered_until)
                .bind(r.last_error.as_deref().map(clean))
                .bind(r.next_attempt)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Every trunk status, by trunk name.
    pub async fn list_trunk_status(&self) -> Result<Vec<TrunkStatusRow>> {
        on_both!(self, pool, Ok(sqlx::query_as(
                "SELECT trunk, state, registered_until, last_error, next_attempt, updated_at FROM trunk_status \
                 ORDER BY trunk",
            )
            .fetch_all(pool)
            .await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn replace_and_list_without_bumping_the_version() {
        crate::tests::on_each_backend(check_replace_and_list_without_bumping_the_version).await;
    }

    async fn check_replace_and_list_without_bumping_the_version(db: Db) {
        let v = db.current_version().await.unwrap();
        let row = |trunk: &str, state: &str| TrunkStatusRow {
            trunk: trunk.into(),
            state: state.into(),
            registered_until: Some(1_800_000_000_000),
            last_error: Some("bad\npassword".into()),
            next_attempt: None,
            updated_at: 0,
        };
        db.replace_trunk_status(&[row("b", "registered"), row("a", "failed")])
            .await
            .unwrap();
        let got = db.list_trunk_status().await.unwrap();
        assert_eq!(
            got.iter().map(|r| r.trunk.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(got[0].last_error.as_deref(), Some("bad password"));
        assert!(got[0].updated_at > 0);
        db.replace_trunk_status(&[row("a", "registered")])
            .await
            .unwrap();
        assert_eq!(db.list_trunk_status().await.unwrap().len(), 1);
        assert_eq!(db.current_version().await.unwrap(), v);
    }
}
