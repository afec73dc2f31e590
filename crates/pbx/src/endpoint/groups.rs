//! Calls to a ring group number: who of its members may ring now — each member routed exactly as the caller
//! would dial it (call policy and its refusal events), registered, not already in a call — and the plan handed to
//! the call layer ([`crate::calls::GroupCall`]). The group's definition and strategies are in
//! [`crate::office::groups`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use sip::Message;
use sip::transaction::{Peer, ServerTxId};

use crate::calls::{GroupCall, GroupFallback, GroupMember, Party};
use crate::core::ExtensionAuth;
use crate::model::SrtpMode;
use crate::office::{Fallback, RingGroup};
use crate::policy::Route;
use crate::registrar::Origin;

use super::calls::caller_party;
use super::{Endpoint, unspecified};

impl Endpoint {
    /// The ring groups (from the store); a reload keeps each round-robin group's position.
    pub fn set_ring_groups(&mut self, groups: Vec<RingGroup>) {
        self.ring_groups.set(groups);
    }

    /// A new INVITE from extension `caller` to `number`: when `number` is a ring group, the call is placed (or
    /// refused) here and true is returned. Emergency and service numbers are never shadowed by a group.
    pub(super) fn group_invite(
        &mut self,
        tx: ServerTxId,
        request: &Message,
        peer: Peer,
        caller: &Arc<ExtensionAuth>,
        number: &str,
        now: Instant,
    ) -> bool {
        // An extension added later with the group's number wins (the store refuses the other way round).
        if self.ring_groups.is_empty()
            || self.core.is_service_number(number)
            || self.core.extension(number).is_some()
        {
            return false;
        }
        let Some(group) = self.ring_groups.get(number).cloned() else {
            return false;
        };
        let wall = self.clock.at(now);
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
        let members = self.group_members(&group, caller, origin, now);
        let fallback = self.group_fallback(&group, Some(&caller.number));
        let party = caller_party(caller, super::calls::display_name_of(request));
        self.place_group_call(tx, request, peer, party, &group, members, fallback, now);
        true
    }

    /// A call from a trunk to a DID that leads to ring group `number`: only its extension members that take
    /// outside calls ring ([`Self::outside_group_members`]). False when there is no such group.
    pub(super) fn group_trunk_call(
        &mut self,
        tx: ServerTxId,
        request: &Message,
        peer: Peer,
        number: &str,
        caller: Party,
        now: Instant,
    ) -> bool {
        let Some(group) = self.ring_groups.get(number).cloned() else {
            return false;
        };
        let origin = Origin {
            transport: peer.transport,
            source: peer.addr,
            local: unspecified(peer.addr),
        };
        let members = self.outside_group_members(&group, origin, now);
        let fallback = self.group_fallback(&group, None);
        self.place_group_call(tx, request, peer, caller, &group, members, fallback, now);
        true
    }

    /// The steps of a call to `group` among `members` (those that may ring now), by the group's strategy.
    pub(super) fn group_steps(
        &mut self,
        group: &RingGroup,
        members: &[GroupMember],
    ) -> Vec<Vec<GroupMember>> {
        let start = self.ring_groups.take_start(&group.number);
        group
            .steps(|m| members.iter().any(|gm| gm.party.number == m), start)
            .into_iter()
            .map(|step| {
                step.iter()
                    .filter_map(|m| members.iter().find(|gm| gm.party.number == *m).cloned())
                    .collect()
            })
            .collect()
    }

    #[allow(clippy::too_many_arguments)] // one INVITE's inputs and the group's plan
    fn place_group_call(
        &mut self,
        tx: ServerTxId,
        request: &Message,
        peer: Peer,
        party: Party,
        group: &RingGroup,
        members: Vec<GroupMember>,
        fallback: GroupFallback,
        now: Instant,
    ) {
        let wall = self.clock.at(now);
        let steps = self.group_steps(group, &members);
        let callee = Party {
            number: group.number.clone(),
            display_name: None,
            srtp: SrtpMode::Enabled,
            // Whether the call has somewhere to go when nobody answers (the call layer asks the callee).
            voicemail: matches!(fallback, GroupFallback::Mailbox(_)),
            forward: crate::model::Forwarding {
                no_answer: match &fallback {
                    GroupFallback::Forward { target, .. } => Some(target.clone()),
                    _ => None,
                },
                ..Default::default()
            },
            extension: true,
        };
        tracing::info!(group = %group.number, caller = %party.number, strategy = %group.strategy,
            available = members.len(), "ring group call");
        let plan = GroupCall {
            steps,
            ring_each: Duration::from_secs(u64::from(group.ring_seconds)),
            fallback,
        };
        self.calls
            .invite_group(tx, request, peer, party, callee, plan, wall);
    }

