//! Call queues at the endpoint: a call to a queue number is answered by the queue's music and joins the line
//! ([`crate::office::Queues`]); the queue timer offers callers to free agents (registered, logged in, not in a
//! call), withdraws unanswered offers, announces positions to the music application, and sends a caller who
//! waited `max_wait` to the fallback (routed as the caller would dial it) or hangs it up. Agents log in and out
//! with feature codes. Every caller leaving a queue becomes a statistics record.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sip::Message;
use sip::transaction::{Peer, ServerTxId, Transport};

use crate::calls::{AppKind, AppStart, Party};
use crate::core::ExtensionAuth;
use crate::office::QueueConfig;
use crate::office::groups::Fallback;
use crate::office::queues::{Left, Outcome, QueueAction};
use crate::policy::Route;
use crate::registrar::Origin;

use super::calls::caller_party;
use super::events::{Event, Record};
use super::{Endpoint, unspecified};

impl Endpoint {
    /// The queues (from the store) and the agents logged out of them.
    pub fn set_queues(&mut self, queues: Vec<QueueConfig>, logged_out: HashSet<(String, String)>) {
        self.queues.set(queues, logged_out);
    }

    /// Callers waiting in `queue`, first first: (caller, seconds waited).
    pub fn queue_waiting(&self, queue: &str, now: Instant) -> Vec<(String, u64)> {
        self.queues
            .waiting(queue)
            .into_iter()
            .map(|w| {
                (
                    w.caller.clone(),
                    now.saturating_duration_since(w.entered).as_secs(),
                )
            })
            .collect()
    }

    /// A new INVITE from extension `caller` to `number`: a queue's number is answered here by its music.
    pub(super) fn queue_invite(
        &mut self,
        tx: ServerTxId,
        request: &Message,
        peer: Peer,
        caller: &Arc<ExtensionAuth>,
        number: &str,
        now: Instant,
    ) -> bool {
        if self.queues.is_empty()
            || self.core.is_service_number(number)
            || self.core.extension(number).is_some()
        {
            return false;
        }
        let Some(config) = self.queues.config(number).cloned() else {
            return false;
        };
        let wall = self.clock.at(now);
        let origin = Origin {
            transport: peer.transport,
            source: peer.addr,
            local: unspecified(peer.addr),
        };
        let party = caller_party(caller, super::calls::display_name_of(request));
        if let Some(r) = self.call_limit(&caller.number, false, number, origin, wall) {
            let reason = r.phrase();
            self.calls.refuse(
                tx,
                request,
                &party,
                number,
                r.status(),
                &reason,
                r.reason_code(),
                wall,
            );
            return true;
        }
        if self.queues.waiting(number).len() >= crate::office::queues::MAX_WAITING {
            self.calls.refuse(
                tx,
                request,
                &party,
                number,
                486,
                "Busy Here (the queue is full)",
                "queue_full",
                wall,
            );
            return true;
        }
        self.calls
            .invite_queue(tx, request, peer, party, number, &config.music, wall);
        true
    }

    /// A call from a trunk to a DID that leads to queue `number`: answered by its music like an extension's
    /// call. False when there is no such queue.
    pub(super) fn queue_trunk_call(
        &mut self,
        tx: ServerTxId,
        request: &Message,
        peer: Peer,
        number: &str,
        caller: Party,
        now: Instant,
    ) -> bool {
        let Some(config) = self.queues.config(number).cloned() else {
            return false;
        };
        let wall = self.clock.at(now);
        if self.queues.waiting(number).len() >= crate::office::queues::MAX_WAITING {
            self.calls.refuse(
                tx,
                request,
                &caller,
                number,
                486,
                "Busy Here (the queue is full)",
                "queue_full",
                wall,
            );
            return true;
        }
        self.calls
            .invite_queue(tx, request, peer, caller, number, &config.music, wall);
        true
    }

