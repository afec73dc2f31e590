//! The admin surface's own records (issue 13): administrator accounts, API tokens, the audit log and the
//! console's bans. Secrets never reach this module in clear: passwords arrive as Argon2id PHC strings and tokens
//! as SHA-256 hashes, computed by the caller.

use guard::config::Limit;

use super::{Db, Result, StoreError, is_unique_violation, now_ms};

/// Failed console logins or API authentications from one source before the source is banned from the console.
pub const ADMIN_FAILURES_BEFORE_BAN: Limit = Limit {
    key: "admin_failures_before_ban",
    default: 5,
    min: 3,
    max: 1000,
    help: "failed console logins or API authentications from one address before it is banned from the console",
};
/// How long a console ban lasts.
pub const ADMIN_BAN_SECONDS: Limit = Limit {
    key: "admin_ban_seconds",
    default: 3600,
    min: 60,
    max: 1_000_000_000,
    help: "how long an address is banned from the console and API (seconds)",
};
/// A console session unused this long ends.
pub const ADMIN_SESSION_IDLE_MINUTES: Limit = Limit {
    key: "admin_session_idle_minutes",
    default: 15,
    min: 1,
    max: 1440,
    help: "minutes of inactivity after which a console session ends",
};
/// How long after `phone add` or `phone reprovision` a phone may fetch its credentials (issue 14).
pub const PROVISIONING_WINDOW_HOURS: Limit = Limit {
    key: "provisioning_window_hours",
    default: 24,
    min: 1,
    max: 720,
    help: "hours after `phone add` or `phone reprovision` during which the phone may fetch its credentials",
};
/// The console settings, with their defaults and limits.
pub const ADMIN_SETTINGS: [Limit; 4] = [
    ADMIN_FAILURES_BEFORE_BAN,
    ADMIN_BAN_SECONDS,
    ADMIN_SESSION_IDLE_MINUTES,
    PROVISIONING_WINDOW_HOURS,
];

/// The console setting called `key`, if it is one.
pub fn admin_limit(key: &str) -> Option<&'static Limit> {
    ADMIN_SETTINGS.iter().find(|l| l.key == key)
}

/// What an administrator may do: `Admin` changes, `Viewer` only looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(s: &str) -> Result<Role> {
        match s.trim().to_ascii_lowercase().as_str() {
            "admin" => Ok(Role::Admin),
            "viewer" => Ok(Role::Viewer),
            _ => Err(StoreError::Invalid(format!(
                "unknown role '{s}': expected admin (may change everything) or viewer (may only look)"
            ))),
        }
    }
}

/// An administrator account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminAccount {
    pub name: String,
    pub password_hash: String,
    pub role: Role,
    pub totp_secret: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

type AccountRow = (String, String, String, Option<String>, i64, i64);

fn account(row: AccountRow) -> Result<AdminAccount> {
    Ok(AdminAccount {
        role: Role::parse(&row.2)?,
        name: row.0,
        password_hash: row.1,
        totp_secret: row.3,
        created_at: row.4,
        updated_at: row.5,
    })
}

/// Checks an account name: 1 to 64 letters, digits, '.', '-', '_' or '@'.
pub fn validate_admin_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "invalid account name '{}': use 1 to 64 letters, digits, '.', '-', '_' or '@'",
            name.escape_debug()
        )))
    }
}

/// An API token's record (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ApiToken {
    pub id: i64,
    pub name: String,
    #[serde(skip)]
    pub token_hash: String,
    pub scope: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

impl ApiToken {
    /// Usable at `now`: neither revoked nor expired.
    pub fn is_live(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|t| t > now)
    }
}

/// One audit log entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct AuditEntry {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub source: String,
    pub action: String,
    pub target: Option<String>,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// An audit entry to write.
