//! Blind transfer by REFER (RFC 3515) inside a confirmed call.
//!
//! Only an extension's leg may transfer. The Refer-To number is routed by the service exactly as if the
//! transferring extension (the transferor) had dialled it ([`super::CallOutput::Forward`] with
//! [`ForwardReason::Transfer`]): a refusal is answered to the REFER (403/404 with a Warning, and the policy
//! event), and the call goes on unchanged. Otherwise the REFER gets 202 Accepted, the transferor a NOTIFY
//! `SIP/2.0 100 Trying` (`message/sipfrag`), and Palisade INVITEs the target from the transferee, offering the
//! codecs the transferee agreed on, pointed at the relay port the transferor used: the transferee keeps talking
//! to the same relay port.
//!
//! - The target answers: the transferor gets NOTIFY `SIP/2.0 200 OK` (subscription terminated) and BYE, and the
//!   target takes its place in the call (relay and dialog). The conversation before the transfer is recorded
//!   (reason `transfer`); the rest of the call is recorded as transferee → target.
//! - The target fails (busy, no answer, refused, unreachable): while the transferor is still in the call, it
//!   gets NOTIFY with the failure (e.g. `SIP/2.0 486 Busy Here`) and keeps the call, as a phone user expects
//!   after a failed blind transfer. A transferor that already hung up (many phones do right after 202) left the
//!   transferee alone: the transferee then gets BYE (`transfer_failed`).
//! - The transferee on hold (the transferor held it before the REFER, as many phones do): once the target
//!   answered, Palisade re-INVITEs the transferee itself ([`Resume`]: `a=sendrecv`, the same relay port, the
//!   codecs agreed with the target, a fresh SRTP key on an SRTP leg), after any INVITE still in flight toward it.
//!   Its 2xx is ACKed and its answer taken (relay address, keys); a failure is logged and the call goes on; an
//!   INVITE crossing it gets 491. A transferee that was not on hold gets nothing.
//! - Attended transfer (Refer-To with `Replaces`) is `attended.rs`'s.

use std::time::{Instant, SystemTime};

use bytes::Bytes;
use sip::transaction::ServerTxId;
use sip::{HeaderName, Message, Method};

use super::forward::{Pending, Resolved, warning};
use super::{
    Branch, CallOutput, CallRecord, Calls, Disposition, ForwardReason, HungUpBy, Leg, LegKey,
    MAX_FORWARD_HOPS, MediaControl, OutgoingFrom, Party, Response, State, Target, answered_keys,
    best_failure, bodyless, built, contact_header, contact_uri, idx, leg_crypto, point_leg,
    reauthenticate, sdp, via,
};
use crate::model::SrtpMode;
use ::media::sdes::CryptoAttribute;

/// The request id of the NOTIFYs Palisade sends (their responses are not waited for).
const NOTIFY_REQUEST: u64 = u64::MAX - 2;

/// A REFER whose target the service is routing.
#[derive(Debug)]
pub(super) struct PendingTransfer {
    /// The REFER's server transaction (answered once the target is routed).
    tx: ServerTxId,
    /// The transferor's side.
    side: Leg,
    /// The Event header of the NOTIFYs (`refer`, or `refer;id=CSEQ` for a later REFER in the dialog).
    event: String,
    /// Forward-always hops followed from the Refer-To number.
    hops: usize,
    /// The numbers the transfer may not go to (the call's own parties, then the forwards followed).
    chain: Vec<String>,
}

impl PendingTransfer {
    pub(super) fn tx(&self) -> ServerTxId {
        self.tx
    }

    pub(super) fn side(&self) -> Leg {
        self.side
    }

    pub(super) fn event(&self) -> &str {
        &self.event
    }

    /// A media application hands its caller (`caller`) on: no REFER to answer, no transferor dialog to notify.
    pub(super) fn by_app(caller: String) -> Self {
        PendingTransfer {
            tx: ServerTxId::from_raw(u64::MAX),
            side: Leg::B,
            event: "refer".into(),
            hops: 0,
            chain: vec![caller],
        }
    }
}

/// Whether `side` of `call` is a media application rather than a phone (an attendant handing its caller on): it
/// has no dialog to answer or notify, and is "gone" from the start.
fn app_side(call: &super::Call, side: Leg) -> bool {
    side == Leg::B && call.b.is_none() && call.diversion.app.is_some()
}

/// A transfer whose target is being rung.
#[derive(Debug)]
pub(super) struct Transfer {
    side: Leg,
    event: String,
    /// The transferor hung up while the target rang: a failure then ends the call.
    transferor_gone: bool,
    /// A queue offering its caller to agents (`queue.rs`): a failure leaves the caller waiting.
    pub(super) keep_on_failure: bool,
    /// Several extensions ring (a queue's agents, a ring group's members): the one whose phone answers becomes
    /// the callee, not the first of them.
    pub(super) callee_from_answer: bool,
    target: Party,
    pub(super) branches: Vec<Branch>,
    /// Further trunks to try.
    failover: Vec<Target>,
    failures: Vec<u16>,
    /// The target not answering by then fails the transfer.
    deadline: Instant,
    /// The offer to the target (the transferee's agreed codecs), the relay port and the From display name, for
    /// failover.
    offer: Bytes,
    port: Option<u16>,
    advertise: std::net::IpAddr,
    display_name: Option<String>,
}