    /// Agent `caller` dialled the login (`true`) or logout code: it joins or leaves every queue it is an agent of.
    /// The answer says which (there is nothing to talk to).
    pub(super) fn queue_login(
        &mut self,
        tx: ServerTxId,
        request: &Message,
        caller: &Arc<ExtensionAuth>,
        logged_in: bool,
        now: Instant,
    ) {
        let wall = self.clock.at(now);
        let queues = self.queues.queues_of(&caller.number);
        for q in &queues {
            self.queues.set_logged_in(q, &caller.number, logged_in);
            self.queue_records.push(Record::QueueAgent {
                queue: q.clone(),
                agent: caller.number.clone(),
                logged_in,
            });
        }
        let party = caller_party(caller, None);
        let number = super::calls::dialled_number(request);
        let (status, reason, code) = match (queues.is_empty(), logged_in) {
            (true, _) => (
                404,
                "Not Found (you are an agent of no queue)".to_string(),
                "not_an_agent",
            ),
            (false, true) => (
                480,
                format!("Logged In (queues {})", queues.join(",")),
                "queue_login",
            ),
            (false, false) => (
                480,
                format!("Logged Out (queues {})", queues.join(",")),
                "queue_logout",
            ),
        };
        tracing::info!(agent = %caller.number, logged_in, queues = %queues.join(","), "queue agent login");
        self.calls
            .refuse(tx, request, &party, &number, status, &reason, code, wall);
    }

    /// A media application started: a queue's caller joins its line.
    pub(super) fn queue_started(&mut self, start: &AppStart, now: Instant) {
        if let AppKind::Queue { queue, .. } = &start.kind {
            self.queues.enqueue(queue, start.call, &start.caller, now);
        }
    }

    /// A media application stopped: a queue's caller still in line hung up (abandoned).
    pub(super) fn queue_stopped(&mut self, call: u64, now: Instant) {
        if let Some(left) = self.queues.leave(call, Outcome::Abandoned, None, now) {
            self.queue_left(left);
        }
    }

    /// The agents offered `call` answered (`agent`) or not.
    pub(super) fn queue_offered(&mut self, call: u64, agent: Option<String>, now: Instant) {
        match agent {
            Some(agent) => {
                self.queues.agent_idle(&agent, now);
                if let Some(left) = self
                    .queues
                    .leave(call, Outcome::Answered, Some(&agent), now)
                {
                    self.queue_left(left);
                }
            }
            None if self.group_handover_unanswered(call, now) => {}
            None => self.queues.offer_failed(call),
        }
    }

    fn queue_left(&mut self, left: Left) {
        tracing::info!(queue = %left.queue, caller = %left.caller, outcome = left.outcome.as_str(),
            agent = ?left.agent, waited = left.waited.as_secs(), "queue caller left");
        self.queue_records.push(Record::QueueCall(left));
    }

