//! Requests inside an established call (re-INVITE, UPDATE, INFO, BYE, …): relayed to the other leg with that
//! leg's dialog and the relay's SDP, and their responses relayed back.

use super::*;

impl Calls {
    /// The final response to a request Palisade relayed across the call goes back to where it came from.
    pub(super) fn relay_response(
        &mut self,
        id: u64,
        relayed: Relayed,
        msg: &Message,
        media: &mut dyn MediaControl,
        _now: Instant,
    ) {
        let local = self.local.clone();
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(status) = msg.status() else { return };
        if status < 200 && status != 183 {
            return;
        }
        let to = relayed.from;
        let other = to.other();
        let mut body = None;
        if !msg.body().is_empty()
            && msg
                .content_type()
                .and_then(Result::ok)
                .is_some_and(|c| c.is("application", "sdp"))
        {
            point_leg(
                media,
                &self.local,
                call.media,
                other,
                msg.body(),
                call.peer(other).addr,
                call.party(other),
            );
            // The answerer's keys (one of those Palisade offered it), and Palisade's fresh key for the offerer.
            let answered = sdp::security(msg.body());
            if let Some((theirs, ours)) =
                answered_keys(&call.keys.pending_offer[idx(other)], &answered.crypto)
            {
                media.set_crypto(call.media, other, leg_crypto(&theirs, &ours));
            }
            let mut ours_for_offerer = Vec::new();
            if let Some(theirs) = call.keys.pending_rx[idx(to)].take() {
                let ours = answer_keeping(&theirs, key_in_use(call, to));
                media.set_crypto(call.media, to, leg_crypto(&theirs, &ours));
                ours_for_offerer.push(ours);
            }
            call.keys.pending_offer[idx(other)].clear();
            if let Some(port) = media.local_port(call.media, to) {
                body = sdp::rewrite_with_crypto(
                    msg.body(),
                    media.advertise_ip(),
                    port,
                    &ours_for_offerer,
                )
                .map(|b| ("application/sdp".to_string(), b));
            }
            if let Some((_, b)) = &body {
                call.sent[idx(to)] = Some(b.clone());
            }
            // The offer/answer on both legs is complete: remember what each agreed on.
            if (200..300).contains(&status) {
                call.answers[idx(other)] = Some(msg.body_bytes());
                if let Some((_, b)) = &body {
                    call.answers[idx(to)] = Some(b.clone());
                }
                // The answerer is now held by the offerer (music on hold), or taken off hold.
                if let Some(hold) = relayed.hold {
                    let music = hold
                        .then(|| sdp::app_codec(msg.body()))
                        .flatten()
                        .map(|codec| HoldMusic {
                            holder: Some(&call.party(to))
                                .filter(|p| p.extension)
                                .map(|p| p.number.clone()),
                            payload_type: codec.payload_type,
                        });
                    media.set_music(call.media, other, music);
                }
            }
        } else if !msg.body().is_empty() {
            let ct = msg
                .header_str(HeaderName::ContentType)
                .unwrap_or("application/octet-stream")
                .to_string();
            body = Some((ct, msg.body_bytes()));
        }
        // A 2xx to a re-INVITE from the other side is acknowledged by Palisade itself.
        if relayed.method == Method::Invite && (200..300).contains(&status) {
            let seq = msg.cseq().map(|c| c.seq).unwrap_or(1);
            let peer = call.peer(other);
            let transport = peer.transport;
            if let Some(ack) = local.address_for(transport).and_then(|via_addr| {
                built(bodyless(
                    call.dialog(other),
                    "ACK",
                    seq,
                    transport,
                    via_addr,
                ))
            }) {
                self.outputs.push(CallOutput::SendRaw {
                    bytes: ack.wire(),
                    peer,
                });
            }
        }
        let call = self.calls.get_mut(&id).expect("present");
        let tag = call.dialog(to).local_tag.clone();
        let headers = contact_header(&local, &call.peer(to)).into_iter().collect();
        self.outputs.push(CallOutput::Respond(Response {
            tx: relayed.tx,
            status,
            reason: None,
            to_tag: Some(tag),
            headers,
            body,
        }));
    }

