//! The voicemail dialogue, sans-IO: what to play, when to record, what a key press means.
//!
//! The media edge plays what [`Action::Play`] lists (a new `Play` replaces what is playing, so a key press
//! interrupts a prompt), reports [`Event::PlaybackFinished`] when the list has played out, captures the caller's
//! audio between [`Action::Record`] and [`Action::FinishRecording`], checks PINs off the call's path
//! ([`Action::CheckPin`] → [`Event::PinChecked`]) and stores what it is told to. Time is passed in.
//!
//! Three modes: leaving a message (a caller reached a mailbox), the mailbox owner's access (PIN, then messages
//! and greeting), and lifting PIN protection (777, then the PIN). There is no way to dial out from any of them.

use std::time::{Duration, Instant};

use media::prompts::Prompt;

/// Wrong PINs before the call is ended.
pub const MAX_PIN_TRIES: u32 = 3;
/// After the last key of a PIN, this long without `#` submits it.
pub const DIGIT_TIMEOUT: Duration = Duration::from_secs(5);
/// With no key at all for this long after a prompt, the call is ended.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(20);
/// The longest greeting a user may record.
pub const MAX_GREETING: Duration = Duration::from_secs(60);

/// Something to play.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clip {
    Prompt(Prompt),
    /// The tone before recording.
    Beep,
    /// A stored message, by id.
    Message(i64),
    /// The mailbox's own recorded greeting.
    Greeting,
}

/// What the recording is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordingKind {
    Message,
    Greeting,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Play(Vec<Clip>),
    Record {
        kind: RecordingKind,
        max: Duration,
    },
    /// Stop capturing; store it when `keep`.
    FinishRecording {
        kind: RecordingKind,
        keep: bool,
    },
    CheckPin(String),
    /// A wrong PIN (counts toward the source's failed-authentication limit).
    PinFailed,
    /// The last allowed wrong PIN: a security event.
    LockedOut,
    MarkRead(i64),
    Delete(i64),
    /// The PIN was right in unlock mode: lift the extension's PIN protection.
    Unlock,
    Hangup,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Started,
    PlaybackFinished,
    Digit(char),
    /// The recording reached its maximum length.
    RecordingFull,
    PinChecked(bool),
    /// The mailbox's PIN entry is locked (too many wrong PINs across calls, see [`super::lockout`]): the PIN was
    /// not checked, or (`after_wrong_pin`) it was wrong and locked the mailbox.
    MailboxLocked {
        after_wrong_pin: bool,
    },
    /// Time passed (for key timeouts).
    Tick,
}

/// A stored message as the dialogue needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageRef {
    pub id: i64,
    pub new: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// A caller leaves a message; `own_greeting` when the mailbox has a recorded greeting.
    Deposit {
        own_greeting: bool,
        max_message: Duration,
    },
    /// The owner listens to `messages` (new ones first) after the PIN.
    Access { messages: Vec<MessageRef> },
    /// Lift PIN protection; `pin` when it was dialled as one number (777 + PIN), else asked for.
    Unlock { pin: Option<String> },
    /// A caller reached a mailbox that cannot take another message: say so and hang up.
    Full,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Idle,
    Greeting,
    Recording(RecordingKind),
    GreetingIntro,
    /// Collecting PIN digits.
    Pin {
        digits: String,
    },
    CheckingPin,
    /// Logged in; `current` indexes `messages` (== len: past the last).
    Menu,
    /// Playing the last words; hang up when done.
    Closing,
    Done,
}

pub struct Ivr {
    mode: Mode,
    state: State,
    messages: Vec<MessageRef>,
    current: usize,
    failures: u32,
    /// When the dialogue gives up waiting for a key (None while something plays).
    deadline: Option<Instant>,
    playing: bool,
}

impl Ivr {
    pub fn new(mode: Mode) -> Self {
        let mut messages = match &mode {
            Mode::Access { messages } => messages.clone(),
            _ => Vec::new(),
        };
        // New messages first, each group oldest first (ids grow with time).
        messages.sort_by_key(|m| (!m.new, m.id));
        Ivr {
            mode,
            state: State::Idle,
            messages,
            current: 0,
            failures: 0,
            deadline: None,
            playing: false,
        }
    }

