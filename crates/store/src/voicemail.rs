//! Mailboxes and voicemail messages. The audio is in WAV files the binary writes (durably, before the row that
//! names them); rows hold the metadata and the file name relative to `DATA/voicemail/`.

use super::{Db, Result, StoreError, bump_version, now_ms};

/// Most messages one mailbox keeps; the dialogue tells a caller the mailbox is full beyond it.
pub const MAX_MESSAGES: i64 = 100;

/// A mailbox's settings. `Debug` leaves the PIN hash out.
#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Mailbox {
    pub number: String,
    pub enabled: bool,
    pub pin_hash: Option<String>,
    pub pin_changed_at: Option<i64>,
    pub greeting: Option<String>,
    pub mwi_unsolicited: bool,
}

impl std::fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailbox")
            .field("number", &self.number)
            .field("enabled", &self.enabled)
            .field("has_pin", &self.pin_hash.is_some())
            .field("greeting", &self.greeting)
            .field("mwi_unsolicited", &self.mwi_unsolicited)
            .finish()
    }
}

/// A stored message. Times are unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct VoicemailMessage {
    pub id: i64,
    pub mailbox: String,
    pub caller: String,
    pub caller_name: Option<String>,
    pub received_at: i64,
    pub duration_ms: i64,
    pub is_new: bool,
    pub file: String,
}

/// A message to record (its file is already on disk).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoicemailNew {
    pub mailbox: String,
    pub caller: String,
    pub caller_name: Option<String>,
    pub received_at: i64,
    pub duration_ms: i64,
    pub file: String,
}

/// New and old message counts of one mailbox (the PBX core's vocabulary).
pub use pbx::model::Counts;

/// Counts from the SQL sums (saturating at `u32::MAX`).
fn counts_from_sums(new: i64, old: i64) -> Counts {
    let c = |v: i64| u32::try_from(v).unwrap_or(u32::MAX);
    Counts {
        new: c(new),
        old: c(old),
    }
}

/// `SELECT <mailbox columns> FROM voicemail_boxes <rest>` as a `&'static str` (sqlx takes only static SQL).
macro_rules! select_mailbox {
    ($rest:literal) => {
        concat!(
            "SELECT number, enabled, pin_hash, pin_changed_at, greeting, mwi_unsolicited FROM voicemail_boxes ",
            $rest
        )
    };
}

/// `SELECT <message columns> FROM voicemail_messages <rest>`.
macro_rules! select_message {
    ($rest:literal) => {
        concat!(
            "SELECT id, mailbox, caller, caller_name, received_at, duration_ms, is_new, file FROM voicemail_messages ",
            $rest
        )
    };
}

/// `create_mailbox(tx, number, pin_hash, now)` for a back end's connection type: creates `number`'s mailbox inside
/// the transaction that creates the extension. Instantiated as `sqlite_helpers` and `pg_helpers` (see `on_both!`).
macro_rules! mailbox_helpers {
    ($conn:ty) => {
        pub(crate) async fn create_mailbox(
            tx: &mut $conn,
            number: &str,
            pin_hash: Option<&str>,
            now: i64,
        ) -> crate::Result<()> {
            sqlx::query(
                "INSERT INTO voicemail_boxes (number, enabled, pin_hash, pin_changed_at, updated_at) \
                 VALUES ($1, TRUE, $2, $3, $4) ON CONFLICT (number) DO UPDATE SET pin_hash = excluded.pin_hash, \
                 pin_changed_at = excluded.pin_changed_at, updated_at = excluded.updated_at",
            )
            .bind(number)
            .bind(pin_hash)
            .bind(pin_hash.map(|_| now))
            .bind(now)
            .execute(&mut *tx)
            .await?;
            Ok(())
        }
    };
}

pub(crate) mod sqlite_helpers {
    mailbox_helpers!(sqlx::SqliteConnection);
}

pub(crate) mod pg_helpers {
    mailbox_helpers!(sqlx::PgConnection);
}

