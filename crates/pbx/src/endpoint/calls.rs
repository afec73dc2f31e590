//! The service's side of calls: authorising a new INVITE, handing it to the B2BUA with the callee's
//! registrations, and carrying out what the B2BUA asks (responses, requests, ACKs, CANCELs, records).

use std::time::Instant;

use crate::calls::{
    ActiveCall, AppKind, CallOutput, DialogLeg, ForwardReason, Party, Resolved, SourceCheck,
    check_source,
};
use crate::core::{AuthSignal, unix_secs};
use crate::policy::Route;
use crate::registrar::Origin;
use sip::transaction::{Peer, ServerTxId};
use sip::{HeaderName, Message, Method, ResponseBuilder};

use super::router::Refused;
use super::{Endpoint, Event, Parts, to_outbound, unix_ms, unspecified};
use crate::endpoint::Outbound;

/// An extension as the calling party of a call.
pub(super) fn caller_party(e: &crate::core::ExtensionAuth, display_name: Option<String>) -> Party {
    Party {
        number: e.number.clone(),
        display_name,
        srtp: e.srtp,
        extension: true,
        ..Party::default()
    }
}

/// The From header's display name, as text.
pub(super) fn display_name_of(request: &Message) -> Option<String> {
    request.from().ok().and_then(|f| {
        f.display_name()
            .map(|d| String::from_utf8_lossy(&d).into_owned())
    })
}

/// The Request-URI's user part (the dialled number), or "".
pub(super) fn dialled_number(request: &Message) -> String {
    request
        .request_uri()
        .and_then(Result::ok)
        .and_then(|u| u.user)
        .unwrap_or("")
        .to_string()
}

/// An extension as the called party: its mailbox and call forwards apply.
pub(super) fn callee_party(e: &crate::core::ExtensionAuth) -> Party {
    Party {
        number: e.number.clone(),
        display_name: None,
        srtp: e.srtp,
        voicemail: e.voicemail,
        forward: e.forward.clone(),
        extension: true,
    }
}

impl Parts {
    /// Parts for unit tests: no media relay (calls are refused with 503), default guard and call timers.
    pub fn for_tests(core: crate::core::PbxCore) -> Self {
        Parts {
            core,
            guard: guard::Guard::new(guard::GuardConfig::default()),
            calls: crate::calls::Calls::new(
                crate::calls::CallConfig::default(),
                crate::calls::LocalAddrs {
                    by_transport: Vec::new(),
                    domain: "pbx.test".into(),
                },
            ),
            media: Box::new(crate::calls::NoMedia),
        }
    }
}

impl Endpoint {
    /// The calls in progress.
    pub fn active_calls(&self) -> Vec<ActiveCall> {
        self.calls.active()
    }

