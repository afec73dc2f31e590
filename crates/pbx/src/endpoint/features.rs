//! Feature codes dialled by an extension (`*8`, `**201`, a park slot) and the park number: call pickup and
//! park. A picker takes only calls ringing at extensions of its own pickup group (an extension without one is in
//! the office-wide group); anything else is refused with a policy event, so pickup cannot be used to answer calls
//! meant for another department. A transfer to the park number parks the call ([`crate::calls`]'s `park.rs`);
//! dialling a slot retrieves it; an extension's own number always wins over a slot.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use sip::Message;
use sip::transaction::{Peer, ServerTxId};

use crate::calls::{ForwardReason, PickupMiss, ReplaceMiss, Resolved, RetrieveMiss};
use crate::core::ExtensionAuth;
use crate::model::PolicyReason;
use crate::office::{Feature, FeatureCodes};
use crate::registrar::Origin;

use super::calls::{callee_party, caller_party};
use super::{Endpoint, unspecified};

/// Feature codes and pickup groups, as configured.
#[derive(Debug, Default)]
pub struct OfficeFeatures {
    pub codes: FeatureCodes,
    /// Extension → its pickup group; absent: the office-wide group.
    pub pickup_groups: HashMap<String, String>,
}

impl OfficeFeatures {
    fn pickup_group(&self, extension: &str) -> &str {
        self.pickup_groups.get(extension).map_or("", String::as_str)
    }
}

impl Endpoint {
    /// The feature codes and each extension's pickup group (from the store).
    pub fn set_office_features(
        &mut self,
        codes: FeatureCodes,
        pickup_groups: HashMap<String, String>,
    ) {
        self.features = OfficeFeatures {
            codes,
            pickup_groups,
        };
    }

    /// A new INVITE from extension `caller` to `number`: when `number` is a feature code it is handled (or
    /// refused) here and true is returned.
    pub(super) fn feature_invite(
        &mut self,
        tx: ServerTxId,
        request: &Message,
        peer: Peer,
        caller: &Arc<ExtensionAuth>,
        number: &str,
        now: Instant,
    ) -> bool {
        let Some(feature) = self.features.codes.parse(number) else {
            return false;
        };
        let wall = self.clock.at(now);
        let party = caller_party(caller, None);
        let group = self.features.pickup_group(&caller.number).to_string();
        let wanted: Option<String> = match feature {
            Feature::Retrieve(slot) => {
                if self.core.extension(&slot).is_some() {
                    return false;
                }
                self.retrieve_parked(tx, request, peer, caller, &slot, now);
                return true;
            }
            Feature::QueueLogin(logged_in) => {
                self.queue_login(tx, request, caller, logged_in, now);
                return true;
            }
            Feature::Pickup => None,
            Feature::DirectedPickup(ext) => {
                if self.features.pickup_group(&ext) != group {
                    let origin = Origin {
                        transport: peer.transport,
                        source: peer.addr,
                        local: unspecified(peer.addr),
                    };
                    self.core.policy_event(
                        PolicyReason::Rule("pickup_not_allowed"),
                        origin,
                        &format!(
                            "extension {} picking up {ext}: not in its pickup group",
                            caller.number
                        ),
                        wall,
                    );
                    self.calls.refuse(
                        tx,
                        request,
                        &party,
                        number,
                        403,
                        "Forbidden (not in your pickup group)",
                        "pickup_not_allowed",
                        wall,
                    );
                    return true;
                }
                Some(ext)
            }
        };
        let features = &self.features;
        let found = self
            .calls
            .ringing_extensions()
            .into_iter()
            .find(|(_, ext)| {
                *ext != caller.number
                    && features.pickup_group(ext) == group
                    && wanted.as_ref().is_none_or(|w| w == ext)
            });
        let Some((call, _)) = found else {
            self.calls.refuse(
                tx,
                request,
                &party,
                number,
                480,
                "Temporarily Unavailable (no ringing call to pick up)",
                "nothing_to_pick_up",
                wall,
            );
            return true;
        };
        let picker = callee_party(caller);
        match self.calls.pick_up(
            call,
            tx,
            request,
            peer,
            picker,
            self.media.as_mut(),
            now,
            wall,
        ) {
            Ok(()) => {}
            Err(PickupMiss::NothingRinging) => self.calls.refuse(
                tx,
                request,
                &party,
                number,
                480,
                "Temporarily Unavailable (no ringing call to pick up)",
                "nothing_to_pick_up",
                wall,
            ),
            Err(PickupMiss::NotAcceptable) => self.calls.refuse(
                tx,
                request,
                &party,
                number,
                488,
                "Not Acceptable Here (plain RTP with a codec of the caller is needed to pick up)",
                "pickup_not_acceptable",
                wall,
            ),
        }
        true
    }