impl Db {
    /// The mailbox of extension `number` (`None` if there is no such extension).
    pub async fn mailbox(&self, number: &str) -> Result<Option<Mailbox>> {
        on_both!(
            self,
            pool,
            Ok(sqlx::query_as(select_mailbox!("WHERE number = $1"))
                .bind(number)
                .fetch_optional(pool)
                .await?)
        )
    }

    pub async fn list_mailboxes(&self) -> Result<Vec<Mailbox>> {
        on_both!(
            self,
            pool,
            Ok(sqlx::query_as(select_mailbox!("ORDER BY number"))
                .fetch_all(pool)
                .await?)
        )
    }

    /// Runs one `UPDATE voicemail_boxes … WHERE number = $1` (`$2` the value, `$3` the time) and bumps the
    /// config version, so the running server picks the change up.
    async fn update_mailbox(
        &self,
        number: &str,
        sql: &'static str,
        value: Option<String>,
    ) -> Result<()> {
        let now = now_ms();
        on_both!(self, pool, {
            let mut tx = super::begin_write(pool).await?;
            let done = sqlx::query(sql)
                .bind(number)
                .bind(value)
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

    /// Turns voicemail on or off for `number` (messages already stored are kept).
    pub async fn set_voicemail_enabled(&self, number: &str, enabled: bool) -> Result<()> {
        let v = if enabled { "1" } else { "0" };
        self.update_mailbox(
            number,
            "UPDATE voicemail_boxes SET enabled = ($2 = '1'), updated_at = $3 WHERE number = $1",
            Some(v.into()),
        )
        .await
    }

    /// Unsolicited message-waiting NOTIFYs for `number`'s registered phones.
    pub async fn set_mwi_unsolicited(&self, number: &str, on: bool) -> Result<()> {
        let v = if on { "1" } else { "0" };
        self.update_mailbox(
            number,
            "UPDATE voicemail_boxes SET mwi_unsolicited = ($2 = '1'), updated_at = $3 WHERE number = $1",
            Some(v.into()),
        )
            .await
    }

    /// Stores a new PIN hash (the caller validated and hashed the PIN).
    pub async fn set_voicemail_pin_hash(&self, number: &str, hash: &str) -> Result<()> {
        if !hash.starts_with("$argon2") {
            return Err(StoreError::Invalid(
                "a PIN hash must be an Argon2 PHC string".into(),
            ));
        }
        self.update_mailbox(
            number,
            "UPDATE voicemail_boxes SET pin_hash = $2, pin_changed_at = $3, updated_at = $3 WHERE number = $1",
            Some(hash.into()),
        )
            .await
    }

    /// Records the greeting file (`None`: back to the default greeting). Returns the previous file, to delete.
    pub async fn set_greeting(&self, number: &str, file: Option<&str>) -> Result<Option<String>> {
        let old = self.mailbox(number).await?.and_then(|m| m.greeting);
        self.update_mailbox(
            number,
            "UPDATE voicemail_boxes SET greeting = $2, updated_at = $3 WHERE number = $1",
            file.map(str::to_string),
        )
        .await?;
        Ok(old)
    }

    /// Records a message whose file is on disk. Refused when the mailbox does not exist or is full.
    pub async fn add_voicemail_message(&self, new: &VoicemailNew) -> Result<i64> {
        on_both!(self, pool, {
            let mut tx = super::begin_write(pool).await?;
            let count: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM voicemail_messages WHERE mailbox = $1")
                    .bind(&new.mailbox)
                    .fetch_one(&mut *tx)
                    .await?;
            if count >= MAX_MESSAGES {
                return Err(StoreError::Invalid(format!(
                    "mailbox {} is full ({MAX_MESSAGES} messages)",
                    new.mailbox
                )));
            }
            let id: i64 = sqlx::query_scalar(
                    "INSERT INTO voicemail_messages (mailbox, caller, caller_name, received_at, duration_ms, is_new, \
                     file) VALUES ($1, $2, $3, $4, $5, TRUE, $6) RETURNING id",
                )
                .bind(&new.mailbox)
                .bind(&new.caller)
                .bind(&new.caller_name)
                .bind(new.received_at)
                .bind(new.duration_ms)
                .bind(&new.file)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| match &e {
                    sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
                        StoreError::NotFound(format!("mailbox {}", new.mailbox))
                    }
                    _ => e.into(),
                })?;
            tx.commit().await?;
            Ok(id)
        })
    }

    /// A mailbox's messages, oldest first.
    pub async fn list_voicemail_messages(&self, mailbox: &str) -> Result<Vec<VoicemailMessage>> {
        on_both!(
            self,
            pool,
            Ok(
                sqlx::query_as(select_message!("WHERE mailbox = $1 ORDER BY id"))
                    .bind(mailbox)
                    .fetch_all(pool)
                    .await?
            )
        )
    }

    /// One message of a mailbox; [`StoreError::NotFound`] if that mailbox has no such message.
    pub async fn voicemail_message(&self, mailbox: &str, id: i64) -> Result<VoicemailMessage> {
        on_both!(
            self,
            pool,
            sqlx::query_as(select_message!("WHERE mailbox = $1 AND id = $2"))
                .bind(mailbox)
                .bind(id)
                .fetch_optional(pool)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("message {id} in mailbox {mailbox}")))
        )
    }

    /// Marks a message as heard.
    pub async fn mark_voicemail_read(&self, mailbox: &str, id: i64) -> Result<()> {
        on_both!(self, pool, {
            sqlx::query(
                "UPDATE voicemail_messages SET is_new = FALSE WHERE mailbox = $1 AND id = $2",
            )
            .bind(mailbox)
            .bind(id)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// Deletes a message and returns its file name (the caller removes the file after this commit). Bumps the
    /// config version so a running server re-reads the counts and updates message-waiting lamps.
    pub async fn delete_voicemail_message(&self, mailbox: &str, id: i64) -> Result<String> {
        let now = now_ms();
        on_both!(self, pool, {
            let mut tx = super::begin_write(pool).await?;
            let file: Option<String> = sqlx::query_scalar(
                "DELETE FROM voicemail_messages WHERE mailbox = $1 AND id = $2 RETURNING file",
            )
            .bind(mailbox)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(file) = file else {
                return Err(StoreError::NotFound(format!(
                    "message {id} in mailbox {mailbox}"
                )));
            };
            bump_version(&mut tx, now).await?;
            tx.commit().await?;
            Ok(file)
        })
    }

    /// New and old counts of every mailbox that has messages.
    pub async fn voicemail_counts(&self) -> Result<Vec<(String, Counts)>> {
        on_both!(self, pool, {
            let rows: Vec<(String, i64, i64)> = sqlx::query_as(
                    "SELECT mailbox, SUM(CASE WHEN is_new THEN 1 ELSE 0 END), SUM(CASE WHEN is_new THEN 0 ELSE 1 END) FROM voicemail_messages GROUP BY mailbox",
                )
                .fetch_all(pool)
                .await?;
            Ok(rows
                .into_iter()
                .map(|(m, new, old)| (m, counts_from_sums(new, old)))
                .collect())
        })
    }

    /// New and old counts of one mailbox (zeros when it has no messages).
    pub async fn mailbox_counts(&self, mailbox: &str) -> Result<Counts> {
        on_both!(self, pool, {
            let (new, old): (i64, i64) = sqlx::query_as(
                    "SELECT COALESCE(SUM(CASE WHEN is_new THEN 1 ELSE 0 END), 0), COALESCE(SUM(CASE WHEN is_new THEN 0 ELSE 1 END), 0) FROM voicemail_messages \
                     WHERE mailbox = $1",
                )
                .bind(mailbox)
                .fetch_one(pool)
                .await?;
            Ok(counts_from_sums(new, old))
        })
    }

    /// Every message file name (to find files no row names after a crash).
    pub async fn voicemail_files(&self) -> Result<Vec<String>> {
        on_both!(self, pool, {
            let mut files: Vec<String> = sqlx::query_scalar("SELECT file FROM voicemail_messages")
                .fetch_all(pool)
                .await?;
            let greetings: Vec<String> = sqlx::query_scalar(
                "SELECT greeting FROM voicemail_boxes WHERE greeting IS NOT NULL",
            )
            .fetch_all(pool)
            .await?;
            files.extend(greetings);
            Ok(files)
        })
    }
}