    /// A request that carries a To tag: it belongs to a dialog of a call, or to none (481).
    /// Returns false when no call knows the dialog (the caller answers 481).
    pub fn in_dialog(
        &mut self,
        tx: ServerTxId,
        msg: &Message,
        media: &mut dyn MediaControl,
        now: Instant,
        wall: SystemTime,
    ) -> bool {
        let method = msg.method().unwrap_or(Method::Other);
        let Some((id, side)) = self.match_dialog(msg) else {
            // A transferor's dialog after the handover: its BYE (crossing Palisade's) is answered.
            let Some(key) = dialog_key(msg) else {
                return false;
            };
            if !self.detached.contains_key(&key) {
                return false;
            }
            let tag = msg.to().ok().and_then(|t| t.tag().map(str::to_string));
            let status = match method {
                Method::Bye => 200,
                Method::Ack => return true,
                _ => 481,
            };
            self.respond(tx, status, tag.as_deref());
            return true;
        };
        let Some(call) = self.calls.get_mut(&id) else {
            return false;
        };
        // RFC 3261 §12.2.2: requests must come in order.
        let seq = msg.cseq().map(|c| c.seq).unwrap_or(0);
        let dialog = call.dialog_mut(side);
        if dialog.remote_cseq.is_some_and(|last| seq < last) && method != Method::Ack {
            self.respond(tx, 500, None);
            return true;
        }
        dialog.remote_cseq = Some(seq);
        if call.diversion.app.is_some() && side == Leg::A && method != Method::Bye {
            self.app_request(id, tx, msg, method, media, now);
            return true;
        }
        match method {
            Method::Bye => {
                let tag = call.dialog(side).local_tag.clone();
                self.respond(tx, 200, Some(&tag));
                // A transferor hanging up while its transfer target rings: the call goes on without it.
                if self.transferor_left(id, side) {
                    return true;
                }
                self.send_bye(id, side.other(), media);
                let by = if side == Leg::A {
                    HungUpBy::Caller
                } else {
                    HungUpBy::Callee
                };
                self.finish(id, Disposition::Answered, by, "bye", media, wall);
            }
            Method::Invite
            | Method::Update
            | Method::Info
            | Method::Message
            | Method::Notify
            | Method::Refer
            | Method::Other => {
                if method == Method::Invite || method == Method::Update {
                    // A refresh from the caller's side restarts its session timer.
                    if side == Leg::A
                        && let Some((deadline, interval)) = call.timers.session_deadline.as_mut()
                    {
                        *deadline = now + *interval;
                    }
                }
                if method == Method::Refer {
                    // A blind transfer, routed by the call policy as the transferring extension.
                    self.refer(id, side, tx, msg, media, wall);
                    return true;
                }
                self.relay_request(id, side, tx, msg, media);
            }
            Method::Ack
            | Method::Cancel
            | Method::Options
            | Method::Register
            | Method::Subscribe
            | Method::Publish
            | Method::Prack => {
                let tag = call.dialog(side).local_tag.clone();
                let status = if method == Method::Options { 200 } else { 405 };
                self.respond(tx, status, Some(&tag));
            }
        }
        true
    }

