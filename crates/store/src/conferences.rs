//! Conference rooms: their settings (number, PIN hash, size), the PIN lockout per room (the voicemail rules,
//! [`pbx::voicemail::lockout`]), who is in each room now (written by the server) and the mute/kick requests the
//! CLI leaves for the server.

use pbx::voicemail::lockout::{LockoutSettings, PinLockState, WrongPin};

use super::pin_lockout::CONFERENCE_LOCKOUTS;
use super::{Db, Result, StoreError, begin_write, bump_version, is_unique_violation, now_ms};

/// A room's settings. `Debug` leaves the PIN hash out.
#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ConferenceRow {
    pub number: String,
    pub pin_hash: Option<String>,
    pub max_participants: i64,
    pub created_at: i64,
}

impl std::fmt::Debug for ConferenceRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConferenceRow")
            .field("number", &self.number)
            .field("has_pin", &self.pin_hash.is_some())
            .field("max_participants", &self.max_participants)
            .finish()
    }
}

/// Someone in a room now.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct ParticipantRow {
    pub room: String,
    pub position: i64,
    pub caller: String,
    /// Unix milliseconds.
    pub joined_at: i64,
    pub muted: bool,
}

/// An administrator's request for a participant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConferenceAction {
    Mute,
    Unmute,
    Kick,
}

impl ConferenceAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ConferenceAction::Mute => "mute",
            ConferenceAction::Unmute => "unmute",
            ConferenceAction::Kick => "kick",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "mute" => Some(ConferenceAction::Mute),
            "unmute" => Some(ConferenceAction::Unmute),
            "kick" => Some(ConferenceAction::Kick),
            _ => None,
        }
    }
}

