//! Provisioned desk phones and softphones (issue 14). The URL token arrives here only as its SHA-256 hex; the
//! SIP password never arrives at all: [`Db::issue_phone_credentials`] takes the HA1s of the password generated
//! for the one response that carries it.

use serde::Serialize;

use super::{Db, Result, StoreError, bump_version, is_foreign_key_violation, now_ms};

/// One provisioned device.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, Serialize)]
pub struct Phone {
    pub id: String,
    pub mac: Option<String>,
    pub model: String,
    pub extension: String,
    #[serde(skip)]
    pub token_hash: String,
    #[serde(skip)]
    pub admin_password: String,
    pub window_opened_at: i64,
    pub window_expires_at: i64,
    pub credentials_at: Option<i64>,
    pub bound_at: Option<i64>,
    pub bound_mac: Option<String>,
    pub bound_cert_sha256: Option<String>,
    pub bound_source: Option<String>,
    pub bound_user_agent: Option<String>,
    pub last_fetch_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A phone to add; the caller has validated the model and normalised the MAC.
#[derive(Debug, Clone)]
pub struct PhoneNew {
    pub id: String,
    pub mac: Option<String>,
    pub model: String,
    pub extension: String,
    pub token_hash: String,
    pub admin_password: String,
    pub window_expires_at: i64,
}

/// What a device showed on the fetch that bound its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneBinding {
    pub mac: Option<String>,
    pub cert_sha256: Option<String>,
    pub source: String,
    pub user_agent: Option<String>,
}

/// The password hashes of the credentials being served, for the phone's extension.
#[derive(Debug, Clone)]
pub struct IssuedHashes {
    pub ha1_md5: String,
    pub ha1_sha256: String,
    pub realm: String,
}

macro_rules! select {
    ($rest:literal) => {
        concat!(
            "SELECT id, mac, model, extension, token_hash, admin_password, window_opened_at, window_expires_at, \
             credentials_at, bound_at, bound_mac, bound_cert_sha256, bound_source, bound_user_agent, \
             last_fetch_at, created_at, updated_at FROM phones ",
            $rest
        )
    };
}

impl Db {
    /// Adds a phone. A taken id or MAC, or an extension that already has a phone, is a [`StoreError::Conflict`];
    /// a missing extension is [`StoreError::NotFound`].
    pub async fn create_phone(&self, new: PhoneNew) -> Result<Phone> {
        let now = now_ms();
        on_both!(self, pool, {
            let mut tx = super::begin_write(pool).await?;
            let taken: Option<(String, Option<String>, String)> = sqlx::query_as(
                "SELECT id, mac, extension FROM phones WHERE id = $1 OR mac = $2 OR extension = $3",
            )
            .bind(&new.id)
            .bind(&new.mac)
            .bind(&new.extension)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((id, mac, extension)) = taken {
                return Err(StoreError::Conflict(
                    if extension == new.extension && mac != new.mac && id != new.id {
                        format!(
                            "a phone for extension {extension} already exists ({id}); an extension has one \
                                 password, so one provisioned phone: remove it first (`palisade phone remove {id}`)"
                        )
                    } else {
                        format!(
                            "phone {id} already exists (see `palisade phone show {id}`; \
                                 `palisade phone remove {id}` first to add it again)"
                        )
                    },
                ));
            }
            let inserted = sqlx::query(
                    "INSERT INTO phones (id, mac, model, extension, token_hash, admin_password, window_opened_at, \
                     window_expires_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $7, $7)",
                )
                .bind(&new.id)
                .bind(&new.mac)
                .bind(&new.model)
                .bind(&new.extension)
                .bind(&new.token_hash)
                .bind(&new.admin_password)
                .bind(now)
                .bind(new.window_expires_at)
                .execute(&mut *tx)
                .await;
            match inserted {
                Ok(_) => {}
                Err(e) if is_foreign_key_violation(&e) => {
                    return Err(StoreError::NotFound(format!("extension {}", new.extension)));
                }
                Err(e) => return Err(e.into()),
            }
            let phone = sqlx::query_as(select!("WHERE id = $1"))
                .bind(&new.id)
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(phone)
        })
    }