impl Transfer {
    /// A transfer whose transferor is already gone, ringing `target` for `side` (a parked call returning to its
    /// parker, `park.rs`); its branches are added once sent.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn returning(
        side: Leg,
        target: Party,
        deadline: Instant,
        offer: Bytes,
        port: Option<u16>,
        advertise: std::net::IpAddr,
        display_name: Option<String>,
    ) -> Transfer {
        Transfer {
            side,
            event: String::new(),
            transferor_gone: true,
            keep_on_failure: false,
            callee_from_answer: false,
            target,
            branches: Vec::new(),
            failover: Vec::new(),
            failures: Vec::new(),
            deadline,
            offer,
            port,
            advertise,
            display_name,
        }
    }

    /// The earliest of the ringing deadline and a silent trunk's deadline.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.branches
            .iter()
            .filter(|b| b.final_status.is_none())
            .filter_map(|b| b.silent_deadline)
            .chain(std::iter::once(self.deadline))
            .min()
    }
}

/// Palisade's own re-INVITE to a transferee that was on hold when its transfer target answered (RFC 3261
/// §14.1): a two-way offer toward the same relay port with the codecs agreed with the target.
#[derive(Debug)]
pub(super) struct Resume {
    side: Leg,
    /// The [`LegKey`] request id its responses come back with.
    pub(super) request: u64,
    cseq: u32,
    peer: sip::transaction::Peer,
    offer: Bytes,
    /// The keys Palisade offered (SRTP leg), empty for plain RTP.
    keys: Vec<CryptoAttribute>,
    /// The ACK of its 2xx, once answered (sent again for a retransmitted 2xx).
    ack: Option<Bytes>,
}

impl super::Call {
    /// Palisade's own re-INVITE is waiting for its final response.
    pub(super) fn resume_in_flight(&self) -> bool {
        self.handover
            .resume
            .as_ref()
            .is_some_and(|r| r.ack.is_none())
    }
}

/// Why a Refer-To cannot be followed.
#[derive(Debug, PartialEq, Eq)]
enum ReferError {
    /// Attended transfer (Replaces): not supported.
    Replaces,
    Bad(&'static str),
}

/// The number a REFER transfers to: the user part of its sip/sips Refer-To URI, or a tel URI's number (visual
/// separators removed). Digits, optionally after `+`.
fn refer_target(msg: &Message) -> Result<String, ReferError> {
    let mut values = msg.header_values(HeaderName::ReferTo);
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(ReferError::Bad("exactly one Refer-To is required"));
    };
    let addr =
        sip::addr::NameAddr::parse(value).map_err(|_| ReferError::Bad("invalid Refer-To"))?;
    let uri = addr.uri;
    if uri.headers.is_some_and(|h| {
        h.split('&').any(|p| {
            p.split('=')
                .next()
                .is_some_and(|n| n.eq_ignore_ascii_case("replaces"))
        })
    }) {
        return Err(ReferError::Replaces);
    }
    let user = match uri.scheme {
        sip::uri::Scheme::Sip | sip::uri::Scheme::Sips => uri
            .user_unescaped()
            .map(|u| String::from_utf8_lossy(&u).into_owned()),
        sip::uri::Scheme::Tel => uri.user.map(str::to_string),
        sip::uri::Scheme::Other => None,
    }
    .ok_or(ReferError::Bad(
        "Refer-To must be a sip, sips or tel URI with a number",
    ))?;
    // telephone-subscriber parameters (;phone-context=…) and visual separators are not part of the number.
    let number: String = user
        .split(';')
        .next()
        .unwrap_or("")
        .chars()
        .filter(|c| !matches!(c, '-' | '.' | '(' | ')'))
        .collect();
    super::forward::validate_target("", &number)
        .map_err(|_| ReferError::Bad("the Refer-To user part must be a number"))?;
    Ok(number)
}

