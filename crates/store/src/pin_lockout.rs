//! The stored PIN lockout state per voicemail mailbox and per conference room ([`pbx::voicemail::lockout`]
//! decides; this keeps it). The server's sessions read and update it around every PIN check; `palisade ext show`
//! reads it and `palisade ext unlock-pin` / `palisade conference unlock` clear it, which the next PIN check sees
//! (no reload needed).

use super::{Db, Result};
use pbx::voicemail::lockout::{LockoutSettings, PinLockState, WrongPin};

type Row = (i64, i64, i64, i64);

fn state(row: Option<Row>) -> PinLockState {
    let Some((failures, window_start, locked_until, lockouts)) = row else {
        return PinLockState::default();
    };
    PinLockState {
        failures: u32::try_from(failures).unwrap_or(u32::MAX),
        window_start,
        locked_until,
        lockouts: u32::try_from(lockouts).unwrap_or(u32::MAX),
    }
}

/// A table of lockout states (same columns, keyed by one column): one per kind of PIN. Its statements are
/// spelled out per table, so every SQL text is a constant.
#[derive(Clone, Copy)]
pub(crate) struct LockoutTable {
    select: &'static str,
    upsert: &'static str,
    delete: &'static str,
}

macro_rules! lockout_table {
    ($table:literal, $key:literal) => {
        LockoutTable {
            select: concat!(
                "SELECT failures, window_start, locked_until, lockouts FROM ",
                $table,
                " WHERE ",
                $key,
                " = $1"
            ),
            upsert: concat!(
                "INSERT INTO ",
                $table,
                " (",
                $key,
                ", failures, window_start, locked_until, lockouts) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (",
                $key,
                ") DO UPDATE SET failures = $2, window_start = $3, locked_until = $4, lockouts = $5"
            ),
            delete: concat!("DELETE FROM ", $table, " WHERE ", $key, " = $1"),
        }
    };
}

pub(crate) const VOICEMAIL_LOCKOUTS: LockoutTable =
    lockout_table!("voicemail_pin_lockouts", "mailbox");

pub(crate) const CONFERENCE_LOCKOUTS: LockoutTable =
    lockout_table!("conference_pin_lockouts", "room");

impl Db {
    /// The PIN lockout state of `mailbox` (the default when no wrong PIN was counted).
    pub async fn pin_lock_state(&self, mailbox: &str) -> Result<PinLockState> {
        self.lock_state_in(VOICEMAIL_LOCKOUTS, mailbox).await
    }

    /// Counts a wrong PIN for `mailbox` at `now` (unix ms), atomically with concurrent calls to the same mailbox.
    pub async fn record_wrong_pin(
        &self,
        mailbox: &str,
        settings: LockoutSettings,
        now: i64,
    ) -> Result<WrongPin> {
        self.record_wrong_pin_in(VOICEMAIL_LOCKOUTS, mailbox, settings, now)
            .await
    }

    /// A correct PIN, or `palisade ext unlock-pin`: the count and any lockout are cleared. Returns whether
    /// there was anything to clear.
    pub async fn clear_pin_lockout(&self, mailbox: &str) -> Result<bool> {
        self.clear_lockout_in(VOICEMAIL_LOCKOUTS, mailbox).await
    }

    /// The lockout state of `key` in `t` (the default when no wrong PIN was counted).
    pub(crate) async fn lock_state_in(&self, t: LockoutTable, key: &str) -> Result<PinLockState> {
        on_both!(self, pool, {
            let row: Option<Row> = sqlx::query_as(t.select)
                .bind(key)
                .fetch_optional(pool)
                .await?;
            Ok(state(row))
        })
    }

    /// Counts a wrong PIN for `key` in `t` at `now` (unix ms), atomically with concurrent calls for the same key.
    pub(crate) async fn record_wrong_pin_in(
        &self,
        t: LockoutTable,
        key: &str,
        settings: LockoutSettings,
        now: i64,
    ) -> Result<WrongPin> {
        on_both!(self, pool, {
            let mut tx = super::begin_write(pool).await?;
            let row: Option<Row> = sqlx::query_as(t.select)
                .bind(key)
                .fetch_optional(&mut *tx)
                .await?;
            let mut st = state(row);
            let outcome = st.wrong_pin(settings, now);
            sqlx::query(t.upsert)
                .bind(key)
                .bind(i64::from(st.failures))
                .bind(st.window_start)
                .bind(st.locked_until)
                .bind(i64::from(st.lockouts))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(outcome)
        })
    }

    /// Clears `key`'s count and any lockout in `t`; whether there was anything to clear.
    pub(crate) async fn clear_lockout_in(&self, t: LockoutTable, key: &str) -> Result<bool> {
        on_both!(self, pool, {
            let done = sqlx::query(t.delete).bind(key).execute(pool).await?;
            Ok(done.rows_affected() > 0)
        })
    }
}