    /// Forwards an in-dialog request to the other leg, with the SDP pointed at the relay.
    pub(super) fn relay_request(
        &mut self,
        id: u64,
        from: Leg,
        tx: ServerTxId,
        msg: &Message,
        media: &mut dyn MediaControl,
    ) {
        let local = self.local.clone();
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let to = from.other();
        if call.handover.gone[idx(to)] {
            // The other side is a transferor that left while its transfer target rings: ask again later.
            let tag = call.dialog(from).local_tag.clone();
            self.respond(tx, 491, Some(&tag));
            return;
        }
        let method_text = msg.method_str().unwrap_or("INFO").to_string();
        let method = msg.method().unwrap_or(Method::Other);
        if call.resume_in_flight()
            && (method == Method::Invite || (method == Method::Update && !msg.body().is_empty()))
        {
            // Glare with Palisade's own re-INVITE to a transferee (RFC 3261 §14.2, RFC 3311 §5.2): that one goes
            // first, this one is asked again later.
            let tag = call.dialog(from).local_tag.clone();
            self.respond(tx, 491, Some(&tag));
            return;
        }
        let mut body = None;
        let is_sdp = msg
            .content_type()
            .and_then(Result::ok)
            .is_some_and(|c| c.is("application", "sdp"));
        let hold = (!msg.body().is_empty() && is_sdp).then(|| !sdp::is_two_way(msg.body()));
        if !msg.body().is_empty() && is_sdp {
            point_leg(
                media,
                &self.local,
                call.media,
                from,
                msg.body(),
                call.peer(from).addr,
                call.party(from),
            );
            // Fresh keys on every new offer: the offerer's key is kept for the answer Palisade will give it, and
            // the other leg gets a new key from Palisade (never the offerer's: keys stay on their own leg).
            let secure = &sdp::security(msg.body());
            call.keys.pending_rx[idx(from)] = if call.keys.secure[idx(from)] {
                ::media::sdes::choose(secure.crypto.iter().map(String::as_str))
            } else {
                None
            };
            call.keys.pending_offer[idx(to)] = if call.keys.secure[idx(to)] {
                key_in_use(call, to).map_or_else(offer_keys, |k| vec![k])
            } else {
                Vec::new()
            };
            if let Some(port) = media.local_port(call.media, to) {
                body = sdp::rewrite_with_crypto(
                    msg.body(),
                    media.advertise_ip(),
                    port,
                    &call.keys.pending_offer[idx(to)],
                )
                .map(|b| ("application/sdp".to_string(), b));
            }
            if let Some((_, b)) = &body {
                call.sent[idx(to)] = Some(b.clone());
            }
            if method == Method::Invite && from == Leg::A {
                call.offer = msg.body_bytes();
            }
        } else if !msg.body().is_empty() {
            let ct = msg
                .header_str(HeaderName::ContentType)
                .unwrap_or("application/octet-stream")
                .to_string();
            body = Some((ct, msg.body_bytes()));
        }
        let peer = call.peer(to);
        let transport = peer.transport;
        let Some(via_addr) = local.address_for(transport) else {
            self.respond(tx, 500, None);
            return;
        };
        let dialog = call.dialog_mut(to);
        dialog.local_cseq += 1;
        let seq = dialog.local_cseq;
        let mut extra = Vec::new();
        for h in [HeaderName::Event, HeaderName::SubscriptionState] {
            if let Some(v) = msg.header_str(h) {
                extra.push((h, v.to_string()));
            }
        }
        let Some(request) = built(dialog.request(
            &method_text,
            seq,
            &via(transport, via_addr),
            &contact_uri(via_addr, transport),
            70,
            &extra,
            body.as_ref().map(|(ct, b)| (ct.as_str(), b.clone())),
        )) else {
            return;
        };
        let request_id = self.next_id + 1;
        self.next_id = request_id;
        let call = self.calls.get_mut(&id).expect("present");
        call.relayed.insert(
            request_id,
            Relayed {
                tx,
                from,
                method,
                hold,
            },
        );
        self.outputs.push(CallOutput::SendRequest {
            leg: LegKey {
                call: id,
                request: request_id,
            },
            request,
            peer,
        });
    }

    /// An ACK outside a transaction (for Palisade's 2xx).
    pub fn ack(&mut self, msg: &Message) {
        let Some((id, side)) = self.match_dialog(msg) else {
            return;
        };
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if side == Leg::A && call.state == State::Answered {
            call.state = State::Confirmed;
            call.timers.retransmit_2xx = None;
        }
        if call
            .timers
            .joined_2xx
            .as_ref()
            .is_some_and(|j| j.leg == side)
        {
            call.timers.joined_2xx = None;
        }
    }
}
