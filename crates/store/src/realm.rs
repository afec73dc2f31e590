//! The digest realm: fixed once in the database and independent of the SIP domain.
//!
//! Extensions' passwords are stored as HA1 = H(auth_id:realm:password), so they only verify for the realm they
//! were hashed with. The realm is therefore chosen once — at the first `palisade serve` or the first admin
//! command that hashes a password, whichever comes first — and then never follows `--domain`. Changing it is a
//! deliberate act ([`Db::set_realm`]) that reports which extensions need a new password.

use super::{Db, Result, StoreError, bump_version, now_ms};

/// The settings key holding the fixed realm. Not settable with `security set`; see [`Db::set_realm`].
pub const REALM: &str = "realm";

/// The longest realm accepted (it is sent in every challenge).
const MAX_REALM_LEN: usize = 255;

/// Checks a realm an operator typed: a non-empty token without quotes, backslashes, spaces or control characters
/// (it is written inside a quoted string in challenges).
pub fn validate_realm(realm: &str) -> Result<()> {
    if realm.is_empty()
        || realm.len() > MAX_REALM_LEN
        || realm
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '\\')
    {
        return Err(StoreError::Invalid(format!(
            "invalid realm `{realm}`: use 1 to {MAX_REALM_LEN} characters without spaces, quotes or backslashes, \
             e.g. pbx.example.com"
        )));
    }
    Ok(())
}

impl Db {
    /// The fixed realm, or `None` before the first start.
    pub async fn realm(&self) -> Result<Option<String>> {
        self.get_setting(REALM).await
    }

    /// The fixed realm; if none is fixed yet, fixes `candidate` (the domain in use at the first start) and
    /// returns it. Done in one write transaction, so a server and an admin command starting together agree.
    pub async fn realm_or_fix(&self, candidate: &str) -> Result<String> {
        validate_realm(candidate)?;
        on_both!(self, pool, {
            let mut tx = super::begin_write(pool).await?;
            let existing: Option<String> =
                sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
                    .bind(REALM)
                    .fetch_optional(&mut *tx)
                    .await?;
            if let Some(realm) = existing {
                tx.rollback().await?;
                return Ok(realm);
            }
            // On PostgreSQL two nodes starting together can both get here (no database-wide write lock): the
            // first insert wins and the other takes the realm it fixed.
            sqlx::query(
                "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (key) DO NOTHING",
            )
            .bind(REALM)
            .bind(candidate)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
            let fixed: String = sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
                .bind(REALM)
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(fixed)
        })
    }

    /// Replaces the realm and returns the numbers of the extensions whose passwords were hashed for another
    /// realm and so no longer work (they need `ext reset-password`).
    pub async fn set_realm(&self, realm: &str) -> Result<Vec<String>> {
        validate_realm(realm)?;
        let now = now_ms();
        on_both!(self, pool, {
            let mut tx = super::begin_write(pool).await?;
            sqlx::query(
                "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (key) DO UPDATE SET value = $2, updated_at = $3",
            )
            .bind(REALM)
            .bind(realm)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            bump_version(&mut tx, now).await?;
            let stale: Vec<String> = sqlx::query_scalar(
                "SELECT number FROM extensions WHERE realm <> $1 ORDER BY number",
            )
            .bind(realm)
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(stale)
        })
    }

    /// The numbers of the extensions whose passwords were hashed for a realm other than `realm`.
    pub async fn extensions_outside_realm(&self, realm: &str) -> Result<Vec<String>> {
        on_both!(
            self,
            pool,
            Ok(sqlx::query_scalar(
                "SELECT number FROM extensions WHERE realm <> $1 ORDER BY number",
            )
            .bind(realm)
            .fetch_all(pool)
            .await?)
        )
    }
}
