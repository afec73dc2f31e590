//! Voicemail PIN failures and lockouts, and the PIN unlock (lifting an extension's PIN protection).

use super::*;

impl PbxCore {
    /// A wrong voicemail PIN from `origin` for `mailbox` (`locked_out`: the last allowed try), as an
    /// authentication failure event.
    pub fn voicemail_pin_failure(
        &mut self,
        mailbox: &str,
        origin: Origin,
        locked_out: bool,
        now: SystemTime,
    ) {
        let (reason, detail) = if locked_out {
            (
                AuthReason::VoicemailLockedOut,
                format!("mailbox {mailbox}: 3 wrong PINs, call ended"),
            )
        } else {
            (AuthReason::VoicemailPinWrong, format!("mailbox {mailbox}"))
        };
        self.event(
            SecurityEventKind::AuthFailure,
            reason,
            origin,
            Some(mailbox),
            Some(detail),
            now,
        );
        self.signal = AuthSignal::None;
    }

    /// `mailbox`'s PIN entry is locked until `until` (unix ms) after too many wrong PINs across calls: `new`
    /// when a wrong PIN from `origin` just locked it (the `lockouts`-th lockout since the last correct PIN), else
    /// a PIN entry from `origin` refused because of it. Both are authentication-failure events.
    pub fn voicemail_pin_lockout(
        &mut self,
        mailbox: &str,
        origin: Origin,
        until: i64,
        lockouts: u32,
        new: bool,
        now: SystemTime,
    ) {
        let until_secs = until.max(0) / 1000;
        let (reason, detail) = if new {
            (
                AuthReason::VoicemailPinLockout,
                format!(
                    "mailbox {mailbox}: too many wrong PINs, PIN entry locked until unix time {until_secs}                      (lockout {lockouts}; lift it with `palisade ext unlock-pin {mailbox}`)"
                ),
            )
        } else {
            (
                AuthReason::VoicemailMailboxLocked,
                format!(
                    "mailbox {mailbox}: PIN entry refused, locked until unix time {until_secs}"
                ),
            )
        };
        self.event(
            SecurityEventKind::AuthFailure,
            reason,
            origin,
            Some(mailbox),
            Some(detail),
            now,
        );
        self.signal = AuthSignal::None;
    }

    /// Records that `number` lifted its PIN protection (an audit trail of when external calls were unlocked).
    pub fn pin_unlock_event(
        &mut self,
        number: &str,
        origin: Origin,
        until: SystemTime,
        now: SystemTime,
    ) {
        self.event(
            SecurityEventKind::AuthSuccess,
            AuthReason::PinUnlock,
            origin,
            Some(number),
            Some(format!(
                "external calls allowed until unix time {}",
                unix_secs(until)
            )),
            now,
        );
        self.signal = AuthSignal::None;
    }

    /// Lifts `number`'s PIN protection for the configured time; returns until when.
    pub fn unlock_pin(&mut self, number: &str, now: SystemTime) -> SystemTime {
        self.restrictions.unlock(number, now)
    }
}