    /// Whether audio is being captured (the edge keeps a message when the caller hangs up while recording).
    pub fn recording(&self) -> Option<RecordingKind> {
        match self.state {
            State::Recording(kind) => Some(kind),
            _ => None,
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// When [`Event::Tick`] is next needed.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    pub fn handle(&mut self, event: Event, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::Started => self.start(&mut out),
            Event::PlaybackFinished => {
                self.playing = false;
                self.finished_playing(&mut out, now);
            }
            Event::Digit(d) => self.digit(d, &mut out, now),
            Event::RecordingFull => {
                if let State::Recording(kind) = self.state {
                    self.end_recording(kind, &mut out);
                }
            }
            Event::PinChecked(ok) => self.pin_checked(ok, &mut out),
            Event::MailboxLocked { after_wrong_pin } => {
                self.mailbox_locked(after_wrong_pin, &mut out)
            }
            Event::Tick => self.tick(&mut out, now),
        }
        if out.iter().any(|a| matches!(a, Action::Play(_))) {
            self.playing = true;
            self.deadline = None;
        }
        out
    }

    fn play(&mut self, out: &mut Vec<Action>, clips: Vec<Clip>) {
        out.push(Action::Play(clips));
    }

    fn close(&mut self, out: &mut Vec<Action>, mut clips: Vec<Clip>) {
        clips.push(Clip::Prompt(Prompt::Goodbye));
        self.state = State::Closing;
        self.play(out, clips);
    }

    fn start(&mut self, out: &mut Vec<Action>) {
        match self.mode.clone() {
            Mode::Deposit { own_greeting, .. } => {
                let greeting = if own_greeting {
                    Clip::Greeting
                } else {
                    Clip::Prompt(Prompt::GreetingDefault)
                };
                self.state = State::Greeting;
                self.play(out, vec![greeting, Clip::Beep]);
            }
            Mode::Access { .. } => {
                self.state = State::Pin {
                    digits: String::new(),
                };
                self.play(out, vec![Clip::Prompt(Prompt::EnterPin)]);
            }
            Mode::Unlock { pin: Some(pin) } => {
                self.state = State::CheckingPin;
                out.push(Action::CheckPin(pin));
            }
            Mode::Full => self.close(out, vec![Clip::Prompt(Prompt::MailboxFull)]),
            Mode::Unlock { pin: None } => {
                self.state = State::Pin {
                    digits: String::new(),
                };
                self.play(out, vec![Clip::Prompt(Prompt::UnlockEnterPin)]);
            }
        }
    }

    fn finished_playing(&mut self, out: &mut Vec<Action>, now: Instant) {
        match &self.state {
            State::Greeting => {
                let max = match self.mode {
                    Mode::Deposit { max_message, .. } => max_message,
                    _ => MAX_GREETING,
                };
                self.state = State::Recording(RecordingKind::Message);
                out.push(Action::Record {
                    kind: RecordingKind::Message,
                    max,
                });
            }
            State::GreetingIntro => {
                self.state = State::Recording(RecordingKind::Greeting);
                out.push(Action::Record {
                    kind: RecordingKind::Greeting,
                    max: MAX_GREETING,
                });
            }
            State::Closing => {
                self.state = State::Done;
                out.push(Action::Hangup);
            }
            // Keys typed while the prompt played count: submit them soon.
            State::Pin { digits } if !digits.is_empty() => {
                self.deadline = Some(now + DIGIT_TIMEOUT)
            }
            State::Pin { .. } | State::Menu => self.deadline = Some(now + IDLE_TIMEOUT),
            _ => {}
        }
    }

    fn digit(&mut self, d: char, out: &mut Vec<Action>, now: Instant) {
        match &mut self.state {
            State::Recording(kind) if d == '#' => {
                let kind = *kind;
                self.end_recording(kind, out);
            }
            State::Pin { digits } => {
                if d == '#' {
                    let pin = std::mem::take(digits);
                    self.state = State::CheckingPin;
                    out.push(Action::CheckPin(pin));
                } else if d.is_ascii_digit() {
                    digits.push(d);
                    if digits.len() > super::pin::MAX_LEN {
                        // Longer than any PIN: wrong, without asking the hasher.
                        self.state = State::CheckingPin;
                        self.pin_checked(false, out);
                        return;
                    }
                    self.deadline = Some(now + DIGIT_TIMEOUT);
                }
            }
            State::Menu => self.menu_key(d, out),
            // Keys during the greeting, a PIN check or the goodbye are ignored.
            _ => {}
        }
    }