impl Calls {
    /// A REFER from `side` of call `id`: refused at once when it cannot be followed, otherwise its target is
    /// handed to the service to route as the transferor.
    pub(super) fn refer(
        &mut self,
        id: u64,
        side: Leg,
        tx: ServerTxId,
        msg: &Message,
        media: &mut dyn MediaControl,
        wall: SystemTime,
    ) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        call.handover.refers[idx(side)] += 1;
        // Attended transfer (Refer-To with Replaces): `attended.rs`.
        if let Some(replaces) = super::attended::replaces_in(msg) {
            self.attended_refer(id, side, tx, msg, replaces, media, wall);
            return;
        }
        let tag = call.dialog(side).local_tag.clone();
        let refusal: Option<(u16, &str, Option<&str>)> = if !call.party(side).extension {
            Some((
                403,
                "Forbidden (only extensions may transfer)",
                Some("transfer_not_allowed"),
            ))
        } else if call.state != State::Confirmed || call.diversion.app.is_some() {
            Some((403, "Forbidden (the call is not established)", None))
        } else if call.handover.transfer.is_some()
            || call.diversion.pending.is_some()
            || call.handover.gone.contains(&true)
        {
            Some((491, "Request Pending (a transfer is in progress)", None))
        } else {
            match refer_target(msg) {
                Err(ReferError::Replaces) => Some((
                    501,
                    "Not Implemented (attended transfer with Replaces)",
                    None,
                )),
                Err(ReferError::Bad(why)) => Some((400, why, None)),
                Ok(number) => {
                    let seq = msg.cseq().map(|c| c.seq).unwrap_or(0);
                    let event = if call.handover.refers[idx(side)] == 1 {
                        "refer".to_string()
                    } else {
                        format!("refer;id={seq}")
                    };
                    let from = call.party(side).number.clone();
                    tracing::info!(call = id, %from, target = %number, "transfer requested");
                    call.diversion.pending = Some(Pending::Transfer(PendingTransfer {
                        tx,
                        side,
                        event,
                        hops: 0,
                        chain: vec![call.caller.number.clone(), call.callee.number.clone()],
                    }));
                    let source = call.peer(side);
                    self.outputs.push(CallOutput::Forward {
                        call: id,
                        from,
                        target: number,
                        reason: ForwardReason::Transfer,
                        source,
                    });
                    None
                }
            }
        };
        if let Some((status, phrase, code)) = refusal {
            let phrase = if status == 400 {
                format!("Bad Request ({phrase})")
            } else {
                phrase.to_string()
            };
            self.outputs.push(CallOutput::Respond(Response {
                tx,
                status,
                reason: Some(phrase),
                to_tag: Some(tag),
                headers: code
                    .map(|c| (HeaderName::Warning, warning(c)))
                    .into_iter()
                    .collect(),
                body: None,
            }));
        }
    }

    /// The service routed a REFER's target: refuse the REFER, follow the target's forward-always, or accept.
    pub(super) fn transfer_resolved(
        &mut self,
        id: u64,
        mut p: PendingTransfer,
        resolved: Resolved,
        media: &mut dyn MediaControl,
        now: Instant,
        wall: SystemTime,
    ) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let tag = call.dialog(p.side).local_tag.clone();
        let refuse = |status: u16, phrase: &str, code: &str| {
            CallOutput::Respond(Response {
                tx: p.tx,
                status,
                reason: Some(phrase.to_string()),
                to_tag: Some(tag.clone()),
                headers: vec![(HeaderName::Warning, warning(code))],
                body: None,
            })
        };
        match resolved {
            Resolved::Refused {
                status,
                reason,
                code,
            } => {
                // The call goes on unchanged.
                self.outputs.push(refuse(status, &reason, &code));
            }
            Resolved::Extension { party, contacts } => {
                if p.chain.contains(&party.number) {
                    let out = if p.hops == 0 {
                        refuse(
                            403,
                            "Forbidden (the transfer target is already in the call)",
                            "transfer_to_party",
                        )
                    } else {
                        refuse(482, "Loop Detected (call forwarding loop)", "forward_loop")
                    };
                    self.outputs.push(out);
                    return;
                }
                if let Some(next) = party.forward.always.clone() {
                    // The target forwards everything: follow it, routed as the target.
                    if p.hops + 1 > MAX_FORWARD_HOPS {
                        self.outputs.push(refuse(
                            482,
                            "Loop Detected (call forwarding loop)",
                            "forward_loop",
                        ));
                        return;
                    }
                    p.hops += 1;
                    p.chain.push(party.number.clone());
                    let source = call.peer(p.side);
                    call.diversion.pending = Some(Pending::Transfer(p));
                    self.outputs.push(CallOutput::Forward {
                        call: id,
                        from: party.number,
                        target: next,
                        reason: ForwardReason::Always,
                        source,
                    });
                    return;
                }
                let transferee = call.party(p.side.other()).number.clone();
                let targets = self.contact_targets(&transferee, &contacts);
                self.start_transfer(id, p, party, targets, Vec::new(), media, now, wall);
            }
            Resolved::Park { slots, timeout } => {
                self.park(id, p, slots, timeout, media, now, wall);
            }
            Resolved::External {
                number,
                mut targets,
            } => {
                let party = Party {
                    number,
                    srtp: SrtpMode::Disabled,
                    ..Party::default()
                };
                let rest = if targets.len() > 1 {
                    targets.split_off(1)
                } else {
                    Vec::new()
                };
                self.start_transfer(id, p, party, targets, rest, media, now, wall);
            }
        }
    }

    /// Accepts the REFER (202, NOTIFY 100 Trying) and INVITEs the target.
    #[allow(clippy::too_many_arguments)]
    fn start_transfer(
        &mut self,
        id: u64,
        p: PendingTransfer,
        target: Party,
        targets: Vec<Target>,
        failover: Vec<Target>,
        media: &mut dyn MediaControl,
        now: Instant,
        wall: SystemTime,
    ) {
        let local = self.local.clone();
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let (side, transferee) = (p.side, p.side.other());
        let by_app = app_side(call, side);
        if !by_app {
            self.outputs.push(CallOutput::Respond(Response {
                tx: p.tx,
                status: 202,
                reason: None,
                to_tag: Some(call.dialog(side).local_tag.clone()),
                headers: contact_header(&local, &call.peer(side))
                    .into_iter()
                    .collect(),
                body: None,
            }));
        }
        // The codecs the transferee agreed on, two-way, toward the relay port the transferor used.
        let agreed = call.answers[idx(transferee)]
            .clone()
            .unwrap_or_else(|| call.offer.clone());
        let offer = sdp::sendrecv(&agreed).unwrap_or(agreed);
        let port = media.local_port(call.media, side);
        let advertise = media.advertise_ip();
        let display_name = call.party(transferee).display_name.clone();
        let srtp = target.srtp;
        call.handover.transfer = Some(Transfer {
            side,
            event: p.event.clone(),
            transferor_gone: by_app,
            keep_on_failure: false,
            callee_from_answer: false,
            target,
            branches: Vec::new(),
            failover,
            failures: Vec::new(),
            deadline: now + self.config.no_answer,
            offer: offer.clone(),
            port,
            advertise,
            display_name: display_name.clone(),
        });
        if !by_app {
            self.notify(id, side, &p.event, "SIP/2.0 100 Trying", false);
        }
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

    /// A response to the INVITE of a transfer target.
    pub(super) fn transfer_response(
        &mut self,
        leg: LegKey,
        msg: &Message,
        media: &mut dyn MediaControl,
        now: Instant,
        wall: SystemTime,
    ) {
        let Some(status) = msg.status() else { return };
        if msg.cseq().map(|c| c.method).ok() != Some(Method::Invite) {
            return;
        }
        let retry_id = self.alloc_id();
        let Some(t) = self
            .calls
            .get_mut(&leg.call)
            .and_then(|c| c.handover.transfer.as_mut())
        else {
            return;
        };
        let Some(bi) = t.branches.iter().position(|b| b.request_id == leg.request) else {
            return;
        };
        if t.branches[bi].final_status.is_some() {
            return;
        }
        match status {
            100..=199 => t.branches[bi].silent_deadline = None,
            200..=299 => self.transfer_answered(leg.call, bi, msg, media, wall),
            _ => {
                if matches!(status, 401 | 407)
                    && let Some((request, peer)) =
                        reauthenticate(&mut t.branches[bi], retry_id, msg, status)
                {
                    self.outputs.push(CallOutput::SendRequest {
                        leg: LegKey {
                            call: leg.call,
                            request: retry_id,
                        },
                        request,
                        peer,
                    });
                    return;
                }
                self.transfer_branch_final(leg.call, leg.request, status, media, now, wall);
            }
        }
    }

    /// A transfer branch ended without answer (`status`, 408 for a timeout): when it was the last one, the next
    /// trunk, or the transfer fails.
    pub(super) fn transfer_branch_final(
        &mut self,
        id: u64,
        request: u64,
        status: u16,
        media: &mut dyn MediaControl,
        now: Instant,
        wall: SystemTime,
    ) {
        let Some(t) = self
            .calls
            .get_mut(&id)
            .and_then(|c| c.handover.transfer.as_mut())
        else {
            return;
        };
        let Some(b) = t
            .branches
            .iter_mut()
            .find(|b| b.request_id == request && b.final_status.is_none())
        else {
            return;
        };
        b.final_status = Some(status);
        t.failures.push(status);
        if t.branches.iter().any(|b| b.final_status.is_none()) {
            return;
        }
        if !t.failover.is_empty() && (matches!(status, 401 | 407 | 408) || status >= 500) {
            let next = t.failover.remove(0);
            let (offer, port, advertise) = (t.offer.clone(), t.port, t.advertise);
            let from = OutgoingFrom {
                display_name: t.display_name.clone(),
                srtp: t.target.srtp,
            };
            if let Some(b) = self.new_branch(id, next, &offer, port, advertise, 70, from, now)
                && let Some(t) = self
                    .calls
                    .get_mut(&id)
                    .and_then(|c| c.handover.transfer.as_mut())
            {
                t.branches.push(b);
                return;
            }
        }
        let failures = self
            .calls
            .get(&id)
            .and_then(|c| c.handover.transfer.as_ref())
            .map(|t| t.failures.clone())
            .unwrap_or_default();
        self.fail_transfer(id, best_failure(&failures), media, wall);
    }

    /// The transfer target answered: it takes the transferor's place in the call.
    fn transfer_answered(
        &mut self,
        id: u64,
        bi: usize,
        msg: &Message,
        media: &mut dyn MediaControl,
        wall: SystemTime,
    ) {
        let local = self.local.clone();
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(mut t) = call.handover.transfer.take() else {
            return;
        };
        let mut branch = t.branches[bi].clone();
        branch.dialog.remote_tag = Some(
            msg.to()
                .ok()
                .and_then(|to| to.tag().map(str::to_string))
                .unwrap_or_default(),
        );
        if let Some(target) = msg.contacts().filter_map(Result::ok).find_map(|c| match c {
            sip::addr::Contact::Addr(a) => Some(a.uri.raw.to_string()),
            sip::addr::Contact::Star => None,
        }) {
            branch.dialog.remote_target = target;
        }
        let transport = branch.peer.transport;
        let via_addr = local.address_for(transport);
        if let Some(ack) = via_addr.and_then(|via_addr| {
            built(bodyless(
                &branch.dialog,
                "ACK",
                branch.invite_cseq,
                transport,
                via_addr,
            ))
        }) {
            self.outputs.push(CallOutput::SendRaw {
                bytes: ack.wire(),
                peer: branch.peer,
            });
        }
        // The other branches are cancelled; a late 2xx from one of them is hung up.
        for (i, other) in t.branches.drain(..).enumerate() {
            if i == bi {
                continue;
            }
            if other.final_status.is_none() {
                self.outputs.push(CallOutput::Cancel {
                    leg: LegKey {
                        call: id,
                        request: other.request_id,
                    },
                });
            }
            call.retired.push(other);
        }
        let keys = answered_keys(&branch.offered_keys, &sdp::security(msg.body()).crypto);
        if keys.is_none() && t.target.srtp == SrtpMode::Enforced {
            // The target's phone answered without SRTP although its extension requires it.
            if let Some(bye) = via_addr.and_then(|via_addr| {
                built(bodyless(
                    &branch.dialog,
                    "BYE",
                    branch.invite_cseq + 1,
                    transport,
                    via_addr,
                ))
            }) {
                self.outputs.push(CallOutput::SendRequest {
                    leg: LegKey {
                        call: id,
                        request: u64::MAX,
                    },
                    request: bye,
                    peer: branch.peer,
                });
            }
            t.failures.push(488);
            call.handover.transfer = Some(t);
            self.fail_transfer(id, 488, media, wall);
            return;
        }
        let side = t.side;
        let transferee = side.other();
        // The target now talks to the relay port the transferor used.
        point_leg(
            media,
            &self.local,
            call.media,
            side,
            msg.body(),
            branch.peer.addr,
            &t.target,
        );
        media.set_crypto(
            call.media,
            side,
            keys.as_ref()
                .and_then(|(theirs, ours)| leg_crypto(theirs, ours)),
        );
        // The transferee is connected to the target now: no more music on hold, and an application that handed
        // it on (an attendant) stops. A queue's music stops below (`queue::app_connected`), which also tells the
        // queue which agent answered.
        media.set_music(call.media, transferee, None);
        if !matches!(call.diversion.app, Some(super::AppKind::Queue { .. }))
            && call.diversion.app.take().is_some()
        {
            call.diversion.app_sdp = None;
            self.outputs.push(CallOutput::StopApp { call: id });
        }
        call.keys.secure[idx(side)] = keys.is_some();
        call.keys.pending_rx[idx(side)] = None;
        call.keys.pending_offer[idx(side)].clear();
        // What the transferee sent the transferor and is still unanswered will never be: it asks again later
        // (and reaches the target).
        let stale: Vec<u64> = call
            .relayed
            .iter()
            .filter(|(_, r)| r.from == transferee)
            .map(|(k, _)| *k)
            .collect();
        let transferee_tag = call.dialog(transferee).local_tag.clone();
        for k in stale {
            if let Some(r) = call.relayed.remove(&k) {
                self.outputs.push(CallOutput::Respond(Response {
                    tx: r.tx,
                    status: 491,
                    reason: None,
                    to_tag: Some(transferee_tag.clone()),
                    headers: Vec::new(),
                    body: None,
                }));
            }
        }
        call.keys.pending_rx[idx(transferee)] = None;
        // The transferor: the final NOTIFY, then BYE; its dialog is kept only to answer a crossing BYE.
        if !t.transferor_gone {
            self.notify(id, side, &t.event, "SIP/2.0 200 OK", true);
            self.send_bye(id, side, media);
            if let Some(call) = self.calls.get_mut(&id) {
                let key = call.dialog(side).key();
                self.dialogs.remove(&key);
                self.detached.insert(key.clone(), id);
                call.handover.detached.push(key);
            }
        }
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        // The conversation before the transfer, as one record; the rest of the call is transferee → target.
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
            reason: "transfer".into(),
        }));
        tracing::info!(call = id, target = %t.target.number, "transfer completed");
        if t.callee_from_answer
            && let Some(user) = super::queue::uri_user(&branch.dialog.remote_uri)
        {
            t.target.number = user;
        }
        // A caller answered by a media application (a queue's music) is now connected: stop the application.
        super::queue::app_connected(call, id, &mut t.target, &branch, &mut self.outputs);
        let new_key = branch.dialog.key();
        let branch_body = branch.body.clone();
        match side {
            Leg::B => call.b = Some(branch),
            Leg::A => {
                call.a = branch.dialog.clone();
                call.a_peer = branch.peer;
                call.timers.session_deadline = None;
                call.keys.a_keys = None;
            }
        }
        self.dialogs.insert(new_key, (id, side));
        call.handover.gone[idx(side)] = false;
        call.handover.cdr_parties = Some((
            call.party(transferee).number.clone(),
            t.target.number.clone(),
        ));
        match side {
            Leg::A => call.caller = t.target,
            Leg::B => call.callee = t.target,
        }
        call.started_at = wall;
        call.answered_at = Some(wall);
        call.answers[idx(side)] = Some(msg.body_bytes());
        call.sent[idx(side)] = Some(branch_body);
        // A transferee the transferor had put on hold is taken off it by Palisade (nobody else will).
        call.handover.resume_due = Some((transferee, msg.body_bytes()));
        self.resume(id, media);
    }

    /// The transfer target could not be reached (`status`). A transferor still in the call is told so and keeps
    /// the call; without it, the transferee's call ends.
    pub(super) fn fail_transfer(
        &mut self,
        id: u64,
        status: u16,
        media: &mut dyn MediaControl,
        wall: SystemTime,
    ) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(t) = call.handover.transfer.take() else {
            return;
        };
        for b in t.branches {
            if b.final_status.is_none() {
                self.outputs.push(CallOutput::Cancel {
                    leg: LegKey {
                        call: id,
                        request: b.request_id,
                    },
                });
            }
            call.retired.push(b);
        }
        tracing::info!(call = id, target = %t.target.number, status, "transfer failed");
        let queue_app = matches!(call.diversion.app, Some(super::AppKind::Queue { .. }));
        if t.keep_on_failure {
            // A queue's offer to its agents: the caller waits on with its music.
            self.outputs.push(CallOutput::QueueOffered {
                call: id,
                agent: None,
            });
            return;
        }
        if t.transferor_gone && !queue_app && app_side(call, t.side) {
            // An application handed its caller on and still answers it: the call goes on with it.
            self.outputs
                .push(CallOutput::AppHandoverFailed { call: id });
            return;
        }
        if t.transferor_gone {
            self.send_bye(id, t.side.other(), media);
            self.finish(
                id,
                Disposition::Answered,
                HungUpBy::System,
                "transfer_failed",
                media,
                wall,
            );
        } else {
            let frag = format!("SIP/2.0 {status} {}", sip::reason_phrase(status));
            self.notify(id, t.side, &t.event, &frag, true);
        }
    }

    /// The transferor (side `side`) hung up while its transfer target rings: the call goes on without it.
    /// False when `side` is not a transferor (the call ends as usual).
    pub(super) fn transferor_left(&mut self, id: u64, side: Leg) -> bool {
        let Some(call) = self.calls.get_mut(&id) else {
            return false;
        };
        let Some(t) = call.handover.transfer.as_mut().filter(|t| t.side == side) else {
            return false;
        };
        t.transferor_gone = true;
        call.handover.gone[idx(side)] = true;
        let key = call.dialog(side).key();
        self.dialogs.remove(&key);
        self.detached.insert(key.clone(), id);
        call.handover.detached.push(key);
        true
    }

    /// Runs a transfer's timers: a silent trunk is given up, the ringing deadline fails the transfer.
    pub(super) fn transfer_timeout(
        &mut self,
        id: u64,
        media: &mut dyn MediaControl,
        now: Instant,
        wall: SystemTime,
    ) {
        let Some(t) = self
            .calls
            .get(&id)
            .and_then(|c| c.handover.transfer.as_ref())
        else {
            return;
        };
        let silent: Vec<u64> = t
            .branches
            .iter()
            .filter(|b| b.final_status.is_none() && b.silent_deadline.is_some_and(|d| now >= d))
            .map(|b| b.request_id)
            .collect();
        let expired = now >= t.deadline;
        for request in silent {
            self.outputs.push(CallOutput::Cancel {
                leg: LegKey { call: id, request },
            });
            self.transfer_branch_final(id, request, 408, media, now, wall);
        }
        if expired
            && self
                .calls
                .get(&id)
                .is_some_and(|c| c.handover.transfer.is_some())
        {
            self.fail_transfer(id, 480, media, wall);
        }
    }

    /// Takes a transferee off hold once nothing else is being negotiated on its leg: when its last agreed
    /// description is not two-way (`sendonly`/`recvonly`/`inactive`, `c=0.0.0.0`), Palisade sends it a re-INVITE
    /// of its own. A transferee that is not on hold gets nothing (its session is unchanged).
    pub(super) fn resume(&mut self, id: u64, media: &mut dyn MediaControl) {
        let local = self.local.clone();
        let request_id = self.next_id + 1;
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        // A second leg waiting for its own re-INVITE (an attended transfer moves one leg and unholds the other).
        if call.handover.resume_due.is_none() && !call.resume_in_flight() {
            call.handover.resume_due = call.handover.resume_after.take();
        }
        let Some((leg, agreed)) = call.handover.resume_due.clone() else {
            return;
        };
        // Not while an INVITE is in flight toward that leg (ours, or one relayed from the other side): its
        // answer comes first, and this runs again then.
        if call.resume_in_flight()
            || call
                .relayed
                .values()
                .any(|r| r.method == Method::Invite && r.from == leg.other())
        {
            return;
        }
        call.handover.resume_due = None;
        let current = call.answers[idx(leg)]
            .clone()
            .unwrap_or_else(|| call.offer.clone());
        // A leg moved onto this call's relay (attended transfer) is re-INVITEd even when it is two-way.
        let moved = call.handover.moved_leg.take_if(|l| *l == leg).is_some();
        if sdp::is_two_way(&current) && !moved {
            return;
        }
        let keys = if call.keys.secure[idx(leg)] {
            super::offer_keys()
        } else {
            Vec::new()
        };
        let Some(port) = media.local_port(call.media, leg) else {
            return;
        };
        let Some(offer) = sdp::resume_offer(
            &agreed,
            call.sent[idx(leg)].as_deref(),
            media.advertise_ip(),
            port,
            &keys,
        ) else {
            tracing::warn!(
                call = id,
                "transferee on hold: no offer could be made to resume it"
            );
            return;
        };
        let peer = call.peer(leg);
        let transport = peer.transport;
        let Some(via_addr) = local.address_for(transport) else {
            return;
        };
        let dialog = call.dialog_mut(leg);
        dialog.local_cseq += 1;
        let cseq = dialog.local_cseq;
        let Some(request) = built(dialog.request(
            "INVITE",
            cseq,
            &via(transport, via_addr),
            &contact_uri(via_addr, transport),
            70,
            &[],
            Some(("application/sdp", offer.clone())),
        )) else {
            return;
        };
        tracing::info!(
            call = id,
            "transferee on hold: re-INVITE to take it off hold"
        );
        call.handover.resume = Some(Resume {
            side: leg,
            request: request_id,
            cseq,
            peer,
            offer,
            keys,
            ack: None,
        });
        self.next_id = request_id;
        self.outputs.push(CallOutput::SendRequest {
            leg: LegKey {
                call: id,
                request: request_id,
            },
            request,
            peer,
        });
    }

    /// A response to Palisade's own re-INVITE: a 2xx is ACKed and its answer taken (the relay's address and
    /// keys for that leg); a failure leaves the call as it is.
    pub(super) fn resume_response(&mut self, id: u64, msg: &Message, media: &mut dyn MediaControl) {
        let local = self.local.clone();
        let Some(status) = msg.status() else { return };
        if status < 200 || msg.cseq().map(|c| c.method).ok() != Some(Method::Invite) {
            return;
        }
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(r) = call.handover.resume.as_ref() else {
            return;
        };
        if !(200..300).contains(&status) {
            if r.ack.is_none() {
                self.resume_failed(id, status);
            }
            return;
        }
        if let Some(ack) = &r.ack {
            // A retransmitted 2xx: our ACK was lost.
            if !ack.is_empty() {
                self.outputs.push(CallOutput::SendRaw {
                    bytes: ack.clone(),
                    peer: r.peer,
                });
            }
            return;
        }
        let (leg, peer, cseq) = (r.side, r.peer, r.cseq);
        let transport = peer.transport;
        // Empty when no local address serves the transport (nothing can be sent then).
        let ack = local
            .address_for(transport)
            .and_then(|via_addr| {
                built(call.dialog(leg).request(
                    "ACK",
                    cseq,
                    &via(transport, via_addr),
                    &contact_uri(via_addr, transport),
                    70,
                    &[],
                    None,
                ))
            })
            .map(|ack| ack.wire())
            .unwrap_or_default();
        if !ack.is_empty() {
            self.outputs.push(CallOutput::SendRaw {
                bytes: ack.clone(),
                peer,
            });
        }
        let Some(r) = call.handover.resume.as_mut() else {
            return;
        };
        r.ack = Some(ack);
        let is_sdp = msg
            .content_type()
            .and_then(Result::ok)
            .is_some_and(|c| c.is("application", "sdp"));
        if !is_sdp || msg.body().is_empty() {
            tracing::warn!(
                call = id,
                "the transferee answered the re-INVITE without SDP"
            );
            return;
        }
        let party = match leg {
            Leg::A => &call.caller,
            Leg::B => &call.callee,
        };
        point_leg(
            media,
            &self.local,
            call.media,
            leg,
            msg.body(),
            peer.addr,
            party,
        );
        if !r.keys.is_empty() {
            match answered_keys(&r.keys, &sdp::security(msg.body()).crypto) {
                Some((theirs, ours)) => {
                    media.set_crypto(call.media, leg, leg_crypto(&theirs, &ours));
                }
                None => tracing::warn!(
                    call = id,
                    "the transferee answered the re-INVITE without SRTP keys: its keys are kept"
                ),
            }
        }
        call.sent[idx(leg)] = Some(r.offer.clone());
        call.answers[idx(leg)] = Some(msg.body_bytes());
        tracing::info!(call = id, "transferee taken off hold");
        self.resume(id, media);
    }

    /// Palisade's own re-INVITE failed (`status`, 408 for a timeout): the call goes on as it is.
    pub(super) fn resume_failed(&mut self, id: u64, status: u16) {
        if let Some(call) = self.calls.get_mut(&id)
            && call.resume_in_flight()
        {
            call.handover.resume = None;
            tracing::warn!(
                call = id,
                status,
                "the transferee refused to be taken off hold; the call goes on"
            );
        }
    }

    /// A NOTIFY of the refer event package to `side` with a `message/sipfrag` body (RFC 3515 §2.4.4).
    pub(super) fn notify(&mut self, id: u64, side: Leg, event: &str, frag: &str, terminated: bool) {
        let local = self.local.clone();
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let peer = call.peer(side);
        let transport = peer.transport;
        let Some(via_addr) = local.address_for(transport) else {
            return;
        };
        let state = if terminated {
            "terminated;reason=noresource"
        } else {
            "active;expires=60"
        };
        let dialog = call.dialog_mut(side);
        dialog.local_cseq += 1;
        let Some(request) = built(dialog.request(
            "NOTIFY",
            dialog.local_cseq,
            &via(transport, via_addr),
            &contact_uri(via_addr, transport),
            70,
            &[
                (HeaderName::Event, event.to_string()),
                (HeaderName::SubscriptionState, state.to_string()),
            ],
            Some((
                "message/sipfrag;version=2.0",
                Bytes::from(format!("{frag}\r\n")),
            )),
        )) else {
            return;
        };
        self.outputs.push(CallOutput::SendRequest {
            leg: LegKey {
                call: id,
                request: NOTIFY_REQUEST,
            },
            request,
            peer,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refer(refer_to: &str) -> Message {
        let s = format!(
            "REFER sip:pbx SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bKr\r\nFrom: <sip:100@pbx>;tag=a\r\n\
             To: <sip:101@pbx>;tag=b\r\nCall-ID: c\r\nCSeq: 5 REFER\r\n{refer_to}Content-Length: 0\r\n\r\n"
        );
        Message::parse(
            Bytes::from(s),
            sip::Framing::Stream,
            &sip::Limits::default(),
        )
        .unwrap()
    }

    #[test]
    fn refer_to_numbers() {
        assert_eq!(
            refer_target(&refer("Refer-To: <sip:102@pbx.test>\r\n")),
            Ok("102".into())
        );
        assert_eq!(
            refer_target(&refer("Refer-To: sip:0049301234@pbx.test\r\n")),
            Ok("0049301234".into())
        );
        assert_eq!(
            refer_target(&refer("r: <tel:+49-30-1234;phone-context=x>\r\n")),
            Ok("+49301234".into())
        );
        assert_eq!(
            refer_target(&refer(
                "Refer-To: <sip:102@pbx.test?Replaces=abc%3Bto-tag%3D1%3Bfrom-tag%3D2>\r\n"
            )),
            Err(ReferError::Replaces)
        );
        assert!(matches!(refer_target(&refer("")), Err(ReferError::Bad(_))));
        assert!(matches!(
            refer_target(&refer("Refer-To: <sip:alice@pbx.test>\r\n")),
            Err(ReferError::Bad(_))
        ));
        assert!(matches!(
            refer_target(&refer("Refer-To: <http://example.com/>\r\n")),
            Err(ReferError::Bad(_))
        ));
        assert!(matches!(
            refer_target(&refer(
                "Refer-To: <sip:102@pbx.test>\r\nRefer-To: <sip:103@pbx.test>\r\n"
            )),
            Err(ReferError::Bad(_))
        ));
    }
}
