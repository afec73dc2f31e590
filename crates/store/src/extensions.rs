//! Extensions: number, auth ID and password hashes (HA1 only, never the password), and per-extension settings.

use super::settings::parse_digest_algorithms;
use super::{Db, Result, StoreError, bump_version, now_ms};

/// `SELECT <all columns> FROM extensions <rest>` as a `&'static str`.
macro_rules! select {
    ($rest:literal) => {
        concat!(
            "SELECT number, display_name, enabled, auth_id, ha1_md5, ha1_sha256, realm, digest_algorithms, email, \
             created_at, updated_at, password_changed_at, require_tls, srtp, internal_only, pin_protect, lan_only, \
             block_remote_ws, office_hours_only, forward_always, forward_busy, forward_no_answer FROM extensions ",
            $rest
        )
    };
}

const MAX_AUTH_ID_LEN: usize = 64;
const MAX_DISPLAY_NAME_LEN: usize = 64;
const MAX_EMAIL_LEN: usize = 254;

/// A stored extension. Times are unix milliseconds. `Debug` leaves the HA1s out.
#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Extension {
    pub number: String,
    pub display_name: Option<String>,
    pub enabled: bool,
    pub auth_id: String,
    /// MD5(auth_id ":" realm ":" password), lower-case hex.
    pub ha1_md5: String,
    /// SHA-256(auth_id ":" realm ":" password), lower-case hex.
    pub ha1_sha256: String,
    /// The realm the HA1s were computed for.
    pub realm: String,
    /// Per-extension override of the `digest_algorithms` setting (canonical, e.g. "SHA-256,MD5").
    pub digest_algorithms: Option<String>,
    pub email: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub password_changed_at: i64,
    /// REGISTER and calls of this extension are accepted only over TLS.
    pub require_tls: bool,
    /// SDES-SRTP policy for this extension's call legs.
    #[sqlx(try_from = "String")]
    pub srtp: SrtpMode,
    /// No external calls in or out, only other extensions.
    pub internal_only: bool,
    /// Outbound external calls need a PIN unlock first (unlock prefix + voicemail PIN).
    pub pin_protect: bool,
    /// REGISTER only from the `local_networks` setting.
    pub lan_only: bool,
    /// SIP over WebSocket refused from outside the `local_networks` setting.
    pub block_remote_ws: bool,
    /// No outbound external calls outside office hours.
    pub office_hours_only: bool,
    /// Call forwards: the number for each case, `None` when off (see [`pbx::calls::Forwarding`]).
    pub forward_always: Option<String>,
    pub forward_busy: Option<String>,
    pub forward_no_answer: Option<String>,
}

impl Extension {
    /// This extension's call forwards.
    pub fn forwarding(&self) -> pbx::calls::Forwarding {
        pbx::calls::Forwarding {
            always: self.forward_always.clone(),
            busy: self.forward_busy.clone(),
            no_answer: self.forward_no_answer.clone(),
        }
    }

    /// This extension's call restrictions for [`pbx::policy::route`]. `unlocked_until` is run-time state (a PIN
    /// unlock) the caller fills in; it is `None` here.
    pub fn caller_restrictions(&self) -> pbx::policy::CallerRestrictions {
        pbx::policy::CallerRestrictions {
            number: self.number.clone(),
            internal_only: self.internal_only,
            pin_protect: self.pin_protect,
            unlocked_until: None,
            office_hours_only: self.office_hours_only,
        }
    }
}

impl std::fmt::Debug for Extension {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Extension")
            .field("number", &self.number)
            .field("display_name", &self.display_name)
            .field("enabled", &self.enabled)
            .field("auth_id", &self.auth_id)
            .field("realm", &self.realm)
            .field("digest_algorithms", &self.digest_algorithms)
            .field("email", &self.email)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .field("password_changed_at", &self.password_changed_at)
            .field("require_tls", &self.require_tls)
            .field("srtp", &self.srtp)
            .field("internal_only", &self.internal_only)
            .field("pin_protect", &self.pin_protect)
            .field("lan_only", &self.lan_only)
            .field("block_remote_ws", &self.block_remote_ws)
            .field("office_hours_only", &self.office_hours_only)
            .field("forward_always", &self.forward_always)
            .field("forward_busy", &self.forward_busy)
            .field("forward_no_answer", &self.forward_no_answer)
            .finish_non_exhaustive()
    }
}