    pub async fn phone(&self, id: &str) -> Result<Option<Phone>> {
        on_both!(
            self,
            pool,
            Ok(sqlx::query_as(select!("WHERE id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await?)
        )
    }

    /// The phone whose URL token hashes to `token_hash`.
    pub async fn phone_by_token_hash(&self, token_hash: &str) -> Result<Option<Phone>> {
        on_both!(
            self,
            pool,
            Ok(sqlx::query_as(select!("WHERE token_hash = $1"))
                .bind(token_hash)
                .fetch_optional(pool)
                .await?)
        )
    }

    pub async fn list_phones(&self) -> Result<Vec<Phone>> {
        on_both!(
            self,
            pool,
            Ok(sqlx::query_as(select!("ORDER BY extension, id"))
                .fetch_all(pool)
                .await?)
        )
    }

    pub async fn remove_phone(&self, id: &str) -> Result<()> {
        on_both!(self, pool, {
            let done = sqlx::query("DELETE FROM phones WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!("phone {id}")));
            }
            Ok(())
        })
    }

    /// `phone reprovision`: a new token and window; the binding is cleared (the next successful fetch binds
    /// again, e.g. a replacement phone) and this window's credentials are still to be served.
    pub async fn reopen_phone_window(
        &self,
        id: &str,
        token_hash: &str,
        window_expires_at: i64,
    ) -> Result<Phone> {
        let now = now_ms();
        on_both!(self, pool, {
            let done = sqlx::query(
                    "UPDATE phones SET token_hash = $2, window_opened_at = $3, window_expires_at = $4, \
                     credentials_at = NULL, bound_at = NULL, bound_mac = NULL, bound_cert_sha256 = NULL, \
                     bound_source = NULL, bound_user_agent = NULL, updated_at = $3 WHERE id = $1",
                )
                .bind(id)
                .bind(token_hash)
                .bind(now)
                .bind(window_expires_at)
                .execute(pool)
                .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!("phone {id}")));
            }
            self.phone(id)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("phone {id}")))
        })
    }

    /// Serves this window's credentials, once: in one transaction, marks them served (and binds the phone if
    /// `binding` is given and it is unbound) and replaces the extension's password hashes — from this commit
    /// the old password stops working and the one in the response works. False (and nothing changed) when they
    /// were served already, the window has closed, or the phone is bound to another device in the meantime.
    pub async fn issue_phone_credentials(
        &self,
        id: &str,
        binding: Option<&PhoneBinding>,
        hashes: &IssuedHashes,
        at: i64,
    ) -> Result<bool> {
        on_both!(self, pool, {
            let mut tx = super::begin_write(pool).await?;
            let marked = sqlx::query(
                "UPDATE phones SET credentials_at = $2, last_fetch_at = $2, updated_at = $2 \
                     WHERE id = $1 AND credentials_at IS NULL AND window_expires_at > $2",
            )
            .bind(id)
            .bind(at)
            .execute(&mut *tx)
            .await?;
            if marked.rows_affected() == 0 {
                tx.rollback().await?;
                return Ok(false);
            }
            if let Some(b) = binding {
                let bound = sqlx::query(
                        "UPDATE phones SET bound_at = $2, bound_mac = $3, bound_cert_sha256 = $4, \
                         bound_source = $5, bound_user_agent = $6 WHERE id = $1 AND bound_at IS NULL",
                    )
                    .bind(id)
                    .bind(at)
                    .bind(&b.mac)
                    .bind(&b.cert_sha256)
                    .bind(&b.source)
                    .bind(&b.user_agent)
                    .execute(&mut *tx)
                    .await?;
                if bound.rows_affected() == 0 {
                    tx.rollback().await?;
                    return Ok(false);
                }
            }
            let ext: Option<String> =
                sqlx::query_scalar("SELECT extension FROM phones WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some(ext) = ext else {
                tx.rollback().await?;
                return Ok(false);
            };
            sqlx::query(
                    "UPDATE extensions SET ha1_md5 = $2, ha1_sha256 = $3, realm = $4, password_changed_at = $5, \
                     updated_at = $5 WHERE number = $1",
                )
                .bind(&ext)
                .bind(&hashes.ha1_md5)
                .bind(&hashes.ha1_sha256)
                .bind(&hashes.realm)
                .bind(at)
                .execute(&mut *tx)
                .await?;
            bump_version(&mut tx, at).await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Notes a served fetch that changed nothing else.
    pub async fn note_phone_fetch(&self, id: &str, at: i64) -> Result<()> {
        on_both!(self, pool, {
            sqlx::query("UPDATE phones SET last_fetch_at = $2 WHERE id = $1")
                .bind(id)
                .bind(at)
                .execute(pool)
                .await?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ExtensionNew;

    async fn db_with(ext: &str) -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open_in(dir.path()).await.unwrap();
        db.create_extension(ExtensionNew {
            number: ext.into(),
            auth_id: format!("auth{ext}x"),
            ha1_md5: "0".repeat(32),
            ha1_sha256: "0".repeat(64),
            realm: "pbx.test".into(),
            ..ExtensionNew::default()
        })
        .await
        .unwrap();
        (dir, db)
    }

    fn new(id: &str, ext: &str, token_hash: &str) -> PhoneNew {
        PhoneNew {
            id: id.into(),
            mac: Some(id.into()),
            model: "yealink".into(),
            extension: ext.into(),
            token_hash: token_hash.into(),
            admin_password: "adminpw".into(),
            window_expires_at: now_ms() + 60_000,
        }
    }

    fn hashes() -> IssuedHashes {
        IssuedHashes {
            ha1_md5: "a".repeat(32),
            ha1_sha256: "b".repeat(64),
            realm: "pbx.test".into(),
        }
    }

    fn binding() -> PhoneBinding {
        PhoneBinding {
            mac: Some("001565aabbcc".into()),
            cert_sha256: None,
            source: "10.0.0.5".into(),
            user_agent: Some("Yealink".into()),
        }
    }

    #[tokio::test]
    async fn one_phone_per_mac_and_per_extension() {
        let (_d, db) = db_with("100").await;
        db.create_phone(new("001565aabbcc", "100", "h1"))
            .await
            .unwrap();
        let e = db
            .create_phone(new("001565aabbcc", "100", "h2"))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, StoreError::Conflict(m) if m.contains("already exists")),
            "{e}"
        );
        let e = db
            .create_phone(new("001565aabbcd", "100", "h3"))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, StoreError::Conflict(m) if m.contains("extension 100")),
            "{e}"
        );
        let e = db
            .create_phone(new("001565aabbce", "999", "h4"))
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::NotFound(_)), "{e}");
    }

    #[tokio::test]
    async fn credentials_are_issued_once_and_replace_the_extension_hashes() {
        let (_d, db) = db_with("100").await;
        db.create_phone(new("001565aabbcc", "100", "h1"))
            .await
            .unwrap();
        let now = now_ms();
        assert!(
            db.issue_phone_credentials("001565aabbcc", Some(&binding()), &hashes(), now)
                .await
                .unwrap()
        );
        // A second issue in the same window (a race, or a second device) changes nothing.
        assert!(
            !db.issue_phone_credentials("001565aabbcc", Some(&binding()), &hashes(), now)
                .await
                .unwrap()
        );
        let ext = db.get_extension("100").await.unwrap();
        assert_eq!(ext.ha1_md5, "a".repeat(32));
        let p = db.phone_by_token_hash("h1").await.unwrap().unwrap();
        assert_eq!(p.bound_source.as_deref(), Some("10.0.0.5"));
        assert!(p.credentials_at.is_some());
        // reprovision: a new token, the binding cleared, credentials to be served again.
        let p = db
            .reopen_phone_window("001565aabbcc", "h9", now_ms() + 60_000)
            .await
            .unwrap();
        assert!(p.bound_at.is_none() && p.credentials_at.is_none());
        assert!(db.phone_by_token_hash("h1").await.unwrap().is_none());
        assert!(
            db.issue_phone_credentials("001565aabbcc", Some(&binding()), &hashes(), now_ms())
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn a_closed_window_issues_nothing() {
        let (_d, db) = db_with("100").await;
        let mut n = new("001565aabbcc", "100", "h1");
        n.window_expires_at = now_ms() - 1;
        db.create_phone(n).await.unwrap();
        assert!(
            !db.issue_phone_credentials("001565aabbcc", Some(&binding()), &hashes(), now_ms())
                .await
                .unwrap()
        );
        assert_eq!(
            db.get_extension("100").await.unwrap().ha1_md5,
            "0".repeat(32)
        );
    }
}
