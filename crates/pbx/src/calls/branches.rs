//! Leg B: the INVITE branches toward the callee's contacts or trunks, their responses (ringing, early media,
//! answer, failure), failover to the next trunk, a provider's digest challenge answered once, and the branches that
//! lose to the first answer.

use super::*;

impl Calls {
    /// Rings the next trunk of a call whose current ones all failed.
    pub(super) fn fail_over(&mut self, id: u64, now: Instant) {
        if let Some(mut call) = self.calls.remove(&id) {
            if !call.failover.is_empty() {
                let next = call.failover.remove(0);
                let (offer, b_port, advertise, mf) = (
                    call.offer.clone(),
                    call.b_port,
                    call.advertise,
                    call.max_forwards,
                );
                self.ring(&mut call, id, next, &offer, b_port, advertise, mf, now);
            }
            self.calls.insert(id, call);
        }
    }

    /// Sends the INVITE of branch `bi` again with credentials for the challenge in `msg`. False when the branch
    /// has no credentials or already tried them (the provider refused them: give up).
    pub(super) fn retry_with_credentials(
        &mut self,
        id: u64,
        bi: usize,
        msg: &Message,
        status: u16,
    ) -> bool {
        let request_id = self.alloc_id();
        let Some(b) = self.calls.get_mut(&id).and_then(|c| c.branches.get_mut(bi)) else {
            return false;
        };
        let Some((request, peer)) = reauthenticate(b, request_id, msg, status) else {
            return false;
        };
        self.outputs.push(CallOutput::SendRequest {
            leg: LegKey {
                call: id,
                request: request_id,
            },
            request,
            peer,
        });
        true
    }

