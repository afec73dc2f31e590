//! Attended transfer: an extension talking to A (call 1) calls C (call 2), then transfers A to C with a REFER in
//! call 1 whose Refer-To names call 2's dialog (`?Replaces=…`, RFC 3891 and RFC 5589 §7). Palisade is a B2BUA,
//! so it does the replacing itself: C's dialog moves from call 2 onto call 1 in the transferor's place, C is
//! re-INVITEd toward call 1's relay (the codecs A agreed on; SRTP keys renewed on an SRTP leg), A is taken off
//! hold if the transferor had held it, the transferor's two legs are hung up (NOTIFY `200 OK` first) and call 2
//! ends without touching C. A and C then talk through call 1's relay.
//!
//! An INVITE with a Replaces header (RFC 3891) naming an established dialog of Palisade's — an extension moving
//! its call to another of its phones ("call pull") — puts the new phone in that dialog's place: the old phone gets
//! BYE and the new one talks to the same relay port. Only the same extension may replace its own dialog.
//!
//! Only the extension holding both calls may join them: the dialog named by Replaces must be that extension's own
//! leg of another established call (anything else gets 403 with a Warning, and the call goes on). Call 2 was
//! placed under the transferor's policy (or came to it), so the transfer never reaches what the transferor could
//! not.

use super::*;

/// The dialog a Replaces parameter names: Call-ID, to-tag, from-tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Replaces {
    call_id: String,
    to_tag: String,
    from_tag: String,
}

/// The Replaces of a REFER's Refer-To URI (`sip:c@pbx?Replaces=ID%3Bto-tag%3DX%3Bfrom-tag%3DY`), if it has one.
/// A Replaces that cannot be read is returned with empty fields (it then names no dialog: refused).
pub(super) fn replaces_in(msg: &Message) -> Option<Replaces> {
    let value = msg.header_values(HeaderName::ReferTo).next()?;
    let addr = sip::addr::NameAddr::parse(value).ok()?;
    let headers = addr.uri.headers?;
    let raw = headers.split('&').find_map(|h| {
        let (name, value) = h.split_once('=')?;
        name.eq_ignore_ascii_case("replaces").then_some(value)
    })?;
    let decoded = sip::uri::unescape(raw.as_bytes())
        .map(|d| String::from_utf8_lossy(&d).into_owned())
        .unwrap_or_default();
    Some(parse_replaces(&decoded))
}

/// `CALL-ID;to-tag=X;from-tag=Y` (parameters in any order; anything else ignored).
fn parse_replaces(value: &str) -> Replaces {
    let mut parts = value.split(';');
    let call_id = parts.next().unwrap_or("").trim().to_string();
    let (mut to_tag, mut from_tag) = (String::new(), String::new());
    for p in parts {
        match p.split_once('=') {
            Some((k, v)) if k.trim().eq_ignore_ascii_case("to-tag") => to_tag = v.trim().into(),
            Some((k, v)) if k.trim().eq_ignore_ascii_case("from-tag") => from_tag = v.trim().into(),
            _ => {}
        }
    }
    Replaces {
        call_id,
        to_tag,
        from_tag,
    }
}

/// Why an INVITE with Replaces did not replace anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplaceMiss {
    /// No established dialog matches (481).
    NoDialog,
    /// The dialog belongs to another extension (403, a policy event).
    NotYours,
    /// The new phone's offer cannot be joined (488).
    NotAcceptable,
}

