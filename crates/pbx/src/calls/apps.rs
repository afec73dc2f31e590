//! Calls answered by a media application (voicemail, the PIN unlock): diverting an unanswered call, the
//! application's start, failure and hang-up, and what the caller may do in its dialog.

use super::*;

impl Calls {
    /// The callee did not take the call: `status` is 486/600/603 (busy, declined) or 408/480 (no answer,
    /// unreachable). The callee's forward for the case wins, then its mailbox. Returns false when it has neither:
    /// the caller must get the failure.
    pub(super) fn divert_unanswered(
        &mut self,
        id: u64,
        status: u16,
        why: &str,
        media: &mut dyn MediaControl,
        now: Instant,
        wall: SystemTime,
    ) -> bool {
        if !matches!(status, 408 | 480 | 486 | 600 | 603) {
            return false;
        }
        // A ring group moves on to its next members, then to its own fallback (not the group's "extension").
        match self.hunt_next(id, now) {
            hunt::HuntStep::None => {}
            hunt::HuntStep::Ringing => return true,
            hunt::HuntStep::Exhausted(fallback) => {
                return self.group_fallback(id, fallback, status, why, media, wall);
            }
        }
        let Some(call) = self.calls.get_mut(&id) else {
            return false;
        };
        let (reason, target) = if matches!(status, 486 | 600 | 603) {
            (ForwardReason::Busy, call.callee.forward.busy.clone())
        } else if why == "not_registered" {
            (
                ForwardReason::Unavailable,
                call.callee.forward.no_answer.clone(),
            )
        } else {
            (
                ForwardReason::NoAnswer,
                call.callee.forward.no_answer.clone(),
            )
        };
        if let Some(target) = target {
            self.forward(id, reason, target, media, wall);
            return true;
        }
        if call.callee.voicemail {
            let mailbox = call.callee.number.clone();
            self.divert(id, AppKind::Deposit { mailbox }, status, why, media, wall);
            return true;
        }
        false
    }

    /// No member of a ring group took the call: its fallback does. False for `hangup` (the caller gets the
    /// failure).
    fn group_fallback(
        &mut self,
        id: u64,
        fallback: hunt::GroupFallback,
        status: u16,
        why: &str,
        media: &mut dyn MediaControl,
        wall: SystemTime,
    ) -> bool {
        match fallback {
            hunt::GroupFallback::Hangup => false,
            hunt::GroupFallback::Mailbox(mailbox) => {
                self.divert(id, AppKind::Deposit { mailbox }, status, why, media, wall);
                true
            }
            hunt::GroupFallback::Forward { target, route_as } => {
                let reason = if matches!(status, 486 | 600 | 603) {
                    ForwardReason::Busy
                } else {
                    ForwardReason::NoAnswer
                };
                self.forward_as(id, reason, target, route_as, media, wall);
                true
            }
        }
    }