    /// Sends the callee-leg INVITE to one target (a registered contact or a trunk).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn ring(
        &mut self,
        call: &mut Call,
        id: u64,
        target: Target,
        offer: &[u8],
        b_port: Option<u16>,
        advertise: std::net::IpAddr,
        max_forwards: u8,
        now: Instant,
    ) {
        let from = OutgoingFrom {
            display_name: call.caller.display_name.clone(),
            srtp: target.srtp.unwrap_or(call.callee.srtp),
        };
        if let Some(branch) = self.new_branch(
            id,
            target,
            offer,
            b_port,
            advertise,
            max_forwards,
            from,
            now,
        ) {
            call.branches.push(branch);
        }
    }

    /// Sends a new INVITE to `target` with `offer` pointed at relay port `port` and returns its branch; `None`
    /// when it cannot be sent (no listener for its transport, SRTP required on a transport without TLS).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new_branch(
        &mut self,
        id: u64,
        target: Target,
        offer: &[u8],
        port: Option<u16>,
        advertise: std::net::IpAddr,
        max_forwards: u8,
        from: OutgoingFrom,
        now: Instant,
    ) -> Option<Branch> {
        let via_addr = self.local.address_for(target.transport)?;
        let port = port?;
        let tls = target.transport.is_secure();
        let offered_keys = match (from.srtp, tls) {
            (SrtpMode::Disabled, _) => Vec::new(),
            (_, true) => offer_keys(),
            // An extension that requires SRTP is never rung on a contact that cannot carry the keys.
            (SrtpMode::Enforced, false) => return None,
            (SrtpMode::Enabled, false) => Vec::new(),
        };
        let body = sdp::rewrite_with_crypto(offer, advertise, port, &offered_keys)?;
        let request_id = self.alloc_id();
        let dialog = Dialog::uac(
            new_call_id(&self.local.domain),
            new_tag(),
            format!("<sip:{}@{}>", target.from_user, self.local.domain),
            from.display_name,
            target.to_uri.clone(),
            target.request_uri.clone(),
        );
        let peer = Peer::new(target.source, target.transport);
        let request = built(dialog.request(
            "INVITE",
            1,
            &via(target.transport, via_addr),
            &contact_uri(via_addr, target.transport),
            max_forwards,
            &[(HeaderName::Allow, crate::core::ALLOW_CALLS.to_string())],
            Some(("application/sdp", body.clone())),
        ))?;
        self.outputs.push(CallOutput::SendRequest {
            leg: LegKey {
                call: id,
                request: request_id,
            },
            request,
            peer,
        });
        Some(Branch {
            request_id,
            peer,
            dialog,
            invite_cseq: 1,
            final_status: None,
            cancelled: false,
            offered_keys,
            srtp: from.srtp,
            credentials: target.credentials.clone(),
            auth_tried: false,
            body,
            via_addr,
            transport: target.transport,
            max_forwards,
            silent_deadline: target.is_trunk.then_some(now + TRUNK_SILENCE),
        })
    }

    /// A response to a request sent for `leg`.
    pub fn response(
        &mut self,
        leg: LegKey,
        msg: &Message,
        media: &mut dyn MediaControl,
        now: Instant,
        wall: SystemTime,
    ) {
        let Some(call) = self.calls.get_mut(&leg.call) else {
            return;
        };
        let Some(status) = msg.status() else { return };
        if let Some(relayed) = call.relayed.get(&leg.request).cloned() {
            if status >= 200 {
                call.relayed.remove(&leg.request);
            }
            self.relay_response(leg.call, relayed, msg, media, now);
            if status >= 200 {
                self.resume(leg.call, media);
            }
            return;
        }
        if call
            .handover
            .resume
            .as_ref()
            .is_some_and(|r| r.request == leg.request)
        {
            self.resume_response(leg.call, msg, media);
            return;
        }
        let Some(bi) = call
            .branches
            .iter()
            .position(|b| b.request_id == leg.request)
        else {
            if call
                .handover
                .transfer
                .as_ref()
                .is_some_and(|t| t.branches.iter().any(|b| b.request_id == leg.request))
            {
                self.transfer_response(leg, msg, media, now, wall);
            } else if (200..300).contains(&status)
                && msg.cseq().map(|c| c.method).ok() == Some(Method::Invite)
                && let Some(old) = call
                    .retired
                    .iter()
                    .find(|b| b.request_id == leg.request)
                    .cloned()
            {
                // A phone of an earlier target answered after the call moved on: hang it up.
                self.hang_up_late(leg.call, old, msg);
            }
            // Otherwise a response to a BYE or NOTIFY we sent, or to a branch already forgotten.
            return;
        };
        let cseq_method = msg.cseq().map(|c| c.method).ok();
        if cseq_method != Some(Method::Invite) {
            return;
        }
        if status < 200 {
            call.branches[bi].silent_deadline = None;
        }
        match status {
            100 => {}
            101..=199 => {
                if call.state != State::Ringing {
                    return;
                }
                // 180/183 to the caller, with early media pointed at the relay.
                let mut body = None;
                if !msg.body().is_empty() {
                    point_leg(
                        media,
                        &self.local,
                        call.media,
                        Leg::B,
                        msg.body(),
                        call.branches[bi].peer.addr,
                        &call.callee,
                    );
                    let branch_keys = call.branches[bi].offered_keys.clone();
                    if let Some((theirs, ours)) =
                        answered_keys(&branch_keys, &sdp::security(msg.body()).crypto)
                    {
                        media.set_crypto(call.media, Leg::B, leg_crypto(&theirs, &ours));
                        call.keys.secure[1] = true;
                    }
                    if let Some(port) = media.local_port(call.media, Leg::A) {
                        let a_ours: Vec<CryptoAttribute> =
                            call.keys.a_keys.iter().map(|(_, o)| o.clone()).collect();
                        body = sdp::answer_for_with_crypto(
                            msg.body(),
                            &call.offer,
                            media.advertise_ip(),
                            port,
                            &a_ours,
                        )
                        .map(|b| ("application/sdp".to_string(), b));
                    }
                }
                let to_tag = call.a.local_tag.clone();
                let tx = call.invite_tx;
                self.outputs.push(CallOutput::Respond(Response {
                    tx,
                    status: if status == 183 || body.is_some() {
                        183
                    } else {
                        180
                    },
                    reason: None,
                    to_tag: Some(to_tag),
                    headers: vec![contact_header(&self.local, &call.a_peer)]
                        .into_iter()
                        .flatten()
                        .collect(),
                    body,
                }));
            }
            200..=299 => self.branch_answered(leg.call, bi, msg, media, now, wall),
            _ => {
                // A trunk's challenge to Palisade's own INVITE is answered once with the trunk's credentials.
                if matches!(status, 401 | 407)
                    && self.retry_with_credentials(leg.call, bi, msg, status)
                {
                    return;
                }
                let call = self.calls.get_mut(&leg.call).expect("checked above");
                call.branches[bi].final_status = Some(status);
                if call.state != State::Ringing {
                    return;
                }
                call.failures.push(status);
                if call.branches.iter().all(|b| b.final_status.is_some()) {
                    // Trunk failover: a timeout or a server error moves on to the next trunk.
                    if !call.failover.is_empty()
                        && (matches!(status, 401 | 407 | 408) || status >= 500)
                    {
                        self.fail_over(leg.call, now);
                        return;
                    }
                    let answer = best_failure(&call.failures);
                    // Busy, declined or not answered: the callee's forward, or its mailbox.
                    let why = if matches!(answer, 486 | 600) {
                        "busy"
                    } else {
                        "no_answer"
                    };
                    if self.divert_unanswered(leg.call, answer, why, media, now, wall) {
                        return;
                    }
                    let Some(call) = self.calls.get_mut(&leg.call) else {
                        return;
                    };
                    let disposition = match answer {
                        486 | 600 => Disposition::Busy,
                        487 => Disposition::Cancelled,
                        408 | 480 => Disposition::NoAnswer,
                        _ => Disposition::Failed,
                    };
                    let tx = call.invite_tx;
                    let tag = call.a.local_tag.clone();
                    self.respond(tx, answer, Some(&tag));
                    self.finish(
                        leg.call,
                        disposition,
                        HungUpBy::Callee,
                        &answer.to_string(),
                        media,
                        wall,
                    );
                }
            }
        }
    }

    pub(super) fn branch_answered(
        &mut self,
        id: u64,
        bi: usize,
        msg: &Message,
        media: &mut dyn MediaControl,
        now: Instant,
        wall: SystemTime,
    ) {
        let local = self.local.clone();
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let to_tag = msg
            .to()
            .ok()
            .and_then(|t| t.tag().map(str::to_string))
            .unwrap_or_default();
        let remote_target = msg.contacts().filter_map(Result::ok).find_map(|c| match c {
            sip::addr::Contact::Addr(a) => Some(a.uri.raw.to_string()),
            sip::addr::Contact::Star => None,
        });
        // Every 2xx is acknowledged, even a late one from a losing branch (which is then hung up).
        let mut branch = call.branches[bi].clone();
        branch.dialog.remote_tag = Some(to_tag.clone());
        if let Some(target) = &remote_target {
            branch.dialog.remote_target = target.clone();
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
        let call = self.calls.get_mut(&id).expect("present");
        if call.state != State::Ringing || call.b.is_some() {
            if call
                .b
                .as_ref()
                .is_some_and(|b| b.request_id == branch.request_id)
            {
                return; // a retransmitted 2xx of the winner: ACKed again above
            }
            // A second branch answered too: hang it up.
            if let Some(bye) = via_addr.and_then(|via_addr| {
                built(bodyless(
                    &branch.dialog,
                    "BYE",
                    branch.invite_cseq + 1,
                    transport,
                    via_addr,
                ))
            }) {
                let leg = LegKey {
                    call: id,
                    request: u64::MAX,
                };
                self.outputs.push(CallOutput::SendRequest {
                    leg,
                    request: bye,
                    peer: branch.peer,
                });
            }
            return;
        }
        call.branches[bi].final_status = Some(200);
        // A ring group's member answered: it is the callee from now on (record, transfers, busy).
        if let Some(member) = call
            .hunt
            .take()
            .and_then(|h| h.member_for(branch.request_id).cloned())
        {
            call.callee = member;
        }
        // Cancel the other branches.
        for other in call
            .branches
            .iter_mut()
            .filter(|b| b.request_id != branch.request_id && b.final_status.is_none())
        {
            other.cancelled = true;
            self.outputs.push(CallOutput::Cancel {
                leg: LegKey {
                    call: id,
                    request: other.request_id,
                },
            });
        }
        point_leg(
            media,
            &self.local,
            call.media,
            Leg::B,
            msg.body(),
            branch.peer.addr,
            &call.callee,
        );
        // The callee's keys: it answered one of the suites Palisade offered, or plain RTP.
        match answered_keys(&branch.offered_keys, &sdp::security(msg.body()).crypto) {
            Some((theirs, ours)) => {
                media.set_crypto(call.media, Leg::B, leg_crypto(&theirs, &ours));
                call.keys.secure[1] = true;
            }
            None => {
                media.set_crypto(call.media, Leg::B, None);
                call.keys.secure[1] = false;
                if branch.srtp == SrtpMode::Enforced {
                    // The callee's phone (or trunk) answered without SRTP although its leg requires it.
                    let tx = call.invite_tx;
                    let tag = call.a.local_tag.clone();
                    self.respond(tx, 488, Some(&tag));
                    self.dialogs.insert(branch.dialog.key(), (id, Leg::B));
                    if let Some(c) = self.calls.get_mut(&id) {
                        c.b = Some(branch);
                    }
                    self.send_bye(id, Leg::B, media);
                    self.finish(
                        id,
                        Disposition::Failed,
                        HungUpBy::System,
                        "callee_refused_srtp",
                        media,
                        wall,
                    );
                    return;
                }
            }
        }
        let a_ours: Vec<CryptoAttribute> =
            call.keys.a_keys.iter().map(|(_, o)| o.clone()).collect();
        let body = media.local_port(call.media, Leg::A).and_then(|port| {
            sdp::answer_for_with_crypto(
                msg.body(),
                &call.offer,
                media.advertise_ip(),
                port,
                &a_ours,
            )
        });
        let Some(body) = body else {
            // The callee's answer has nothing in common with the offer: end both sides.
            let tx = call.invite_tx;
            let tag = call.a.local_tag.clone();
            self.respond(tx, 488, Some(&tag));
            self.send_bye(id, Leg::B, media);
            self.finish(
                id,
                Disposition::Failed,
                HungUpBy::System,
                "no_common_codec",
                media,
                wall,
            );
            return;
        };
        self.dialogs.insert(branch.dialog.key(), (id, Leg::B));
        self.dialogs.insert(call.a.key(), (id, Leg::A));
        call.b = Some(branch);
        call.answers = [Some(body.clone()), Some(msg.body_bytes())];
        call.sent = [Some(body.clone()), call.b.as_ref().map(|b| b.body.clone())];
        call.state = State::Answered;
        call.answered_at = Some(wall);
        let codec = |body: Option<&Bytes>| body.and_then(|b| sdp::app_codec(b));
        let dtmf = |body: Option<&Bytes>| codec(body).and_then(|c| c.dtmf_payload_type);
        let g711 = |body: Option<&Bytes>| codec(body).map(|c| c.payload_type);
        media.answered(
            call.media,
            Answered {
                call_id: call.call_id_a.clone(),
                caller: call.caller.number.clone(),
                callee: call.callee.number.clone(),
                extensions: [call.caller.extension, call.callee.extension],
                payload_type: [
                    g711(call.answers[0].as_ref()),
                    g711(call.answers[1].as_ref()),
                ],
                dtmf_payload_type: [
                    dtmf(call.answers[0].as_ref()),
                    dtmf(call.answers[1].as_ref()),
                ],
            },
        );
        let mut headers: Vec<(HeaderName, String)> =
            contact_header(&local, &call.a_peer).into_iter().collect();
        headers.push((HeaderName::Allow, crate::core::ALLOW_CALLS.to_string()));
        if let Some((_, interval)) = call.timers.session_deadline {
            headers.push((
                HeaderName::SessionExpires,
                format!("{};refresher=uac", interval.as_secs()),
            ));
            headers.push((HeaderName::Require, "timer".into()));
        }
        let response = Response {
            tx: call.invite_tx,
            status: 200,
            reason: None,
            to_tag: Some(call.a.local_tag.clone()),
            headers,
            body: Some(("application/sdp".into(), body)),
        };
        self.outputs.push(CallOutput::Respond(response));
        call.timers.retransmit_2xx = Some(timers::Retransmission::start(now));
    }

    /// ACKs a 2xx from a branch that is no longer wanted and hangs it up with BYE.
    pub(super) fn hang_up_late(&mut self, id: u64, mut branch: Branch, msg: &Message) {
        let to_tag = msg
            .to()
            .ok()
            .and_then(|t| t.tag().map(str::to_string))
            .unwrap_or_default();
        branch.dialog.remote_tag = Some(to_tag);
        if let Some(target) = msg.contacts().filter_map(Result::ok).find_map(|c| match c {
            sip::addr::Contact::Addr(a) => Some(a.uri.raw.to_string()),
            sip::addr::Contact::Star => None,
        }) {
            branch.dialog.remote_target = target;
        }
        let transport = branch.peer.transport;
        let Some(via_addr) = self.local.address_for(transport) else {
            return;
        };
        if let Some(ack) = built(bodyless(
            &branch.dialog,
            "ACK",
            branch.invite_cseq,
            transport,
            via_addr,
        )) {
            self.outputs.push(CallOutput::SendRaw {
                bytes: ack.wire(),
                peer: branch.peer,
            });
        }
        let Some(bye) = built(bodyless(
            &branch.dialog,
            "BYE",
            branch.invite_cseq + 1,
            transport,
            via_addr,
        )) else {
            return;
        };
        self.outputs.push(CallOutput::SendRequest {
            leg: LegKey {
                call: id,
                request: u64::MAX,
            },
            request: bye,
            peer: branch.peer,
        });
    }
}

