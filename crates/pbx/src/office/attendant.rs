//! The auto attendant ("press 1 for sales"), sans-IO: where its options lead ([`Target`]) and the menu dialogue
//! ([`Menu`]): the greeting, a key per option, optional dial-by-extension, a timeout and invalid keys.
//!
//! The edge plays what [`Action::Play`] names and reports [`Event::PlaybackFinished`]; on [`Action::Route`] it
//! asks the endpoint to connect the caller, which checks the target against what the caller may reach (dial by
//! extension reaches extensions only — never a trunk: an attendant is a classic toll-fraud path) and answers
//! [`Event::Refused`] when it may not. Time is passed in.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use media::prompts::Prompt;

/// Where an option, the timeout or repeated invalid keys lead. Parsed from `KIND:VALUE` (`ext:210`,
/// `voicemail:201`, `conference:900`, `group:600`, `queue:700`, `attendant:night`, `hangup`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    Extension(String),
    Voicemail(String),
    Conference(String),
    /// A ring group: its members ring for the caller (extensions only for an outside caller).
    Group(String),
    /// A call queue: the caller waits there with its music.
    Queue(String),
    Attendant(String),
    Hangup,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Extension(n) => write!(f, "ext:{n}"),
            Target::Voicemail(n) => write!(f, "voicemail:{n}"),
            Target::Conference(n) => write!(f, "conference:{n}"),
            Target::Group(n) => write!(f, "group:{n}"),
            Target::Queue(n) => write!(f, "queue:{n}"),
            Target::Attendant(n) => write!(f, "attendant:{n}"),
            Target::Hangup => f.write_str("hangup"),
        }
    }
}

fn digits(value: &str) -> bool {
    !value.is_empty() && value.len() <= 20 && value.bytes().all(|b| b.is_ascii_digit())
}

/// An attendant's name: 1-32 of a-z, 0-9, `-`, `_`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

impl std::str::FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s == "hangup" {
            return Ok(Target::Hangup);
        }
        let (kind, value) = s
            .split_once(':')
            .ok_or_else(|| format!("`{s}`: expected KIND:VALUE, e.g. ext:210, or hangup"))?;
        let number = |make: fn(String) -> Target| {
            if digits(value) {
                Ok(make(value.to_string()))
            } else {
                Err(format!("`{s}`: {kind} needs a number of 1 to 20 digits"))
            }
        };
        match kind {
            "ext" => number(Target::Extension),
            "voicemail" => number(Target::Voicemail),
            "conference" => number(Target::Conference),
            "group" => number(Target::Group),
            "queue" => number(Target::Queue),
            "attendant" if valid_name(value) => Ok(Target::Attendant(value.to_string())),
            "attendant" => Err(format!(
                "`{s}`: an attendant name is 1-32 of a-z, 0-9, - and _"
            )),
            _ => Err(format!(
                "`{s}`: unknown target kind `{kind}` (use ext:, voicemail:, conference:, group:, queue:, \
                 attendant: or hangup)"
            )),
        }
    }
}

/// An attendant's menu, from its configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MenuConfig {
    /// Key (0-9, `*`, `#`) → target.
    pub options: BTreeMap<char, Target>,
    /// After the greeting, this long without a key leads to `on_timeout`.
    pub timeout: Duration,
    pub on_timeout: Target,
    /// Where the third invalid key leads (the first two replay the greeting).
    pub on_invalid: Target,
    /// Callers may key an extension number (ended by `#` or a pause).
    pub dial_by_extension: bool,
}

/// Invalid keys before `on_invalid`.
pub const MAX_INVALID: u32 = 3;
/// Dial by extension: a pause this long after a key ends the number.
pub const DIGIT_PAUSE: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Play the attendant's greeting, after these prompts.
    PlayGreeting(Vec<Prompt>),
    /// Play prompts only (then hang up when leaving).
    Play(Vec<Prompt>),
    /// Stop playing (a key interrupts the greeting).
    StopPlaying,
    /// Connect the caller to `target` (the endpoint decides whether it may).
    Route(Target),
    Hangup,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Started,
    PlaybackFinished,
    Digit(char),
    /// The endpoint refused the last [`Action::Route`] (not reachable for this caller, or does not exist), or
    /// the extension it rang did not answer.
    Refused,
    Tick,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Greeting,
    Waiting,
    Routing,
    Leaving,
    Done,
}

