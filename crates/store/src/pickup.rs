//! Pickup groups: the `pickup_group` of an extension (NULL: the office-wide group).

use super::{Db, Result, StoreError, bump_version, now_ms};

/// Longest pickup group name.
pub const MAX_PICKUP_GROUP_LEN: usize = 32;

impl Db {
    /// Puts extension `number` into pickup group `group` (`None`: the office-wide group). [`StoreError::NotFound`]
    /// for an unknown extension, [`StoreError::Invalid`] for a bad name.
    pub async fn set_pickup_group(&self, number: &str, group: Option<&str>) -> Result<()> {
        if let Some(g) = group {
            let ok = !g.is_empty()
                && g.len() <= MAX_PICKUP_GROUP_LEN
                && g.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
            if !ok {
                return Err(StoreError::Invalid(format!(
                    "pickup group name must be 1 to {MAX_PICKUP_GROUP_LEN} of a-z A-Z 0-9 - _, got '{}'",
                    g.escape_debug()
                )));
            }
        }
        let now = now_ms();
        match self {
            Db::Sqlite(pool) => {
                let mut tx = super::begin_write(pool).await?;
                let done = sqlx::query("UPDATE extensions SET pickup_group = $2 WHERE number = $1")
                    .bind(number)
                    .bind(group)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound(format!("extension {number}")));
                }
                bump_version(&mut tx, now).await?;
                tx.commit().await?;
                Ok(())
            }
        }
    }

    /// Every extension with its pickup group (`None`: the office-wide group), by number.
    pub async fn pickup_groups(&self) -> Result<Vec<(String, Option<String>)>> {
        match self {
            Db::Sqlite(pool) => Ok(sqlx::query_as(
                "SELECT number, pickup_group FROM extensions ORDER BY number",
            )
            .fetch_all(pool)
            .await?),
        }
    }
}
