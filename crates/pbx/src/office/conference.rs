//! The door of a conference room, sans-IO: the PIN dialogue before a caller joins the mix.
//!
//! The edge plays what [`Action::Play`] lists and reports [`Event::PlaybackFinished`], checks PINs against the
//! room's hash and the stored lockout off the call's path ([`Action::CheckPin`] → [`Event::PinChecked`] or
//! [`Event::Locked`]) and, on [`Action::Join`], adds the caller to the room's mix (or answers
//! [`Event::RoomFull`]). The rules are voicemail's (`crate::voicemail::ivr`): three wrong PINs end the call, keys
//! by RFC 4733 or SIP INFO, `#` ends a PIN, a pause of [`DIGIT_TIMEOUT`] submits it, silence for
//! [`IDLE_TIMEOUT`] hangs up. Nothing here can dial anywhere.

use std::time::Instant;

use media::prompts::Prompt;

pub use crate::voicemail::ivr::{DIGIT_TIMEOUT, IDLE_TIMEOUT, MAX_PIN_TRIES};

/// Longest PIN collected (the store allows 4 to 10 digits; more keys are ignored until `#`).
const MAX_PIN_LEN: usize = 10;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Play(Vec<Prompt>),
    CheckPin(String),
    /// Join the room's mix.
    Join,
    /// A wrong PIN (counts toward the source's failed-authentication limit).
    PinFailed,
    /// The last allowed wrong PIN: the call ends (a security event).
    LockedOut,
    Hangup,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Started,
    PlaybackFinished,
    Digit(char),
    PinChecked(bool),
    /// The room's PIN entry is locked (too many wrong PINs across calls); `after_wrong_pin`: this PIN locked it.
    Locked {
        after_wrong_pin: bool,
    },
    /// The room has its maximum of participants.
    RoomFull,
    Tick,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Asking for the PIN (prompt playing or keys coming).
    Pin,
    /// A PIN is being checked.
    Checking,
    /// In the room.
    Joined,
    /// Saying goodbye; hang up when it has played.
    Leaving,
    Done,
}

/// One caller at the door.
#[derive(Debug, Clone)]
pub struct Door {
    has_pin: bool,
    state: State,
    digits: String,
    wrong: u32,
    deadline: Option<Instant>,
}

impl Door {
    pub fn new(has_pin: bool) -> Self {
        Door {
            has_pin,
            state: State::Pin,
            digits: String::new(),
            wrong: 0,
            deadline: None,
        }
    }