    /// A new INVITE (no To tag): the caller must be an extension proving its credentials (407); then the call
    /// layer rings the callee's contacts.
    pub(super) fn on_invite(
        &mut self,
        tx: ServerTxId,
        request: &Message,
        peer: Peer,
        now: Instant,
    ) {
        let wall = self.clock.at(now);
        let origin = Origin {
            transport: peer.transport,
            source: peer.addr,
            local: unspecified(peer.addr),
        };
        // An internal hop from another cluster node (endpoint/cluster.rs): authenticated by source and signature.
        if self.hop_invite(tx, request, peer, now) {
            return;
        }
        // A call from a trunk is trusted by its source address (never by what it claims) and rings the
        // extension its number (DID) belongs to.
        if let Some(trunk) = crate::trunks::trunk_of(&self.trunks, peer.addr.ip()).cloned() {
            self.on_trunk_invite(tx, request, peer, &trunk, now);
            return;
        }
        let Some(caller) = self.authorize_new_dialog(tx, request, peer, now) else {
            return;
        };
        // INVITE with Replaces (RFC 3891): a phone takes over a call of its extension (endpoint/features.rs).
        if let Some(value) = crate::calls::invite_replaces(request) {
            self.replaces_invite(tx, request, peer, &caller, &value, now);
            return;
        }
        let number = dialled_number(request);
        // A ring group number (endpoint/groups.rs): its members are routed under the caller's policy there.
        if self.group_invite(tx, request, peer, &caller, &number, now) {
            return;
        }
        // A feature code (`*8`, `**201`: endpoint/features.rs).
        if self.feature_invite(tx, request, peer, &caller, &number, now) {
            return;
        }
        // A call queue's number (endpoint/queues.rs).
        if self.queue_invite(tx, request, peer, &caller, &number, now) {
            return;
        }
        // Palisade's own office numbers (conference rooms): internal, so any extension may call them.
        if self.office_call(tx, request, peer, &caller, &number, now) {
            return;
        }
        // Call policy first (hardening steps 3 and 4): where may this extension call, now?
        let route = self.core.route_call(&caller, &number, origin, wall);
        // Then the extension's resource limits (emergency calls are never limited).
        let limited = match &route {
            Route::Refused(_) | Route::Emergency { .. } => None,
            Route::External { .. } => self.call_limit(&caller.number, true, &number, origin, wall),
            _ => self.call_limit(&caller.number, false, &number, origin, wall),
        };
        if let Some(r) = limited {
            let party = caller_party(&caller, None);
            let reason = r.phrase();
            self.calls.refuse(
                tx,
                request,
                &party,
                &number,
                r.status(),
                &reason,
                r.reason_code(),
                wall,
            );
            return;
        }
        let emergency = matches!(route, Route::Emergency { .. });
        let refusal = match route {
            Route::Extension(_) => None,
            Route::Refused(r) => {
                let r = Refused::policy(&r);
                Some((r.status, r.reason, r.code))
            }
            Route::External {
                number: out_number,
                trunks,
                ..
            }
            | Route::Emergency {
                number: out_number,
                trunks,
                ..
            } => {
                let context = format!("extension {} calling {number}", caller.number);
                let (from, out) = (caller.number.clone(), out_number);
                match self
                    .trunk_destination(&trunks, &out, &from, emergency, &context, origin, wall)
                {
                    Err(r) => Some((r.status, r.reason, r.code)),
                    Ok(targets) => {
                        let party = caller_party(&caller, display_name_of(request));
                        self.calls
                            .invite_trunk(tx, request, peer, party, &number, targets, wall);
                        return;
                    }
                }
            }
            Route::PinUnlock { pin } => {
                let kind = AppKind::Unlock {
                    pin: (!pin.is_empty()).then_some(pin),
                };
                self.answer_with_app(tx, request, peer, &caller, kind, now);
                return;
            }
            Route::Voicemail => {
                let kind = AppKind::Access {
                    mailbox: caller.number.clone(),
                };
                self.answer_with_app(tx, request, peer, &caller, kind, now);
                return;
            }
        };
        if let Some((status, reason, code)) = refusal {
            let party = caller_party(&caller, None);
            self.calls
                .refuse(tx, request, &party, &number, status, &reason, code, wall);
            return;
        }
        let (callee, contacts) = match self.extension_destination(&number, wall) {
            Some((party, contacts)) => (Some(party), contacts),
            None => (None, Vec::new()),
        };
        let caller = caller_party(&caller, display_name_of(request));
        self.calls
            .invite(tx, request, peer, caller, callee, &contacts, wall);
    }

    /// Authenticates a request that opens a dialog (INVITE, SUBSCRIBE) by Proxy-Authorization and counts the
    /// outcome in the guard. On failure the challenge or refusal has been sent, once: never retransmitted, so a
    /// spoofed request cannot be amplified.
    pub(super) fn authorize_new_dialog(
        &mut self,
        tx: ServerTxId,
        request: &Message,
        peer: Peer,
        now: Instant,
    ) -> Option<std::sync::Arc<crate::core::ExtensionAuth>> {
        let wall = self.clock.at(now);
        let origin = Origin {
            transport: peer.transport,
            source: peer.addr,
            local: unspecified(peer.addr),
        };
        let (ip, ms) = (peer.addr.ip(), unix_ms(wall));
        match self.core.authorize_call(request, origin, wall) {
            Ok(ext) => {
                self.guard.on_auth_success(ip, ms);
                Some(ext)
            }
            Err(reply) => {
                match reply.auth {
                    AuthSignal::Challenged => self.guard.on_challenge(ip, ms),
                    AuthSignal::Failed => self.guard.on_auth_failure(ip, ms),
                    _ => {}
                }
                let mut b = match &reply.reason {
                    Some(reason) => ResponseBuilder::with_reason(request, reply.status, reason),
                    None => ResponseBuilder::new(request, reply.status),
                };
                for (name, value) in &reply.headers {
                    b = b.header(*name, value);
                }
                let bytes = self.finish(b, peer, None);
                if let Err(e) = self.transactions.respond_once(tx, bytes, now) {
                    tracing::warn!(error = %e, "could not answer a request that needs authentication");
                }
                None
            }
        }
    }

