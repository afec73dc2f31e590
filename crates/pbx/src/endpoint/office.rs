//! Calls to Palisade's own office numbers (conference rooms, auto attendants): an extension dialling one is
//! answered by the application, under its resource limits like any internal call; a DID can lead to an attendant.
//! An attendant's choices come back here ([`Endpoint::attendant_route`]) and are checked against what the caller
//! may reach: extensions that exist (and take external calls, for a caller from a trunk), mailboxes, rooms and
//! attendants — never the dialling policy, so never a trunk (an attendant is a classic toll-fraud path). Every
//! refusal is a policy event. The numbers come from the store ([`Endpoint::set_office`]).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use sip::Message;
use sip::transaction::{Peer, ServerTxId};

use crate::calls::{AppKind, ForwardReason, GroupFallback, GroupMember, Party, Resolved};
use crate::core::ExtensionAuth;
use crate::model::PolicyReason;
use crate::office::OfficeNumbers;
use crate::office::attendant::Target;
use crate::registrar::Origin;

use super::calls::{callee_party, caller_party};
use super::{Endpoint, Event, unspecified};

impl Endpoint {
    /// The conference rooms (and later other office applications) from the store.
    pub fn set_office(&mut self, office: OfficeNumbers) {
        self.office = office;
    }

    pub fn office(&self) -> &OfficeNumbers {
        &self.office
    }

    /// Answers `number` with its office application when it is one; false when it is not (route it as usual).
    pub(super) fn office_call(
        &mut self,
        tx: ServerTxId,
        request: &Message,
        peer: Peer,
        caller: &ExtensionAuth,
        number: &str,
        now: Instant,
    ) -> bool {
        let wall = self.clock.at(now);
        let kind = if let Some(room) = self.office.conference(number) {
            AppKind::Conference {
                room: room.number.clone(),
            }
        } else if let Some(entry) = self.office.attendant_by_number(number) {
            let open = self.core.office_open(wall);
            AppKind::Attendant {
                name: self.office.effective_attendant(entry, open),
            }
        } else {
            return false;
        };
        let origin = Origin {
            transport: peer.transport,
            source: peer.addr,
            local: unspecified(peer.addr),
        };
        if let Some(r) = self.call_limit(&caller.number, false, number, origin, wall) {
            let party = caller_party(caller, None);
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
        self.answer_with_app(tx, request, peer, caller, kind, now);
        true
    }
}

impl Endpoint {
    /// A call from a trunk to a DID answered by an attendant, or leading to a ring group or a queue; false when
    /// `dialed` is none of these (ring its extension).
    #[allow(clippy::too_many_arguments)] // one inbound call's inputs
    pub(super) fn office_trunk_call(
        &mut self,
        tx: ServerTxId,
        request: &Message,
        peer: Peer,
        trunk: &str,
        dialed: &str,
        caller: Party,
        now: Instant,
    ) -> bool {
        match self.office.did_target(trunk, dialed).cloned() {
            Some(Target::Group(number)) => {
                return self.group_trunk_call(tx, request, peer, &number, caller.clone(), now)
                    || self.refuse_missing_target(tx, request, &caller, dialed, now);
            }
            Some(Target::Queue(number)) => {
                return self.queue_trunk_call(tx, request, peer, &number, caller.clone(), now)
                    || self.refuse_missing_target(tx, request, &caller, dialed, now);
            }
            _ => {}
        }
        let Some(entry) = self.office.did_attendant(trunk, dialed) else {
            return false;
        };
        let wall = self.clock.at(now);
        let open = self.core.office_open(wall);
        let kind = AppKind::Attendant {
            name: self.office.effective_attendant(entry, open),
        };
        self.calls.invite_app(tx, request, peer, caller, kind, wall);
        true
    }