    /// Hands a call that was not answered to a media application instead of failing it with `status`.
    pub(super) fn divert(
        &mut self,
        id: u64,
        kind: AppKind,
        status: u16,
        why: &str,
        media: &mut dyn MediaControl,
        wall: SystemTime,
    ) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        // Voicemail speaks G.711 only; without it (or without relay ports) the caller gets the failure it would
        // have had.
        let usable = sdp::app_codec(&call.offer).zip(media.local_port(call.media, Leg::B));
        let Some((codec, relay_port)) = usable else {
            let (tx, tag) = (call.invite_tx, call.a.local_tag.clone());
            self.respond(tx, status, Some(&tag));
            self.finish(
                id,
                Disposition::Unavailable,
                HungUpBy::System,
                why,
                media,
                wall,
            );
            return;
        };
        tracing::debug!(call = id, why, "to voicemail");
        call.state = State::Diverting;
        call.diversion.app = Some(kind.clone());
        let start = AppStart {
            call: id,
            kind,
            caller: call.caller.number.clone(),
            caller_name: call.caller.display_name.clone(),
            source: call.a_peer.addr,
            transport: call.a_peer.transport,
            codec,
            relay_port,
        };
        self.outputs.push(CallOutput::StartApp(start));
    }

    /// The media application of `call` listens at `rtp`: answer the caller with it.
    pub fn app_ready(
        &mut self,
        id: u64,
        rtp: SocketAddr,
        media: &mut dyn MediaControl,
        now: Instant,
        wall: SystemTime,
    ) {
        let local = self.local.clone();
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.state != State::Diverting {
            // An application replacing another on an answered call (`switch_app`): point the relay at it.
            if call.diversion.app.is_some()
                && matches!(call.state, State::Answered | State::Confirmed)
            {
                media.set_remote(
                    call.media,
                    Leg::B,
                    ::media::Remote::exact(rtp),
                    ::media::Remote::exact(SocketAddr::new(rtp.ip(), rtp.port().wrapping_add(1))),
                );
            }
            return;
        }
        let Some(codec) = sdp::app_codec(&call.offer) else {
            return;
        };
        let description = sdp::app_description(rtp, codec);
        // Palisade's own application: its address is trusted as it is.
        media.set_remote(
            call.media,
            Leg::B,
            ::media::Remote::exact(rtp),
            ::media::Remote::exact(SocketAddr::new(rtp.ip(), rtp.port().wrapping_add(1))),
        );
        media.set_crypto(call.media, Leg::B, None);
        let a_ours: Vec<CryptoAttribute> =
            call.keys.a_keys.iter().map(|(_, o)| o.clone()).collect();
        let body = media.local_port(call.media, Leg::A).and_then(|port| {
            sdp::answer_for_with_crypto(
                &description,
                &call.offer,
                media.advertise_ip(),
                port,
                &a_ours,
            )
        });
        let Some(body) = body else {
            self.app_failed(id, media, wall);
            return;
        };
        call.diversion.app_sdp = Some(description);
        self.dialogs.insert(call.a.key(), (id, Leg::A));
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
            body: Some(("application/sdp".into(), body)),
        }));
        call.timers.retransmit_2xx = Some(timers::Retransmission::start(now));
    }

    /// The media application of `call` could not start: the caller gets 480.
    pub fn app_failed(&mut self, id: u64, media: &mut dyn MediaControl, wall: SystemTime) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let (tx, tag) = (call.invite_tx, call.a.local_tag.clone());
        call.diversion.app = None;
        self.respond(tx, 480, Some(&tag));
        self.finish(
            id,
            Disposition::Unavailable,
            HungUpBy::System,
            "voicemail_unavailable",
            media,
            wall,
        );
    }

    /// The media application of `call` is done (message saved, caller locked out, goodbye): hang up.
    pub fn app_hangup(&mut self, id: u64, media: &mut dyn MediaControl, wall: SystemTime) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        // The application ended itself: `finish` must not tell it to stop.
        call.diversion.app = None;
        self.send_bye(id, Leg::A, media);
        self.finish(
            id,
            Disposition::Answered,
            HungUpBy::Callee,
            "voicemail",
            media,
            wall,
        );
    }

    /// An in-dialog request from the caller of a media application: keys by INFO, session refreshes and hold
    /// answered by Palisade; no transfers out of voicemail.
    pub(super) fn app_request(
        &mut self,
        id: u64,
        tx: ServerTxId,
        msg: &Message,
        method: Method,
        media: &mut dyn MediaControl,
        now: Instant,
    ) {
        let local = self.local.clone();
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let tag = call.a.local_tag.clone();
        let mut response = Response {
            tx,
            status: 200,
            reason: None,
            to_tag: Some(tag),
            headers: Vec::new(),
            body: None,
        };
        match method {
            Method::Info => {
                let ct = msg.header_str(HeaderName::ContentType).unwrap_or("");
                if let Some(digit) = ::media::dtmf::parse_info(ct, msg.body()) {
                    self.outputs.push(CallOutput::AppDigit { call: id, digit });
                }
            }
            Method::Invite | Method::Update => {
                if let Some((_, interval)) = call.timers.session_deadline.as_mut() {
                    let interval = *interval;
                    call.timers.session_deadline = Some((now + interval, interval));
                }
                let offer = msg.body_bytes();
                if !offer.is_empty() {
                    point_leg(
                        media,
                        &self.local,
                        call.media,
                        Leg::A,
                        &offer,
                        call.a_peer.addr,
                        &call.caller,
                    );
                    // A new offer on a secure leg brings a new key, and gets a fresh one from Palisade.
                    let mut ours = Vec::new();
                    if call.keys.secure[0]
                        && let Some(theirs) = ::media::sdes::choose(
                            sdp::security(&offer).crypto.iter().map(String::as_str),
                        )
                    {
                        let mine = theirs.answer();
                        media.set_crypto(call.media, Leg::A, leg_crypto(&theirs, &mine));
                        ours.push(mine);
                    }
                    let answer = match (
                        &call.diversion.app_sdp,
                        media.local_port(call.media, Leg::A),
                    ) {
                        (Some(app), Some(port)) => sdp::answer_for_with_crypto(
                            app,
                            &offer,
                            media.advertise_ip(),
                            port,
                            &ours,
                        ),
                        _ => None,
                    };
                    match answer {
                        Some(body) => {
                            call.offer = offer;
                            response.body = Some(("application/sdp".into(), body));
                        }
                        None => response.status = 488,
                    }
                }
                response
                    .headers
                    .extend(contact_header(&local, &call.a_peer));
            }
            Method::Refer => {
                response.status = 403;
                response.reason = Some("Forbidden (no transfers from voicemail)".into());
            }
            Method::Options => {}
            _ => response.status = 405,
        }
        self.outputs.push(CallOutput::Respond(response));
    }
}