#[derive(Debug, Clone, Default)]
pub struct AuditNew {
    pub actor: String,
    pub source: String,
    pub action: String,
    pub target: Option<String>,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// Most audit entries one listing returns.
pub const MAX_AUDIT_LIST: u32 = 10_000;

type TokenRow = (
    i64,
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

fn token(r: TokenRow) -> ApiToken {
    ApiToken {
        id: r.0,
        name: r.1,
        token_hash: r.2,
        scope: r.3,
        created_at: r.4,
        expires_at: r.5,
        revoked_at: r.6,
        last_used_at: r.7,
    }
}

impl Db {
    /// Creates an account; [`StoreError::Conflict`] if the name is taken.
    pub async fn create_admin(&self, name: &str, password_hash: &str, role: Role) -> Result<()> {
        validate_admin_name(name)?;
        let now = now_ms();
        on_both!(self, pool, {
            let r = sqlx::query(
                    "INSERT INTO admin_accounts (name, password_hash, role, totp_secret, created_at, updated_at) \
                     VALUES ($1, $2, $3, NULL, $4, $4)",
                )
                .bind(name)
                .bind(password_hash)
                .bind(role.as_str())
                .bind(now)
                .execute(pool)
                .await;
            match r {
                Ok(_) => Ok(()),
                Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(format!(
                    "account {name} already exists"
                ))),
                Err(e) => Err(e.into()),
            }
        })
    }

    /// The account called `name`, if any.
    pub async fn admin(&self, name: &str) -> Result<Option<AdminAccount>> {
        on_both!(self, pool, {
            let row: Option<AccountRow> = sqlx::query_as(
                "SELECT name, password_hash, role, totp_secret, created_at, updated_at \
                     FROM admin_accounts WHERE name = $1",
            )
            .bind(name)
            .fetch_optional(pool)
            .await?;
            row.map(account).transpose()
        })
    }

    /// Every account, by name.
    pub async fn list_admins(&self) -> Result<Vec<AdminAccount>> {
        on_both!(self, pool, {
            let rows: Vec<AccountRow> = sqlx::query_as(
                "SELECT name, password_hash, role, totp_secret, created_at, updated_at \
                     FROM admin_accounts ORDER BY name",
            )
            .fetch_all(pool)
            .await?;
            rows.into_iter().map(account).collect()
        })
    }

    /// Replaces an account's password hash; NotFound if there is no such account.
    pub async fn set_admin_password(&self, name: &str, password_hash: &str) -> Result<()> {
        self.update_admin(
            name,
            "UPDATE admin_accounts SET password_hash = $2, updated_at = $3 WHERE name = $1",
            Some(password_hash),
        )
        .await
    }

    /// Sets (or with `None` clears) an account's TOTP secret.
    pub async fn set_admin_totp(&self, name: &str, secret: Option<&str>) -> Result<()> {
        self.update_admin(
            name,
            "UPDATE admin_accounts SET totp_secret = $2, updated_at = $3 WHERE name = $1",
            secret,
        )
        .await
    }

    async fn update_admin(&self, name: &str, sql: &'static str, value: Option<&str>) -> Result<()> {
        on_both!(self, pool, {
            let done = sqlx::query(sql)
                .bind(name)
                .bind(value)
                .bind(now_ms())
                .execute(pool)
                .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!("account {name}")));
            }
            Ok(())
        })
    }

    /// Removes an account. Refuses to remove the last account with the admin role, which would leave nobody able
    /// to change anything from the console.
    pub async fn remove_admin(&self, name: &str) -> Result<()> {
        on_both!(self, pool, {
            let mut tx = super::begin_write(pool).await?;
            let role: Option<String> =
                sqlx::query_scalar("SELECT role FROM admin_accounts WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some(role) = role else {
                return Err(StoreError::NotFound(format!("account {name}")));
            };
            if role == "admin" {
                let admins: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM admin_accounts WHERE role = 'admin'")
                        .fetch_one(&mut *tx)
                        .await?;
                if admins <= 1 {
                    return Err(StoreError::Conflict(format!(
                        "{name} is the last account with the admin role; add another admin first"
                    )));
                }
            }
            sqlx::query("DELETE FROM admin_accounts WHERE name = $1")
                .bind(name)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Stores a new token's hash; returns its id.
    pub async fn create_token(
        &self,
        name: &str,
        token_hash: &str,
        scope: &str,
        expires_at: Option<i64>,
    ) -> Result<i64> {
        if name.trim().is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
            return Err(StoreError::Invalid(
                "a token name must be 1 to 64 printable characters".into(),
            ));
        }
        on_both!(self, pool, {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO api_tokens (name, token_hash, scope, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5) RETURNING id",
            )
            .bind(name)
            .bind(token_hash)
            .bind(scope)
            .bind(now_ms())
            .bind(expires_at)
            .fetch_one(pool)
            .await?;
            Ok(id)
        })
    }

    /// Every token record, newest first.
    pub async fn list_tokens(&self) -> Result<Vec<ApiToken>> {
        on_both!(self, pool, {
            let rows: Vec<TokenRow> = sqlx::query_as(
                    "SELECT id, name, token_hash, scope, created_at, expires_at, revoked_at, last_used_at \
                     FROM api_tokens ORDER BY id DESC",
                )
                .fetch_all(pool)
                .await?;
            Ok(rows.into_iter().map(token).collect())
        })
    }

    /// The token whose hash is `token_hash`, if any (live or not).
    pub async fn token_by_hash(&self, token_hash: &str) -> Result<Option<ApiToken>> {
        on_both!(self, pool, {
            let row: Option<TokenRow> = sqlx::query_as(
                    "SELECT id, name, token_hash, scope, created_at, expires_at, revoked_at, last_used_at \
                     FROM api_tokens WHERE token_hash = $1",
                )
                .bind(token_hash)
                .fetch_optional(pool)
                .await?;
            Ok(row.map(token))
        })
    }

    /// Notes that a token was used (at most once a minute per token is enough for "last used").
    pub async fn touch_token(&self, id: i64, now: i64) -> Result<()> {
        on_both!(self, pool, {
            sqlx::query(
                "UPDATE api_tokens SET last_used_at = $2 \
                     WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2 - 60000)",
            )
            .bind(id)
            .bind(now)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// Revokes a token by id or name (every live token of that name); returns how many were revoked.
    pub async fn revoke_token(&self, id_or_name: &str) -> Result<u64> {
        on_both!(self, pool, {
            let id: i64 = id_or_name.parse().unwrap_or(-1);
            let done = sqlx::query(
                "UPDATE api_tokens SET revoked_at = $3 \
                     WHERE (id = $1 OR name = $2) AND revoked_at IS NULL",
            )
            .bind(id)
            .bind(id_or_name)
            .bind(now_ms())
            .execute(pool)
            .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!(
                    "unrevoked token {id_or_name}"
                )));
            }
            Ok(done.rows_affected())
        })
    }

    /// Appends an audit entry durably.
    pub async fn append_audit(&self, e: &AuditNew) -> Result<i64> {
        on_both!(self, pool, {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO audit_log (at, actor, source, action, target, before, after) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            )
            .bind(now_ms())
            .bind(&e.actor)
            .bind(&e.source)
            .bind(&e.action)
            .bind(&e.target)
            .bind(&e.before)
            .bind(&e.after)
            .fetch_one(pool)
            .await?;
            Ok(id)
        })
    }

    /// Audit entries, newest first: those with an id below `before_id` (for paging), at most `limit`.
    pub async fn list_audit(&self, before_id: Option<i64>, limit: u32) -> Result<Vec<AuditEntry>> {
        let limit = i64::from(limit.clamp(1, MAX_AUDIT_LIST));
        on_both!(
            self,
            pool,
            Ok(sqlx::query_as(
                "SELECT id, at, actor, source, action, target, before, after FROM audit_log \
                 WHERE id < $1 ORDER BY id DESC LIMIT $2",
            )
            .bind(before_id.unwrap_or(i64::MAX))
            .bind(limit)
            .fetch_all(pool)
            .await?)
        )
    }

    /// Bans `ip` from the console until `until_ms`.
    pub async fn ban_admin_source(&self, ip: &str, until_ms: i64, reason: &str) -> Result<()> {
        on_both!(self, pool, {
            sqlx::query(
                "INSERT INTO admin_bans (ip, until_ms, reason, created_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (ip) DO UPDATE SET until_ms = $2, reason = $3, created_at = $4",
            )
            .bind(ip)
            .bind(until_ms)
            .bind(reason)
            .bind(now_ms())
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// The console bans in force at `now` (ip, until, reason).
    pub async fn admin_bans(&self, now: i64) -> Result<Vec<(String, i64, String)>> {
        on_both!(
            self,
            pool,
            Ok(sqlx::query_as(
                "SELECT ip, until_ms, reason FROM admin_bans WHERE until_ms > $1 ORDER BY ip",
            )
            .bind(now)
            .fetch_all(pool)
            .await?)
        )
    }

    /// Lifts the console ban of `ip`; false if there was none.
    pub async fn remove_admin_ban(&self, ip: &str) -> Result<bool> {
        on_both!(
            self,
            pool,
            Ok(sqlx::query("DELETE FROM admin_bans WHERE ip = $1")
                .bind(ip)
                .execute(pool)
                .await?
                .rows_affected()
                > 0)
        )
    }

    /// A console setting's value in force: the stored one if valid, else its default.
    pub async fn admin_setting(&self, limit: &Limit) -> Result<u64> {
        Ok(self
            .get_setting(limit.key)
            .await?
            .and_then(|v| super::settings::validate_limit(limit, &v).ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(limit.default))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn db(dir: &tempfile::TempDir) -> Db {
        Db::open_in(dir.path()).await.unwrap()
    }

    #[tokio::test]
    async fn accounts_are_unique_and_the_last_admin_stays() {
        let dir = tempfile::tempdir().unwrap();
        let db = db(&dir).await;
        db.create_admin("ann", "$argon2id$x", Role::Admin)
            .await
            .unwrap();
        assert!(matches!(
            db.create_admin("ann", "$argon2id$y", Role::Viewer).await,
            Err(StoreError::Conflict(_))
        ));
        assert!(matches!(
            db.create_admin("bad name", "h", Role::Admin).await,
            Err(StoreError::Invalid(_))
        ));
        db.create_admin("bob", "h", Role::Viewer).await.unwrap();
        assert!(matches!(
            db.remove_admin("ann").await,
            Err(StoreError::Conflict(_))
        ));
        db.remove_admin("bob").await.unwrap();
        assert!(matches!(
            db.remove_admin("bob").await,
            Err(StoreError::NotFound(_))
        ));
        db.set_admin_totp("ann", Some("SECRET")).await.unwrap();
        let ann = db.admin("ann").await.unwrap().unwrap();
        assert_eq!(
            (ann.role, ann.totp_secret.as_deref()),
            (Role::Admin, Some("SECRET"))
        );
        assert!(matches!(
            db.set_admin_password("nobody", "h").await,
            Err(StoreError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn tokens_expire_and_are_revoked_by_id_or_name() {
        let dir = tempfile::tempdir().unwrap();
        let db = db(&dir).await;
        let now = now_ms();
        let a = db.create_token("ci", "h1", "read", None).await.unwrap();
        db.create_token("old", "h2", "write", Some(now - 1))
            .await
            .unwrap();
        assert!(db.token_by_hash("h1").await.unwrap().unwrap().is_live(now));
        assert!(!db.token_by_hash("h2").await.unwrap().unwrap().is_live(now));
        assert_eq!(db.revoke_token(&a.to_string()).await.unwrap(), 1);
        assert!(!db.token_by_hash("h1").await.unwrap().unwrap().is_live(now));
        assert_eq!(db.revoke_token("old").await.unwrap(), 1);
        assert!(matches!(
            db.revoke_token("old").await,
            Err(StoreError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn audit_pages_go_back_in_time_and_bans_expire() {
        let dir = tempfile::tempdir().unwrap();
        let db = db(&dir).await;
        for i in 0..5 {
            db.append_audit(&AuditNew {
                actor: "cli:root".into(),
                source: "local".into(),
                action: format!("a{i}"),
                ..AuditNew::default()
            })
            .await
            .unwrap();
        }
        let first = db.list_audit(None, 2).await.unwrap();
        assert_eq!(
            first.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
            ["a4", "a3"]
        );
        let next = db.list_audit(Some(first[1].id), 10).await.unwrap();
        assert_eq!(next.len(), 3);
        assert_eq!(next[0].action, "a2");
        db.ban_admin_source("192.0.2.1", 1_000, "x").await.unwrap();
        assert_eq!(db.admin_bans(999).await.unwrap().len(), 1);
        assert!(db.admin_bans(1_000).await.unwrap().is_empty());
        assert!(db.remove_admin_ban("192.0.2.1").await.unwrap());
        assert!(!db.remove_admin_ban("192.0.2.1").await.unwrap());
    }

    #[tokio::test]
    async fn console_settings_are_checked_and_default() {
        let dir = tempfile::tempdir().unwrap();
        let db = db(&dir).await;
        assert_eq!(
            db.admin_setting(&ADMIN_FAILURES_BEFORE_BAN).await.unwrap(),
            5
        );
        assert!(super::super::settings::normalize("admin_failures_before_ban", "2").is_err());
        db.set_setting("admin_failures_before_ban", "7")
            .await
            .unwrap();
        assert_eq!(
            db.admin_setting(&ADMIN_FAILURES_BEFORE_BAN).await.unwrap(),
            7
        );
    }
}