    /// The attendant answering `call` chose `target` for its caller: hand the caller on, or refuse (a policy
    /// event, and the attendant is told with [`Event::AppRefused`]).
    pub(super) fn attendant_route(&mut self, call: u64, target: Target, now: Instant) {
        let wall = self.clock.at(now);
        let Some(from_extension) = self.calls.app_caller_is_extension(call) else {
            return;
        };
        let handed_on = match &target {
            Target::Extension(number) => match self.core.extension(number).filter(|e| e.enabled) {
                Some(ext) if from_extension || !ext.restrictions.internal_only => {
                    let contacts = self.reachable_bindings(number, wall);
                    let resolved = Resolved::Extension {
                        party: callee_party(&ext),
                        contacts,
                    };
                    self.calls
                        .app_transfer(call, resolved, self.media.as_mut(), now, wall)
                }
                Some(_) => false,
                None => false,
            },
            Target::Voicemail(number) => {
                let has_box = self
                    .core
                    .extension(number)
                    .is_some_and(|e| e.enabled && e.voicemail);
                has_box
                    && self.calls.switch_app(
                        call,
                        AppKind::Deposit {
                            mailbox: number.clone(),
                        },
                        self.media.as_mut(),
                    )
            }
            Target::Conference(number) => {
                self.office.conference(number).is_some()
                    && self.calls.switch_app(
                        call,
                        AppKind::Conference {
                            room: number.clone(),
                        },
                        self.media.as_mut(),
                    )
            }
            Target::Group(number) => self.attendant_group(call, number, from_extension, now),
            Target::Queue(number) => match self.queues.config(number).map(|q| q.music.clone()) {
                Some(music) => self.calls.switch_app(
                    call,
                    AppKind::Queue {
                        queue: number.clone(),
                        music,
                    },
                    self.media.as_mut(),
                ),
                None => false,
            },
            Target::Attendant(name) => {
                self.office.attendants.contains_key(name)
                    && self.calls.switch_app(
                        call,
                        AppKind::Attendant { name: name.clone() },
                        self.media.as_mut(),
                    )
            }
            Target::Hangup => false,
        };
        if handed_on {
            tracing::info!(call, %target, "attendant: caller handed on");
            return;
        }
        let source = self.calls.app_caller_source(call);
        if let Some((addr, transport)) = source {
            let origin = Origin {
                transport,
                source: addr,
                local: unspecified(addr),
            };
            let who = if from_extension {
                "an extension"
            } else {
                "an outside caller"
            };
            let detail = format!(
                "attendant: {who} may not reach {target} (not an extension, mailbox, room, group, queue or attendant it may call)"
            );
            self.core.policy_event(
                PolicyReason::Rule("attendant_target_refused"),
                origin,
                &detail,
                wall,
            );
        }
        tracing::info!(call, %target, "attendant: target refused");
        self.events.push_back(Event::AppRefused { call });
    }
}

/// A ring group an application (an attendant) hands its caller to: the steps still to ring, each for
/// `ring_each`, then the fallback. The call layer rings one step at a time ([`crate::calls::Calls::queue_offer`]);
/// a step nobody answered comes back as an unanswered offer and the next one rings.
#[derive(Debug)]
pub(super) struct GroupHandover {
    group: String,
    steps: VecDeque<Vec<GroupMember>>,
    ring_each: Duration,
    fallback: GroupFallback,
}

impl Endpoint {
    /// A DID leads to a ring group or queue that was removed since: the caller hears 404 (an event-free
    /// configuration gap, logged).
    fn refuse_missing_target(
        &mut self,
        tx: ServerTxId,
        request: &Message,
        caller: &Party,
        dialed: &str,
        now: Instant,
    ) -> bool {
        tracing::warn!(did = %dialed, "the DID leads to a ring group or queue that does not exist");
        let wall = self.clock.at(now);
        self.calls.refuse(
            tx,
            request,
            caller,
            dialed,
            404,
            "Not Found (no such number)",
            "unknown_did",
            wall,
        );
        true
    }