/// The Replaces header of an INVITE, if it has one.
pub fn invite_replaces(msg: &Message) -> Option<String> {
    msg.other_header_values("replaces")
        .next()
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

impl Calls {
    /// An INVITE from extension `party` with Replaces `value`: the new phone takes the place of the phone in the
    /// named dialog, which must be one of `party`'s own in an established call.
    #[allow(clippy::too_many_arguments)]
    pub fn replace_dialog(
        &mut self,
        value: &str,
        tx: ServerTxId,
        msg: &Message,
        peer: Peer,
        party: Party,
        media: &mut dyn MediaControl,
        now: Instant,
        wall: SystemTime,
    ) -> Result<(), ReplaceMiss> {
        let Some((id, side)) = self.replaced_dialog(&parse_replaces(value)) else {
            return Err(ReplaceMiss::NoDialog);
        };
        let Some(call) = self.calls.get(&id).filter(|c| {
            c.state == State::Confirmed
                && c.diversion.app.is_none()
                && c.handover.transfer.is_none()
                && !c.handover.gone.contains(&true)
        }) else {
            return Err(ReplaceMiss::NoDialog);
        };
        let old = call.party(side);
        if !old.extension || old.number != party.number {
            return Err(ReplaceMiss::NotYours);
        }
        let offer = msg.body_bytes();
        let agreed = call.answers[idx(side.other())]
            .clone()
            .unwrap_or_else(|| call.offer.clone());
        let joinable = sdp::answer_for_with_crypto(&agreed, &offer, media.advertise_ip(), 9, &[]);
        if sdp::security(&offer).savp || joinable.is_none() {
            // Checked before the old phone is hung up: a phone that cannot take the call leaves it as it is.
            return Err(ReplaceMiss::NotAcceptable);
        }
        tracing::info!(call = id, extension = %party.number, "call moved to another phone (INVITE with Replaces)");
        self.send_bye(id, side, media);
        let Some(call) = self.calls.get_mut(&id) else {
            return Err(ReplaceMiss::NoDialog);
        };
        let key = call.dialog(side).key();
        self.dialogs.remove(&key);
        self.detached.insert(key.clone(), id);
        call.handover.detached.push(key);
        self.join_new_phone(id, side, tx, msg, peer, party, media, now, wall)
            .map_err(|_| ReplaceMiss::NotAcceptable)
    }

    /// A REFER with Replaces from `side` of call `id` (already counted in the dialog's refers).
    #[allow(clippy::too_many_arguments)] // the REFER, what it names, and the call layer's media and clock
    pub(super) fn attended_refer(
        &mut self,
        id: u64,
        side: Leg,
        tx: ServerTxId,
        msg: &Message,
        replaces: Replaces,
        media: &mut dyn MediaControl,
        wall: SystemTime,
    ) {
        let found = self.replaced_dialog(&replaces);
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let tag = call.dialog(side).local_tag.clone();
        let transferor = call.party(side).clone();
        let refusal: Option<(u16, &str, &str)> = if !transferor.extension {
            Some((
                403,
                "Forbidden (only extensions may transfer)",
                "transfer_not_allowed",
            ))
        } else if call.state != State::Confirmed || call.diversion.app.is_some() {
            Some((
                403,
                "Forbidden (the call is not established)",
                "not_established",
            ))
        } else if call.handover.transfer.is_some()
            || call.diversion.pending.is_some()
            || call.handover.gone.contains(&true)
        {
            Some((
                491,
                "Request Pending (a transfer is in progress)",
                "transfer_pending",
            ))
        } else {
            match found {
                None => Some((
                    403,
                    "Forbidden (the call to replace does not exist)",
                    "replaces_not_found",
                )),
                Some((other, _)) if other == id => Some((
                    403,
                    "Forbidden (a call cannot replace itself)",
                    "replaces_not_found",
                )),
                Some((other, other_side)) => {
                    let c2 = self.calls.get(&other);
                    let own = c2.is_some_and(|c2| {
                        let p = c2.party(other_side);
                        p.extension && p.number == transferor.number
                    });
                    let established = c2.is_some_and(|c2| {
                        c2.state == State::Confirmed
                            && c2.diversion.app.is_none()
                            && c2.handover.transfer.is_none()
                            && !c2.handover.gone.contains(&true)
                    });
                    if !own {
                        Some((
                            403,
                            "Forbidden (the call to replace is not the transferor's)",
                            "replaces_not_yours",
                        ))
                    } else if !established {
                        Some((
                            403,
                            "Forbidden (the call to replace is not established)",
                            "not_established",
                        ))
                    } else {
                        None
                    }
                }
            }
        };
        if let Some((status, phrase, code)) = refusal {
            tracing::info!(call = id, code, "attended transfer refused");
            self.outputs.push(CallOutput::Refused {
                code,
                detail: format!("attended transfer by {}: {phrase}", transferor.number),
                source: call.peer(side),
            });
            self.outputs.push(CallOutput::Respond(Response {
                tx,
                status,
                reason: Some(phrase.to_string()),
                to_tag: Some(tag),
                headers: vec![(HeaderName::Warning, forward::warning(code))],
                body: None,
            }));
            return;
        }
        let Some((other, other_side)) = found else {
            return;
        };
        let seq = msg.cseq().map(|c| c.seq).unwrap_or(0);
        let event = if call.handover.refers[idx(side)] == 1 {
            "refer".to_string()
        } else {
            format!("refer;id={seq}")
        };
        let local = self.local.clone();
        self.outputs.push(CallOutput::Respond(Response {
            tx,
            status: 202,
            reason: None,
            to_tag: Some(tag),
            headers: contact_header(&local, &call.peer(side))
                .into_iter()
                .collect(),
            body: None,
        }));
        self.join_calls(id, side, &event, other, other_side.other(), media, wall);
        self.resume(id, media);
    }

    /// The call and side holding the dialog a Replaces names (either tag order: the transferor may write the
    /// tags as its own dialog sees them).
    fn replaced_dialog(&self, r: &Replaces) -> Option<(u64, Leg)> {
        let keys = [
            (r.call_id.clone(), r.to_tag.clone(), r.from_tag.clone()),
            (r.call_id.clone(), r.from_tag.clone(), r.to_tag.clone()),
        ];
        keys.iter().find_map(|k| self.dialogs.get(k).copied())
    }

    /// Moves the `moving` side of call `other` onto call `id` in place of the transferor (`side`), and ends the
    /// transferor's part in both calls.
    #[allow(clippy::too_many_arguments)]
    fn join_calls(
        &mut self,
        id: u64,
        side: Leg,
        event: &str,
        other: u64,
        moving: Leg,
        media: &mut dyn MediaControl,
        wall: SystemTime,
    ) {
        let request_id = self.alloc_id();
        let local = self.local.clone();
        self.notify(id, side, event, "SIP/2.0 200 OK", true);
        // The transferor's leg in call 2 gets BYE; call 2 then ends without a word to the moving party.
        self.send_bye(other, moving.other(), media);
        let Some(mut c2) = self.calls.remove(&other) else {
            return;
        };
        for key in [c2.a.key()]
            .into_iter()
            .chain(c2.b.as_ref().map(|b| b.dialog.key()))
        {
            self.dialogs.remove(&key);
        }
        let (moved_party, moved_peer) = (c2.party(moving).clone(), c2.peer(moving));
        let moved_dialog = c2.dialog(moving).clone();
        let moved_secure = c2.keys.secure[idx(moving)];
        let moved_sent = c2.sent[idx(moving)].clone();
        let moved_answer = c2.answers[idx(moving)].clone();
        let moved_branch = match moving {
            Leg::B => c2.b.take(),
            Leg::A => None,
        };
        let (caller2, callee2) = c2.record_parties();
        self.outputs.push(CallOutput::Record(CallRecord {
            call_id: c2.call_id_a.clone(),
            caller: caller2,
            callee: callee2,
            started_at: c2.started_at,
            answered_at: c2.answered_at,
            ended_at: wall,
            disposition: Disposition::Answered,
            hung_up_by: HungUpBy::System,
            reason: "attended_transfer".into(),
        }));
        media.release(c2.media);
        // Call 1: the transferor's leg is hung up and detached; the moved leg takes its place.
        self.send_bye(id, side, media);
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let old_key = call.dialog(side).key();
        self.dialogs.remove(&old_key);
        self.detached.insert(old_key.clone(), id);
        call.handover.detached.push(old_key);
        let transferee = side.other();
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
        tracing::info!(call = id, from = %call.party(side).number, transferee = %call.party(transferee).number,
            target = %moved_party.number, "attended transfer completed");
        self.dialogs.insert(moved_dialog.key(), (id, side));
        match side {
            Leg::B => {
                call.b = Some(moved_branch.unwrap_or_else(|| {
                    Branch {
                        request_id,
                        peer: moved_peer,
                        dialog: moved_dialog.clone(),
                        invite_cseq: 0,
                        final_status: Some(200),
                        cancelled: false,
                        offered_keys: Vec::new(),
                        srtp: moved_party.srtp,
                        credentials: None,
                        auth_tried: false,
                        body: moved_sent.clone().unwrap_or_default(),
                        via_addr: local
                            .address_for(moved_peer.transport)
                            .unwrap_or(moved_peer.addr),
                        transport: moved_peer.transport,
                        max_forwards: 70,
                        silent_deadline: None,
                    }
                }));
            }
            Leg::A => {
                call.a = moved_dialog;
                call.a_peer = moved_peer;
                call.timers.session_deadline = None;
                call.keys.a_keys = None;
            }
        }
        call.handover.cdr_parties = Some((
            call.party(transferee).number.clone(),
            moved_party.number.clone(),
        ));
        match side {
            Leg::A => call.caller = moved_party,
            Leg::B => call.callee = moved_party,
        }
        call.started_at = wall;
        call.answered_at = Some(wall);
        // Nothing goes to the transferor's phone; the moved party's media is taken from its re-INVITE answer.
        let nowhere = ::media::Remote {
            expect: std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            signalled: SocketAddr::from(([0, 0, 0, 0], 9)),
            trusted: false,
        };
        media.set_remote(call.media, side, nowhere, nowhere);
        media.set_crypto(call.media, side, None);
        call.keys.secure[idx(side)] = moved_secure;
        call.keys.pending_rx[idx(side)] = None;
        call.keys.pending_offer[idx(side)].clear();
        call.sent[idx(side)] = moved_sent;
        call.answers[idx(side)] = moved_answer;
        // The moved party is re-INVITEd toward this call's relay port with the transferee's codecs; the
        // transferee, held by the transferor before it consulted, is taken off hold next.
        let transferee_codecs = call.answers[idx(transferee)]
            .clone()
            .unwrap_or_else(|| call.offer.clone());
        let moved_codecs = call.answers[idx(side)]
            .clone()
            .unwrap_or_else(|| transferee_codecs.clone());
        call.handover.moved_leg = Some(side);
        call.handover.resume_due = Some((side, transferee_codecs));
        call.handover.resume_after = Some((transferee, moved_codecs));
        call.handover.gone[idx(side)] = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_parameters_in_any_order() {
        assert_eq!(
            parse_replaces("abc@h;from-tag=1;to-tag=2"),
            Replaces {
                call_id: "abc@h".into(),
                to_tag: "2".into(),
                from_tag: "1".into()
            }
        );
        assert_eq!(parse_replaces("").call_id, "");
    }
}
