//! Call queues: callers wait (music, their position announced) until an agent is free, at most `max_wait`, then
//! the fallback. This module holds the queue's definition and validation (one set of rules for the CLI, console
//! and API), the waiting lines and which agent is offered the next caller — pure state, time passed in. The
//! endpoint (`endpoint/queues.rs`) knows who is busy and rings the agents; the call layer plays the music.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use super::groups::{Fallback, validate_number};

/// Most agents in one queue, and callers waiting in one queue.
pub const MAX_AGENTS: usize = 32;
pub const MAX_WAITING: usize = 100;
/// Shortest and longest wait, in seconds.
pub const MIN_MAX_WAIT: u32 = 5;
pub const MAX_MAX_WAIT: u32 = 3600;
/// How long an agent's phones ring for one caller before the next agent is tried.
pub const OFFER_RING: Duration = Duration::from_secs(15);
/// How often a waiting caller hears its position again.
pub const ANNOUNCE_EVERY: Duration = Duration::from_secs(30);

/// Which free agent gets the next caller.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum QueueStrategy {
    /// The agent whose last queue call ended longest ago (never had one: first).
    #[default]
    LongestIdle,
    /// The next agent in the list after the one who got the last caller.
    RoundRobin,
    /// Every free agent rings; the first to answer takes the caller.
    All,
}

impl QueueStrategy {
    pub const ALL: [QueueStrategy; 3] = [
        QueueStrategy::LongestIdle,
        QueueStrategy::RoundRobin,
        QueueStrategy::All,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            QueueStrategy::LongestIdle => "longest-idle",
            QueueStrategy::RoundRobin => "round-robin",
            QueueStrategy::All => "all",
        }
    }

    pub fn parse(value: &str) -> Result<QueueStrategy, String> {
        let v = value.trim();
        QueueStrategy::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(v))
            .ok_or_else(|| {
                format!(
                    "unknown queue strategy '{}': expected longest-idle, round-robin or all",
                    v.escape_debug()
                )
            })
    }
}

impl fmt::Display for QueueStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A queue as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    pub number: String,
    /// Agent extensions, in order.
    pub agents: Vec<String>,
    pub strategy: QueueStrategy,
    /// Nobody waits longer than this.
    pub max_wait_secs: u32,
    /// `default` (Palisade's generated melody) or a WAV file (8 kHz 16-bit mono).
    pub music: String,
    /// Where a caller goes after `max_wait`: `ext:NUMBER` (routed as the caller would dial it) or `hangup`.
    pub fallback: Fallback,
}

impl QueueConfig {
    /// Checks a queue as an operator configured it.
    pub fn validate(&self) -> Result<(), String> {
        validate_number("queue number", &self.number)?;
        if self.agents.is_empty() || self.agents.len() > MAX_AGENTS {
            return Err(format!(
                "a queue needs 1 to {MAX_AGENTS} agents, got {}",
                self.agents.len()
            ));
        }
        for (i, a) in self.agents.iter().enumerate() {
            validate_number("agent", a)?;
            if self.agents[..i].contains(a) {
                return Err(format!("agent {a} is listed twice"));
            }
            if *a == self.number {
                return Err(format!("queue {} cannot be its own agent", self.number));
            }
        }
        if !(MIN_MAX_WAIT..=MAX_MAX_WAIT).contains(&self.max_wait_secs) {
            return Err(format!(
                "max wait must be {MIN_MAX_WAIT} to {MAX_MAX_WAIT} seconds, got {}",
                self.max_wait_secs
            ));
        }
        if self.music.is_empty() || self.music.len() > 4096 {
            return Err("music must be `default` or the path of a WAV file".into());
        }
        match &self.fallback {
            Fallback::Voicemail(_) => Err(
                "a queue falls back to ext:NUMBER or hangup (a caller who waited is not sent to voicemail)"
                    .into(),
            ),
            Fallback::Number(n) if *n == self.number => {
                Err(format!("queue {} cannot fall back to itself", self.number))
            }
            _ => Ok(()),
        }
    }
}

