//! Call pickup: a colleague's phone rings, and another extension takes the call from its own phone (`*8` for any
//! ringing call of its pickup group, `**201` for extension 201's). The picking-up INVITE becomes the callee leg of
//! the ringing call: the ringing branches are cancelled, the caller is answered with the picker's session
//! description (pointed at the relay) and the picker with the caller's — no new relay session, no re-INVITE.
//!
//! Which calls a picker may take is the endpoint's decision (pickup groups, the picker's policy); this file finds
//! the ringing call among those allowed and joins the legs.

use super::*;

/// Why a pickup found nothing to take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PickupMiss {
    /// No call rings for the numbers allowed.
    NothingRinging,
    /// The picker's offer cannot be joined to the ringing call (SRTP, or no codec in common).
    NotAcceptable,
}

impl Calls {
    /// The extensions whose phones ring now, with the call ringing them (oldest call first): its callee, or for a
    /// ring group the members ringing in the current step.
    pub fn ringing_extensions(&self) -> Vec<(u64, String)> {
        let mut calls: Vec<(&u64, &Call)> = self
            .calls
            .iter()
            .filter(|(_, c)| c.state == State::Ringing && !c.branches.is_empty())
            .collect();
        calls.sort_by_key(|(id, c)| (c.started_at, **id));
        let mut out = Vec::new();
        for (id, c) in calls {
            match &c.hunt {
                Some(h) => out.extend(h.ringing_numbers().map(|n| (*id, n))),
                None if c.callee.extension => out.push((*id, c.callee.number.clone())),
                None => {}
            }
        }
        out
    }

    /// Extension `picker` (its INVITE `msg` in `tx` from `peer`) takes ringing call `id`. On a miss nothing was
    /// sent: the caller of this function answers the picker.
    #[allow(clippy::too_many_arguments)]
    pub fn pick_up(
        &mut self,
        id: u64,
        tx: ServerTxId,
        msg: &Message,
        peer: Peer,
        picker: Party,
        media: &mut dyn MediaControl,
        now: Instant,
        wall: SystemTime,
    ) -> Result<(), PickupMiss> {
        let local = self.local.clone();
        let request_id = self.alloc_id();
        let Some(call) = self
            .calls
            .get_mut(&id)
            .filter(|c| c.state == State::Ringing)
        else {
            return Err(PickupMiss::NothingRinging);
        };
        let picker_offer = msg.body_bytes();
        // The relay joins the legs as they are: the picker's leg is plain RTP (keys would need TLS and a fresh
        // SDES exchange; a phone offering SRTP only is refused).
        if sdp::security(&picker_offer).savp || !sdp::has_audio(&picker_offer) {
            return Err(PickupMiss::NotAcceptable);
        }
        let (Some(port_a), Some(port_b)) = (
            media.local_port(call.media, Leg::A),
            media.local_port(call.media, Leg::B),
        ) else {
            return Err(PickupMiss::NotAcceptable);
        };
        let a_ours: Vec<CryptoAttribute> =
            call.keys.a_keys.iter().map(|(_, o)| o.clone()).collect();
        let advertise = media.advertise_ip();
        let for_caller =
            sdp::answer_for_with_crypto(&picker_offer, &call.offer, advertise, port_a, &a_ours);
        let for_picker =
            sdp::answer_for_with_crypto(&call.offer, &picker_offer, advertise, port_b, &[]);
        let (Some(for_caller), Some(for_picker)) = (for_caller, for_picker) else {
            return Err(PickupMiss::NotAcceptable);
        };
        let Some(via_addr) = local.address_for(peer.transport) else {
            return Err(PickupMiss::NotAcceptable);
        };
        // The phones that rang stop ringing; a late answer from one is hung up.
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
        call.hunt = None;
        call.failover.clear();
        point_leg(
            media,
            &local,
            call.media,
            Leg::B,
            &picker_offer,
            peer.addr,
            &picker,
        );
        media.set_crypto(call.media, Leg::B, None);
        call.keys.secure[1] = false;
        let dialog = Dialog::uas(msg, new_tag());
        let branch = Branch {
            request_id,
            peer,
            dialog,
            invite_cseq: 0,
            final_status: Some(200),
            cancelled: false,
            offered_keys: Vec::new(),
            srtp: picker.srtp,
            credentials: None,
            auth_tried: false,
            body: for_picker.clone(),
            via_addr,
            transport: peer.transport,
            max_forwards: 70,
            silent_deadline: None,
        };
        tracing::info!(call = id, caller = %call.caller.number, rang = %call.callee.number,
            picker = %picker.number, "call picked up");
        self.dialogs.insert(branch.dialog.key(), (id, Leg::B));
        self.dialogs.insert(call.a.key(), (id, Leg::A));
        let picker_tag = branch.dialog.local_tag.clone();
        call.b = Some(branch);
        call.callee = picker;
        call.answers = [Some(for_caller.clone()), Some(picker_offer)];
        call.sent = [Some(for_caller.clone()), Some(for_picker.clone())];
        call.state = State::Answered;
        call.answered_at = Some(wall);
        let mut headers: Vec<(HeaderName, String)> =
            contact_header(&local, &call.a_peer).into_iter().collect();
        headers.push((HeaderName::Allow, crate::core::ALLOW_CALLS.to_string()));
        self.outputs.push(CallOutput::Respond(Response {
            tx: call.invite_tx,
            status: 200,
            reason: None,
            to_tag: Some(call.a.local_tag.clone()),
            headers,
            body: Some(("application/sdp".into(), for_caller)),
        }));
        call.timers.retransmit_2xx = Some(timers::Retransmission::start(now));
        let mut headers: Vec<(HeaderName, String)> =
            contact_header(&local, &peer).into_iter().collect();
        headers.push((HeaderName::Allow, crate::core::ALLOW_CALLS.to_string()));
        self.outputs.push(CallOutput::Respond(Response {
            tx,
            status: 200,
            reason: None,
            to_tag: Some(picker_tag),
            headers,
            body: Some(("application/sdp".into(), for_picker)),
        }));
        call.timers.joined_2xx = Some(timers::JoinedAnswer::start(tx, Leg::B, now));
        Ok(())
    }
}