    /// Answers the call with a media application (the caller's mailbox, the PIN unlock dialogue).
    pub(super) fn answer_with_app(
        &mut self,
        tx: ServerTxId,
        request: &Message,
        peer: Peer,
        caller: &crate::core::ExtensionAuth,
        kind: AppKind,
        now: Instant,
    ) {
        let wall = self.clock.at(now);
        let party = caller_party(caller, display_name_of(request));
        self.calls.invite_app(tx, request, peer, party, kind, wall);
    }

    /// The trunks Palisade connects external calls through (from the store).
    pub fn set_trunks(&mut self, trunks: Vec<crate::trunks::Trunk>) {
        self.trunks = trunks;
    }

    /// An INVITE from a trunk's source address: no authentication (the provider is trusted by address); the
    /// dialled number must be one of the trunk's DIDs, and an internal-only extension takes no external calls.
    fn on_trunk_invite(
        &mut self,
        tx: ServerTxId,
        request: &Message,
        peer: Peer,
        trunk: &crate::trunks::Trunk,
        now: Instant,
    ) {
        let wall = self.clock.at(now);
        let dialed = request
            .request_uri()
            .and_then(Result::ok)
            .and_then(|u| u.user.map(str::to_string))
            .or_else(|| {
                request
                    .to()
                    .ok()
                    .and_then(|t| t.uri.user.map(str::to_string))
            })
            .unwrap_or_default();
        let caller_number = request
            .from()
            .ok()
            .and_then(|f| f.uri.user.map(str::to_string))
            .unwrap_or_default();
        // The other end of a trunk: not an extension (it may not transfer); its SRTP is the trunk's.
        let caller = Party {
            number: caller_number,
            srtp: trunk.srtp,
            ..Party::default()
        };
        if self
            .trunks_with_room(std::slice::from_ref(&trunk.name), false)
            .is_empty()
        {
            let origin = Origin {
                transport: peer.transport,
                source: peer.addr,
                local: unspecified(peer.addr),
            };
            let detail = format!(
                "inbound call from trunk {} to {dialed}: the trunk is at its call limit",
                trunk.name
            );
            self.trunk_limit_event(&detail, origin, wall);
            let r = crate::limits::LimitRefusal::TrunkCalls;
            let reason = r.phrase();
            self.calls.refuse(
                tx,
                request,
                &caller,
                &dialed,
                r.status(),
                &reason,
                r.reason_code(),
                wall,
            );
            return;
        }
        // A DID answered by an auto attendant (which never dials out).
        if self.office_trunk_call(tx, request, peer, &trunk.name, &dialed, caller.clone(), now) {
            return;
        }
        let ext = trunk
            .extension_for(&dialed)
            .and_then(|n| self.core.extension(n))
            .filter(|e| e.enabled);
        let Some(ext) = ext else {
            self.calls.refuse(
                tx,
                request,
                &caller,
                &dialed,
                404,
                "Not Found (no such number)",
                "unknown_did",
                wall,
            );
            return;
        };
        if ext.restrictions.internal_only {
            let origin = Origin {
                transport: peer.transport,
                source: peer.addr,
                local: unspecified(peer.addr),
            };
            self.core.policy_event(
                crate::model::PolicyReason::InternalOnly,
                origin,
                &format!("inbound call from trunk {} to {}", trunk.name, ext.number),
                wall,
            );
            self.calls.refuse(
                tx,
                request,
                &caller,
                &ext.number,
                403,
                "Forbidden (internal calls only)",
                crate::model::PolicyReason::InternalOnly.as_str(),
                wall,
            );
            return;
        }
        let callee = callee_party(&ext);
        let contacts = self.reachable_bindings(&ext.number, wall);
        tracing::info!(trunk = %trunk.name, did = %dialed, extension = %ext.number, "inbound call");
        self.calls
            .invite(tx, request, peer, caller, Some(callee), &contacts, wall);
    }