    fn menu_key(&mut self, d: char, out: &mut Vec<Action>) {
        match d {
            '1' if self.current < self.messages.len() => self.play_current(out),
            '6' => {
                if self.current < self.messages.len() {
                    self.current += 1;
                }
                self.play_current(out);
            }
            '7' if self.current < self.messages.len() => {
                let id = self.messages[self.current].id;
                self.messages.remove(self.current);
                out.push(Action::Delete(id));
                let mut clips = vec![Clip::Prompt(Prompt::Deleted)];
                clips.extend(self.current_clips(out));
                self.play(out, clips);
            }
            '9' => {
                self.state = State::GreetingIntro;
                self.play(out, vec![Clip::Prompt(Prompt::RecordGreeting), Clip::Beep]);
            }
            '*' => self.close(out, Vec::new()),
            _ => {}
        }
    }

    /// The clips for the message at `current` (its number, its audio, the menu), marking it read; or "no more".
    fn current_clips(&mut self, out: &mut Vec<Action>) -> Vec<Clip> {
        match self.messages.get_mut(self.current) {
            Some(m) => {
                if m.new {
                    m.new = false;
                    out.push(Action::MarkRead(m.id));
                }
                let id = m.id;
                let mut clips = vec![Clip::Prompt(Prompt::Message)];
                clips.extend(number_clips(self.current + 1));
                clips.push(Clip::Message(id));
                clips.push(Clip::Prompt(Prompt::Menu));
                clips
            }
            None => vec![Clip::Prompt(Prompt::NoMore)],
        }
    }

    fn play_current(&mut self, out: &mut Vec<Action>) {
        let clips = self.current_clips(out);
        self.play(out, clips);
    }

    fn end_recording(&mut self, kind: RecordingKind, out: &mut Vec<Action>) {
        out.push(Action::FinishRecording { kind, keep: true });
        match kind {
            RecordingKind::Message => {
                self.state = State::Closing;
                self.play(out, vec![Clip::Prompt(Prompt::MessageSaved)]);
            }
            RecordingKind::Greeting => {
                self.state = State::Menu;
                let mut clips = vec![Clip::Prompt(Prompt::GreetingSaved)];
                clips.extend(self.current_clips(out));
                self.play(out, clips);
            }
        }
    }

    /// The caller is told the mailbox is locked and the call ends; a wrong PIN that caused it still counts.
    fn mailbox_locked(&mut self, after_wrong_pin: bool, out: &mut Vec<Action>) {
        if self.state != State::CheckingPin {
            return;
        }
        let mut clips = Vec::new();
        if after_wrong_pin {
            self.failures += 1;
            out.push(Action::PinFailed);
            clips.push(Clip::Prompt(Prompt::PinWrong));
        }
        clips.push(Clip::Prompt(Prompt::MailboxLocked));
        self.close(out, clips);
    }

    fn pin_checked(&mut self, ok: bool, out: &mut Vec<Action>) {
        if self.state != State::CheckingPin {
            return;
        }
        let unlock = matches!(self.mode, Mode::Unlock { .. });
        if ok {
            if unlock {
                out.push(Action::Unlock);
                self.close(out, vec![Clip::Prompt(Prompt::UnlockDone)]);
                return;
            }
            self.state = State::Menu;
            let new = self.messages.iter().filter(|m| m.new).count();
            let old = self.messages.len() - new;
            let mut clips = vec![Clip::Prompt(Prompt::YouHave)];
            clips.extend(number_clips(new));
            clips.push(Clip::Prompt(Prompt::NewMessages));
            if old > 0 {
                clips.extend(number_clips(old));
                clips.push(Clip::Prompt(Prompt::OldMessages));
            }
            clips.extend(self.current_clips(out));
            self.play(out, clips);
            return;
        }
        self.failures += 1;
        out.push(Action::PinFailed);
        // A PIN dialled as one number gets one try: the caller dials again.
        let one_shot = matches!(self.mode, Mode::Unlock { pin: Some(_) });
        if self.failures >= MAX_PIN_TRIES || one_shot {
            if self.failures >= MAX_PIN_TRIES {
                out.push(Action::LockedOut);
            }
            let mut clips = vec![Clip::Prompt(Prompt::PinWrong)];
            if !one_shot {
                clips.push(Clip::Prompt(Prompt::TooMany));
            }
            self.close(out, clips);
            return;
        }
        self.state = State::Pin {
            digits: String::new(),
        };
        let ask = if unlock {
            Prompt::UnlockEnterPin
        } else {
            Prompt::EnterPin
        };
        self.play(out, vec![Clip::Prompt(Prompt::PinWrong), Clip::Prompt(ask)]);
    }