    /// The attendant answering `call` chose ring group `number`: its members ring step by step (an extension
    /// caller's members routed as it would dial them; an outside caller's: extensions only). False when the
    /// group does not exist or nobody can ring and there is no fallback.
    fn attendant_group(
        &mut self,
        call: u64,
        number: &str,
        from_extension: bool,
        now: Instant,
    ) -> bool {
        let Some(group) = self.ring_groups.get(number).cloned() else {
            return false;
        };
        let Some((addr, transport)) = self.calls.app_caller_source(call) else {
            return false;
        };
        let origin = Origin {
            transport,
            source: addr,
            local: unspecified(addr),
        };
        let caller = self
            .calls
            .app_caller_number(call)
            .map(str::to_string)
            .unwrap_or_default();
        let (members, fallback) = match self.core.extension(&caller) {
            Some(ext) if from_extension => {
                let members = self.group_members(&group, &ext, origin, now);
                (members, self.group_fallback(&group, Some(&caller)))
            }
            _ => {
                let members = self.outside_group_members(&group, origin, now);
                (members, self.group_fallback(&group, None))
            }
        };
        let steps = self.group_steps(&group, &members).into_iter().collect();
        // Forget handovers of calls that ended or were answered meanwhile.
        let calls = &self.calls;
        self.group_handovers
            .retain(|id, _| calls.app_caller_is_extension(*id).is_some());
        self.group_handovers.insert(
            call,
            GroupHandover {
                group: group.number.clone(),
                steps,
                ring_each: Duration::from_secs(u64::from(group.ring_seconds)),
                fallback,
            },
        );
        tracing::info!(call, group = %group.number, available = members.len(), "attendant: ringing a group");
        self.next_group_step(call, now)
    }

    /// Rings the next step of `call`'s group handover, or its fallback after the last one. False when there is
    /// nothing left to ring (the application is told so by its caller).
    fn next_group_step(&mut self, call: u64, now: Instant) -> bool {
        let wall = self.clock.at(now);
        while let Some(h) = self.group_handovers.get_mut(&call) {
            let ring = h.ring_each;
            let Some(step) = h.steps.pop_front() else {
                break;
            };
            let Some(first) = step.first().map(|m| m.party.clone()) else {
                continue;
            };
            let targets = step.into_iter().flat_map(|m| m.targets).collect();
            if self
                .calls
                .queue_offer(call, first, targets, ring, false, self.media.as_mut(), now)
            {
                return true;
            }
        }
        let Some(h) = self.group_handovers.remove(&call) else {
            return false;
        };
        tracing::info!(call, group = %h.group, "attendant: nobody in the group answered; its fallback");
        match h.fallback {
            GroupFallback::Mailbox(mailbox) => {
                self.calls
                    .switch_app(call, AppKind::Deposit { mailbox }, self.media.as_mut())
            }
            GroupFallback::Forward { target, route_as } => {
                let Some((addr, transport)) = self.calls.app_caller_source(call) else {
                    return false;
                };
                let source = Peer::new(addr, transport);
                match self.resolve_forward(&route_as, &target, ForwardReason::NoAnswer, source, now)
                {
                    Resolved::Extension { party, contacts } => {
                        let targets = self.calls.contact_targets(&route_as, &contacts);
                        self.calls.queue_offer(
                            call,
                            party,
                            targets,
                            Duration::from_secs(30),
                            true,
                            self.media.as_mut(),
                            now,
                        )
                    }
                    resolved => {
                        self.calls
                            .app_transfer(call, resolved, self.media.as_mut(), now, wall)
                    }
                }
            }
            GroupFallback::Hangup => false,
        }
    }

    /// An offer of `call` to a group's step went unanswered: true when it was an attendant's group handover (the
    /// next step rings, or the attendant hears that nobody answered).
    pub(super) fn group_handover_unanswered(&mut self, call: u64, now: Instant) -> bool {
        if !self.group_handovers.contains_key(&call) {
            return false;
        }
        if !self.next_group_step(call, now) && self.apps_enabled {
            self.events.push_back(Event::AppRefused { call });
        }
        true
    }
}
