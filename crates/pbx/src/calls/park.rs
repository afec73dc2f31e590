//! Call park: an extension transfers its call (REFER, a phone's blind transfer) to the park number (800); the
//! other party waits on the first free slot (801, 802, …) and the parker is hung up (the REFER's NOTIFY says
//! `200 OK`; `palisade calls` shows the call as parked on its slot). Any extension dialling the slot retrieves the
//! call: its phone takes the parker's place at the relay, like a pickup. Nobody retrieving it before the park
//! time ends rings the parker's phones again ([`CallOutput::ParkTimeout`]); if the parker does not answer either,
//! the call ends.
//!
//! The endpoint decides what the park number and slots are ([`super::Resolved::Park`]) and finds the parker's
//! phones when the time runs out ([`Calls::park_return`]).

use std::collections::BTreeMap;

use super::*;

/// A call waiting on a park slot.
#[derive(Debug, Clone)]
pub(super) struct Parked {
    pub(super) call: u64,
    /// The side the parker left (the retriever takes it).
    side: Leg,
    /// The parker, rung again when the park time ends.
    parker: Party,
    until: Instant,
}

/// Why a retrieval found nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetrieveMiss {
    /// Nothing is parked on that slot.
    Empty,
    /// The retrieving phone's offer cannot be joined to the call (SRTP only, no common codec).
    NotAcceptable,
}

/// The parked calls by slot.
pub(super) type ParkSlots = BTreeMap<String, Parked>;

impl Calls {
    /// The slots in use, with the call parked on each (for `palisade calls`).
    pub fn parked_slots(&self) -> Vec<(String, u64)> {
        self.parked
            .iter()
            .map(|(s, p)| (s.clone(), p.call))
            .collect()
    }

    /// A REFER to the park number from `p.side` of call `id`: the first of `slots` not in use takes the call,
    /// or the REFER is refused (486) when all are taken.
    #[allow(clippy::too_many_arguments)] // the REFER and what the endpoint decided about the park number
    pub(super) fn park(
        &mut self,
        id: u64,
        p: transfer::PendingTransfer,
        slots: Vec<String>,
        timeout: Duration,
        media: &mut dyn MediaControl,
        now: Instant,
        wall: SystemTime,
    ) {
        let local = self.local.clone();
        let free = slots.into_iter().find(|s| !self.parked.contains_key(s));
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let side = p.side();
        let tag = call.dialog(side).local_tag.clone();
        let Some(slot) = free else {
            self.outputs.push(CallOutput::Respond(Response {
                tx: p.tx(),
                status: 486,
                reason: Some("Busy Here (every park slot is taken)".into()),
                to_tag: Some(tag),
                headers: vec![(HeaderName::Warning, forward::warning("park_full"))],
                body: None,
            }));
            return;
        };
        self.outputs.push(CallOutput::Respond(Response {
            tx: p.tx(),
            status: 202,
            reason: None,
            to_tag: Some(tag),
            headers: contact_header(&local, &call.peer(side))
                .into_iter()
                .collect(),
            body: None,
        }));
        let parker = call.party(side).clone();
        let transferee = call.party(side.other()).number.clone();
        tracing::info!(call = id, %slot, parker = %parker.number, %transferee, "call parked");
        // The conversation so far, as one record; the parked part is recorded once the call ends.
        let (caller, callee) = call.record_parties();
        self.outputs.push(CallOutput::Record(CallRecord {
            call_id: call.call_id_a.clone(),
            caller,
            callee,
            started_at: call.started_at,
            answered_at: call.answered_at,
            ended_at: wall,
            disposition: Disposition::Answered,
            hung_up_by: if side == Leg::A {
                HungUpBy::Caller
            } else {
                HungUpBy::Callee
            },
            reason: format!("parked:{slot}"),
        }));
        self.notify(id, side, p.event(), "SIP/2.0 200 OK", true);
        self.send_bye(id, side, media);
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let key = call.dialog(side).key();
        self.dialogs.remove(&key);
        self.detached.insert(key.clone(), id);
        call.handover.detached.push(key);
        call.handover.gone[idx(side)] = true;
        // Nothing goes to (or is taken from) the phone that left.
        let nowhere = ::media::Remote {
            expect: std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            signalled: SocketAddr::from(([0, 0, 0, 0], 9)),
            trusted: false,
        };
        media.set_remote(call.media, side, nowhere, nowhere);
        call.handover.cdr_parties = Some((transferee, slot.clone()));
        call.started_at = wall;
        let slot_party = Party {
            number: slot.clone(),
            ..Party::default()
        };
        match side {
            Leg::A => call.caller = slot_party,
            Leg::B => call.callee = slot_party,
        }
        self.parked.insert(
            slot,
            Parked {
                call: id,
                side,
                parker,
                until: now + timeout,
            },
        );
    }