/// A new extension. The caller computes the HA1s (see `auth::credentials`); the store checks their shape.
#[derive(Clone, Default)]
pub struct ExtensionNew {
    pub number: String,
    pub display_name: Option<String>,
    pub auth_id: String,
    pub ha1_md5: String,
    pub ha1_sha256: String,
    pub realm: String,
    pub email: Option<String>,
    pub digest_algorithms: Option<String>,
    /// Accept REGISTER and calls of this extension only over TLS (default: no).
    pub require_tls: bool,
    /// SRTP policy (default: [`SrtpMode::Enabled`]).
    pub srtp: SrtpMode,
    /// Call restrictions (hardening step 3), all off by default; see [`Extension`].
    pub internal_only: bool,
    pub pin_protect: bool,
    pub lan_only: bool,
    pub block_remote_ws: bool,
    pub office_hours_only: bool,
    /// The voicemail PIN's hash (see `voicemail::pin::hash`); the mailbox is created with the extension, in the
    /// same transaction. `None`: a mailbox without a PIN, which cannot be opened until one is set.
    pub voicemail_pin_hash: Option<String>,
}

/// Changes to an extension: `None` leaves a field alone; `Some(None)` clears an optional field.
#[derive(Debug, Clone, Default)]
pub struct ExtensionPatch {
    pub display_name: Option<Option<String>>,
    pub enabled: Option<bool>,
    pub email: Option<Option<String>>,
    pub digest_algorithms: Option<Option<String>>,
    pub require_tls: Option<bool>,
    /// "disabled", "enabled" or "enforced" (see [`SrtpMode`]); anything else is [`StoreError::Invalid`].
    pub srtp: Option<String>,
    pub internal_only: Option<bool>,
    pub pin_protect: Option<bool>,
    pub lan_only: Option<bool>,
    pub block_remote_ws: Option<bool>,
    pub office_hours_only: Option<bool>,
    /// Call forwards: `Some(None)` (or an empty number) turns one off.
    pub forward_always: Option<Option<String>>,
    pub forward_busy: Option<Option<String>>,
    pub forward_no_answer: Option<Option<String>>,
}

impl ExtensionPatch {
    pub fn is_empty(&self) -> bool {
        self.display_name.is_none()
            && self.enabled.is_none()
            && self.email.is_none()
            && self.digest_algorithms.is_none()
            && self.require_tls.is_none()
            && self.srtp.is_none()
            && self.internal_only.is_none()
            && self.pin_protect.is_none()
            && self.lan_only.is_none()
            && self.block_remote_ws.is_none()
            && self.office_hours_only.is_none()
            && self.forward_always.is_none()
            && self.forward_busy.is_none()
            && self.forward_no_answer.is_none()
    }
}

pub use pbx::model::SrtpMode;

/// An extension number is 2 to 10 ASCII digits.
pub fn validate_number(number: &str) -> Result<()> {
    if (2..=10).contains(&number.len()) && number.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "extension number must be 2 to 10 digits, got '{}'",
            number.escape_debug()
        )))
    }
}

/// An auth ID is the digest username: 1 to 64 printable ASCII characters without spaces, quotes, backslashes
/// or ':' (the HA1 separator), and not the extension number.
pub fn validate_auth_id(auth_id: &str, number: &str) -> Result<()> {
    let ok = !auth_id.is_empty()
        && auth_id.len() <= MAX_AUTH_ID_LEN
        && auth_id
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'\\' | b':'));
    if !ok {
        return Err(StoreError::Invalid(format!(
            "auth ID must be 1 to {MAX_AUTH_ID_LEN} printable ASCII characters without spaces, quotes, '\\' or ':', got '{}'",
            auth_id.escape_debug()
        )));
    }
    if auth_id == number {
        return Err(StoreError::Invalid(format!(
            "auth ID must differ from the extension number {number} (scanners try the number first)"
        )));
    }
    Ok(())
}

fn validate_hex(what: &str, value: &str, len: usize) -> Result<()> {
    if value.len() == len
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "{what} must be {len} lower-case hex digits"
        )))
    }
}

