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
        let start = self.ring_groups.take_start(&group.number);
        let steps = group
            .steps(|m| members.iter().any(|gm| gm.party.number == m), start)
            .into_iter()
            .map(|step| {
                step.iter()
                    .filter_map(|m| members.iter().find(|gm| gm.party.number == *m).cloned())
                    .collect()
            })
            .collect();
        let fallback = self.group_fallback(&group, caller);
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
        tracing::info!(group = %group.number, caller = %caller.number, strategy = %group.strategy,
            available = members.len(), "ring group call");
        let plan = GroupCall {
            steps,
            ring_each: Duration::from_secs(u64::from(group.ring_seconds)),
            fallback,
        };
        let party = caller_party(caller, super::calls::display_name_of(request));
        self.calls
            .invite_group(tx, request, peer, party, callee, plan, wall);
        true
    }

    /// The members of `group` that can ring now for `caller`: each routed as the caller would dial it (a refusal
    /// is the caller's policy event and the member is skipped), extensions with live registrations and not in a
    /// call, external numbers through the first trunk of their rule with room.
    fn group_members(
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

    /// The group's fallback for this call: a mailbox only if that extension has voicemail, a number routed as
    /// the caller dials it.
    fn group_fallback(&self, group: &RingGroup, caller: &ExtensionAuth) -> GroupFallback {
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
            Fallback::Number(target) => GroupFallback::Forward {
                target: target.clone(),
                route_as: caller.number.clone(),
            },
            Fallback::Hangup => GroupFallback::Hangup,
        }
    }
}
