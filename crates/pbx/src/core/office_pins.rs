//! Security events of conference-room PINs: the voicemail PIN rules, applied to a room (each is an
//! authentication failure of the caller's source, principle 6: one decision, one event).

use std::time::SystemTime;

use crate::model::{AuthReason, SecurityEventKind};
use crate::registrar::Origin;

use super::PbxCore;

/// What happened at a room's door.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConferencePinOutcome {
    /// A wrong PIN; `call_ended` when it was the last one allowed in the call.
    Wrong { call_ended: bool },
    /// This wrong PIN locked the room's PIN entry until `until` (unix ms), the `lockouts`-th time.
    LockedNow { until: i64, lockouts: u32 },
    /// A PIN offered while the room is locked (until `until`, unix ms).
    Refused { until: i64 },
}

impl PbxCore {
    /// Whether the office is open now (office hours and holidays of the call policy): attendants pick their
    /// after-hours menu from it.
    pub fn office_open(&self, now: SystemTime) -> bool {
        self.restrictions.office_open(now)
    }

    /// Records the event of a conference PIN decision at `room` from `origin`.
    pub fn conference_pin_event(
        &mut self,
        room: &str,
        origin: Origin,
        outcome: ConferencePinOutcome,
        now: SystemTime,
    ) {
        let (reason, detail) = match outcome {
            ConferencePinOutcome::Wrong { call_ended: false } => {
                (AuthReason::ConferencePinWrong, format!("conference {room}"))
            }
            ConferencePinOutcome::Wrong { call_ended: true } => (
                AuthReason::ConferenceLockedOut,
                format!("conference {room}: 3 wrong PINs, call ended"),
            ),
            ConferencePinOutcome::LockedNow { until, lockouts } => (
                AuthReason::ConferencePinLockout,
                format!(
                    "conference {room}: too many wrong PINs, PIN entry locked until unix time {} (lockout \
                     {lockouts}; lift it with `palisade conference unlock {room}`)",
                    until.max(0) / 1000
                ),
            ),
            ConferencePinOutcome::Refused { until } => (
                AuthReason::ConferenceLocked,
                format!(
                    "conference {room}: PIN entry refused, locked until unix time {}",
                    until.max(0) / 1000
                ),
            ),
        };
        self.event(
            SecurityEventKind::AuthFailure,
            reason,
            origin,
            Some(room),
            Some(detail),
            now,
        );
    }
}