/// Who a new INVITE is from, and the SRTP policy of the leg it opens.
pub(super) struct OutgoingFrom {
    pub(super) display_name: Option<String>,
    pub(super) srtp: SrtpMode,
}

/// The INVITE of `b` again, with credentials for the challenge in `msg` (a trunk's 401/407), as request
/// `request_id`. `None` when the branch has no credentials or already tried them (the provider refused them).
pub(super) fn reauthenticate(
    b: &mut Branch,
    request_id: u64,
    msg: &Message,
    status: u16,
) -> Option<(Message, Peer)> {
    let (user, password) = b.credentials.clone().filter(|_| !b.auth_tried)?;
    let (challenge_header, answer_header) = if status == 407 {
        (
            HeaderName::ProxyAuthenticate,
            HeaderName::ProxyAuthorization,
        )
    } else {
        (HeaderName::WwwAuthenticate, HeaderName::Authorization)
    };
    let challenge = msg
        .header_values(challenge_header)
        .filter_map(|v| std::str::from_utf8(v).ok())
        .find_map(crate::trunks::parse_challenge)?;
    let uri = b.dialog.remote_target.clone();
    let answer = crate::trunks::answer_challenge(&challenge, &user, &password, "INVITE", &uri);
    b.auth_tried = true;
    b.invite_cseq += 1;
    b.dialog.local_cseq = b.invite_cseq;
    b.request_id = request_id;
    let request = built(b.dialog.request(
        "INVITE",
        b.invite_cseq,
        &via(b.transport, b.via_addr),
        &contact_uri(b.via_addr, b.transport),
        b.max_forwards,
        &[
            (HeaderName::Allow, crate::core::ALLOW_CALLS.to_string()),
            (answer_header, answer),
        ],
        Some(("application/sdp", b.body.clone())),
    ))?;
    Some((request, b.peer))
}

/// The final answer to the caller when every branch failed (RFC 3261 §16.7, simplified): busy wins, then a
/// global failure, then the lowest 4xx/5xx; timeouts become 480.
pub(super) fn best_failure(failures: &[u16]) -> u16 {
    // A challenge from the callee side (a trunk refusing Palisade's credentials) must never reach the caller,
    // which would take it as Palisade's own challenge.
    let failures: Vec<u16> = failures
        .iter()
        .map(|&s| if matches!(s, 401 | 407) { 503 } else { s })
        .collect();
    let failures = failures.as_slice();
    if failures.contains(&486) || failures.contains(&600) {
        return 486;
    }
    if let Some(&g) = failures.iter().find(|s| (600..700).contains(*s)) {
        return g;
    }
    match failures
        .iter()
        .copied()
        .filter(|s| *s != 408 && *s != 487)
        .min()
    {
        Some(s) if (400..600).contains(&s) => s,
        _ => 480,
    }
}