    /// Routes a forward or transfer target exactly as if extension `from` (the forwarding or transferring
    /// extension) dialled it: the same call policy, refusals, events and trunks as [`Self::on_invite`]. A forward
    /// never reaches what `from` could not call itself.
    pub(super) fn resolve_forward(
        &mut self,
        from: &str,
        target: &str,
        reason: ForwardReason,
        source: Peer,
        now: Instant,
    ) -> Resolved {
        let wall = self.clock.at(now);
        let refused = |status: u16, reason: &str, code: &str| Resolved::Refused {
            status,
            reason: reason.to_string(),
            code: code.to_string(),
        };
        let Some(ext) = self.core.extension(from).filter(|e| e.enabled) else {
            return refused(403, "Forbidden (extension disabled)", "disabled");
        };
        // A transfer to the park number parks the call (endpoint/features.rs).
        if let Some(park) = self.park_destination(target, reason) {
            return park;
        }
        let origin = Origin {
            transport: source.transport,
            source: source.addr,
            local: unspecified(source.addr),
        };
        let why = match reason {
            ForwardReason::Transfer => format!("transfer by {from}"),
            r => format!("forward {} from {from}", r.as_str()),
        };
        match self.core.route_forward(&ext, target, &why, origin, wall) {
            Route::Extension(number) => match self.extension_destination(&number, wall) {
                Some((party, contacts)) => Resolved::Extension { party, contacts },
                None => refused(404, "Not Found", "404"),
            },
            Route::External { number, trunks, .. } | Route::Emergency { number, trunks, .. } => {
                // A forwarded or transferred leg takes a trunk channel like any call.
                match self.trunk_destination(&trunks, &number, from, false, &why, origin, wall) {
                    Ok(targets) => Resolved::External {
                        number: target.to_string(),
                        targets,
                    },
                    Err(r) => refused(r.status, &r.reason, r.code),
                }
            }
            Route::Refused(r) => {
                let r = Refused::policy(&r);
                refused(r.status, &r.reason, r.code)
            }
            // The voicemail access and PIN unlock numbers serve the extension that dials them, never a caller
            // sent there.
            Route::PinUnlock { .. } | Route::Voicemail => refused(
                403,
                "Forbidden (a service number cannot be a forward or transfer target)",
                "not_forwardable",
            ),
        }
    }

    /// A request's session body as the call layer may take it ([`crate::calls::body`]): a multipart body's one SDP
    /// part becomes the body (the other parts are dropped); an INVITE or UPDATE with a body of another type gets
    /// 415 with `Accept: application/sdp`, as does an SDP hidden in a multipart body of any other method.
    /// `None` when the request was answered here.
    pub(super) fn session_request(
        &mut self,
        tx: ServerTxId,
        request: Message,
        peer: Peer,
        now: Instant,
    ) -> Option<Message> {
        use crate::calls::body::{SessionBody, classify, with_body};
        let session = matches!(request.method(), Some(Method::Invite | Method::Update));
        let refuse = match classify(&request) {
            SessionBody::Plain => return Some(request),
            SessionBody::SdpPart(sdp) if session => {
                match with_body(
                    &request,
                    Some(("application/sdp", &sdp)),
                    &self.config.limits,
                ) {
                    Some(m) => return Some(m),
                    None => true,
                }
            }
            SessionBody::SdpPart(_) => true,
            SessionBody::Unsupported => session,
        };
        if !refuse {
            return Some(request);
        }
        let b = ResponseBuilder::new(&request, 415).header(HeaderName::Accept, "application/sdp");
        let bytes = self.finish(b, peer, None);
        if let Err(e) = self.transactions.respond_once(tx, bytes, now) {
            tracing::debug!(error = %e, "415 not sent");
        }
        None
    }