/// A caller in a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub call: u64,
    pub caller: String,
    pub entered: Instant,
    /// The agents being offered this caller now (their phones ring), and until when.
    pub offered: Option<(Vec<String>, Instant)>,
    /// The position the caller last heard, and when.
    pub announced: Option<(usize, Instant)>,
}

/// How a caller left a queue, for the statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Answered,
    /// The caller hung up while waiting.
    Abandoned,
    /// `max_wait` ran out: the fallback took the caller.
    Timeout,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Answered => "answered",
            Outcome::Abandoned => "abandoned",
            Outcome::Timeout => "timeout",
        }
    }
}

/// A caller who left a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Left {
    pub queue: String,
    pub caller: String,
    pub outcome: Outcome,
    pub agent: Option<String>,
    pub waited: Duration,
}

/// What the endpoint must do for the queues now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueAction {
    /// Ring these agents for waiting call `call`.
    Offer { call: u64, agents: Vec<String> },
    /// Stop ringing the agents for `call` (they did not answer in time); it waits on.
    Withdraw { call: u64 },
    /// `call` waited `max_wait`: send it to the fallback.
    Timeout { call: u64, fallback: Fallback },
    /// Tell `call` its position.
    Announce { call: u64, position: usize },
}

/// The queues, their callers and agents.
#[derive(Debug, Default)]
pub struct Queues {
    configs: HashMap<String, QueueConfig>,
    waiting: HashMap<String, VecDeque<Waiting>>,
    /// Agents logged out of a queue (queue, agent).
    logged_out: HashSet<(String, String)>,
    /// When each agent's last queue call ended (longest-idle).
    idle_since: HashMap<String, Instant>,
    /// Round-robin position per queue.
    next_agent: HashMap<String, usize>,
}

impl Queues {
    /// Replaces the configuration (a reload); callers keep waiting in queues that remain.
    pub fn set(&mut self, configs: Vec<QueueConfig>, logged_out: HashSet<(String, String)>) {
        self.configs = configs.into_iter().map(|q| (q.number.clone(), q)).collect();
        self.logged_out = logged_out;
    }

    pub fn config(&self, number: &str) -> Option<&QueueConfig> {
        self.configs.get(number)
    }

    pub fn is_empty(&self) -> bool {
        self.configs.is_empty()
    }

    /// The queues `agent` is an agent of.
    pub fn queues_of(&self, agent: &str) -> Vec<String> {
        let mut q: Vec<String> = self
            .configs
            .values()
            .filter(|c| c.agents.iter().any(|a| a == agent))
            .map(|c| c.number.clone())
            .collect();
        q.sort();
        q
    }

    /// Logs `agent` in or out of queue `queue`.
    pub fn set_logged_in(&mut self, queue: &str, agent: &str, logged_in: bool) {
        let key = (queue.to_string(), agent.to_string());
        if logged_in {
            self.logged_out.remove(&key);
        } else {
            self.logged_out.insert(key);
        }
    }

    /// A caller entered queue `queue` (its call answered by the queue's music). False when the queue is full.
    pub fn enqueue(&mut self, queue: &str, call: u64, caller: &str, now: Instant) -> bool {
        let line = self.waiting.entry(queue.to_string()).or_default();
        if line.len() >= MAX_WAITING {
            return false;
        }
        line.push_back(Waiting {
            call,
            caller: caller.to_string(),
            entered: now,
            offered: None,
            announced: None,
        });
        true
    }

    /// The queue `call` waits in.
    pub fn queue_of(&self, call: u64) -> Option<&str> {
        self.waiting
            .iter()
            .find(|(_, l)| l.iter().any(|w| w.call == call))
            .map(|(q, _)| q.as_str())
    }

    /// `call` left its queue (`agent` answered it, or it hung up, or timed out): its statistics record.
    pub fn leave(
        &mut self,
        call: u64,
        outcome: Outcome,
        agent: Option<&str>,
        now: Instant,
    ) -> Option<Left> {
        let (queue, line) = self
            .waiting
            .iter_mut()
            .find(|(_, l)| l.iter().any(|w| w.call == call))?;
        let i = line.iter().position(|w| w.call == call)?;
        let w = line.remove(i)?;
        Some(Left {
            queue: queue.clone(),
            caller: w.caller,
            outcome,
            agent: agent.map(str::to_string),
            waited: now.saturating_duration_since(w.entered),
        })
    }

