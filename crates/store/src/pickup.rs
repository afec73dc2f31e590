//! Pickup groups: the `pickup_groups` row of an extension (none: the office-wide group).

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
        on_both!(self, pool, {
            let mut tx = super::begin_write(pool).await?;
            let ext: Option<String> =
                sqlx::query_scalar("SELECT number FROM extensions WHERE number = $1")
                    .bind(number)
                    .fetch_optional(&mut *tx)
                    .await?;
            if ext.is_none() {
                return Err(StoreError::NotFound(format!("extension {number}")));
            }
            match group {
                Some(g) => {
                    sqlx::query(
                        "INSERT INTO pickup_groups (extension, group_name) VALUES ($1, $2) \
                             ON CONFLICT (extension) DO UPDATE SET group_name = $2",
                    )
                    .bind(number)
                    .bind(g)
                    .execute(&mut *tx)
                    .await?;
                }
                None => {
                    sqlx::query("DELETE FROM pickup_groups WHERE extension = $1")
                        .bind(number)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            bump_version(&mut tx, now).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Every extension with its pickup group (`None`: the office-wide group), by number.
    pub async fn pickup_groups(&self) -> Result<Vec<(String, Option<String>)>> {
        on_both!(
            self,
            pool,
            Ok(sqlx::query_as(
                "SELECT e.number, p.group_name FROM extensions e \
                 LEFT JOIN pickup_groups p ON p.extension = e.number ORDER BY e.number",
            )
            .fetch_all(pool)
            .await?)
        )
    }
}