fn validate_display_name(name: &str) -> Result<()> {
    if name.chars().count() <= MAX_DISPLAY_NAME_LEN
        && !name
            .chars()
            .any(|c| c.is_control() || c == '"' || c == '\\')
    {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "display name must be at most {MAX_DISPLAY_NAME_LEN} characters, without quotes, '\\' or control characters"
        )))
    }
}

fn validate_email(email: &str) -> Result<()> {
    let ok = email.len() <= MAX_EMAIL_LEN
        && email
            .split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty())
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "invalid email address '{}': expected name@example.com",
            email.escape_debug()
        )))
    }
}

/// Canonicalises a per-extension algorithm list ("sha-256, md5" → "SHA-256,MD5").
fn normalize_algorithms(value: &str) -> Result<String> {
    Ok(parse_digest_algorithms(value)?.join(","))
}

/// Empty optional strings mean "none".
fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

/// An [`ExtensionNew`] that passed validation, with its optional fields normalised ("" means none).
struct Checked {
    new: ExtensionNew,
    display_name: Option<String>,
    email: Option<String>,
    algorithms: Option<String>,
}

impl Checked {
    fn new(new: ExtensionNew) -> Result<Checked> {
        validate_number(&new.number)?;
        validate_auth_id(&new.auth_id, &new.number)?;
        validate_hex("HA1 (MD5)", &new.ha1_md5, 32)?;
        validate_hex("HA1 (SHA-256)", &new.ha1_sha256, 64)?;
        let display_name = non_empty(new.display_name.clone());
        if let Some(n) = &display_name {
            validate_display_name(n)?;
        }
        let email = non_empty(new.email.clone());
        if let Some(e) = &email {
            validate_email(e)?;
        }
        let algorithms = non_empty(new.digest_algorithms.clone())
            .map(|a| normalize_algorithms(&a))
            .transpose()?;
        Ok(Checked {
            new,
            display_name,
            email,
            algorithms,
        })
    }
}

/// The connection-typed helpers of extension writes, instantiated as `sqlite_helpers` and `pg_helpers` (see
/// `on_both!`): the same SQL for both back ends.
macro_rules! extension_helpers {
    ($conn:ty, $helpers:ident) => {
    /// [`StoreError::Conflict`] naming the owner when another extension uses `auth_id`.
    pub(super) async fn auth_id_free(tx: &mut $conn, auth_id: &str) -> crate::Result<()> {
        let owner: Option<String> =
            sqlx::query_scalar("SELECT number FROM extensions WHERE auth_id = $1")
                .bind(auth_id)
                .fetch_optional(&mut *tx)
                .await?;
        match owner {
            Some(owner) => Err(StoreError::Conflict(format!(
                "auth ID '{auth_id}' is already used by extension {owner}"
            ))),
            None => Ok(()),
        }
    }

    /// Inserts a checked extension and its voicemail box (the caller checked the number and auth ID are free; the
    /// unique indexes still guard a race).
    pub(super) async fn insert(tx: &mut $conn, checked: &Checked, now: i64) -> crate::Result<()> {
        let new = &checked.new;
        let inserted = sqlx::query(
            "INSERT INTO extensions (number, display_name, enabled, auth_id, ha1_md5, ha1_sha256, realm, \
             digest_algorithms, email, created_at, updated_at, password_changed_at, require_tls, srtp, internal_only, \
             pin_protect, lan_only, block_remote_ws, office_hours_only) \
             VALUES ($1, $2, TRUE, $3, $4, $5, $6, $7, $8, $9, $9, $9, $10, $11, $12, $13, $14, $15, $16)",
        )
        .bind(&new.number)
        .bind(&checked.display_name)
        .bind(&new.auth_id)
        .bind(&new.ha1_md5)
        .bind(&new.ha1_sha256)
        .bind(&new.realm)
        .bind(&checked.algorithms)
        .bind(&checked.email)
        .bind(now)
        .bind(new.require_tls)
        .bind(new.srtp.as_str())
        .bind(new.internal_only)
        .bind(new.pin_protect)
        .bind(new.lan_only)
        .bind(new.block_remote_ws)
        .bind(new.office_hours_only)
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Conflict(format!(
                    "extension {} or auth ID '{}' already exists",
                    new.number, new.auth_id
                )));
            }
            Err(e) => return Err(e.into()),
        }
        crate::voicemail::$helpers::create_mailbox(tx, &new.number, new.voicemail_pin_hash.as_deref(), now).await
    }
    };
}