    /// Extension `caller` dialled park slot `slot`: it takes the call parked there, or hears 404.
    fn retrieve_parked(
        &mut self,
        tx: ServerTxId,
        request: &Message,
        peer: Peer,
        caller: &Arc<ExtensionAuth>,
        slot: &str,
        now: Instant,
    ) {
        let wall = self.clock.at(now);
        let party = caller_party(caller, None);
        let retriever = callee_party(caller);
        let miss = self
            .calls
            .retrieve(
                slot,
                tx,
                request,
                peer,
                retriever,
                self.media.as_mut(),
                now,
                wall,
            )
            .err();
        let (status, reason, code) = match miss {
            None => return,
            Some(RetrieveMiss::Empty) => (
                404,
                "Not Found (no call is parked on this slot)",
                "park_slot_empty",
            ),
            Some(RetrieveMiss::NotAcceptable) => (
                488,
                "Not Acceptable Here (plain RTP with the parked call's codec is needed)",
                "park_not_acceptable",
            ),
        };
        self.calls
            .refuse(tx, request, &party, slot, status, reason, code, wall);
    }

    /// The park number as a transfer target: where a REFER to it parks the call. `None` for anything else.
    pub(super) fn park_destination(&self, target: &str, reason: ForwardReason) -> Option<Resolved> {
        let codes = &self.features.codes;
        if codes.park.is_empty() || target != codes.park || self.core.extension(target).is_some() {
            return None;
        }
        if reason != ForwardReason::Transfer {
            return Some(Resolved::Refused {
                status: 403,
                reason: "Forbidden (the park number takes transfers only)".into(),
                code: "not_forwardable".into(),
            });
        }
        let slots: Vec<String> = codes
            .park_slots
            .iter()
            .filter(|s| self.core.extension(s).is_none())
            .cloned()
            .collect();
        Some(Resolved::Park {
            slots,
            timeout: codes.park_timeout,
        })
    }

    /// A parked call's time ran out: its parker's phones ring for it.
    pub(super) fn park_timed_out(&mut self, call: u64, parker: &str, now: Instant) {
        let wall = self.clock.at(now);
        let contacts = self
            .extension_destination(parker, wall)
            .map(|(_, c)| c)
            .unwrap_or_default();
        let targets = self.calls.contact_targets("park", &contacts);
        self.calls
            .park_return(call, targets, self.media.as_mut(), now, wall);
    }

    /// An INVITE with Replaces from extension `caller`: its new phone takes the place of one of its phones in an
    /// established call (RFC 3891), or the INVITE is refused (481 no such dialog, 403 another extension's dialog
    /// with a policy event, 488 an offer that cannot be joined).
    pub(super) fn replaces_invite(
        &mut self,
        tx: ServerTxId,
        request: &Message,
        peer: Peer,
        caller: &Arc<ExtensionAuth>,
        value: &str,
        now: Instant,
    ) {
        let wall = self.clock.at(now);
        let party = callee_party(caller);
        let miss = self
            .calls
            .replace_dialog(
                value,
                tx,
                request,
                peer,
                party,
                self.media.as_mut(),
                now,
                wall,
            )
            .err();
        let (status, reason, code) = match miss {
            None => return,
            Some(ReplaceMiss::NoDialog) => (
                481,
                "Call/Transaction Does Not Exist (no established call to replace)",
                "replaces_not_found",
            ),
            Some(ReplaceMiss::NotYours) => {
                let origin = Origin {
                    transport: peer.transport,
                    source: peer.addr,
                    local: unspecified(peer.addr),
                };
                self.core.policy_event(
                    PolicyReason::Rule("replaces_not_yours"),
                    origin,
                    &format!(
                        "extension {} tried to replace another extension's call (INVITE with Replaces)",
                        caller.number
                    ),
                    wall,
                );
                (
                    403,
                    "Forbidden (the call to replace is not yours)",
                    "replaces_not_yours",
                )
            }
            Some(ReplaceMiss::NotAcceptable) => (
                488,
                "Not Acceptable Here (plain RTP with the call's codec is needed)",
                "replaces_not_acceptable",
            ),
        };
        let party = caller_party(caller, None);
        let number = super::calls::dialled_number(request);
        self.calls
            .refuse(tx, request, &party, &number, status, reason, code, wall);
    }
}