    /// An agent finished a queue call (for longest-idle).
    pub fn agent_idle(&mut self, agent: &str, now: Instant) {
        self.idle_since.insert(agent.to_string(), now);
    }

    /// The offer for `call` failed (nobody answered, busy): it waits on; the agents are tried again later.
    pub fn offer_failed(&mut self, call: u64) {
        for line in self.waiting.values_mut() {
            if let Some(w) = line.iter_mut().find(|w| w.call == call) {
                w.offered = None;
            }
        }
    }

    /// Callers waiting in `queue`, first first.
    pub fn waiting(&self, queue: &str) -> Vec<&Waiting> {
        self.waiting
            .get(queue)
            .map(|l| l.iter().collect())
            .unwrap_or_default()
    }

    /// What to do now: timeouts, offers to free agents (`free` says whether an agent may ring now: registered
    /// and not in a call), withdrawn offers, position announcements. Offers follow the line: the first caller
    /// is offered before the second.
    pub fn poll(&mut self, free: impl Fn(&str) -> bool, now: Instant) -> Vec<QueueAction> {
        let mut actions = Vec::new();
        // The queue whose first caller has waited longest offers first (an agent of several queues takes the
        // longest-waiting caller).
        let mut numbers: Vec<(Option<Instant>, String)> = self
            .waiting
            .iter()
            .map(|(n, line)| (line.front().map(|w| w.entered), n.clone()))
            .collect();
        numbers.sort();
        let numbers = numbers.into_iter().map(|(_, n)| n);
        // Agents ringing for a caller now, in any queue: an agent of several queues is offered one caller at a
        // time (its phone rings for one, never for two callers at once).
        let mut ringing: HashSet<String> = self
            .waiting
            .values()
            .flatten()
            .filter_map(|w| w.offered.as_ref())
            .filter(|(_, until)| now < *until)
            .flat_map(|(agents, _)| agents.iter().cloned())
            .collect();
        for number in numbers {
            let Some(config) = self.configs.get(&number).cloned() else {
                // The queue was removed: its callers get its (last known: none) fallback, hang up.
                if let Some(line) = self.waiting.get(&number) {
                    actions.extend(line.iter().map(|w| QueueAction::Timeout {
                        call: w.call,
                        fallback: Fallback::Hangup,
                    }));
                }
                continue;
            };
            let max_wait = Duration::from_secs(u64::from(config.max_wait_secs));
            let Some(line) = self.waiting.get_mut(&number) else {
                continue;
            };
            for (i, w) in line.iter_mut().enumerate() {
                if now.saturating_duration_since(w.entered) >= max_wait {
                    if w.offered.take().is_some() {
                        actions.push(QueueAction::Withdraw { call: w.call });
                    }
                    actions.push(QueueAction::Timeout {
                        call: w.call,
                        fallback: config.fallback.clone(),
                    });
                    continue;
                }
                if w.offered.as_ref().is_some_and(|(_, until)| now >= *until) {
                    w.offered = None;
                    actions.push(QueueAction::Withdraw { call: w.call });
                }
                let position = i + 1;
                let due = match w.announced {
                    None => true,
                    Some((p, at)) => {
                        p != position || now.saturating_duration_since(at) >= ANNOUNCE_EVERY
                    }
                };
                if due && w.offered.is_none() {
                    w.announced = Some((position, now));
                    actions.push(QueueAction::Announce {
                        call: w.call,
                        position,
                    });
                }
            }
            // Offers, in line order, to agents logged in, free and not ringing for another caller.
            let logged_out = &self.logged_out;
            let available: Vec<String> = config
                .agents
                .iter()
                .filter(|a| !logged_out.contains(&(number.clone(), (*a).clone())))
                .filter(|a| free(a) && !ringing.contains(*a))
                .cloned()
                .collect();
            let mut available = order_agents(
                available,
                config.strategy,
                &config.agents,
                &self.idle_since,
                self.next_agent.get(&number).copied().unwrap_or(0),
            );
            let Some(line) = self.waiting.get_mut(&number) else {
                continue;
            };
            for w in line.iter_mut() {
                if available.is_empty() {
                    break;
                }
                if w.offered.is_some() || now.saturating_duration_since(w.entered) >= max_wait {
                    continue;
                }
                let agents = match config.strategy {
                    QueueStrategy::All => std::mem::take(&mut available),
                    _ => vec![available.remove(0)],
                };
                if config.strategy == QueueStrategy::RoundRobin
                    && let Some(i) = config.agents.iter().position(|a| *a == agents[0])
                {
                    self.next_agent.insert(number.clone(), i + 1);
                }
                ringing.extend(agents.iter().cloned());
                w.offered = Some((agents.clone(), now + OFFER_RING));
                actions.push(QueueAction::Offer {
                    call: w.call,
                    agents,
                });
            }
        }
        // A timed-out caller leaves the line only when the endpoint records it ([`Queues::leave`]).
        actions
    }