mod sqlite_helpers {
    use super::Checked;
    use crate::{StoreError, is_unique_violation};
    extension_helpers!(sqlx::SqliteConnection, sqlite_helpers);
}

mod pg_helpers {
    use super::Checked;
    use crate::{StoreError, is_unique_violation};
    extension_helpers!(sqlx::PgConnection, pg_helpers);
}

impl Db {
    /// Creates an extension. [`StoreError::Conflict`] if the number or the auth ID is taken.
    pub async fn create_extension(&self, new: ExtensionNew) -> Result<Extension> {
        let checked = Checked::new(new)?;
        let now = now_ms();
        on_both!(self, pool, helpers, {
            let mut tx = super::begin_write(pool).await?;
            let taken: Option<String> =
                sqlx::query_scalar("SELECT number FROM extensions WHERE number = $1")
                    .bind(&checked.new.number)
                    .fetch_optional(&mut *tx)
                    .await?;
            if taken.is_some() {
                return Err(StoreError::Conflict(format!(
                    "extension {} already exists",
                    checked.new.number
                )));
            }
            auth_id_free(&mut tx, &checked.new.auth_id).await?;
            insert(&mut tx, &checked, now).await?;
            bump_version(&mut tx, now).await?;
            tx.commit().await?;
            let Checked {
                new,
                display_name,
                email,
                algorithms,
            } = checked;
            Ok(Extension {
                number: new.number,
                display_name,
                enabled: true,
                auth_id: new.auth_id,
                ha1_md5: new.ha1_md5,
                ha1_sha256: new.ha1_sha256,
                realm: new.realm,
                digest_algorithms: algorithms,
                email,
                created_at: now,
                updated_at: now,
                password_changed_at: now,
                require_tls: new.require_tls,
                srtp: new.srtp,
                internal_only: new.internal_only,
                pin_protect: new.pin_protect,
                lan_only: new.lan_only,
                block_remote_ws: new.block_remote_ws,
                office_hours_only: new.office_hours_only,
                forward_always: None,
                forward_busy: None,
                forward_no_answer: None,
            })
        })
    }

    /// Creates many extensions in one transaction: all of them, or none. Every entry is validated as by
    /// [`Db::create_extension`] first; a number or auth ID that exists already (or appears twice in `news`) fails
    /// the whole batch with [`StoreError::Conflict`], whose message names the first few numbers ("extension …" /
    /// "extensions …") or the auth ID ("auth ID …"). Returns how many were created.
    pub async fn create_extensions(&self, news: Vec<ExtensionNew>) -> Result<usize> {
        const SHOWN: usize = 5;
        let mut rows = Vec::with_capacity(news.len());
        let mut numbers = std::collections::HashSet::with_capacity(news.len());
        let mut auth_ids = std::collections::HashSet::with_capacity(news.len());
        for new in news {
            let checked = Checked::new(new)?;
            let new = &checked.new;
            if !numbers.insert(new.number.clone()) {
                return Err(StoreError::Conflict(format!(
                    "extension {} appears twice",
                    new.number
                )));
            }
            if !auth_ids.insert(new.auth_id.clone()) {
                return Err(StoreError::Conflict(format!(
                    "auth ID '{}' appears twice",
                    new.auth_id
                )));
            }
            rows.push(checked);
        }
        if rows.is_empty() {
            return Ok(0);
        }
        let now = now_ms();
        on_both!(self, pool, helpers, {
            let mut tx = super::begin_write(pool).await?;
            let mut taken = Vec::new();
            for Checked { new, .. } in &rows {
                let found: Option<String> =
                    sqlx::query_scalar("SELECT number FROM extensions WHERE number = $1")
                        .bind(&new.number)
                        .fetch_optional(&mut *tx)
                        .await?;
                if let Some(n) = found {
                    taken.push(n);
                }
            }
            if !taken.is_empty() {
                let mut list = taken
                    .iter()
                    .take(SHOWN)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ");
                if taken.len() > SHOWN {
                    list.push_str(&format!(" and {} more", taken.len() - SHOWN));
                }
                return Err(StoreError::Conflict(if taken.len() == 1 {
                    format!("extension {list} already exists")
                } else {
                    format!("extensions {list} already exist")
                }));
            }
            for checked in &rows {
                auth_id_free(&mut tx, &checked.new.auth_id).await?;
            }
            for checked in &rows {
                insert(&mut tx, checked, now).await?;
            }
            bump_version(&mut tx, now).await?;
            tx.commit().await?;
            Ok(rows.len())
        })
    }

