//! A call to a ring group: its members ring step by step (all at once is one step), each step for the group's
//! ring time; a busy, declined or unanswered step moves on to the next; the first member to answer becomes the
//! callee (its number in the call record, its extension allowed to transfer); when every step is done the
//! group's fallback takes the call — a mailbox, or a number routed as the caller would dial it.
//!
//! The endpoint decides who may ring (registered, not busy, allowed by the caller's policy) and hands over the
//! plan ([`GroupCall`]); this file runs it on the call's clock.

use std::collections::VecDeque;

use super::*;

/// One member of a ring group, ready to ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    /// The member as the callee once it answers.
    pub party: Party,
    /// Its phones (or the trunk toward an external number), rung together.
    pub targets: Vec<Target>,
}

/// Where a group call goes when no member took it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupFallback {
    /// A message in this mailbox.
    Mailbox(String),
    /// This number, routed as extension `route_as` (the caller) would dial it.
    Forward { target: String, route_as: String },
    /// None: the caller gets the failure.
    Hangup,
}

/// The plan for one call to a ring group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupCall {
    /// Members to ring together, step by step; empty steps are skipped.
    pub steps: Vec<Vec<GroupMember>>,
    /// How long each step rings.
    pub ring_each: Duration,
    pub fallback: GroupFallback,
}

/// The part of a group call still to run.
#[derive(Debug)]
pub(super) struct Hunt {
    steps: VecDeque<Vec<GroupMember>>,
    ring_each: Duration,
    fallback: GroupFallback,
    /// The INVITE branches of the current step and the member each rings.
    ringing: Vec<(u64, Party)>,
}

/// What [`Calls::hunt_next`] did.
pub(super) enum HuntStep {
    /// Not a group call.
    None,
    /// The next member(s) ring.
    Ringing,
    /// Nobody is left to ring: the group's fallback applies (the hunt is over).
    Exhausted(GroupFallback),
}

impl Calls {
    /// A call to a ring group: the caller's INVITE, the group as the callee (its `voicemail`/`forward` saying
    /// whether a fallback exists), and the plan.
    #[allow(clippy::too_many_arguments)]
    pub fn invite_group(
        &mut self,
        tx: ServerTxId,
        msg: &Message,
        peer: Peer,
        caller: Party,
        group: Party,
        plan: GroupCall,
        wall: SystemTime,
    ) {
        let steps: VecDeque<Vec<GroupMember>> =
            plan.steps.into_iter().filter(|s| !s.is_empty()).collect();
        // The first step's phones decide, as for any callee, whether the call can ring at all.
        let first: Vec<Target> = steps
            .front()
            .map(|s| s.iter().flat_map(|m| m.targets.clone()).collect())
            .unwrap_or_default();
        self.start(
            tx,
            msg,
            peer,
            caller,
            Some(group),
            first,
            Vec::new(),
            None,
            wall,
        );
        let hunt = Hunt {
            steps,
            ring_each: plan.ring_each,
            fallback: plan.fallback,
            ringing: Vec::new(),
        };
        if let Some(id) = self.by_invite.get(&tx)
            && let Some(setup) = self.awaiting_media.get_mut(id)
        {
            setup.hunt = Some(hunt);
        }
    }

    /// Rings the next step of a group call `call` (not yet in the table): true when some member rings.
    pub(super) fn ring_hunt_step(&mut self, call: &mut Call, id: u64, now: Instant) -> bool {
        let (offer, b_port, advertise, mf) = (
            call.offer.clone(),
            call.b_port,
            call.advertise,
            call.max_forwards,
        );
        loop {
            let Some(step) = call.hunt.as_mut().and_then(|h| h.steps.pop_front()) else {
                return false;
            };
            let mut ringing = Vec::new();
            for member in step {
                for target in member.targets {
                    let before = call.branches.len();
                    self.ring(call, id, target, &offer, b_port, advertise, mf, now);
                    if let Some(b) = call.branches.get(before) {
                        ringing.push((b.request_id, member.party.clone()));
                    }
                }
            }
            if let Some(h) = call.hunt.as_mut()
                && !ringing.is_empty()
            {
                h.ringing = ringing;
                call.timers.ringing_deadline = now + h.ring_each;
                return true;
            }
        }
    }

    /// The current step of group call `id` is over (busy, declined, not answered, or nothing to ring): ring the
    /// next one, or hand back the fallback once none is left.
    pub(super) fn hunt_next(&mut self, id: u64, now: Instant) -> HuntStep {
        let Some(mut call) = self.calls.remove(&id) else {
            return HuntStep::None;
        };
        if call.hunt.is_none() {
            self.calls.insert(id, call);
            return HuntStep::None;
        }
        // The step's branches are done (or cancelled by the ring timer): a late answer from one is hung up.
        for b in call
            .branches
            .iter_mut()
            .filter(|b| b.final_status.is_none() && !b.cancelled)
        {
            b.cancelled = true;
            self.outputs.push(CallOutput::Cancel {
                leg: LegKey {
                    call: id,
                    request: b.request_id,
                },
            });
        }
        let old = std::mem::take(&mut call.branches);
        call.retired.extend(old);
        call.failures.clear();
        let result = if self.ring_hunt_step(&mut call, id, now) {
            call.state = State::Ringing;
            HuntStep::Ringing
        } else {
            match call.hunt.take() {
                Some(h) => HuntStep::Exhausted(h.fallback),
                None => HuntStep::None,
            }
        };
        self.calls.insert(id, call);
        result
    }
}

impl Hunt {
    /// The member a branch of the current step rings.
    pub(super) fn member_for(&self, request_id: u64) -> Option<&Party> {
        self.ringing
            .iter()
            .find(|(r, _)| *r == request_id)
            .map(|(_, p)| p)
    }

    /// The numbers of the members ringing in the current step.
    pub(super) fn ringing_numbers(&self) -> impl Iterator<Item = String> + '_ {
        let mut seen: Vec<&str> = Vec::new();
        self.ringing.iter().filter_map(move |(_, p)| {
            if !p.extension || seen.contains(&p.number.as_str()) {
                return None;
            }
            seen.push(p.number.as_str());
            Some(p.number.clone())
        })
    }
}