    /// The queue timer: offers, withdrawals, timeouts, announcements.
    pub(super) fn queue_timeout(&mut self, now: Instant) {
        if self.queues.is_empty() {
            return;
        }
        let wall = self.clock.at(now);
        let busy = self.calls.busy_extensions();
        let unix = crate::core::unix_secs(wall);
        let registered: HashSet<String> = self
            .core
            .registrar()
            .all()
            .filter(|b| b.expires_at > unix)
            .map(|b| b.aor.clone())
            .collect();
        let core = &self.core;
        let free = |a: &str| {
            !busy.contains(a)
                && registered.contains(a)
                && core.extension(a).is_some_and(|e| e.enabled)
        };
        for action in self.queues.poll(free, now) {
            match action {
                QueueAction::Offer { call, agents } => {
                    let mut targets = Vec::new();
                    let mut first: Option<Party> = None;
                    // An outside caller (from a trunk) never rings an internal-only extension.
                    let outside = self.calls.app_caller_is_extension(call) == Some(false);
                    for agent in &agents {
                        if outside
                            && self
                                .core
                                .extension(agent)
                                .is_some_and(|e| e.restrictions.internal_only)
                        {
                            continue;
                        }
                        if let Some((party, contacts)) = self.extension_destination(agent, wall) {
                            let mut t = self.calls.contact_targets("queue", &contacts);
                            for x in &mut t {
                                x.srtp = Some(party.srtp);
                            }
                            targets.extend(t);
                            first.get_or_insert(party);
                        }
                    }
                    let rung = first.is_some_and(|agent| {
                        self.calls.queue_offer(
                            call,
                            agent,
                            targets,
                            crate::office::queues::OFFER_RING,
                            false,
                            self.media.as_mut(),
                            now,
                        )
                    });
                    if !rung {
                        self.queues.offer_failed(call);
                    }
                }
                QueueAction::Withdraw { call } => self.calls.queue_withdraw(call),
                QueueAction::Announce { call, position } => {
                    if self.apps_enabled {
                        self.events
                            .push_back(Event::QueuePosition { call, position });
                    }
                }
                QueueAction::Timeout { call, fallback } => {
                    let Some(left) = self.queues.leave(call, Outcome::Timeout, None, now) else {
                        continue;
                    };
                    let caller = left.caller.clone();
                    let queue = left.queue.clone();
                    self.queue_left(left);
                    self.queue_fallback(call, &queue, &caller, fallback, now);
                }
            }
        }
    }

    /// A caller who waited `max_wait`: the fallback number rings (routed as the caller would dial it; a refusal
    /// is the caller's policy event), or the caller is hung up.
    fn queue_fallback(
        &mut self,
        call: u64,
        queue: &str,
        caller: &str,
        fallback: Fallback,
        now: Instant,
    ) {
        let wall = self.clock.at(now);
        self.calls.queue_withdraw(call);
        let target = match fallback {
            Fallback::Number(n) => n,
            Fallback::Voicemail(_) | Fallback::Hangup => {
                self.calls.queue_hang_up(call, self.media.as_mut(), wall);
                return;
            }
        };
        let origin = Origin {
            transport: Transport::Udp,
            source: ([0, 0, 0, 0], 0).into(),
            local: unspecified(([0, 0, 0, 0], 0).into()),
        };
        let why = format!("queue {queue} fallback");
        // An extension's call is routed as it would dial the fallback; an outside caller's reaches an extension
        // that takes outside calls, never a trunk. Decided by where the call came from, not by the caller's
        // number (an outside number may look like an extension's).
        let routed = match self.calls.app_caller_is_extension(call) {
            Some(true) => self
                .core
                .extension(caller)
                .filter(|e| e.enabled)
                .map(|ext| self.core.route_forward(&ext, &target, &why, origin, wall)),
            _ => self
                .core
                .extension(&target)
                .filter(|e| e.enabled && !e.restrictions.internal_only)
                .map(|e| Route::Extension(e.number.clone())),
        };
        let dest = match routed {
            Some(Route::Extension(n)) => {
                self.extension_destination(&n, wall)
                    .map(|(party, contacts)| {
                        let targets = self.calls.contact_targets(caller, &contacts);
                        (party, targets)
                    })
            }
            Some(Route::External { number, trunks, .. }) => self
                .trunk_destination(&trunks, &number, caller, false, &why, origin, wall)
                .ok()
                .map(|t| {
                    let party = Party {
                        number: target.clone(),
                        srtp: crate::model::SrtpMode::Disabled,
                        ..Party::default()
                    };
                    (party, t)
                }),
            _ => None,
        };
        let rung = dest.is_some_and(|(party, targets)| {
            self.calls.queue_offer(
                call,
                party,
                targets,
                Duration::from_secs(30),
                true,
                self.media.as_mut(),
                now,
            )
        });
        if !rung {
            self.calls.queue_hang_up(call, self.media.as_mut(), wall);
        }
    }

    /// When the queue timer should next run.
    pub(super) fn queue_poll_timeout(&self) -> Option<Instant> {
        self.queues.next_deadline()
    }
}