    /// A response to an INVITE or UPDATE of a call leg, its body made one the call layer may take: a multipart
    /// body's one SDP part, else no body at all (never the original forwarded).
    pub(super) fn session_response(&self, response: Message) -> Message {
        use crate::calls::body::{SessionBody, classify, with_body};
        let session = response
            .cseq()
            .is_ok_and(|c| matches!(c.method, Method::Invite | Method::Update));
        if !session {
            return response;
        }
        let replaced = match classify(&response) {
            SessionBody::Plain => return response,
            SessionBody::SdpPart(sdp) => with_body(
                &response,
                Some(("application/sdp", &sdp)),
                &self.config.limits,
            ),
            SessionBody::Unsupported => with_body(&response, None, &self.config.limits),
        };
        // Rebuilding cannot fail for a message that parsed; if it did, the body still must not pass.
        replaced
            .or_else(|| with_body(&response, None, &self.config.limits))
            .unwrap_or(response)
    }

    /// Where an in-dialog request (or an ACK) for a call came from, checked against that leg's signalling
    /// ([`crate::calls::check_source`]): its own flow, a registered flow of its extension, or its trunk.
    /// `None` when no call holds the dialog (the call layer answers that).
    pub(super) fn in_dialog_source(
        &self,
        request: &Message,
        source: &Peer,
        now: Instant,
    ) -> Option<(DialogLeg, SourceCheck)> {
        let leg = self.calls.dialog_leg(request)?;
        let wall = self.clock.at(now);
        let flows: Vec<_> = leg
            .extension
            .as_deref()
            .map(|number| {
                self.core
                    .registrar()
                    .lookup(number, unix_secs(wall))
                    .into_iter()
                    .map(|b| (b.source, b.transport))
                    .collect()
            })
            .unwrap_or_default();
        let trunk = |ip| crate::trunks::trunk_of(&self.trunks, ip).map(|t| t.name.as_str());
        let same_trunk =
            trunk(source.addr.ip()).is_some_and(|t| Some(t) == trunk(leg.peer.addr.ip()));
        let check = check_source(&leg, source, &flows, same_trunk);
        Some((leg, check))
    }

    /// An in-dialog request from somewhere else than its leg's signalling: 403 in `tx` (an ACK has none), a
    /// policy event, and the call goes on untouched. Returns whether the request was refused.
    pub(super) fn refuse_foreign_in_dialog(
        &mut self,
        tx: Option<ServerTxId>,
        request: &Message,
        source: Peer,
        now: Instant,
    ) -> bool {
        let Some((leg, check)) = self.in_dialog_source(request, &source, now) else {
            return false;
        };
        if check.accepted() {
            return false;
        }
        let wall = self.clock.at(now);
        let method = request.method_str().unwrap_or("?").to_string();
        tracing::warn!(
            %method,
            source = %source.addr,
            leg = %leg.peer.addr,
            "in-dialog request from another address than the call's; refused"
        );
        let origin = Origin {
            transport: source.transport,
            source: source.addr,
            local: unspecified(source.addr),
        };
        self.core.policy_event(
            crate::model::PolicyReason::InDialogForeignSource,
            origin,
            &format!(
                "{method} in call {} from outside the leg's signalling ({} {})",
                leg.call_id, leg.peer.transport, leg.peer.addr
            ),
            wall,
        );
        if let Some(tx) = tx {
            let b = ResponseBuilder::with_reason(
                request,
                403,
                "Forbidden (not from this call's signalling address)",
            );
            let bytes = self.finish(b, source, None);
            if let Err(e) = self.transactions.respond_once(tx, bytes, now) {
                tracing::debug!(error = %e, "in-dialog refusal not sent");
            }
        }
        true
    }