    /// Extension `retriever` dialled `slot` (its INVITE `msg` in `tx` from `peer`): it takes the parked call.
    #[allow(clippy::too_many_arguments)]
    pub fn retrieve(
        &mut self,
        slot: &str,
        tx: ServerTxId,
        msg: &Message,
        peer: Peer,
        retriever: Party,
        media: &mut dyn MediaControl,
        now: Instant,
        wall: SystemTime,
    ) -> Result<(), RetrieveMiss> {
        let Some(parked) = self.parked.get(slot).cloned() else {
            return Err(RetrieveMiss::Empty);
        };
        if !self.calls.contains_key(&parked.call) {
            self.parked.remove(slot);
            return Err(RetrieveMiss::Empty);
        }
        tracing::info!(call = parked.call, %slot, retriever = %retriever.number, "parked call retrieved");
        self.join_new_phone(
            parked.call,
            parked.side,
            tx,
            msg,
            peer,
            retriever,
            media,
            now,
            wall,
        )?;
        self.parked.remove(slot);
        Ok(())
    }

    /// A new phone (its INVITE `msg` in `tx` from `peer`, extension `party`) takes `side` of established call
    /// `id`, whose previous phone is gone: answered toward that side's relay port with the codecs the other side
    /// agreed on; the other side, if held, is taken off hold.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn join_new_phone(
        &mut self,
        id: u64,
        side: Leg,
        tx: ServerTxId,
        msg: &Message,
        peer: Peer,
        party: Party,
        media: &mut dyn MediaControl,
        now: Instant,
        wall: SystemTime,
    ) -> Result<(), RetrieveMiss> {
        let local = self.local.clone();
        let request_id = self.alloc_id();
        let Some(call) = self.calls.get_mut(&id) else {
            return Err(RetrieveMiss::Empty);
        };
        let waiting = side.other();
        let offer = msg.body_bytes();
        if sdp::security(&offer).savp || !sdp::has_audio(&offer) {
            return Err(RetrieveMiss::NotAcceptable);
        }
        let agreed = call.answers[idx(waiting)]
            .clone()
            .unwrap_or_else(|| call.offer.clone());
        let answer = media.local_port(call.media, side).and_then(|port| {
            sdp::answer_for_with_crypto(&agreed, &offer, media.advertise_ip(), port, &[])
        });
        let (Some(answer), Some(via_addr)) = (answer, local.address_for(peer.transport)) else {
            return Err(RetrieveMiss::NotAcceptable);
        };
        point_leg(media, &local, call.media, side, &offer, peer.addr, &party);
        media.set_crypto(call.media, side, None);
        call.keys.secure[idx(side)] = false;
        call.keys.pending_rx[idx(side)] = None;
        call.keys.pending_offer[idx(side)].clear();
        let dialog = Dialog::uas(msg, new_tag());
        let tag = dialog.local_tag.clone();
        self.dialogs.insert(dialog.key(), (id, side));
        match side {
            Leg::B => {
                call.b = Some(Branch {
                    request_id,
                    peer,
                    dialog,
                    invite_cseq: 0,
                    final_status: Some(200),
                    cancelled: false,
                    offered_keys: Vec::new(),
                    srtp: party.srtp,
                    credentials: None,
                    auth_tried: false,
                    body: answer.clone(),
                    via_addr,
                    transport: peer.transport,
                    max_forwards: 70,
                    silent_deadline: None,
                });
            }
            Leg::A => {
                call.a = dialog;
                call.a_peer = peer;
                call.timers.session_deadline = None;
                call.keys.a_keys = None;
            }
        }
        call.handover.gone[idx(side)] = false;
        call.handover.cdr_parties =
            Some((call.party(waiting).number.clone(), party.number.clone()));
        match side {
            Leg::A => call.caller = party,
            Leg::B => call.callee = party,
        }
        call.started_at = wall;
        call.answered_at = Some(wall);
        call.answers[idx(side)] = Some(offer.clone());
        call.sent[idx(side)] = Some(answer.clone());
        let mut headers: Vec<(HeaderName, String)> =
            contact_header(&local, &peer).into_iter().collect();
        headers.push((HeaderName::Allow, crate::core::ALLOW_CALLS.to_string()));
        self.outputs.push(CallOutput::Respond(Response {
            tx,
            status: 200,
            reason: None,
            to_tag: Some(tag),
            headers,
            body: Some(("application/sdp".into(), answer)),
        }));
        call.timers.joined_2xx = Some(timers::JoinedAnswer::start(tx, side, now));
        // A party the previous phone had put on hold is taken off it (nobody else will).
        call.handover.resume_due = Some((waiting, offer));
        self.resume(id, media);
        Ok(())
    }

    /// Park slots whose time ran out: the call leaves its slot and the parker is to be rung again
    /// ([`CallOutput::ParkTimeout`], answered with [`Calls::park_return`]).
    pub(super) fn park_timeouts(&mut self, now: Instant) {
        let expired: Vec<String> = self
            .parked
            .iter()
            .filter(|(_, p)| now >= p.until)
            .map(|(s, _)| s.clone())
            .collect();
        for slot in expired {
            if let Some(p) = self.parked.remove(&slot) {
                tracing::info!(call = p.call, %slot, parker = %p.parker.number, "park time over: ringing the parker");
                self.outputs.push(CallOutput::ParkTimeout {
                    call: p.call,
                    parker: p.parker.number.clone(),
                });
                if let Some(call) = self.calls.get_mut(&p.call) {
                    call.handover.parked_return = Some((p.side, p.parker));
                }
            }
        }
    }

    /// The parker's phones for a call whose park time ran out: they ring, and the parker takes the call back
    /// when it answers; no phone (or no answer) ends the call.
    pub fn park_return(
        &mut self,
        id: u64,
        targets: Vec<Target>,
        media: &mut dyn MediaControl,
        now: Instant,
        wall: SystemTime,
    ) {
        let Some((side, parker)) = self
            .calls
            .get_mut(&id)
            .and_then(|c| c.handover.parked_return.take())
        else {
            return;
        };
        self.ring_back(id, side, parker, targets, media, now, wall);
    }

    /// When the next park slot runs out.
    pub(super) fn next_park_deadline(&self) -> Option<Instant> {
        self.parked.values().map(|p| p.until).min()
    }

    /// A parked call ended (the waiting party hung up): its slot is free again.
    pub(super) fn unpark(&mut self, id: u64) {
        self.parked.retain(|_, p| p.call != id);
    }

    /// Rings `target` (its phones `targets`) for the vacant `side` of call `id` as a transfer whose transferor
    /// is gone (a parked call returning to its parker): it takes that side when it answers; a failure ends the
    /// call.
    #[allow(clippy::too_many_arguments)]
    fn ring_back(
        &mut self,
        id: u64,
        side: Leg,
        target: Party,
        targets: Vec<Target>,
        media: &mut dyn MediaControl,
        now: Instant,
        wall: SystemTime,
    ) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let waiting = side.other();
        let agreed = call.answers[idx(waiting)]
            .clone()
            .unwrap_or_else(|| call.offer.clone());
        let offer = sdp::sendrecv(&agreed).unwrap_or(agreed);
        let port = media.local_port(call.media, side);
        let advertise = media.advertise_ip();
        let display_name = call.party(waiting).display_name.clone();
        let srtp = target.srtp;
        call.handover.transfer = Some(transfer::Transfer::returning(
            side,
            target,
            now + self.config.no_answer.min(self.config.voicemail_ring),
            offer.clone(),
            port,
            advertise,
            display_name.clone(),
        ));
        let mut branches = Vec::new();
        for t in targets {
            let from = OutgoingFrom {
                display_name: display_name.clone(),
                srtp,
            };
            if let Some(b) = self.new_branch(id, t, &offer, port, advertise, 70, from, now) {
                branches.push(b);
            }
        }
        let rung = !branches.is_empty();
        if let Some(t) = self
            .calls
            .get_mut(&id)
            .and_then(|c| c.handover.transfer.as_mut())
        {
            t.branches = branches;
        }
        if !rung {
            self.fail_transfer(id, 480, media, wall);
        }
    }
}