#[derive(Debug, Clone)]
pub struct Menu {
    config: MenuConfig,
    state: State,
    digits: String,
    invalid: u32,
    deadline: Option<Instant>,
}

impl Menu {
    pub fn new(config: MenuConfig) -> Self {
        Menu {
            config,
            state: State::Greeting,
            digits: String::new(),
            invalid: 0,
            deadline: None,
        }
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    fn route(&mut self, target: Target) -> Vec<Action> {
        self.deadline = None;
        self.digits.clear();
        if target == Target::Hangup {
            self.state = State::Leaving;
            return vec![Action::Play(vec![Prompt::Goodbye])];
        }
        self.state = State::Routing;
        vec![Action::StopPlaying, Action::Route(target)]
    }

    fn invalid_key(&mut self) -> Vec<Action> {
        self.invalid += 1;
        self.digits.clear();
        if self.invalid >= MAX_INVALID {
            return self.route(self.config.on_invalid.clone());
        }
        self.state = State::Greeting;
        self.deadline = None;
        vec![Action::PlayGreeting(vec![Prompt::AttendantInvalid])]
    }

    /// The keys collected so far, as a choice: a single key that is an option, else (dial by extension) the
    /// number.
    fn choose(&mut self) -> Vec<Action> {
        let keys = std::mem::take(&mut self.digits);
        let mut chars = keys.chars();
        if let (Some(k), None) = (chars.next(), chars.next())
            && let Some(t) = self.config.options.get(&k).cloned()
        {
            return self.route(t);
        }
        if self.config.dial_by_extension && digits(&keys) {
            return self.route(Target::Extension(keys));
        }
        self.invalid_key()
    }

    pub fn handle(&mut self, event: Event, now: Instant) -> Vec<Action> {
        match (self.state, event) {
            (State::Done, _) => Vec::new(),
            (_, Event::Started) => {
                self.state = State::Greeting;
                vec![Action::PlayGreeting(Vec::new())]
            }
            (State::Greeting | State::Waiting, Event::Digit(k)) => {
                let was_greeting = self.state == State::Greeting;
                self.state = State::Waiting;
                let option = self.config.options.contains_key(&k);
                let mut out = if was_greeting {
                    vec![Action::StopPlaying]
                } else {
                    Vec::new()
                };
                if !self.config.dial_by_extension {
                    self.digits = k.to_string();
                    out.extend(self.choose());
                    return out;
                }
                if k == '#' && !self.digits.is_empty() {
                    out.extend(self.choose());
                    return out;
                }
                if !k.is_ascii_digit() && !option {
                    out.extend(self.invalid_key());
                    return out;
                }
                self.digits.push(k);
                if self.digits.len() > 20 {
                    out.extend(self.invalid_key());
                    return out;
                }
                self.deadline = Some(now + DIGIT_PAUSE);
                out
            }
            (State::Greeting, Event::PlaybackFinished) => {
                self.state = State::Waiting;
                self.deadline = Some(now + self.config.timeout);
                Vec::new()
            }
            (State::Waiting, Event::Tick) if self.deadline.is_some_and(|d| now >= d) => {
                if self.digits.is_empty() {
                    self.route(self.config.on_timeout.clone())
                } else {
                    self.choose()
                }
            }
            // Not reachable, or it did not answer: the menu again (counted like an invalid key, so a caller cannot
            // loop forever), without calling the choice invalid.
            (State::Routing, Event::Refused) => {
                let mut out = self.invalid_key();
                if let [Action::PlayGreeting(prompts)] = out.as_mut_slice() {
                    prompts.clear();
                }
                out
            }
            (State::Leaving, Event::PlaybackFinished) => {
                self.state = State::Done;
                vec![Action::Hangup]
            }
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dial_by_extension: bool) -> MenuConfig {
        MenuConfig {
            options: [
                ('1', "ext:201".parse().unwrap()),
                ('2', "voicemail:202".parse().unwrap()),
                ('0', "ext:200".parse().unwrap()),
            ]
            .into_iter()
            .collect(),
            timeout: Duration::from_secs(10),
            on_timeout: "ext:200".parse().unwrap(),
            on_invalid: Target::Hangup,
            dial_by_extension,
        }
    }

    #[test]
    fn targets_parse_and_print() {
        for s in [
            "ext:210",
            "voicemail:201",
            "conference:900",
            "group:600",
            "queue:700",
            "attendant:night-1",
            "hangup",
        ] {
            assert_eq!(s.parse::<Target>().unwrap().to_string(), s);
        }
        for bad in [
            "210",
            "ext:",
            "ext:21a",
            "trunk:x",
            "group:6x0",
            "queue:",
            "attendant:Main",
            "",
        ] {
            assert!(bad.parse::<Target>().is_err(), "{bad}");
        }
        assert!(valid_name("main") && !valid_name("") && !valid_name("a b"));
    }

    #[test]
    fn a_key_routes_and_interrupts_the_greeting() {
        let t0 = Instant::now();
        let mut m = Menu::new(config(false));
        assert_eq!(m.handle(Event::Started, t0), [Action::PlayGreeting(vec![])]);
        assert_eq!(
            m.handle(Event::Digit('1'), t0),
            [
                Action::StopPlaying,
                Action::StopPlaying,
                Action::Route(Target::Extension("201".into()))
            ]
        );
        assert_eq!(m.handle(Event::Digit('2'), t0), []);
    }

    #[test]
    fn timeout_after_the_greeting_goes_to_the_operator() {
        let t0 = Instant::now();
        let mut m = Menu::new(config(false));
        m.handle(Event::Started, t0);
        assert_eq!(m.handle(Event::Tick, t0 + Duration::from_secs(60)), []);
        m.handle(Event::PlaybackFinished, t0);
        assert_eq!(m.deadline(), Some(t0 + Duration::from_secs(10)));
        assert_eq!(m.handle(Event::Tick, t0 + Duration::from_secs(9)), []);
        assert_eq!(
            m.handle(Event::Tick, t0 + Duration::from_secs(10)),
            [
                Action::StopPlaying,
                Action::Route(Target::Extension("200".into()))
            ]
        );
    }

    #[test]
    fn invalid_keys_replay_then_leave_and_a_refusal_counts_as_one() {
        let t0 = Instant::now();
        let mut m = Menu::new(config(false));
        m.handle(Event::Started, t0);
        assert_eq!(
            m.handle(Event::Digit('7'), t0)[1..],
            [Action::PlayGreeting(vec![Prompt::AttendantInvalid])]
        );
        m.handle(Event::Digit('1'), t0);
        assert_eq!(m.handle(Event::Refused, t0), [Action::PlayGreeting(vec![])]);
        assert_eq!(
            m.handle(Event::Digit('9'), t0)[1..],
            [Action::Play(vec![Prompt::Goodbye])]
        );
        assert_eq!(m.handle(Event::PlaybackFinished, t0), [Action::Hangup]);
        assert!(m.is_done());
    }

    #[test]
    fn dial_by_extension_collects_a_number_and_options_still_work() {
        let t0 = Instant::now();
        let mut m = Menu::new(config(true));
        m.handle(Event::Started, t0);
        assert_eq!(m.handle(Event::Digit('2'), t0), [Action::StopPlaying]);
        assert_eq!(m.handle(Event::Digit('1'), t0), []);
        assert_eq!(m.handle(Event::Digit('0'), t0), []);
        assert_eq!(
            m.handle(Event::Digit('#'), t0),
            [
                Action::StopPlaying,
                Action::Route(Target::Extension("210".into()))
            ]
        );
        // A single option key, then the pause: the option.
        let mut m = Menu::new(config(true));
        m.handle(Event::Started, t0);
        m.handle(Event::Digit('2'), t0);
        assert_eq!(m.deadline(), Some(t0 + DIGIT_PAUSE));
        assert_eq!(
            m.handle(Event::Tick, t0 + DIGIT_PAUSE),
            [
                Action::StopPlaying,
                Action::Route(Target::Voicemail("202".into()))
            ]
        );
        // Without dial by extension a number is just an invalid key.
        let mut m = Menu::new(config(false));
        m.handle(Event::Started, t0);
        assert_eq!(
            m.handle(Event::Digit('5'), t0)[1..],
            [Action::PlayGreeting(vec![Prompt::AttendantInvalid])]
        );
    }
}
