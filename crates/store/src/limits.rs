//! Stored resource limits ([`pbx::limits`] decides): per-extension overrides and per-trunk caps, each in its own
//! table so the extension and trunk rows stay as they are. Every change bumps the configuration version, so the
//! running server picks it up within a second.

use super::{Db, Result, StoreError, bump_version, now_ms};
use pbx::limits::{ExtensionLimits, MAX_LIMIT, ResourceLimits};

/// A limit as given on the command line: a number from 1 to 1000, or "" / "0" for none (the default).
pub fn parse_limit(what: &str, value: &str) -> Result<Option<u32>> {
    let v = value.trim();
    if v.is_empty() || v == "0" {
        return Ok(None);
    }
    match v.parse::<u32>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(Some(n)),
        _ => Err(StoreError::Invalid(format!(
            "{what} must be 1 to {MAX_LIMIT}, or 0 for none (got '{value}')"
        ))),
    }
}

fn to_u32(v: Option<i64>) -> Option<u32> {
    v.and_then(|n| u32::try_from(n).ok())
}

impl Db {
    /// The limits in force: the settings and every override.
    pub async fn resource_limits(&self) -> Result<ResourceLimits> {
        let policy = self.policy_settings().await?;
        let mut limits = ResourceLimits {
            max_calls_per_extension: policy.max_calls_per_extension,
            max_subscriptions_per_extension: policy.max_subscriptions_per_extension,
            ..ResourceLimits::default()
        };
        on_both!(self, pool, {
            let rows: Vec<(String, Option<i64>, Option<i64>)> = sqlx::query_as(
                "SELECT number, max_calls, max_external_calls FROM extension_limits",
            )
            .fetch_all(pool)
            .await?;
            for (number, calls, external) in rows {
                limits.extensions.insert(
                    number,
                    ExtensionLimits {
                        max_calls: to_u32(calls),
                        max_external_calls: to_u32(external),
                    },
                );
            }
            let rows: Vec<(String, Option<i64>)> =
                sqlx::query_as("SELECT trunk, max_calls FROM trunk_limits")
                    .fetch_all(pool)
                    .await?;
            for (trunk, calls) in rows {
                if let Some(n) = to_u32(calls) {
                    limits.trunk_max_calls.insert(trunk, n);
                }
            }
        });
        Ok(limits)
    }

    /// `number`'s own limits (none set: both `None`).
    pub async fn extension_limits(&self, number: &str) -> Result<ExtensionLimits> {
        on_both!(self, pool, {
            let row: Option<(Option<i64>, Option<i64>)> = sqlx::query_as(
                "SELECT max_calls, max_external_calls FROM extension_limits WHERE number = $1",
            )
            .bind(number)
            .fetch_optional(pool)
            .await?;
            Ok(
                row.map_or_else(ExtensionLimits::default, |(c, e)| ExtensionLimits {
                    max_calls: to_u32(c),
                    max_external_calls: to_u32(e),
                }),
            )
        })
    }

    /// Changes `number`'s limits: `Some(None)` removes one (back to the default), `None` leaves it.
    pub async fn set_extension_limits(
        &self,
        number: &str,
        max_calls: Option<Option<u32>>,
        max_external_calls: Option<Option<u32>>,
    ) -> Result<ExtensionLimits> {
        let mut limits = self.extension_limits(number).await?;
        if let Some(v) = max_calls {
            limits.max_calls = v;
        }
        if let Some(v) = max_external_calls {
            limits.max_external_calls = v;
        }
        let now = now_ms();
        on_both!(self, pool, {
            let mut tx = super::begin_write(pool).await?;
            sqlx::query(
                    "INSERT INTO extension_limits (number, max_calls, max_external_calls) VALUES ($1, $2, $3) \
                     ON CONFLICT (number) DO UPDATE SET max_calls = $2, max_external_calls = $3",
                )
                .bind(number)
                .bind(limits.max_calls.map(i64::from))
                .bind(limits.max_external_calls.map(i64::from))
                .execute(&mut *tx)
                .await
                .map_err(|e| match &e {
                    sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
                        StoreError::NotFound(format!("extension {number}"))
                    }
                    _ => e.into(),
                })?;
            bump_version(&mut tx, now).await?;
            tx.commit().await?;
        });
        Ok(limits)
    }

    /// The cap on `trunk`'s concurrent calls (`None`: none).
    pub async fn trunk_max_calls(&self, trunk: &str) -> Result<Option<u32>> {
        on_both!(self, pool, {
            let v: Option<Option<i64>> =
                sqlx::query_scalar("SELECT max_calls FROM trunk_limits WHERE trunk = $1")
                    .bind(trunk)
                    .fetch_optional(pool)
                    .await?;
            Ok(to_u32(v.flatten()))
        })
    }

    /// Sets (or with `None` removes) the cap on `trunk`'s concurrent calls.
    pub async fn set_trunk_max_calls(&self, trunk: &str, max_calls: Option<u32>) -> Result<()> {
        let now = now_ms();
        on_both!(self, pool, {
            let mut tx = super::begin_write(pool).await?;
            sqlx::query(
                "INSERT INTO trunk_limits (trunk, max_calls) VALUES ($1, $2) \
                     ON CONFLICT (trunk) DO UPDATE SET max_calls = $2",
            )
            .bind(trunk)
            .bind(max_calls.map(i64::from))
            .execute(&mut *tx)
            .await
            .map_err(|e| match &e {
                sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
                    StoreError::NotFound(format!("trunk {trunk}"))
                }
                _ => e.into(),
            })?;
            bump_version(&mut tx, now).await?;
            tx.commit().await?;
            Ok(())
        })
    }
}