    /// When [`Event::Tick`] is due.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    pub fn joined(&self) -> bool {
        self.state == State::Joined
    }

    fn leave(&mut self, prompts: Vec<Prompt>) -> Vec<Action> {
        self.state = State::Leaving;
        self.deadline = None;
        vec![Action::Play(prompts)]
    }

    fn ask(&mut self, mut before: Vec<Prompt>, now: Instant) -> Vec<Action> {
        self.state = State::Pin;
        self.digits.clear();
        self.deadline = Some(now + IDLE_TIMEOUT);
        before.push(Prompt::ConferenceEnterPin);
        vec![Action::Play(before)]
    }

    pub fn handle(&mut self, event: Event, now: Instant) -> Vec<Action> {
        match (self.state, event) {
            (State::Done, _) => Vec::new(),
            (_, Event::Started) if !self.has_pin => {
                self.state = State::Joined;
                vec![Action::Join]
            }
            (_, Event::Started) => self.ask(Vec::new(), now),
            (State::Pin, Event::Digit('#')) if !self.digits.is_empty() => self.submit(),
            (State::Pin, Event::Digit(d)) if d.is_ascii_digit() => {
                if self.digits.len() < MAX_PIN_LEN {
                    self.digits.push(d);
                }
                self.deadline = Some(now + DIGIT_TIMEOUT);
                // A key interrupts the prompt.
                vec![Action::Play(Vec::new())]
            }
            (State::Pin, Event::Tick) if self.deadline.is_some_and(|d| now >= d) => {
                if self.digits.is_empty() {
                    self.leave(vec![Prompt::Goodbye])
                } else {
                    self.submit()
                }
            }
            (State::Checking, Event::PinChecked(true)) => {
                self.state = State::Joined;
                self.deadline = None;
                vec![Action::Join]
            }
            (State::Checking, Event::PinChecked(false)) => {
                self.wrong += 1;
                if self.wrong >= MAX_PIN_TRIES {
                    let mut actions = vec![Action::PinFailed, Action::LockedOut];
                    actions.extend(self.leave(vec![Prompt::TooMany, Prompt::Goodbye]));
                    actions
                } else {
                    let mut actions = vec![Action::PinFailed];
                    actions.extend(self.ask(vec![Prompt::PinWrong], now));
                    actions
                }
            }
            (State::Checking, Event::Locked { .. }) => self.leave(vec![Prompt::ConferenceLocked]),
            (State::Joined, Event::RoomFull) => self.leave(vec![Prompt::ConferenceFull]),
            (State::Leaving, Event::PlaybackFinished) => {
                self.state = State::Done;
                vec![Action::Hangup]
            }
            _ => Vec::new(),
        }
    }

    fn submit(&mut self) -> Vec<Action> {
        self.state = State::Checking;
        self.deadline = None;
        vec![Action::CheckPin(std::mem::take(&mut self.digits))]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn keys(door: &mut Door, keys: &str, now: Instant) -> Vec<Action> {
        keys.chars()
            .flat_map(|k| door.handle(Event::Digit(k), now))
            .collect()
    }

    #[test]
    fn a_room_without_pin_is_joined_at_once() {
        let mut door = Door::new(false);
        assert_eq!(door.handle(Event::Started, Instant::now()), [Action::Join]);
        assert!(door.joined());
        assert_eq!(door.handle(Event::Digit('1'), Instant::now()), []);
    }

    #[test]
    fn right_pin_joins() {
        let t0 = Instant::now();
        let mut door = Door::new(true);
        assert_eq!(
            door.handle(Event::Started, t0),
            [Action::Play(vec![Prompt::ConferenceEnterPin])]
        );
        let out = keys(&mut door, "4711#", t0);
        assert_eq!(out.last(), Some(&Action::CheckPin("4711".into())));
        assert_eq!(door.handle(Event::PinChecked(true), t0), [Action::Join]);
        assert!(door.joined());
    }

    #[test]
    fn three_wrong_pins_end_the_call_and_a_pause_submits() {
        let t0 = Instant::now();
        let mut door = Door::new(true);
        door.handle(Event::Started, t0);
        for i in 1..=3 {
            keys(&mut door, "1234", t0);
            // No '#': the pause submits.
            assert_eq!(door.handle(Event::Tick, t0 + Duration::from_secs(1)), []);
            let later = t0 + DIGIT_TIMEOUT + Duration::from_millis(1);
            assert_eq!(door.deadline(), Some(t0 + DIGIT_TIMEOUT));
            assert_eq!(
                door.handle(Event::Tick, later),
                [Action::CheckPin("1234".into())]
            );
            let out = door.handle(Event::PinChecked(false), later);
            assert_eq!(out[0], Action::PinFailed);
            if i < 3 {
                assert_eq!(
                    out[1],
                    Action::Play(vec![Prompt::PinWrong, Prompt::ConferenceEnterPin])
                );
            } else {
                assert_eq!(
                    out[1..],
                    [
                        Action::LockedOut,
                        Action::Play(vec![Prompt::TooMany, Prompt::Goodbye])
                    ]
                );
            }
        }
        assert_eq!(door.handle(Event::Digit('1'), t0), []);
        assert_eq!(door.handle(Event::PlaybackFinished, t0), [Action::Hangup]);
        assert!(door.is_done());
        assert_eq!(door.handle(Event::Started, t0), []);
    }

    #[test]
    fn locked_room_full_room_and_silence_say_why_and_hang_up() {
        let t0 = Instant::now();
        let mut door = Door::new(true);
        door.handle(Event::Started, t0);
        keys(&mut door, "9999#", t0);
        assert_eq!(
            door.handle(
                Event::Locked {
                    after_wrong_pin: false
                },
                t0
            ),
            [Action::Play(vec![Prompt::ConferenceLocked])]
        );
        assert_eq!(door.handle(Event::PlaybackFinished, t0), [Action::Hangup]);

        let mut full = Door::new(false);
        full.handle(Event::Started, t0);
        assert_eq!(
            full.handle(Event::RoomFull, t0),
            [Action::Play(vec![Prompt::ConferenceFull])]
        );

        let mut idle = Door::new(true);
        idle.handle(Event::Started, t0);
        assert_eq!(
            idle.handle(Event::Tick, t0 + IDLE_TIMEOUT),
            [Action::Play(vec![Prompt::Goodbye])]
        );
        // Keys other than digits and a lone '#' are ignored; the PIN is capped.
        let mut door = Door::new(true);
        door.handle(Event::Started, t0);
        assert_eq!(door.handle(Event::Digit('#'), t0), []);
        assert_eq!(door.handle(Event::Digit('*'), t0), []);
        let out = keys(&mut door, "123456789012345#", t0);
        assert_eq!(out.last(), Some(&Action::CheckPin("1234567890".into())));
    }
}
