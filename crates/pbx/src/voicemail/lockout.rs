//! The per-mailbox voicemail PIN lockout (issue 12 item 1): wrong PINs counted across calls and sources, so that
//! holding one extension's SIP password and calling 999 (or 777) again and again cannot guess a 4-digit PIN.
//!
//! Pure: the state is what the store keeps per mailbox, times (unix milliseconds) are passed in.
//! - Every wrong PIN counts, whichever call, source or access number (999 and 777 alike) it came through, and no
//!   successful SIP authentication resets it; only a correct PIN does (or `palisade ext unlock-pin`).
//! - `failures_before_lockout` wrong PINs within [`WINDOW_MS`] (24 h from the first one counted) lock the
//!   mailbox's PIN entry for `lockout` — doubled for each further lockout, at most [`MAX_LOCKOUT_MS`] (24 h).
//! - While locked, no PIN is even checked: the right PIN is refused as well, so guessing gains nothing.

/// Wrong PINs are counted within this long after the first one (24 h).
pub const WINDOW_MS: i64 = 24 * 3600 * 1000;
/// The longest lockout (24 h), however many lockouts came before.
pub const MAX_LOCKOUT_MS: i64 = 24 * 3600 * 1000;
pub const DEFAULT_FAILURES_BEFORE_LOCKOUT: u32 = 10;
pub const MIN_FAILURES_BEFORE_LOCKOUT: u32 = 3;
pub const MAX_FAILURES_BEFORE_LOCKOUT: u32 = 100;
pub const DEFAULT_LOCKOUT_SECONDS: u64 = 3600;
pub const MIN_LOCKOUT_SECONDS: u64 = 60;
pub const MAX_LOCKOUT_SECONDS: u64 = 86_400;

/// The settings `pin_failures_before_lockout` and `pin_lockout_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutSettings {
    pub failures_before_lockout: u32,
    /// The first lockout, in seconds.
    pub lockout_seconds: u64,
}

impl Default for LockoutSettings {
    fn default() -> Self {
        LockoutSettings {
            failures_before_lockout: DEFAULT_FAILURES_BEFORE_LOCKOUT,
            lockout_seconds: DEFAULT_LOCKOUT_SECONDS,
        }
    }
}

/// What the store keeps per mailbox. Times are unix milliseconds; 0 means "none".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct PinLockState {
    /// Wrong PINs counted in the current window.
    pub failures: u32,
    /// When the first counted wrong PIN came (the window's start).
    pub window_start: i64,
    /// PIN entry is refused until then.
    pub locked_until: i64,
    /// Lockouts since the last correct PIN or unlock (each doubles the next).
    pub lockouts: u32,
}

/// The outcome of a wrong PIN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WrongPin {
    /// Counted; `failures` so far in the window.
    Counted { failures: u32 },
    /// This one locked the mailbox until then (the `lockouts`-th lockout).
    LockedOut { until: i64, lockouts: u32 },
}

impl PinLockState {
    /// Whether PIN entry is refused at `now`, and until when.
    pub fn locked(&self, now: i64) -> Option<i64> {
        (self.locked_until > now).then_some(self.locked_until)
    }

    /// Records a wrong PIN at `now`. A wrong PIN while locked is not expected (the PIN is not checked then) and
    /// changes nothing.
    pub fn wrong_pin(&mut self, settings: LockoutSettings, now: i64) -> WrongPin {
        if let Some(until) = self.locked(now) {
            return WrongPin::LockedOut {
                until,
                lockouts: self.lockouts,
            };
        }
        if self.failures == 0 || now.saturating_sub(self.window_start) >= WINDOW_MS {
            self.failures = 0;
            self.window_start = now;
        }
        self.failures = self.failures.saturating_add(1);
        let limit = settings
            .failures_before_lockout
            .max(MIN_FAILURES_BEFORE_LOCKOUT);
        if self.failures < limit {
            return WrongPin::Counted {
                failures: self.failures,
            };
        }
        let base_ms = i64::try_from(settings.lockout_seconds.saturating_mul(1000))
            .unwrap_or(MAX_LOCKOUT_MS)
            .min(MAX_LOCKOUT_MS);
        let doubled = base_ms.saturating_mul(1i64 << self.lockouts.min(20));
        self.lockouts = self.lockouts.saturating_add(1);
        self.locked_until = now.saturating_add(doubled.min(MAX_LOCKOUT_MS));
        // A new count starts after the lockout.
        self.failures = 0;
        self.window_start = 0;
        WrongPin::LockedOut {
            until: self.locked_until,
            lockouts: self.lockouts,
        }
    }