    /// When [`Queues::poll`] should next run (a caller's time or an offer running out, an announcement due).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.waiting
            .iter()
            .flat_map(|(q, line)| {
                let max = self.configs.get(q).map_or(Duration::ZERO, |c| {
                    Duration::from_secs(u64::from(c.max_wait_secs))
                });
                line.iter().flat_map(move |w| {
                    [
                        Some(w.entered + max),
                        w.offered.as_ref().map(|(_, u)| *u),
                        w.announced.map(|(_, at)| at + ANNOUNCE_EVERY),
                    ]
                    .into_iter()
                    .flatten()
                })
            })
            .min()
    }
}

/// Free agents in the order the strategy offers them.
fn order_agents(
    mut free: Vec<String>,
    strategy: QueueStrategy,
    all: &[String],
    idle_since: &HashMap<String, Instant>,
    next: usize,
) -> Vec<String> {
    match strategy {
        QueueStrategy::LongestIdle => {
            // Never had a call first (in list order), then the longest idle.
            free.sort_by_key(|a| idle_since.get(a).copied());
        }
        QueueStrategy::RoundRobin => {
            let pos = |a: &String| {
                let i = all.iter().position(|x| x == a).unwrap_or(0);
                (i + all.len() - next % all.len().max(1)) % all.len().max(1)
            };
            free.sort_by_key(pos);
        }
        QueueStrategy::All => {}
    }
    free
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(strategy: QueueStrategy) -> QueueConfig {
        QueueConfig {
            number: "700".into(),
            agents: vec!["201".into(), "202".into()],
            strategy,
            max_wait_secs: 60,
            music: "default".into(),
            fallback: Fallback::Hangup,
        }
    }

    fn offers(actions: &[QueueAction]) -> Vec<(u64, Vec<String>)> {
        actions
            .iter()
            .filter_map(|a| match a {
                QueueAction::Offer { call, agents } => Some((*call, agents.clone())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn callers_are_offered_in_order_when_agents_are_free() {
        let t0 = Instant::now();
        let mut q = Queues::default();
        q.set(vec![config(QueueStrategy::LongestIdle)], HashSet::new());
        assert!(q.enqueue("700", 1, "100", t0));
        assert!(q.enqueue("700", 2, "101", t0 + Duration::from_secs(1)));
        // Nobody free: both hear their position.
        let a = q.poll(|_| false, t0 + Duration::from_secs(2));
        assert!(offers(&a).is_empty());
        assert!(a.contains(&QueueAction::Announce {
            call: 1,
            position: 1
        }));
        assert!(a.contains(&QueueAction::Announce {
            call: 2,
            position: 2
        }));
        // 202 becomes free: the first caller is offered to it.
        let a = q.poll(|a| a == "202", t0 + Duration::from_secs(3));
        assert_eq!(offers(&a), vec![(1, vec!["202".to_string()])]);
        // It answers: caller 1 leaves; caller 2 is now first.
        let left = q
            .leave(
                1,
                Outcome::Answered,
                Some("202"),
                t0 + Duration::from_secs(4),
            )
            .unwrap();
        assert_eq!(
            (left.outcome, left.waited),
            (Outcome::Answered, Duration::from_secs(4))
        );
        let a = q.poll(|_| false, t0 + Duration::from_secs(5));
        assert!(a.contains(&QueueAction::Announce {
            call: 2,
            position: 1
        }));
    }

    #[test]
    fn an_agent_of_two_queues_is_offered_one_caller_at_a_time() {
        let t0 = Instant::now();
        let mut q = Queues::default();
        let mut sales = config(QueueStrategy::LongestIdle);
        sales.agents = vec!["201".into()];
        let mut support = sales.clone();
        support.number = "701".into();
        q.set(vec![sales, support], HashSet::new());
        q.enqueue("700", 1, "100", t0);
        q.enqueue("701", 2, "101", t0);
        // 201 rings for the first queue's caller only; the other waits, in this poll and the next.
        let a = q.poll(|_| true, t0);
        assert_eq!(offers(&a), vec![(1, vec!["201".to_string()])]);
        assert!(offers(&q.poll(|_| true, t0 + Duration::from_secs(1))).is_empty());
        // Its offer runs out unanswered: it rings again for one caller, never for both.
        let a = q.poll(|_| true, t0 + OFFER_RING);
        assert!(a.contains(&QueueAction::Withdraw { call: 1 }));
        assert_eq!(offers(&a).len(), 1, "{a:?}");
        // The caller who waited longest goes first, whatever its queue's number.
        let mut q2 = Queues::default();
        q2.set(q.configs.values().cloned().collect(), HashSet::new());
        q2.enqueue("701", 3, "102", t0);
        q2.enqueue("700", 4, "103", t0 + Duration::from_secs(1));
        let a = q2.poll(|_| true, t0 + Duration::from_secs(2));
        assert_eq!(offers(&a), vec![(3, vec!["201".to_string()])]);
    }

    #[test]
    fn an_unanswered_offer_is_withdrawn_and_max_wait_times_out() {
        let t0 = Instant::now();
        let mut q = Queues::default();
        let mut c = config(QueueStrategy::All);
        c.max_wait_secs = 20;
        q.set(vec![c], HashSet::new());
        q.enqueue("700", 1, "100", t0);
        let a = q.poll(|_| true, t0);
        assert_eq!(
            offers(&a),
            vec![(1, vec!["201".to_string(), "202".to_string()])]
        );
        let a = q.poll(|_| true, t0 + OFFER_RING);
        assert!(a.contains(&QueueAction::Withdraw { call: 1 }));
        let a = q.poll(|_| false, t0 + Duration::from_secs(20));
        assert!(a.contains(&QueueAction::Timeout {
            call: 1,
            fallback: Fallback::Hangup
        }));
    }

    #[test]
    fn logged_out_agents_get_no_calls_and_longest_idle_goes_first() {
        let t0 = Instant::now();
        let mut q = Queues::default();
        q.set(vec![config(QueueStrategy::LongestIdle)], HashSet::new());
        q.set_logged_in("700", "201", false);
        q.enqueue("700", 1, "100", t0);
        assert_eq!(
            offers(&q.poll(|_| true, t0)),
            vec![(1, vec!["202".to_string()])]
        );
        q.set_logged_in("700", "201", true);
        q.agent_idle("202", t0);
        q.agent_idle("201", t0 + Duration::from_secs(1));
        q.offer_failed(1);
        assert_eq!(
            offers(&q.poll(|_| true, t0 + Duration::from_secs(2))),
            vec![(1, vec!["202".to_string()])]
        );
    }

    #[test]
    fn validation_says_what_is_wrong() {
        assert!(config(QueueStrategy::All).validate().is_ok());
        let mut c = config(QueueStrategy::All);
        c.max_wait_secs = 1;
        assert!(c.validate().unwrap_err().contains("max wait"));
        let mut c = config(QueueStrategy::All);
        c.fallback = Fallback::Voicemail("201".into());
        assert!(c.validate().is_err());
        assert!(
            QueueStrategy::parse("fewest-calls")
                .unwrap_err()
                .contains("longest-idle")
        );
    }
}