    /// The extension with this number, if any.
    pub async fn extension(&self, number: &str) -> Result<Option<Extension>> {
        on_both!(self, pool, {
            let sql = select!("WHERE number = $1");
            Ok(sqlx::query_as(sql)
                .bind(number)
                .fetch_optional(pool)
                .await?)
        })
    }

    /// The extension with this number, or [`StoreError::NotFound`].
    pub async fn get_extension(&self, number: &str) -> Result<Extension> {
        self.extension(number)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("extension {number}")))
    }

    /// The extension whose digest username is `auth_id`, if any (the registrar's lookup).
    pub async fn extension_by_auth_id(&self, auth_id: &str) -> Result<Option<Extension>> {
        on_both!(self, pool, {
            let sql = select!("WHERE auth_id = $1");
            Ok(sqlx::query_as(sql)
                .bind(auth_id)
                .fetch_optional(pool)
                .await?)
        })
    }

    /// Every extension, ordered by number (numerically for equal lengths: "20" < "100").
    pub async fn list_extensions(&self) -> Result<Vec<Extension>> {
        on_both!(self, pool, {
            let sql = select!("ORDER BY length(number), number");
            Ok(sqlx::query_as(sql).fetch_all(pool).await?)
        })
    }

    /// A page of extensions in the order of [`Db::list_extensions`]: those after `after` (a number), at most
    /// `limit`.
    pub async fn list_extensions_page(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Extension>> {
        let after = after.unwrap_or("");
        on_both!(self, pool, {
            let sql = select!(
                "WHERE length(number) > length($1) OR (length(number) = length($1) AND number > $1) \
                     ORDER BY length(number), number LIMIT $2"
            );
            Ok(sqlx::query_as(sql)
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?)
        })
    }

    /// Applies `patch` and returns the updated extension. [`StoreError::NotFound`] if there is no such extension.
    pub async fn update_extension(&self, number: &str, patch: ExtensionPatch) -> Result<Extension> {
        let display_name = patch.display_name.map(non_empty);
        if let Some(Some(n)) = &display_name {
            validate_display_name(n)?;
        }
        let email = patch.email.map(non_empty);
        if let Some(Some(e)) = &email {
            validate_email(e)?;
        }
        let algorithms = match patch.digest_algorithms.map(non_empty) {
            Some(Some(a)) => Some(Some(normalize_algorithms(&a)?)),
            other => other,
        };
        let srtp = patch.srtp.as_deref().map(SrtpMode::parse).transpose()?;
        let forward =
            |value: Option<Option<String>>, which: &str| -> Result<Option<Option<String>>> {
                match value.map(|v| non_empty(v.map(|t| t.trim().to_string()))) {
                    Some(Some(target)) => {
                        pbx::calls::validate_forward_target(number, &target)
                            .map_err(|e| StoreError::Invalid(format!("{which}: {e}")))?;
                        Ok(Some(Some(target)))
                    }
                    other => Ok(other),
                }
            };
        let forward_always = forward(patch.forward_always, "forward always")?;
        let forward_busy = forward(patch.forward_busy, "forward on busy")?;
        let forward_no_answer = forward(patch.forward_no_answer, "forward on no answer")?;
        let now = now_ms();
        on_both!(self, pool, {
            let mut tx = super::begin_write(pool).await?;
            // One statement per field keeps the SQL static; CASE flags say which fields to touch.
            let done = sqlx::query(
                "UPDATE extensions SET \
                     display_name = CASE WHEN $2 = 1 THEN $3 ELSE display_name END, \
                     enabled = CASE WHEN $4 = 1 THEN $5 ELSE enabled END, \
                     email = CASE WHEN $6 = 1 THEN $7 ELSE email END, \
                     digest_algorithms = CASE WHEN $8 = 1 THEN $9 ELSE digest_algorithms END, \
                     require_tls = CASE WHEN $11 = 1 THEN $12 ELSE require_tls END, \
                     srtp = CASE WHEN $13 = 1 THEN $14 ELSE srtp END, \
                     internal_only = CASE WHEN $15 = 1 THEN $16 ELSE internal_only END, \
                     pin_protect = CASE WHEN $17 = 1 THEN $18 ELSE pin_protect END, \
                     lan_only = CASE WHEN $19 = 1 THEN $20 ELSE lan_only END, \
                     block_remote_ws = CASE WHEN $21 = 1 THEN $22 ELSE block_remote_ws END, \
                     office_hours_only = CASE WHEN $23 = 1 THEN $24 ELSE office_hours_only END, \
                     forward_always = CASE WHEN $25 = 1 THEN $26 ELSE forward_always END, \
                     forward_busy = CASE WHEN $27 = 1 THEN $28 ELSE forward_busy END, \
                     forward_no_answer = CASE WHEN $29 = 1 THEN $30 ELSE forward_no_answer END, \
                     updated_at = $10 \
                     WHERE number = $1",
            )
            .bind(number)
            .bind(display_name.is_some() as i64)
            .bind(display_name.flatten())
            .bind(patch.enabled.is_some() as i64)
            .bind(patch.enabled.unwrap_or(true))
            .bind(email.is_some() as i64)
            .bind(email.flatten())
            .bind(algorithms.is_some() as i64)
            .bind(algorithms.flatten())
            .bind(now)
            .bind(patch.require_tls.is_some() as i64)
            .bind(patch.require_tls.unwrap_or(false))
            .bind(srtp.is_some() as i64)
            .bind(srtp.unwrap_or_default().as_str())
            .bind(patch.internal_only.is_some() as i64)
            .bind(patch.internal_only.unwrap_or(false))
            .bind(patch.pin_protect.is_some() as i64)
            .bind(patch.pin_protect.unwrap_or(false))
            .bind(patch.lan_only.is_some() as i64)
            .bind(patch.lan_only.unwrap_or(false))
            .bind(patch.block_remote_ws.is_some() as i64)
            .bind(patch.block_remote_ws.unwrap_or(false))
            .bind(patch.office_hours_only.is_some() as i64)
            .bind(patch.office_hours_only.unwrap_or(false))
            .bind(forward_always.is_some() as i64)
            .bind(forward_always.flatten())
            .bind(forward_busy.is_some() as i64)
            .bind(forward_busy.flatten())
            .bind(forward_no_answer.is_some() as i64)
            .bind(forward_no_answer.flatten())
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!("extension {number}")));
            }
            bump_version(&mut tx, now).await?;
            let sql = select!("WHERE number = $1");
            let ext = sqlx::query_as(sql).bind(number).fetch_one(&mut *tx).await?;
            tx.commit().await?;
            Ok(ext)
        })
    }

    /// Replaces the password hashes (a password reset) and records when; `realm` is the realm they were computed for.
    pub async fn set_password_hashes(
        &self,
        number: &str,
        ha1_md5: &str,
        ha1_sha256: &str,
        realm: &str,
    ) -> Result<()> {
        validate_hex("HA1 (MD5)", ha1_md5, 32)?;
        validate_hex("HA1 (SHA-256)", ha1_sha256, 64)?;
        let now = now_ms();
        on_both!(self, pool, {
            let mut tx = super::begin_write(pool).await?;
            let done = sqlx::query(
                    "UPDATE extensions SET ha1_md5 = $2, ha1_sha256 = $3, realm = $4, password_changed_at = $5, \
                     updated_at = $5 WHERE number = $1",
                )
                .bind(number)
                .bind(ha1_md5)
                .bind(ha1_sha256)
                .bind(realm)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!("extension {number}")));
            }
            bump_version(&mut tx, now).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Removes an extension and its registrations. [`StoreError::NotFound`] if there is no such extension.
    pub async fn remove_extension(&self, number: &str) -> Result<()> {
        let now = now_ms();
        on_both!(self, pool, {
            let mut tx = super::begin_write(pool).await?;
            let done = sqlx::query("DELETE FROM extensions WHERE number = $1")
                .bind(number)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!("extension {number}")));
            }
            bump_version(&mut tx, now).await?;
            tx.commit().await?;
            Ok(())
        })
    }
}