    /// A CANCEL for a pending INVITE from another address or transport than that INVITE: 403, a policy event,
    /// and the call keeps ringing.
    pub(super) fn foreign_cancel(
        &mut self,
        tx: ServerTxId,
        request: &Message,
        source: Peer,
        now: Instant,
    ) {
        let origin = Origin {
            transport: source.transport,
            source: source.addr,
            local: unspecified(source.addr),
        };
        self.core.policy_event(
            crate::model::PolicyReason::CancelForeignSource,
            origin,
            "CANCEL from another address than its INVITE",
            self.clock.at(now),
        );
        let b =
            ResponseBuilder::with_reason(request, 403, "Forbidden (not from the INVITE's address)");
        let bytes = self.finish(b, source, None);
        if let Err(e) = self.transactions.respond_once(tx, bytes, now) {
            tracing::debug!(error = %e, "CANCEL refusal not sent");
        }
    }

    /// Carries out what the call layer asked for.
    pub(super) fn run_call_outputs(
        &mut self,
        outputs: Vec<CallOutput>,
        now: Instant,
        out: &mut Vec<Outbound>,
    ) {
        let wall = self.clock.at(now);
        for o in outputs {
            match o {
                CallOutput::Respond(r) => {
                    let (Some(request), Some(peer)) = (
                        self.transactions.server_request(r.tx).cloned(),
                        self.transactions.server_peer(r.tx),
                    ) else {
                        continue;
                    };
                    let mut b = match &r.reason {
                        Some(reason) => ResponseBuilder::with_reason(&request, r.status, reason),
                        None => ResponseBuilder::new(&request, r.status),
                    };
                    for (name, value) in &r.headers {
                        b = b.header(*name, value);
                    }
                    if let Some((ct, body)) = r.body {
                        if keys_in_clear(&body, peer) {
                            // Never reached by the call layer's own rules; kept as the last gate.
                            b = ResponseBuilder::with_reason(
                                &request,
                                500,
                                "Server Internal Error",
                            );
                        } else {
                            b = b.body(ct, body);
                        }
                    }
                    let bytes = self.finish(b, peer, r.to_tag.as_deref());
                    if (200..300).contains(&r.status) && request.method() == Some(Method::Invite) {
                        self.calls.answer_sent(r.tx, bytes.clone());
                    }
                    if let Err(e) = self.transactions.respond(r.tx, bytes, now) {
                        tracing::debug!(error = %e, status = r.status, "call response not sent");
                    }
                }
                CallOutput::Retransmit { tx, response } => {
                    // Fails harmlessly once the transaction has ended.
                    let _ = self.transactions.respond(tx, response, now);
                }
                CallOutput::SendRequest { leg, request, peer } => {
                    let sent = if keys_in_clear(request.body(), peer) {
                        Err("SDES keys toward a plain transport".to_string())
                    } else {
                        self.transactions
                            .send_request(request, peer, now)
                            .map_err(|e| e.to_string())
                    };
                    match sent {
                        Ok(client) => {
                            self.client_legs.insert(client, leg);
                            self.leg_clients.insert(leg, client);
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "call request not sent");
                            self.calls.leg_failed(leg, self.media.as_mut(), now, wall);
                        }
                    }
                }
                CallOutput::SendRaw { bytes, peer } => {
                    if keys_in_clear(&bytes, peer) {
                        continue;
                    }
                    out.push(to_outbound(peer, bytes));
                }
                CallOutput::Cancel { leg } => {
                    if let Some(client) = self.leg_clients.get(&leg).copied()
                        && let Err(e) = self.transactions.cancel(client, now)
                    {
                        tracing::debug!(error = %e, "CANCEL not sent");
                    }
                }
                CallOutput::AllocateMedia { call } => {
                    if self.media.has_relay() {
                        self.events.push_back(Event::AllocateMedia { call });
                    } else {
                        self.calls.media_ready(
                            call,
                            Err(crate::calls::MediaError::Exhausted),
                            self.media.as_mut(),
                            now,
                            wall,
                        );
                    }
                }
                CallOutput::StartApp(start) => {
                    self.queue_started(&start, now);
                    self.start_app(start, now)
                }
                CallOutput::AppDigit { call, digit } => {
                    if self.apps_enabled {
                        self.events.push_back(Event::AppDigit { call, digit });
                    }
                }
                CallOutput::AppHandoverFailed { call } => {
                    if self.apps_enabled {
                        self.events.push_back(Event::AppRefused { call });
                    }
                }
                CallOutput::StopApp { call } => {
                    self.queue_stopped(call, now);
                    if self.apps_enabled {
                        self.events.push_back(Event::StopApp { call });
                    }
                }
                CallOutput::Forward {
                    call,
                    from,
                    target,
                    reason,
                    source,
                } => {
                    let resolved = self.resolve_forward(&from, &target, reason, source, now);
                    self.calls
                        .forward_to(call, resolved, self.media.as_mut(), now, wall);
                }
                CallOutput::ParkTimeout { call, parker } => self.park_timed_out(call, &parker, now),
                CallOutput::QueueOffered { call, agent } => self.queue_offered(call, agent, now),
                CallOutput::Refused {
                    code,
                    detail,
                    source,
                } => {
                    let origin = Origin {
                        transport: source.transport,
                        source: source.addr,
                        local: unspecified(source.addr),
                    };
                    self.core.policy_event(
                        crate::model::PolicyReason::Rule(code),
                        origin,
                        &detail,
                        wall,
                    );
                }
                CallOutput::Record(r) => {
                    tracing::info!(caller = %r.caller, callee = %r.callee, disposition = r.disposition.as_str(),
                        reason = %r.reason, duration = r.duration_secs(), "call ended");
                    self.records.push(r);
                }
            }
        }
    }
}