    fn tick(&mut self, out: &mut Vec<Action>, now: Instant) {
        if self.playing || self.deadline.is_none_or(|d| now < d) {
            return;
        }
        self.deadline = None;
        match &mut self.state {
            State::Pin { digits } if !digits.is_empty() => {
                let pin = std::mem::take(digits);
                self.state = State::CheckingPin;
                out.push(Action::CheckPin(pin));
            }
            State::Pin { .. } | State::Menu => self.close(out, Vec::new()),
            _ => {}
        }
    }
}

/// A count as spoken digits ("1", "2" for 12).
fn number_clips(n: usize) -> Vec<Clip> {
    n.to_string()
        .bytes()
        .map(|b| Clip::Prompt(Prompt::Digit(b - b'0')))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> Instant {
        Instant::now()
    }

    fn plays(actions: &[Action]) -> Vec<Clip> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Play(c) => Some(c.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    #[test]
    fn deposit_plays_greeting_beep_then_records_until_pound() {
        let now = t0();
        let mut ivr = Ivr::new(Mode::Deposit {
            own_greeting: false,
            max_message: Duration::from_secs(120),
        });
        let a = ivr.handle(Event::Started, now);
        assert_eq!(
            plays(&a),
            vec![Clip::Prompt(Prompt::GreetingDefault), Clip::Beep]
        );
        // Keys during the greeting do not start anything.
        assert!(ivr.handle(Event::Digit('5'), now).is_empty());
        let a = ivr.handle(Event::PlaybackFinished, now);
        assert_eq!(
            a,
            vec![Action::Record {
                kind: RecordingKind::Message,
                max: Duration::from_secs(120)
            }]
        );
        assert_eq!(ivr.recording(), Some(RecordingKind::Message));
        let a = ivr.handle(Event::Digit('#'), now);
        assert_eq!(
            a[0],
            Action::FinishRecording {
                kind: RecordingKind::Message,
                keep: true
            }
        );
        assert_eq!(ivr.recording(), None);
        let a = ivr.handle(Event::PlaybackFinished, now);
        assert_eq!(a, vec![Action::Hangup]);
        assert!(ivr.is_done());
    }

    #[test]
    fn deposit_with_own_greeting_and_recording_limit() {
        let now = t0();
        let mut ivr = Ivr::new(Mode::Deposit {
            own_greeting: true,
            max_message: Duration::from_secs(3),
        });
        assert_eq!(
            plays(&ivr.handle(Event::Started, now)),
            vec![Clip::Greeting, Clip::Beep]
        );
        ivr.handle(Event::PlaybackFinished, now);
        let a = ivr.handle(Event::RecordingFull, now);
        assert!(a.contains(&Action::FinishRecording {
            kind: RecordingKind::Message,
            keep: true
        }));
    }

    fn logged_in(messages: Vec<MessageRef>) -> (Ivr, Vec<Action>) {
        let now = t0();
        let mut ivr = Ivr::new(Mode::Access { messages });
        ivr.handle(Event::Started, now);
        for d in "4711".chars() {
            assert!(ivr.handle(Event::Digit(d), now).is_empty());
        }
        assert_eq!(
            ivr.handle(Event::Digit('#'), now),
            vec![Action::CheckPin("4711".into())]
        );
        let a = ivr.handle(Event::PinChecked(true), now);
        (ivr, a)
    }

    #[test]
    fn access_plays_new_messages_first_and_marks_them_read() {
        let (mut ivr, a) = logged_in(vec![
            MessageRef { id: 1, new: false },
            MessageRef { id: 2, new: true },
            MessageRef { id: 3, new: true },
        ]);
        let clips = plays(&a);
        assert_eq!(
            &clips[..3],
            &[
                Clip::Prompt(Prompt::YouHave),
                Clip::Prompt(Prompt::Digit(2)),
                Clip::Prompt(Prompt::NewMessages)
            ]
        );
        assert!(clips.contains(&Clip::Message(2)));
        assert!(a.contains(&Action::MarkRead(2)));
        let now = t0();
        // Repeat does not mark again.
        let a = ivr.handle(Event::Digit('1'), now);
        assert!(plays(&a).contains(&Clip::Message(2)));
        assert!(!a.iter().any(|x| matches!(x, Action::MarkRead(_))));
        let a = ivr.handle(Event::Digit('6'), now);
        assert!(plays(&a).contains(&Clip::Message(3)));
        assert!(a.contains(&Action::MarkRead(3)));
        let a = ivr.handle(Event::Digit('7'), now);
        assert_eq!(a[0], Action::Delete(3));
        // After deleting 3 the old message 1 comes next.
        assert!(plays(&a).contains(&Clip::Message(1)));
        let a = ivr.handle(Event::Digit('6'), now);
        assert_eq!(plays(&a), vec![Clip::Prompt(Prompt::NoMore)]);
        let a = ivr.handle(Event::Digit('*'), now);
        assert_eq!(plays(&a), vec![Clip::Prompt(Prompt::Goodbye)]);
        assert_eq!(
            ivr.handle(Event::PlaybackFinished, now),
            vec![Action::Hangup]
        );
    }

    #[test]
    fn three_wrong_pins_lock_out_and_end_the_call() {
        let now = t0();
        let mut ivr = Ivr::new(Mode::Access {
            messages: vec![MessageRef { id: 1, new: true }],
        });
        ivr.handle(Event::Started, now);
        for attempt in 1..=3 {
            ivr.handle(Event::Digit('1'), now);
            ivr.handle(Event::Digit('#'), now);
            let a = ivr.handle(Event::PinChecked(false), now);
            assert!(a.contains(&Action::PinFailed));
            assert_eq!(a.contains(&Action::LockedOut), attempt == 3, "{attempt}");
            assert!(
                !a.iter()
                    .any(|x| matches!(x, Action::MarkRead(_) | Action::Delete(_)))
            );
        }
        assert_eq!(
            ivr.handle(Event::PlaybackFinished, now),
            vec![Action::Hangup]
        );
        // Nothing more is accepted.
        assert!(ivr.handle(Event::PinChecked(true), now).is_empty());
    }

    #[test]
    fn a_full_mailbox_says_so_and_hangs_up_without_recording() {
        let now = t0();
        let mut ivr = Ivr::new(Mode::Full);
        let a = ivr.handle(Event::Started, now);
        assert_eq!(
            plays(&a),
            vec![
                Clip::Prompt(Prompt::MailboxFull),
                Clip::Prompt(Prompt::Goodbye)
            ]
        );
        assert!(!a.iter().any(|x| matches!(x, Action::Record { .. })));
        assert_eq!(
            ivr.handle(Event::PlaybackFinished, now),
            vec![Action::Hangup]
        );
    }

    #[test]
    fn too_long_pin_is_wrong_without_hashing() {
        let now = t0();
        let mut ivr = Ivr::new(Mode::Access { messages: vec![] });
        ivr.handle(Event::Started, now);
        let mut all = Vec::new();
        for _ in 0..11 {
            all.extend(ivr.handle(Event::Digit('3'), now));
        }
        assert!(all.contains(&Action::PinFailed));
        assert!(!all.iter().any(|a| matches!(a, Action::CheckPin(_))));
    }

    #[test]
    fn pin_without_pound_is_submitted_after_the_digit_timeout() {
        let now = t0();
        let mut ivr = Ivr::new(Mode::Access { messages: vec![] });
        ivr.handle(Event::Started, now);
        ivr.handle(Event::PlaybackFinished, now);
        ivr.handle(Event::Digit('4'), now);
        ivr.handle(Event::Digit('7'), now);
        assert!(
            ivr.handle(Event::Tick, now + Duration::from_secs(1))
                .is_empty()
        );
        assert_eq!(
            ivr.handle(Event::Tick, now + DIGIT_TIMEOUT),
            vec![Action::CheckPin("47".into())]
        );
    }

    #[test]
    fn silence_ends_the_call() {
        let now = t0();
        let mut ivr = Ivr::new(Mode::Access { messages: vec![] });
        ivr.handle(Event::Started, now);
        ivr.handle(Event::PlaybackFinished, now);
        assert!(ivr.handle(Event::Tick, now + IDLE_TIMEOUT / 2).is_empty());
        let a = ivr.handle(Event::Tick, now + IDLE_TIMEOUT);
        assert_eq!(plays(&a), vec![Clip::Prompt(Prompt::Goodbye)]);
    }

    #[test]
    fn greeting_recording_from_the_menu() {
        let (mut ivr, _) = logged_in(vec![]);
        let now = t0();
        let a = ivr.handle(Event::Digit('9'), now);
        assert_eq!(
            plays(&a),
            vec![Clip::Prompt(Prompt::RecordGreeting), Clip::Beep]
        );
        let a = ivr.handle(Event::PlaybackFinished, now);
        assert_eq!(
            a,
            vec![Action::Record {
                kind: RecordingKind::Greeting,
                max: MAX_GREETING
            }]
        );
        let a = ivr.handle(Event::Digit('#'), now);
        assert_eq!(
            a[0],
            Action::FinishRecording {
                kind: RecordingKind::Greeting,
                keep: true
            }
        );
        assert_eq!(plays(&a)[0], Clip::Prompt(Prompt::GreetingSaved));
    }

    #[test]
    fn unlock_by_one_number_and_by_prompt() {
        let now = t0();
        let mut ivr = Ivr::new(Mode::Unlock {
            pin: Some("4711".into()),
        });
        assert_eq!(
            ivr.handle(Event::Started, now),
            vec![Action::CheckPin("4711".into())]
        );
        let a = ivr.handle(Event::PinChecked(true), now);
        assert!(a.contains(&Action::Unlock));
        // A wrong one-number PIN gets one try, no lock-out.
        let mut ivr = Ivr::new(Mode::Unlock {
            pin: Some("0000".into()),
        });
        ivr.handle(Event::Started, now);
        let a = ivr.handle(Event::PinChecked(false), now);
        assert!(a.contains(&Action::PinFailed) && !a.contains(&Action::Unlock));
        // By prompt: digits then '#'.
        let mut ivr = Ivr::new(Mode::Unlock { pin: None });
        assert_eq!(
            plays(&ivr.handle(Event::Started, now)),
            vec![Clip::Prompt(Prompt::UnlockEnterPin)]
        );
        ivr.handle(Event::Digit('4'), now);
        assert_eq!(
            ivr.handle(Event::Digit('#'), now),
            vec![Action::CheckPin("4".into())]
        );
        assert!(
            ivr.handle(Event::PinChecked(true), now)
                .contains(&Action::Unlock)
        );
    }

    #[test]
    fn a_locked_mailbox_is_announced_and_the_call_ends() {
        let now = Instant::now();
        for (mode, after_wrong_pin) in [
            (Mode::Access { messages: vec![] }, false),
            (Mode::Access { messages: vec![] }, true),
            (
                Mode::Unlock {
                    pin: Some("4711".into()),
                },
                false,
            ),
        ] {
            let mut ivr = Ivr::new(mode.clone());
            let mut all = ivr.handle(Event::Started, now);
            for d in "4711#".chars() {
                all.extend(ivr.handle(Event::Digit(d), now));
            }
            assert!(
                all.iter().any(|a| matches!(a, Action::CheckPin(_))),
                "{mode:?}: {all:?}"
            );
            let a = ivr.handle(Event::MailboxLocked { after_wrong_pin }, now);
            assert_eq!(a.contains(&Action::PinFailed), after_wrong_pin, "{a:?}");
            assert!(!a.contains(&Action::Unlock));
            let clips = plays(&a);
            assert_eq!(clips.last(), Some(&Clip::Prompt(Prompt::Goodbye)));
            assert!(
                clips.contains(&Clip::Prompt(Prompt::MailboxLocked)),
                "{clips:?}"
            );
            ivr.handle(Event::PlaybackFinished, now);
            assert!(ivr.is_done());
        }
    }
}
