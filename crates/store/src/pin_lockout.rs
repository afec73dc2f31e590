//! The stored voicemail PIN lockout state per mailbox ([`pbx::voicemail::lockout`] decides; this keeps it).
//! The server's voicemail sessions read and update it around every PIN check; `palisade ext show` reads it and
//! `palisade ext unlock-pin` clears it, which the next PIN check sees (no reload needed).

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

const SELECT: &str = "SELECT failures, window_start, locked_until, lockouts FROM voicemail_pin_lockouts \
                      WHERE mailbox = $1";

impl Db {
    /// The PIN lockout state of `mailbox` (the default when no wrong PIN was counted).
    pub async fn pin_lock_state(&self, mailbox: &str) -> Result<PinLockState> {
        on_both!(self, pool, {
            let row: Option<Row> = sqlx::query_as(SELECT)
                .bind(mailbox)
                .fetch_optional(pool)
                .await?;
            Ok(state(row))
        })
    }

    /// Counts a wrong PIN for `mailbox` at `now` (unix ms), atomically with concurrent calls to the same mailbox.
    pub async fn record_wrong_pin(
        &self,
        mailbox: &str,
        settings: LockoutSettings,
        now: i64,
    ) -> Result<WrongPin> {
        on_both!(self, pool, {
            let mut tx = super::begin_write(pool).await?;
            let row: Option<Row> = sqlx::query_as(SELECT)
                .bind(mailbox)
                .fetch_optional(&mut *tx)
                .await?;
            let mut st = state(row);
            let outcome = st.wrong_pin(settings, now);
            sqlx::query(
                    "INSERT INTO voicemail_pin_lockouts (mailbox, failures, window_start, locked_until, lockouts) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (mailbox) DO UPDATE SET failures = $2, \
                     window_start = $3, locked_until = $4, lockouts = $5",
                )
                .bind(mailbox)
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

    /// A correct PIN, or `palisade ext unlock-pin`: the count and any lockout are cleared. Returns whether
    /// there was anything to clear.
    pub async fn clear_pin_lockout(&self, mailbox: &str) -> Result<bool> {
        on_both!(self, pool, {
            let done = sqlx::query("DELETE FROM voicemail_pin_lockouts WHERE mailbox = $1")
                .bind(mailbox)
                .execute(pool)
                .await?;
            Ok(done.rows_affected() > 0)
        })
    }
}