    /// A correct PIN: the count, the lockout and its doubling start over.
    pub fn right_pin(&mut self) {
        *self = PinLockState::default();
    }

    /// Wrong PINs that still count at `now` (for `palisade ext show`).
    pub fn failures_at(&self, now: i64) -> u32 {
        if self.failures > 0 && now.saturating_sub(self.window_start) < WINDOW_MS {
            self.failures
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_800_000_000_000;
    const MIN: i64 = 60_000;
    const HOUR: i64 = 60 * MIN;

    fn settings(n: u32, secs: u64) -> LockoutSettings {
        LockoutSettings {
            failures_before_lockout: n,
            lockout_seconds: secs,
        }
    }

    #[test]
    fn the_nth_wrong_pin_within_a_day_locks_for_the_lockout_time() {
        let s = LockoutSettings::default();
        let mut st = PinLockState::default();
        for i in 1..10 {
            assert_eq!(
                st.wrong_pin(s, T0 + i64::from(i) * HOUR),
                WrongPin::Counted { failures: i }
            );
            assert_eq!(st.locked(T0 + i64::from(i) * HOUR), None);
        }
        let now = T0 + 10 * HOUR;
        assert_eq!(
            st.wrong_pin(s, now),
            WrongPin::LockedOut {
                until: now + HOUR,
                lockouts: 1
            }
        );
        assert_eq!(st.locked(now + HOUR - 1), Some(now + HOUR));
        assert_eq!(st.locked(now + HOUR), None);
    }

    #[test]
    fn wrong_pins_spread_over_more_than_a_day_start_a_new_count() {
        let s = settings(3, 3600);
        let mut st = PinLockState::default();
        st.wrong_pin(s, T0);
        st.wrong_pin(s, T0 + 23 * HOUR);
        assert_eq!(st.failures_at(T0 + 23 * HOUR), 2);
        // 24 h after the first: a new window, this is its first failure
        assert_eq!(
            st.wrong_pin(s, T0 + 24 * HOUR),
            WrongPin::Counted { failures: 1 }
        );
        assert_eq!(st.failures_at(T0 + 48 * HOUR), 0);
    }

    #[test]
    fn each_further_lockout_doubles_up_to_a_day() {
        let s = settings(3, 3600);
        let mut st = PinLockState::default();
        let mut now = T0;
        let mut lengths = Vec::new();
        for _ in 0..7 {
            let mut last = None;
            for _ in 0..3 {
                last = Some(st.wrong_pin(s, now));
            }
            let Some(WrongPin::LockedOut { until, .. }) = last else {
                panic!("not locked: {last:?}");
            };
            lengths.push((until - now) / HOUR);
            now = until;
        }
        assert_eq!(lengths, vec![1, 2, 4, 8, 16, 24, 24]);
    }

    #[test]
    fn a_right_pin_resets_the_count_and_the_doubling() {
        let s = settings(3, 60);
        let mut st = PinLockState::default();
        st.wrong_pin(s, T0);
        st.wrong_pin(s, T0);
        st.right_pin();
        assert_eq!(st.wrong_pin(s, T0), WrongPin::Counted { failures: 1 });
        st.wrong_pin(s, T0);
        assert!(matches!(
            st.wrong_pin(s, T0),
            WrongPin::LockedOut { lockouts: 1, .. }
        ));
        st.right_pin();
        st.wrong_pin(s, T0 + HOUR);
        st.wrong_pin(s, T0 + HOUR);
        assert_eq!(
            st.wrong_pin(s, T0 + HOUR),
            WrongPin::LockedOut {
                until: T0 + HOUR + MIN,
                lockouts: 1
            }
        );
    }

    #[test]
    fn the_minimum_is_three_and_a_locked_mailbox_counts_nothing_more() {
        let s = settings(1, 60);
        let mut st = PinLockState::default();
        assert_eq!(st.wrong_pin(s, T0), WrongPin::Counted { failures: 1 });
        assert_eq!(st.wrong_pin(s, T0), WrongPin::Counted { failures: 2 });
        assert!(matches!(st.wrong_pin(s, T0), WrongPin::LockedOut { .. }));
        let before = st;
        assert!(matches!(
            st.wrong_pin(s, T0 + 1),
            WrongPin::LockedOut { .. }
        ));
        assert_eq!(st, before);
    }
}