/// The same transport and source address (IPv4-mapped IPv6 compared as IPv4).
pub(super) fn same_flow(a: &Peer, b: &Peer) -> bool {
    a.transport == b.transport
        && a.addr.ip().to_canonical() == b.addr.ip().to_canonical()
        && a.addr.port() == b.addr.port()
}

/// SDES keys in a body about to go over a transport that is not TLS (or secure WebSocket): never sent (RFC 4568
/// §8.3). The call layer only puts keys on TLS legs; this is the gate every message passes, whatever built it.
fn keys_in_clear(body: &[u8], peer: Peer) -> bool {
    let leak = !peer.transport.is_secure() && media::sdes::body_has_keys(body);
    if leak {
        tracing::error!(to = %peer.addr, "SDES keys toward a plain transport: not sent");
    }
    leak
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::auth::Credentials;
    use crate::calls::Forwarding;
    use crate::core::ExtensionAuth;
    use crate::policy::{NumberPlan, OutboundRule, PolicySettings};
    use crate::restrictions::Restrictions;
    use sip::transaction::Transport as TxTransport;

    use super::*;

    fn ext(number: &str, internal_only: bool, forward: Forwarding) -> ExtensionAuth {
        let auth_id = format!("auth{number}x");
        let mut e = ExtensionAuth::new(
            number,
            &auth_id,
            Credentials::from_password(&auth_id, "pbx.test", "Pw-12345678"),
        );
        e.restrictions.internal_only = internal_only;
        e.forward = forward;
        e
    }

    /// Home country 49 only; rules `intl` (00) and `out` (0, strip 1) to trunk `carrier`, which is not configured.
    fn service() -> Endpoint {
        let mut svc = Endpoint::for_tests();
        let mut settings = PolicySettings::new(NumberPlan {
            country_code: "49".into(),
            international_prefix: "00".into(),
            national_prefix: "0".into(),
        });
        for (name, prefix, strip) in [("intl", "00", 0), ("out", "0", 1)] {
            settings.rules.push(OutboundRule {
                name: name.into(),
                prefix: prefix.into(),
                min_len: 1,
                max_len: 32,
                extensions: Vec::new(),
                strip,
                prepend: String::new(),
                trunks: vec!["carrier".into()],
            });
        }
        let core = svc.core_mut();
        core.set_restrictions(Restrictions::new(
            settings,
            None,
            Vec::new(),
            Duration::from_secs(3600),
        ));
        let always_102 = Forwarding {
            always: Some("102".into()),
            ..Forwarding::default()
        };
        core.set_extensions(vec![
            ext("101", true, always_102.clone()),
            ext("102", false, Forwarding::default()),
            ext("103", false, Forwarding::default()),
        ]);
        svc
    }

    fn peer() -> Peer {
        Peer::new("127.0.0.9:5099".parse().unwrap(), TxTransport::Udp)
    }

    fn refusal(r: &Resolved) -> Option<(u16, &str)> {
        match r {
            Resolved::Refused { status, code, .. } => Some((*status, code.as_str())),
            _ => None,
        }
    }

    #[test]
    fn forward_targets_are_routed_as_the_forwarding_extension() {
        let mut svc = service();
        let now = Instant::now();
        // An internal target: the extension, with its own forwards, and its (here: no) registrations.
        match svc.resolve_forward("101", "102", ForwardReason::Busy, peer(), now) {
            Resolved::Extension { party, contacts } => {
                assert_eq!(party.number, "102");
                assert!(party.extension);
                assert!(contacts.is_empty());
            }
            other => panic!("expected the extension, got {other:?}"),
        }
        // 101 is internal-only: it cannot forward out, and the refusal is its own policy event.
        let r = svc.resolve_forward("101", "0301234567", ForwardReason::Always, peer(), now);
        assert_eq!(refusal(&r), Some((403, "internal_only")));
        let events = svc.core_mut().take_events();
        let ev = events.last().expect("a policy event");
        assert_eq!(
            (ev.kind.as_str(), ev.reason.as_str()),
            ("policy_refusal", "internal_only")
        );
        assert_eq!(ev.user.as_deref(), Some("auth101x"));
        assert!(
            ev.detail
                .as_deref()
                .is_some_and(|d| d.starts_with("forward always from 101: 0301234567")),
            "{ev:?}"
        );
        // 103 may call out, but not to a country that is not allowed; a transfer is refused the same way.
        let r = svc.resolve_forward(
            "103",
            "00441234567890",
            ForwardReason::Transfer,
            peer(),
            now,
        );
        assert_eq!(refusal(&r), Some((403, "country_not_allowed")));
        let ev = svc.core_mut().take_events().pop().expect("a policy event");
        assert!(ev.detail.is_some_and(|d| d.starts_with("transfer by 103")));
        // An allowed national number, but the rule's trunk does not exist.
        let r = svc.resolve_forward("103", "0301234567", ForwardReason::NoAnswer, peer(), now);
        assert_eq!(refusal(&r), Some((503, "no_trunk")));
        // Endpoint numbers and unknown extensions are never targets.
        let r = svc.resolve_forward("103", "999", ForwardReason::Transfer, peer(), now);
        assert_eq!(refusal(&r), Some((403, "not_forwardable")));
        let r = svc.resolve_forward("555", "102", ForwardReason::Transfer, peer(), now);
        assert_eq!(refusal(&r), Some((403, "disabled")));
    }

    #[test]
    fn sdes_keys_only_leave_over_tls() {
        let body =
            b"v=0\r\nm=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:k\r\n";
        let to = |t| Peer::new("192.0.2.7:5061".parse().unwrap(), t);
        for t in [TxTransport::Udp, TxTransport::Tcp, TxTransport::Ws] {
            assert!(keys_in_clear(body, to(t)), "{t:?}");
        }
        for t in [TxTransport::Tls, TxTransport::Wss] {
            assert!(!keys_in_clear(body, to(t)), "{t:?}");
        }
        assert!(!keys_in_clear(
            b"v=0\r\nm=audio 4000 RTP/AVP 0\r\n",
            to(TxTransport::Udp)
        ));
    }

    #[test]
    fn a_flow_is_its_transport_and_address() {
        let p = |a: &str, t| Peer::new(a.parse().unwrap(), t);
        assert!(same_flow(
            &p("192.0.2.7:5060", TxTransport::Udp),
            &p("[::ffff:192.0.2.7]:5060", TxTransport::Udp)
        ));
        assert!(!same_flow(
            &p("192.0.2.7:5060", TxTransport::Udp),
            &p("192.0.2.7:5061", TxTransport::Udp)
        ));
        assert!(!same_flow(
            &p("192.0.2.7:5060", TxTransport::Udp),
            &p("192.0.2.7:5060", TxTransport::Tcp)
        ));
    }
}