    /// The members of `group` that can ring now for an outside caller (from a trunk, through a DID or an
    /// attendant): extensions only — enabled, taking outside calls (not internal-only), registered and not in a
    /// call. An external member is never rung for an outside caller (no trunk-to-trunk path: toll fraud); that
    /// refusal is a policy event.
    pub(super) fn outside_group_members(
        &mut self,
        group: &RingGroup,
        origin: Origin,
        now: Instant,
    ) -> Vec<GroupMember> {
        let wall = self.clock.at(now);
        let busy = self.calls.busy_extensions();
        let mut out = Vec::new();
        for member in &group.members {
            match self.core.extension(member).filter(|e| e.enabled) {
                Some(ext) if !ext.restrictions.internal_only && !busy.contains(member) => {
                    let Some((party, contacts)) = self.extension_destination(member, wall) else {
                        continue;
                    };
                    let mut targets = self.calls.contact_targets("outside", &contacts);
                    for t in &mut targets {
                        t.srtp = Some(party.srtp);
                    }
                    if !targets.is_empty() {
                        out.push(GroupMember { party, targets });
                    }
                }
                Some(_) => {}
                None => {
                    let detail = format!(
                        "ring group {} member {member}: an outside caller never reaches a number outside the office",
                        group.number
                    );
                    self.core.policy_event(
                        crate::model::PolicyReason::Rule("outside_caller_external_member"),
                        origin,
                        &detail,
                        wall,
                    );
                }
            }
        }
        out
    }

    /// The members of `group` that can ring now for `caller`: each routed as the caller would dial it (a refusal
    /// is the caller's policy event and the member is skipped), extensions with live registrations and not in a
    /// call, external numbers through the first trunk of their rule with room.
    pub(super) fn group_members(
        &mut self,
        group: &RingGroup,
        caller: &ExtensionAuth,
        origin: Origin,
        now: Instant,
    ) -> Vec<GroupMember> {
        let wall = self.clock.at(now);
        let busy = self.calls.busy_extensions();
        let mut out = Vec::new();
        for member in &group.members {
            if *member == caller.number {
                continue; // the caller's own phone never rings for its own call
            }
            let why = format!("ring group {} member", group.number);
            match self.core.route_forward(caller, member, &why, origin, wall) {
                Route::Extension(n) => {
                    if busy.contains(&n) {
                        continue;
                    }
                    let Some((party, contacts)) = self.extension_destination(&n, wall) else {
                        continue;
                    };
                    let mut targets = self.calls.contact_targets(&caller.number, &contacts);
                    for t in &mut targets {
                        t.srtp = Some(party.srtp);
                    }
                    if !targets.is_empty() {
                        out.push(GroupMember { party, targets });
                    }
                }
                Route::External { number, trunks, .. } => {
                    let context = format!(
                        "extension {} calling group {} member {member}",
                        caller.number, group.number
                    );
                    let Ok(mut targets) = self.trunk_destination(
                        &trunks,
                        &number,
                        &caller.number,
                        false,
                        &context,
                        origin,
                        wall,
                    ) else {
                        continue;
                    };
                    targets.truncate(1);
                    let party = Party {
                        number: member.clone(),
                        srtp: SrtpMode::Disabled,
                        ..Party::default()
                    };
                    out.push(GroupMember { party, targets });
                }
                // Refused (the policy event is written), or a service or emergency number: never a member.
                Route::Refused(_)
                | Route::Emergency { .. }
                | Route::PinUnlock { .. }
                | Route::Voicemail => {}
            }
        }
        out
    }

    /// The group's fallback for this call: a mailbox only if that extension has voicemail; a number routed as
    /// extension `caller` dials it, or for an outside caller (`None`) only an extension that takes outside calls.
    pub(super) fn group_fallback(&self, group: &RingGroup, caller: Option<&str>) -> GroupFallback {
        match &group.fallback {
            Fallback::Voicemail(mailbox) => {
                match self
                    .core
                    .extension(mailbox)
                    .filter(|e| e.enabled && e.voicemail)
                {
                    Some(_) => GroupFallback::Mailbox(mailbox.clone()),
                    None => {
                        tracing::warn!(group = %group.number, %mailbox,
                            "ring group falls back to a mailbox that does not exist or is disabled; hanging up");
                        GroupFallback::Hangup
                    }
                }
            }
            Fallback::Number(target) => match caller {
                Some(caller) => GroupFallback::Forward {
                    target: target.clone(),
                    route_as: caller.to_string(),
                },
                None => match self
                    .core
                    .extension(target)
                    .filter(|e| e.enabled && !e.restrictions.internal_only)
                {
                    // Rung as that extension would reach itself: an extension, never a trunk.
                    Some(_) => GroupFallback::Forward {
                        target: target.clone(),
                        route_as: target.clone(),
                    },
                    None => GroupFallback::Hangup,
                },
            },
            Fallback::Hangup => GroupFallback::Hangup,
        }
    }
}
