//! Auto attendants (their menu as text the PBX core parses) and the inbound numbers (DIDs) they answer. The
//! greeting is a WAV file under `DATA/attendant/` the binary writes before the row that names it.

use super::{Db, Result, StoreError, begin_write, bump_version, now_ms};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct AttendantRow {
    pub name: String,
    pub number: Option<String>,
    pub greeting: String,
    /// `KEY=TARGET;KEY=TARGET`.
    pub options: String,
    pub timeout_seconds: i64,
    pub on_timeout: String,
    pub on_invalid: String,
    pub after_hours: Option<String>,
    pub dial_by_extension: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct DidAttendantRow {
    pub number: String,
    pub trunk: String,
    pub attendant: String,
}

/// A DID leading to a ring group or queue (`target`: `group:600`, `queue:700`).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct DidTargetRow {
    pub number: String,
    pub trunk: String,
    pub target: String,
}

fn constraint(e: sqlx::Error, what: &str) -> StoreError {
    match e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            StoreError::Conflict(format!("{what} is taken"))
        }
        sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
            StoreError::NotFound(format!("the trunk or attendant of {what}"))
        }
        e => e.into(),
    }
}

impl Db {
    /// Adds an attendant. Its internal number may not be an extension's or a conference room's.
    pub async fn add_attendant(&self, a: &AttendantRow) -> Result<()> {
        let now = now_ms();
        on_both!(self, pool, {
            let mut tx = begin_write(pool).await?;
            if let Some(n) = &a.number {
                let taken: i64 = sqlx::query_scalar(
                    "SELECT (SELECT COUNT(*) FROM extensions WHERE number = $1) + \
                         (SELECT COUNT(*) FROM conferences WHERE number = $1)",
                )
                .bind(n)
                .fetch_one(&mut *tx)
                .await?;
                if taken > 0 {
                    return Err(StoreError::Conflict(format!(
                        "{n} is an extension or a conference room; an attendant needs a number of its own"
                    )));
                }
            }
            sqlx::query(
                    "INSERT INTO attendants (name, number, greeting, options, timeout_seconds, on_timeout, \
                     on_invalid, after_hours, dial_by_extension, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(&a.name)
                .bind(&a.number)
                .bind(&a.greeting)
                .bind(&a.options)
                .bind(a.timeout_seconds)
                .bind(&a.on_timeout)
                .bind(&a.on_invalid)
                .bind(&a.after_hours)
                .bind(a.dial_by_extension)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(|e| match e {
                    sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict(format!(
                        "attendant {} (or its number) already exists",
                        a.name
                    )),
                    e => e.into(),
                })?;
            bump_version(&mut tx, now).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    pub async fn list_attendants(&self) -> Result<Vec<AttendantRow>> {
        on_both!(self, pool, Ok(sqlx::query_as(
                "SELECT name, number, greeting, options, timeout_seconds, on_timeout, on_invalid, after_hours, \
                 dial_by_extension FROM attendants ORDER BY name",
            )
            .fetch_all(pool)
            .await?))
    }

    pub async fn attendant(&self, name: &str) -> Result<AttendantRow> {
        self.list_attendants()
            .await?
            .into_iter()
            .find(|a| a.name == name)
            .ok_or_else(|| StoreError::NotFound(format!("attendant {name}")))
    }

    /// Removes an attendant (and the DIDs that led to it); returns its greeting file for the caller to remove.
    pub async fn remove_attendant(&self, name: &str) -> Result<String> {
        let greeting = self.attendant(name).await?.greeting;
        let now = now_ms();
        on_both!(self, pool, {
            let mut tx = begin_write(pool).await?;
            sqlx::query("DELETE FROM attendants WHERE name = $1")
                .bind(name)
                .execute(&mut *tx)
                .await?;
            bump_version(&mut tx, now).await?;
            tx.commit().await?;
            Ok(greeting)
        })
    }

    /// Points DID `number` of `trunk` at attendant `attendant`. A number already ringing an extension
    /// (`palisade did add`) is refused.
    pub async fn add_did_attendant(
        &self,
        number: &str,
        trunk: &str,
        attendant: &str,
    ) -> Result<()> {
        let now = now_ms();
        on_both!(self, pool, {
            let mut tx = begin_write(pool).await?;
            let ringing: i64 = sqlx::query_scalar(
                "SELECT (SELECT COUNT(*) FROM dids WHERE number = $1) \
                 + (SELECT COUNT(*) FROM did_targets WHERE number = $1)",
            )
            .bind(number)
            .fetch_one(&mut *tx)
            .await?;
            if ringing > 0 {
                return Err(StoreError::Conflict(format!(
                    "DID {number} rings an extension, group or queue; remove it first (`palisade did remove {number}`)"
                )));
            }
            sqlx::query(
                "INSERT INTO did_attendants (number, trunk, attendant) VALUES ($1, $2, $3)",
            )
            .bind(number)
            .bind(trunk)
            .bind(attendant)
            .execute(&mut *tx)
            .await
            .map_err(|e| constraint(e, &format!("DID {number}")))?;
            bump_version(&mut tx, now).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    pub async fn list_did_attendants(&self) -> Result<Vec<DidAttendantRow>> {
        on_both!(
            self,
            pool,
            Ok(sqlx::query_as(
                "SELECT number, trunk, attendant FROM did_attendants ORDER BY number",
            )
            .fetch_all(pool)
            .await?)
        )
    }

    pub async fn remove_did_attendant(&self, number: &str) -> Result<()> {
        let now = now_ms();
        on_both!(self, pool, {
            let mut tx = begin_write(pool).await?;
            let done = sqlx::query("DELETE FROM did_attendants WHERE number = $1")
                .bind(number)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!("attendant DID {number}")));
            }
            bump_version(&mut tx, now).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Points DID `number` of `trunk` at `target` (`group:N` or `queue:N`, checked by the caller). A number that
    /// already rings an extension or answers with an attendant is refused ([`StoreError::Conflict`]), as is a
    /// trunk that does not exist ([`StoreError::NotFound`]).
    pub async fn add_did_target(&self, number: &str, trunk: &str, target: &str) -> Result<()> {
        let now = now_ms();
        on_both!(self, pool, {
            let mut tx = begin_write(pool).await?;
            let trunks: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM trunks WHERE name = $1")
                .bind(trunk)
                .fetch_one(&mut *tx)
                .await?;
            if trunks == 0 {
                return Err(StoreError::NotFound(format!("trunk {trunk}")));
            }
            let other = number
                .strip_prefix('+')
                .map_or_else(|| format!("+{number}"), str::to_string);
            let taken: i64 = sqlx::query_scalar(
                "SELECT (SELECT COUNT(*) FROM dids WHERE number IN ($1, $2)) \
                 + (SELECT COUNT(*) FROM did_attendants WHERE number IN ($1, $2)) \
                 + (SELECT COUNT(*) FROM did_targets WHERE number IN ($1, $2))",
            )
            .bind(number)
            .bind(&other)
            .fetch_one(&mut *tx)
            .await?;
            if taken > 0 {
                return Err(StoreError::Conflict(format!(
                    "DID {number} is already in use; remove it first (`palisade did remove {number}`)"
                )));
            }
            sqlx::query("INSERT INTO did_targets (number, trunk, target) VALUES ($1, $2, $3)")
                .bind(number)
                .bind(trunk)
                .bind(target)
                .execute(&mut *tx)
                .await
                .map_err(|e| constraint(e, &format!("DID {number}")))?;
            bump_version(&mut tx, now).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    pub async fn list_did_targets(&self) -> Result<Vec<DidTargetRow>> {
        on_both!(
            self,
            pool,
            Ok(
                sqlx::query_as("SELECT number, trunk, target FROM did_targets ORDER BY number")
                    .fetch_all(pool)
                    .await?
            )
        )
    }

    /// Removes DID `number` (written with or without its '+') if it leads to a group or queue; false when it
    /// does not.
    pub async fn remove_did_target(&self, number: &str) -> Result<Option<DidTargetRow>> {
        let now = now_ms();
        let other = number
            .strip_prefix('+')
            .map_or_else(|| format!("+{number}"), str::to_string);
        on_both!(self, pool, {
            let mut tx = begin_write(pool).await?;
            let row: Option<DidTargetRow> = sqlx::query_as(
                "SELECT number, trunk, target FROM did_targets WHERE number IN ($1, $2)",
            )
            .bind(number)
            .bind(&other)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else {
                return Ok(None);
            };
            sqlx::query("DELETE FROM did_targets WHERE number = $1")
                .bind(&row.number)
                .execute(&mut *tx)
                .await?;
            bump_version(&mut tx, now).await?;
            tx.commit().await?;
            Ok(Some(row))
        })
    }
}