impl Db {
    /// Adds a room. Refused when the number is taken by a room or an extension.
    pub async fn add_conference(
        &self,
        number: &str,
        pin_hash: Option<&str>,
        max_participants: u32,
    ) -> Result<()> {
        if !(2..=50).contains(&max_participants) {
            return Err(StoreError::Invalid(format!(
                "a room holds 2 to 50 participants, not {max_participants}"
            )));
        }
        let now = now_ms();
        on_both!(self, pool, {
            let mut tx = begin_write(pool).await?;
            let ext: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM extensions WHERE number = $1")
                .bind(number)
                .fetch_one(&mut *tx)
                .await?;
            if ext > 0 {
                return Err(StoreError::Conflict(format!(
                    "{number} is an extension; a conference room needs a number of its own"
                )));
            }
            sqlx::query(
                "INSERT INTO conferences (number, pin_hash, max_participants, created_at) \
                     VALUES ($1, $2, $3, $4)",
            )
            .bind(number)
            .bind(pin_hash)
            .bind(i64::from(max_participants))
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| match e {
                sqlx::Error::Database(d) if d.is_unique_violation() => {
                    StoreError::Conflict(format!("conference {number} already exists"))
                }
                e => e.into(),
            })?;
            bump_version(&mut tx, now).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    pub async fn list_conferences(&self) -> Result<Vec<ConferenceRow>> {
        on_both!(self, pool, Ok(sqlx::query_as(
                "SELECT number, pin_hash, max_participants, created_at FROM conferences ORDER BY number",
            )
            .fetch_all(pool)
            .await?))
    }

    pub async fn conference(&self, number: &str) -> Result<ConferenceRow> {
        self.list_conferences()
            .await?
            .into_iter()
            .find(|c| c.number == number)
            .ok_or_else(|| StoreError::NotFound(format!("conference {number}")))
    }

    pub async fn remove_conference(&self, number: &str) -> Result<()> {
        let now = now_ms();
        on_both!(self, pool, {
            let mut tx = begin_write(pool).await?;
            let done = sqlx::query("DELETE FROM conferences WHERE number = $1")
                .bind(number)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!("conference {number}")));
            }
            bump_version(&mut tx, now).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// The PIN lockout of room `room` (the default when no wrong PIN was counted).
    pub async fn conference_lock_state(&self, room: &str) -> Result<PinLockState> {
        self.lock_state_in(CONFERENCE_LOCKOUTS, room).await
    }

    /// Counts a wrong PIN for `room` at `now` (unix ms), atomically.
    pub async fn record_wrong_conference_pin(
        &self,
        room: &str,
        settings: LockoutSettings,
        now: i64,
    ) -> Result<WrongPin> {
        self.record_wrong_pin_in(CONFERENCE_LOCKOUTS, room, settings, now)
            .await
    }

    /// A correct PIN or `palisade conference unlock`: the count and any lockout cleared.
    pub async fn clear_conference_lockout(&self, room: &str) -> Result<bool> {
        self.clear_lockout_in(CONFERENCE_LOCKOUTS, room).await
    }

    /// Replaces who is in `room` (the server, on every change).
    pub async fn set_conference_participants(
        &self,
        room: &str,
        participants: &[ParticipantRow],
    ) -> Result<()> {
        on_both!(self, pool, {
            let mut tx = begin_write(pool).await?;
            sqlx::query("DELETE FROM conference_participants WHERE room = $1")
                .bind(room)
                .execute(&mut *tx)
                .await?;
            for p in participants {
                let inserted = sqlx::query(
                        "INSERT INTO conference_participants (room, position, caller, joined_at, muted) \
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(room)
                    .bind(p.position)
                    .bind(&p.caller)
                    .bind(p.joined_at)
                    .bind(p.muted)
                    .execute(&mut *tx)
                    .await;
                match inserted {
                    Ok(_) => {}
                    // The room was removed meanwhile: nothing to show.
                    Err(sqlx::Error::Database(d)) if d.is_foreign_key_violation() => {}
                    Err(e) if is_unique_violation(&e) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Everyone in every room (the server clears this at start).
    pub async fn clear_conference_participants(&self) -> Result<()> {
        on_both!(self, pool, {
            sqlx::query("DELETE FROM conference_participants")
                .execute(pool)
                .await?;
            sqlx::query("DELETE FROM conference_actions")
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    pub async fn conference_participants(&self, room: &str) -> Result<Vec<ParticipantRow>> {
        self.conference(room).await?;
        on_both!(
            self,
            pool,
            Ok(sqlx::query_as(
                "SELECT room, position, caller, joined_at, muted FROM conference_participants \
                 WHERE room = $1 ORDER BY position",
            )
            .bind(room)
            .fetch_all(pool)
            .await?)
        )
    }

    /// Leaves a request for the running server; refused when nobody is at `position` in `room` now.
    pub async fn request_conference_action(
        &self,
        room: &str,
        position: i64,
        action: ConferenceAction,
    ) -> Result<()> {
        let present = self
            .conference_participants(room)
            .await?
            .iter()
            .any(|p| p.position == position);
        if !present {
            return Err(StoreError::NotFound(format!(
                "participant {position} in conference {room}"
            )));
        }
        on_both!(self, pool, {
            sqlx::query(
                    "INSERT INTO conference_actions (room, position, action, created_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(room)
                .bind(position)
                .bind(action.as_str())
                .bind(now_ms())
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// Takes the pending requests (the server applies them), oldest first.
    pub async fn take_conference_actions(&self) -> Result<Vec<(String, i64, ConferenceAction)>> {
        on_both!(self, pool, {
            let mut tx = begin_write(pool).await?;
            let rows: Vec<(i64, String, i64, String)> = sqlx::query_as(
                "SELECT id, room, position, action FROM conference_actions ORDER BY id",
            )
            .fetch_all(&mut *tx)
            .await?;
            if !rows.is_empty() {
                sqlx::query("DELETE FROM conference_actions")
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(rows
                .into_iter()
                .filter_map(|(_, room, pos, a)| ConferenceAction::parse(&a).map(|a| (room, pos, a)))
                .collect())
        })
    }
}
