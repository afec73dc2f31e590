//! Calls between extensions: a back-to-back user agent (B2BUA).
//!
//! Each call has two independent dialogs. Leg A is the caller's INVITE, answered by Palisade as a UAS; leg B is
//! Palisade's own INVITE (its own Call-ID, tags and SDP) to every registered contact of the callee in parallel.
//! The first 2xx wins and the other branches are cancelled. Media always flows through Palisade's relay: each
//! leg's SDP points at the relay's port for that leg.
//!
//! Sans-IO: inputs are requests, responses and timeouts with `now`; outputs ([`CallOutput`]) are responses to
//! send in server transactions, new requests to send in client transactions, ACKs for 2xx (sent outside any
//! transaction), CANCELs and call records. The relay is driven through the [`MediaControl`] trait, which the
//! binary implements over sockets and tests fake.

pub mod body;
mod dialog;
mod forward;
mod media;
mod origin;
mod sdp;
mod setup;
#[cfg(test)]
mod tests;
mod transfer;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use sip::transaction::{Peer, ServerTxId};
use sip::{HeaderName, Message, Method};

pub use dialog::Dialog;
pub use forward::{
    ForwardReason, Forwarding, MAX_HOPS as MAX_FORWARD_HOPS, Resolved,
    validate_target as validate_forward_target,
};
pub use media::{Leg, MediaControl, MediaError, MediaId, NoMedia};
pub use origin::{DialogLeg, SourceCheck, check_source};
pub use sdp::AppCodec;

use ::media::sdes::CryptoAttribute;
use ::media::srtp::Suite;

use crate::model::SrtpMode;

const T1: Duration = Duration::from_millis(500);
const T2: Duration = Duration::from_secs(4);

/// Timing limits of calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallConfig {
    /// Ringing with no answer for this long ends the attempt with 480.
    pub no_answer: Duration,
    /// A call is ended after this long, whatever happens.
    pub max_duration: Duration,
    /// A call whose relay has seen no media for this long is ended (the phone vanished).
    pub media_timeout: Duration,
    /// Smallest session interval accepted from a phone (RFC 4028 Min-SE).
    pub min_session_expires: u32,
    /// An extension with voicemail rings this long before the call goes to its mailbox.
    pub voicemail_ring: Duration,
}

impl Default for CallConfig {
    fn default() -> Self {
        CallConfig {
            no_answer: Duration::from_secs(60),
            max_duration: Duration::from_secs(4 * 3600),
            media_timeout: Duration::from_secs(60),
            min_session_expires: 90,
            voicemail_ring: Duration::from_secs(20),
        }
    }
}

/// Palisade's own addresses, for Via and Contact of what it sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalAddrs {
    /// The address to put in Via and Contact per transport token (`UDP`, `TCP`, `TLS`).
    pub by_transport: Vec<(&'static str, SocketAddr)>,
    /// The SIP domain, for From and To of the callee leg.
    pub domain: String,
}

impl LocalAddrs {
    pub fn for_transport(&self, transport: &str) -> Option<SocketAddr> {
        self.by_transport
            .iter()
            .find(|(t, _)| t.eq_ignore_ascii_case(transport))
            .map(|(_, a)| *a)
    }
}

/// Identifies an outgoing request of a call, so its responses come back to the right place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LegKey {
    pub call: u64,
    pub request: u64,
}

/// How a call ended, for the call record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    Answered,
    Busy,
    NoAnswer,
    Cancelled,
    Failed,
    NotFound,
    Unavailable,
}

impl Disposition {
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Answered => "answered",
            Disposition::Busy => "busy",
            Disposition::NoAnswer => "no_answer",
            Disposition::Cancelled => "cancelled",
            Disposition::Failed => "failed",
            Disposition::NotFound => "not_found",
            Disposition::Unavailable => "unavailable",
        }
    }
}

/// Which side ended a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HungUpBy {
    Caller,
    Callee,
    System,
}

impl HungUpBy {
    pub fn as_str(self) -> &'static str {
        match self {
            HungUpBy::Caller => "caller",
            HungUpBy::Callee => "callee",
            HungUpBy::System => "system",
        }
    }
}

/// A finished call, to store durably.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    pub call_id: String,
    pub caller: String,
    pub callee: String,
    pub started_at: SystemTime,
    pub answered_at: Option<SystemTime>,
    pub ended_at: SystemTime,
    pub disposition: Disposition,
    pub hung_up_by: HungUpBy,
    /// Why it ended, e.g. "bye", "media_timeout", "max_duration", "486".
    pub reason: String,
}

impl CallRecord {
    /// Talk time in whole seconds (0 if never answered).
    pub fn duration_secs(&self) -> u64 {
        self.answered_at
            .and_then(|a| self.ended_at.duration_since(a).ok())
            .map_or(0, |d| d.as_secs())
    }
}

/// A call in progress, for `palisade calls`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveCall {
    pub call_id: String,
    pub caller: String,
    pub callee: String,
    pub started_at: SystemTime,
    pub answered_at: Option<SystemTime>,
    pub state: &'static str,
}

/// What the caller of [`Calls`] must do.
#[derive(Debug, Clone)]
pub enum CallOutput {
    /// Open relay ports (both legs) for new call `call`; answer with [`Calls::media_ready`].
    AllocateMedia { call: u64 },
    /// Send a response in server transaction `tx`, built from the request that opened it.
    Respond(Response),
    /// Send a new request in a client transaction; report its responses with `leg`.
    SendRequest {
        leg: LegKey,
        request: Bytes,
        peer: Peer,
    },
    /// Send bytes outside any transaction (the ACK for a 2xx).
    SendRaw { bytes: Bytes, peer: Peer },
    /// Cancel the pending INVITE sent for `leg`.
    Cancel { leg: LegKey },
    /// Send again the 2xx last sent in server transaction `tx` (no ACK yet, RFC 3261 §13.3.1.4).
    Retransmit { tx: ServerTxId },
    /// A call ended: store its record.
    Record(CallRecord),
    /// Start a media application for `call` (voicemail); answer with [`Calls::app_ready`] or
    /// [`Calls::app_failed`].
    StartApp(AppStart),
    /// A key the caller pressed, sent by SIP INFO, for the application of `call`.
    AppDigit { call: u64, digit: char },
    /// The call of a media application ended: stop it (keeping a message being recorded).
    StopApp { call: u64 },
    /// Route `target` as if extension `from` dialled it (call forwarding, or a transfer by REFER), with the call
    /// policy of direct dialling; answer with [`Calls::forward_to`]. `source` is the signalling source of the
    /// request that led here (the caller's INVITE, the transferor's REFER), for the policy event.
    Forward {
        call: u64,
        from: String,
        target: String,
        reason: ForwardReason,
        source: Peer,
    },
}

/// A media application Palisade itself answers a call with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppKind {
    /// A caller leaves a message in `mailbox`.
    Deposit { mailbox: String },
    /// The caller listens to its own mailbox.
    Access { mailbox: String },
    /// The caller lifts its PIN protection (`pin` dialled as one number, or asked for).
    Unlock { pin: Option<String> },
}

/// What the edge needs to run a media application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppStart {
    pub call: u64,
    pub kind: AppKind,
    /// The calling number and name, as for the call record.
    pub caller: String,
    pub caller_name: Option<String>,
    /// The caller's signalling source (wrong PINs count against it) and its transport token (`UDP`, `TLS`, …).
    pub source: SocketAddr,
    pub transport: &'static str,
    pub codec: AppCodec,
    /// The relay port the application exchanges audio with (the callee side of the call's relay).
    pub relay_port: u16,
}

/// A response to send in a server transaction.
#[derive(Debug, Clone)]
pub struct Response {
    pub tx: ServerTxId,
    pub status: u16,
    pub reason: Option<String>,
    /// Palisade's tag toward that side (the same for every response of the dialog).
    pub to_tag: Option<String>,
    pub headers: Vec<(HeaderName, String)>,
    /// Content type and body.
    pub body: Option<(String, Bytes)>,
}

/// A party of a call (an extension, or the other end of a trunk) as the call layer needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Party {
    pub number: String,
    pub display_name: Option<String>,
    /// The extension's SRTP policy for its leg.
    pub srtp: SrtpMode,
    /// Unanswered, busy and unregistered calls to this party go to its mailbox.
    pub voicemail: bool,
    /// The extension's call forwards (they take precedence over its mailbox).
    pub forward: Forwarding,
    /// An extension of this PBX (not a trunk's caller nor an external number): only extensions may transfer.
    pub extension: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// INVITEs sent to the callee's contacts; no final answer yet.
    Ringing,
    /// A 2xx was sent to the caller; waiting for its ACK.
    Answered,
    Confirmed,
    /// Going to a media application (voicemail); waiting for the edge to start it.
    Diverting,
    /// Being forwarded: waiting for the service to route the forward target ([`Calls::forward_to`]).
    Forwarding,
}

/// One outgoing INVITE branch to a contact of the callee.
#[derive(Debug, Clone)]
struct Branch {
    request_id: u64,
    peer: Peer,
    dialog: Dialog,
    /// The INVITE as sent (for the ACK of a 2xx and for CANCEL bookkeeping).
    invite_cseq: u32,
    final_status: Option<u16>,
    cancelled: bool,
    /// The keys Palisade offered this branch (RTP/SAVP), one per suite; empty for plain RTP.
    offered_keys: Vec<CryptoAttribute>,
    /// The SRTP policy of this leg (the callee extension's, or the trunk's).
    srtp: SrtpMode,
    /// Digest credentials for a trunk's challenge (answered once, and only on this branch's own request).
    credentials: Option<(String, String)>,
    auth_tried: bool,
    /// The INVITE's body, Via address, transport and Max-Forwards, to send it again with credentials.
    body: Bytes,
    via_addr: SocketAddr,
    transport: String,
    max_forwards: u8,
    /// A trunk branch that has not answered at all by this time is given up (and the next trunk tried), long
    /// before timer B's 32 s.
    silent_deadline: Option<Instant>,
}

/// How long a trunk may stay completely silent (no provisional response) before the next one is tried.
const TRUNK_SILENCE: Duration = Duration::from_secs(4);

/// Where a callee-leg INVITE goes: a registered contact of an extension, or a trunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub request_uri: String,
    /// The To header (name-addr).
    pub to_uri: String,
    /// The From user (the caller's extension, or the trunk's caller ID).
    pub from_user: String,
    /// The address to send to.
    pub source: SocketAddr,
    /// `UDP`, `TCP`, `TLS`.
    pub transport: String,
    /// Credentials for the target's digest challenges (trunks).
    pub credentials: Option<(String, String)>,
    /// A trunk (given up after a few seconds of silence, then the next one is tried).
    pub is_trunk: bool,
    /// A trunk's SRTP policy for this leg; `None`: the callee's (an extension's contact).
    pub srtp: Option<SrtpMode>,
}

/// A request Palisade relayed from one leg to the other inside the dialog (re-INVITE, UPDATE, INFO, …): the
/// response from the other side goes back in `tx`.
#[derive(Debug, Clone)]
struct Relayed {
    tx: ServerTxId,
    /// The side the request came from.
    from: Leg,
    method: Method,
}

struct Call {
    call_id_a: String,
    caller: Party,
    callee: Party,
    state: State,
    invite_tx: ServerTxId,
    /// Dialog with the caller (Palisade is the UAS; `local_tag` is the To tag of every response).
    a: Dialog,
    a_peer: Peer,
    /// The caller's offer.
    offer: Bytes,
    /// The winning branch once a 2xx arrived.
    b: Option<Branch>,
    branches: Vec<Branch>,
    media: MediaId,
    started_at: SystemTime,
    answered_at: Option<SystemTime>,
    ringing_deadline: Instant,
    ends_at: Instant,
    /// Session-timer deadline on the caller's leg (RFC 4028), when the caller asked for one.
    session_deadline: Option<(Instant, Duration)>,
    /// Retransmission of the 2xx to the caller until its ACK arrives (RFC 3261 §13.3.1.4): next time, interval,
    /// and when to give up.
    retransmit_2xx: Option<(Instant, Duration, Instant)>,
    relayed: BTreeMap<u64, Relayed>,
    /// Failures collected from branches, for choosing the answer to the caller.
    failures: Vec<u16>,
    /// Per leg (A, B): whether its media is SRTP.
    secure: [bool; 2],
    /// The key the caller offered (what it encrypts with) and Palisade's key toward it, when leg A is SRTP.
    a_keys: Option<(CryptoAttribute, CryptoAttribute)>,
    /// Keys of a re-INVITE/UPDATE offer in flight, per leg: what the offering side sent, and what Palisade
    /// offered the other side.
    pending_rx: [Option<CryptoAttribute>; 2],
    pending_offer: [Vec<CryptoAttribute>; 2],
    /// Trunks still to try, in order, if the current one fails.
    failover: Vec<Target>,
    /// Media port and address for ringing a failover target.
    b_port: Option<u16>,
    advertise: std::net::IpAddr,
    max_forwards: u8,
    /// The media application answering this call instead of a phone.
    app: Option<AppKind>,
    /// The application's session description (its answer, in the callee's place).
    app_sdp: Option<Bytes>,
    /// The extensions the call was forwarded through, the original callee first (loop detection).
    chain: Vec<String>,
    /// Forwards followed so far.
    hops: usize,
    /// What the service is routing for this call (a forward or a transfer target).
    pending: Option<forward::Pending>,
    /// Branches of earlier targets (before a forward or a transfer): a late 2xx from one is hung up.
    retired: Vec<Branch>,
    /// A blind transfer in progress (the target ringing).
    transfer: Option<transfer::Transfer>,
    /// Per leg: the session description of the last completed offer/answer (the codecs that leg agreed on).
    answers: [Option<Bytes>; 2],
    /// Per leg: REFERs accepted in its dialog (the `id` of the refer event package, RFC 3515 §2.4.6).
    refers: [u32; 2],
    /// Per leg: that side left (a transferor that hung up while its transfer target rang).
    gone: [bool; 2],
    /// Dialogs of transferors handed over to a transfer target: a BYE crossing Palisade's gets 200.
    detached: Vec<(String, String, String)>,
    /// After a transfer, the parties of the call record: the transferee and the target.
    cdr_parties: Option<(String, String)>,
    /// Per leg: the session description Palisade last sent that leg (its origin is the one a new offer of
    /// Palisade's own continues).
    sent: [Option<Bytes>; 2],
    /// After a transfer: the transferee's leg still to be taken off hold, with the target's answer (sent once no
    /// other INVITE is in flight on that leg).
    resume_due: Option<(Leg, Bytes)>,
    /// Palisade's own re-INVITE taking a transferee off hold.
    resume: Option<transfer::Resume>,
}

/// Every call in progress.
pub struct Calls {
    config: CallConfig,
    local: LocalAddrs,
    calls: HashMap<u64, Call>,
    /// (Call-ID, local tag, remote tag) of either leg → call id and side.
    dialogs: HashMap<(String, String, String), (u64, Leg)>,
    /// Caller leg before the dialog is confirmed, by the INVITE's server transaction.
    by_invite: HashMap<ServerTxId, u64>,
    next_id: u64,
    outputs: Vec<CallOutput>,
    /// New calls waiting for their relay ports ([`CallOutput::AllocateMedia`]), by call id.
    awaiting_media: HashMap<u64, setup::AwaitingMedia>,
    /// Most calls at once; beyond it new INVITEs get 503.
    max_calls: usize,
    /// Dialogs of transferors after the handover (see [`Call::detached`]) → call id.
    detached: HashMap<(String, String, String), u64>,
}

impl Calls {
    pub fn new(config: CallConfig, local: LocalAddrs) -> Self {
        Calls {
            config,
            local,
            calls: HashMap::new(),
            dialogs: HashMap::new(),
            by_invite: HashMap::new(),
            next_id: 1,
            outputs: Vec::new(),
            awaiting_media: HashMap::new(),
            max_calls: 10_000,
            detached: HashMap::new(),
        }
    }

    pub fn set_local(&mut self, local: LocalAddrs) {
        self.local = local;
    }

    pub fn config(&self) -> &CallConfig {
        &self.config
    }

    /// A request in `dialog` toward `peer`, with Palisade's Via and Contact for the peer's transport (for other
    /// dialogs the service holds, e.g. message-waiting subscriptions). `None` without a listener on that transport.
    pub fn dialog_request(
        &self,
        dialog: &Dialog,
        method: &str,
        cseq: u32,
        peer: &Peer,
        extra: &[(HeaderName, String)],
        body: Option<(&str, Bytes)>,
    ) -> Option<Bytes> {
        let transport = transport_token(peer.transport);
        let via_addr = self.local.for_transport(transport)?;
        Some(dialog.request(
            method,
            cseq,
            &via(transport, via_addr),
            &contact_uri(via_addr, transport),
            70,
            extra,
            body,
        ))
    }

    /// Palisade's Contact header value toward `peer` (for responses that open a dialog).
    pub fn contact_for(&self, peer: &Peer) -> Option<String> {
        contact_header(&self.local, peer).map(|(_, v)| v)
    }

    /// The SIP domain.
    pub fn domain(&self) -> &str {
        &self.local.domain
    }

    /// What to do next, in order.
    pub fn take_outputs(&mut self) -> Vec<CallOutput> {
        std::mem::take(&mut self.outputs)
    }

    pub fn len(&self) -> usize {
        self.calls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// The calls in progress.
    pub fn active(&self) -> Vec<ActiveCall> {
        self.calls
            .values()
            .map(|c| ActiveCall {
                call_id: c.call_id_a.clone(),
                caller: c.record_parties().0,
                callee: c.record_parties().1,
                started_at: c.started_at,
                answered_at: c.answered_at,
                // A call answered by voicemail is shown as answered by its mailbox (the callee).
                state: match c.state {
                    State::Ringing | State::Diverting | State::Forwarding => "ringing",
                    State::Answered => "answering",
                    State::Confirmed => "talking",
                },
            })
            .collect()
    }

    /// Per call in progress: the extension that placed it (if one did) and every address its legs talk to
    /// (the caller, the answering or ringing branches), for the resource limits ([`crate::limits`]).
    pub fn usage(&self) -> Vec<(Option<&str>, Vec<std::net::IpAddr>)> {
        self.calls
            .values()
            .map(|c| {
                let caller = c.caller.extension.then_some(c.caller.number.as_str());
                let mut ips: Vec<_> = std::iter::once(c.a_peer.addr.ip())
                    .chain(c.b.iter().map(|b| b.peer.addr.ip()))
                    .chain(c.branches.iter().map(|b| b.peer.addr.ip()))
                    .collect();
                ips.sort_unstable();
                ips.dedup();
                (caller, ips)
            })
            .collect()
    }

    fn alloc_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn respond(&mut self, tx: ServerTxId, status: u16, to_tag: Option<&str>) {
        self.outputs.push(CallOutput::Respond(Response {
            tx,
            status,
            reason: None,
            to_tag: to_tag.map(str::to_string),
            headers: Vec::new(),
            body: None,
        }));
    }

    /// How long the callee's phones ring: shorter when the call has somewhere else to go (its mailbox, its
    /// no-answer forward).
    fn ring_time(&self, callee: &Party) -> Duration {
        if callee.voicemail || callee.forward.no_answer.is_some() {
            self.config.no_answer.min(self.config.voicemail_ring)
        } else {
            self.config.no_answer
        }
    }

    /// The callee did not take the call: `status` is 486/600/603 (busy, declined) or 408/480 (no answer,
    /// unreachable). The callee's forward for the case wins, then its mailbox. Returns false when it has neither:
    /// the caller must get the failure.
    fn divert_unanswered(
        &mut self,
        id: u64,
        status: u16,
        why: &str,
        media: &mut dyn MediaControl,
        wall: SystemTime,
    ) -> bool {
        let Some(call) = self.calls.get_mut(&id) else {
            return false;
        };
        if !matches!(status, 408 | 480 | 486 | 600 | 603) {
            return false;
        }
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

    fn refuse_488(&mut self, tx: ServerTxId, reason: &str) {
        self.outputs.push(CallOutput::Respond(Response {
            tx,
            status: 488,
            reason: Some(format!("Not Acceptable Here ({reason})")),
            to_tag: None,
            headers: vec![(HeaderName::Warning, format!("399 palisade \"{reason}\""))],
            body: None,
        }));
    }

    /// Rings the next trunk of a call whose current ones all failed.
    fn fail_over(&mut self, id: u64, now: Instant) {
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
    fn retry_with_credentials(&mut self, id: u64, bi: usize, msg: &Message, status: u16) -> bool {
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
    fn ring(
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
    fn new_branch(
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
        let via_addr = self.local.for_transport(&target.transport)?;
        let port = port?;
        let tls = matches!(
            target.transport.to_ascii_uppercase().as_str(),
            "TLS" | "WSS"
        );
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
        let peer = Peer::new(target.source, transport_of(&target.transport));
        let request = dialog.request(
            "INVITE",
            1,
            &via(target.transport.as_str(), via_addr),
            &contact_uri(via_addr, &target.transport),
            max_forwards,
            &[(HeaderName::Allow, crate::core::ALLOW_CALLS.to_string())],
            Some(("application/sdp", body.clone())),
        );
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
            transport: target.transport.clone(),
            max_forwards,
            silent_deadline: target.is_trunk.then_some(now + TRUNK_SILENCE),
        })
    }

    /// The session interval the caller asked for (RFC 4028), raised to our minimum.
    fn session_timer(&self, msg: &Message) -> Option<u32> {
        let v = msg.header(HeaderName::SessionExpires)?;
        let secs = v
            .split(|&b| b == b';')
            .next()
            .map(sip::text::trim)
            .and_then(sip::text::parse_u32)?;
        Some(secs.max(self.config.min_session_expires))
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
                        call.secure[1] = true;
                    }
                    if let Some(port) = media.local_port(call.media, Leg::A) {
                        let a_ours: Vec<CryptoAttribute> =
                            call.a_keys.iter().map(|(_, o)| o.clone()).collect();
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
                    if self.divert_unanswered(leg.call, answer, why, media, wall) {
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

    fn branch_answered(
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
        let transport = transport_token(branch.peer.transport);
        let via_addr = local.for_transport(transport);
        if let Some(via_addr) = via_addr {
            let ack = bodyless(
                &branch.dialog,
                "ACK",
                branch.invite_cseq,
                transport,
                via_addr,
            );
            self.outputs.push(CallOutput::SendRaw {
                bytes: ack,
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
            if let Some(via_addr) = via_addr {
                let bye = bodyless(
                    &branch.dialog,
                    "BYE",
                    branch.invite_cseq + 1,
                    transport,
                    via_addr,
                );
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
                call.secure[1] = true;
            }
            None => {
                media.set_crypto(call.media, Leg::B, None);
                call.secure[1] = false;
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
        let a_ours: Vec<CryptoAttribute> = call.a_keys.iter().map(|(_, o)| o.clone()).collect();
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
        let mut headers: Vec<(HeaderName, String)> =
            contact_header(&local, &call.a_peer).into_iter().collect();
        headers.push((HeaderName::Allow, crate::core::ALLOW_CALLS.to_string()));
        if let Some((_, interval)) = call.session_deadline {
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
        call.retransmit_2xx = Some((now + T1, T1, now + T1 * 64));
    }

    /// ACKs a 2xx from a branch that is no longer wanted and hangs it up with BYE.
    fn hang_up_late(&mut self, id: u64, mut branch: Branch, msg: &Message) {
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
        let transport = transport_token(branch.peer.transport);
        let Some(via_addr) = self.local.for_transport(transport) else {
            return;
        };
        let ack = bodyless(
            &branch.dialog,
            "ACK",
            branch.invite_cseq,
            transport,
            via_addr,
        );
        self.outputs.push(CallOutput::SendRaw {
            bytes: ack,
            peer: branch.peer,
        });
        let bye = bodyless(
            &branch.dialog,
            "BYE",
            branch.invite_cseq + 1,
            transport,
            via_addr,
        );
        self.outputs.push(CallOutput::SendRequest {
            leg: LegKey {
                call: id,
                request: u64::MAX,
            },
            request: bye,
            peer: branch.peer,
        });
    }

    /// The final response to a request Palisade relayed across the call goes back to where it came from.
    fn relay_response(
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
                answered_keys(&call.pending_offer[idx(other)], &answered.crypto)
            {
                media.set_crypto(call.media, other, leg_crypto(&theirs, &ours));
            }
            let mut ours_for_offerer = Vec::new();
            if let Some(theirs) = call.pending_rx[idx(to)].take() {
                let ours = theirs.answer();
                media.set_crypto(call.media, to, leg_crypto(&theirs, &ours));
                ours_for_offerer.push(ours);
            }
            call.pending_offer[idx(other)].clear();
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
            let transport = transport_token(peer.transport);
            if let Some(via_addr) = local.for_transport(transport) {
                let dialog = call.dialog(other);
                let ack = bodyless(dialog, "ACK", seq, transport, via_addr);
                self.outputs.push(CallOutput::SendRaw { bytes: ack, peer });
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
        if call.app.is_some() && side == Leg::A && method != Method::Bye {
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
                        && let Some((deadline, interval)) = call.session_deadline.as_mut()
                    {
                        *deadline = now + *interval;
                    }
                }
                if method == Method::Refer {
                    // A blind transfer, routed by the call policy as the transferring extension.
                    self.refer(id, side, tx, msg);
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
    fn relay_request(
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
        if call.gone[idx(to)] {
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
            call.pending_rx[idx(from)] = if call.secure[idx(from)] {
                ::media::sdes::choose(secure.crypto.iter().map(String::as_str))
            } else {
                None
            };
            call.pending_offer[idx(to)] = if call.secure[idx(to)] {
                offer_keys()
            } else {
                Vec::new()
            };
            if let Some(port) = media.local_port(call.media, to) {
                body = sdp::rewrite_with_crypto(
                    msg.body(),
                    media.advertise_ip(),
                    port,
                    &call.pending_offer[idx(to)],
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
        let transport = transport_token(peer.transport);
        let Some(via_addr) = local.for_transport(transport) else {
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
        let request = dialog.request(
            &method_text,
            seq,
            &via(transport, via_addr),
            &contact_uri(via_addr, transport),
            70,
            &extra,
            body.as_ref().map(|(ct, b)| (ct.as_str(), b.clone())),
        );
        let request_id = self.next_id + 1;
        self.next_id = request_id;
        let call = self.calls.get_mut(&id).expect("present");
        call.relayed
            .insert(request_id, Relayed { tx, from, method });
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
            call.retransmit_2xx = None;
        }
    }

    /// The caller cancelled its INVITE (transaction `invite`): 487 to it, CANCEL to every branch.
    /// Returns false if no ringing call belongs to that transaction.
    pub fn cancel(
        &mut self,
        invite: ServerTxId,
        media: &mut dyn MediaControl,
        wall: SystemTime,
    ) -> bool {
        if self.cancel_awaiting_media(invite, wall) {
            return true;
        }
        let Some(&id) = self.by_invite.get(&invite) else {
            return false;
        };
        let Some(call) = self.calls.get_mut(&id) else {
            return false;
        };
        if !matches!(
            call.state,
            State::Ringing | State::Diverting | State::Forwarding
        ) {
            return false;
        }
        let tag = call.a.local_tag.clone();
        for b in call
            .branches
            .iter_mut()
            .filter(|b| b.final_status.is_none())
        {
            b.cancelled = true;
            self.outputs.push(CallOutput::Cancel {
                leg: LegKey {
                    call: id,
                    request: b.request_id,
                },
            });
        }
        self.respond(invite, 487, Some(&tag));
        self.finish(
            id,
            Disposition::Cancelled,
            HungUpBy::Caller,
            "cancel",
            media,
            wall,
        );
        true
    }

    /// A client transaction of `leg` timed out or could not be sent.
    pub fn leg_failed(
        &mut self,
        leg: LegKey,
        media: &mut dyn MediaControl,
        now: Instant,
        wall: SystemTime,
    ) {
        let Some(call) = self.calls.get_mut(&leg.call) else {
            return;
        };
        if let Some(relayed) = call.relayed.remove(&leg.request) {
            let tag = call.dialog(relayed.from).local_tag.clone();
            self.respond(relayed.tx, 408, Some(&tag));
            self.resume(leg.call, media);
            return;
        }
        if call
            .resume
            .as_ref()
            .is_some_and(|r| r.request == leg.request)
        {
            self.resume_failed(leg.call, 408);
            return;
        }
        if call.transfer.as_ref().is_some_and(|t| {
            t.branches
                .iter()
                .any(|b| b.request_id == leg.request && b.final_status.is_none())
        }) {
            self.transfer_branch_final(leg.call, leg.request, 408, media, now, wall);
            return;
        }
        if let Some(b) = call
            .branches
            .iter_mut()
            .find(|b| b.request_id == leg.request && b.final_status.is_none())
        {
            b.final_status = Some(408);
            call.failures.push(408);
            let all_done = call.branches.iter().all(|b| b.final_status.is_some());
            if all_done && call.state == State::Ringing && !call.failover.is_empty() {
                self.fail_over(leg.call, now);
                return;
            }
            if all_done
                && call.state == State::Ringing
                && self.divert_unanswered(leg.call, 480, "timeout", media, wall)
            {
                return;
            }
            let Some(call) = self.calls.get_mut(&leg.call) else {
                return;
            };
            if all_done && call.state == State::Ringing {
                let (tx, tag) = (call.invite_tx, call.a.local_tag.clone());
                self.respond(tx, 480, Some(&tag));
                self.finish(
                    leg.call,
                    Disposition::Unavailable,
                    HungUpBy::System,
                    "timeout",
                    media,
                    wall,
                );
            }
        }
        let _ = now;
    }

    /// Runs the call timers: no answer, 2xx retransmission, session timer, maximum length, media timeout.
    pub fn handle_timeout(&mut self, media: &mut dyn MediaControl, now: Instant, wall: SystemTime) {
        let ids: Vec<u64> = self.calls.keys().copied().collect();
        for id in ids {
            if self.calls.get(&id).is_some_and(|c| c.transfer.is_some()) {
                self.transfer_timeout(id, media, now, wall);
            }
            let Some(call) = self.calls.get_mut(&id) else {
                continue;
            };
            let silent: Vec<u64> = call
                .branches
                .iter()
                .filter(|b| b.final_status.is_none() && b.silent_deadline.is_some_and(|d| now >= d))
                .map(|b| b.request_id)
                .collect();
            if call.state == State::Ringing && !silent.is_empty() {
                for request in silent {
                    // Stop retransmitting to a provider that does not answer; then the next trunk.
                    self.outputs.push(CallOutput::Cancel {
                        leg: LegKey { call: id, request },
                    });
                    self.leg_failed(LegKey { call: id, request }, media, now, wall);
                }
                continue;
            }
            let Some(call) = self.calls.get_mut(&id) else {
                continue;
            };
            if call.state == State::Ringing && now >= call.ringing_deadline {
                let tag = call.a.local_tag.clone();
                for b in call
                    .branches
                    .iter_mut()
                    .filter(|b| b.final_status.is_none())
                {
                    b.cancelled = true;
                    self.outputs.push(CallOutput::Cancel {
                        leg: LegKey {
                            call: id,
                            request: b.request_id,
                        },
                    });
                }
                if self.divert_unanswered(id, 480, "no_answer", media, wall) {
                    continue;
                }
                let Some(call) = self.calls.get_mut(&id) else {
                    continue;
                };
                let tx = call.invite_tx;
                self.respond(tx, 480, Some(&tag));
                self.finish(
                    id,
                    Disposition::NoAnswer,
                    HungUpBy::System,
                    "no_answer",
                    media,
                    wall,
                );
                continue;
            }
            if let Some((at, interval, give_up)) = call.retransmit_2xx.as_mut()
                && now >= *at
            {
                if now >= *give_up {
                    // No ACK after 64·T1: the caller is gone. End the call on both sides.
                    self.send_bye(id, Leg::B, media);
                    self.send_bye(id, Leg::A, media);
                    self.finish(
                        id,
                        Disposition::Failed,
                        HungUpBy::System,
                        "no_ack",
                        media,
                        wall,
                    );
                    continue;
                }
                *interval = (*interval * 2).min(T2);
                *at = now + *interval;
                let tx = call.invite_tx;
                self.outputs.push(CallOutput::Retransmit { tx });
            }
            let call = self.calls.get_mut(&id).expect("present");
            let session_expired = call.session_deadline.is_some_and(|(d, _)| now >= d);
            let idle = media
                .idle_for(call.media, now)
                .is_some_and(|i| i >= self.config.media_timeout);
            let reason = if now >= call.ends_at {
                Some("max_duration")
            } else if session_expired {
                Some("session_timer")
            } else if call.state == State::Confirmed && idle {
                Some("media_timeout")
            } else {
                None
            };
            if let Some(reason) = reason {
                self.send_bye(id, Leg::A, media);
                self.send_bye(id, Leg::B, media);
                self.finish(
                    id,
                    Disposition::Answered,
                    HungUpBy::System,
                    reason,
                    media,
                    wall,
                );
            }
        }
    }

    /// When [`Self::handle_timeout`] should next run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.calls
            .values()
            .flat_map(|c| {
                let ringing = (c.state == State::Ringing).then_some(c.ringing_deadline);
                let retransmit = c.retransmit_2xx.as_ref().map(|(at, _, _)| *at);
                let silent = c
                    .branches
                    .iter()
                    .filter(|b| b.final_status.is_none())
                    .filter_map(|b| b.silent_deadline)
                    .min();
                let session = c.session_deadline.map(|(d, _)| d);
                let transfer = c
                    .transfer
                    .as_ref()
                    .and_then(transfer::Transfer::next_deadline);
                [
                    ringing,
                    retransmit,
                    session,
                    silent,
                    transfer,
                    Some(c.ends_at),
                ]
                .into_iter()
                .flatten()
            })
            .min()
    }

    /// Hands a call that was not answered to a media application instead of failing it with `status`.
    fn divert(
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
        call.app = Some(kind.clone());
        let start = AppStart {
            call: id,
            kind,
            caller: call.caller.number.clone(),
            caller_name: call.caller.display_name.clone(),
            source: call.a_peer.addr,
            transport: transport_token(call.a_peer.transport),
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
        let Some(codec) = sdp::app_codec(&call.offer).filter(|_| call.state == State::Diverting)
        else {
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
        let a_ours: Vec<CryptoAttribute> = call.a_keys.iter().map(|(_, o)| o.clone()).collect();
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
        call.app_sdp = Some(description);
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
        call.retransmit_2xx = Some((now + T1, T1, now + T1 * 64));
    }

    /// The media application of `call` could not start: the caller gets 480.
    pub fn app_failed(&mut self, id: u64, media: &mut dyn MediaControl, wall: SystemTime) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let (tx, tag) = (call.invite_tx, call.a.local_tag.clone());
        call.app = None;
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
        call.app = None;
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
    fn app_request(
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
                if let Some((_, interval)) = call.session_deadline.as_mut() {
                    let interval = *interval;
                    call.session_deadline = Some((now + interval, interval));
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
                    if call.secure[0]
                        && let Some(theirs) = ::media::sdes::choose(
                            sdp::security(&offer).crypto.iter().map(String::as_str),
                        )
                    {
                        let mine = theirs.answer();
                        media.set_crypto(call.media, Leg::A, leg_crypto(&theirs, &mine));
                        ours.push(mine);
                    }
                    let answer = match (&call.app_sdp, media.local_port(call.media, Leg::A)) {
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

    /// Sends BYE on `side` of an established call (no-op if that side has no dialog yet).
    fn send_bye(&mut self, id: u64, side: Leg, _media: &mut dyn MediaControl) {
        let local = self.local.clone();
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if (side == Leg::B && call.b.is_none()) || call.gone[idx(side)] {
            return;
        }
        let peer = call.peer(side);
        let transport = transport_token(peer.transport);
        let Some(via_addr) = local.for_transport(transport) else {
            return;
        };
        let dialog = call.dialog_mut(side);
        if dialog.remote_tag.is_none() {
            return;
        }
        dialog.local_cseq += 1;
        let seq = dialog.local_cseq;
        let bye = bodyless(dialog, "BYE", seq, transport, via_addr);
        self.outputs.push(CallOutput::SendRequest {
            leg: LegKey {
                call: id,
                request: u64::MAX - 1,
            },
            request: bye,
            peer,
        });
    }

    /// Removes a call: releases its media, forgets its dialogs, emits its record.
    fn finish(
        &mut self,
        id: u64,
        disposition: Disposition,
        by: HungUpBy,
        reason: &str,
        media: &mut dyn MediaControl,
        wall: SystemTime,
    ) {
        let Some(call) = self.calls.remove(&id) else {
            return;
        };
        if call.app.is_some() {
            self.outputs.push(CallOutput::StopApp { call: id });
        }
        // A transfer target still ringing is cancelled.
        for b in call
            .transfer
            .iter()
            .flat_map(|t| t.branches.iter())
            .filter(|b| b.final_status.is_none())
        {
            self.outputs.push(CallOutput::Cancel {
                leg: LegKey {
                    call: id,
                    request: b.request_id,
                },
            });
        }
        media.release(call.media);
        self.by_invite.remove(&call.invite_tx);
        self.dialogs.remove(&call.a.key());
        if let Some(b) = &call.b {
            self.dialogs.remove(&b.dialog.key());
        }
        for key in &call.detached {
            self.detached.remove(key);
        }
        let disposition = if call.answered_at.is_some() {
            Disposition::Answered
        } else {
            disposition
        };
        let (caller, callee) = call.record_parties();
        self.outputs.push(CallOutput::Record(CallRecord {
            call_id: call.call_id_a,
            caller,
            callee,
            started_at: call.started_at,
            answered_at: call.answered_at,
            ended_at: wall,
            disposition,
            hung_up_by: by,
            reason: reason.to_string(),
        }));
    }

    /// Refuses a new INVITE before any ringing (call policy) and records the attempt.
    #[allow(clippy::too_many_arguments)] // the refusal and what its record needs
    pub fn refuse(
        &mut self,
        tx: ServerTxId,
        msg: &Message,
        caller: &Party,
        dialed: &str,
        status: u16,
        reason: &str,
        code: &str,
        wall: SystemTime,
    ) {
        // The reason code also travels in a Warning header (RFC 3261 §20.43), for phones that do not show the
        // reason phrase.
        let warning = format!("399 palisade \"{}\"", code.replace('"', ""));
        self.outputs.push(CallOutput::Respond(Response {
            tx,
            status,
            reason: Some(reason.to_string()),
            to_tag: None,
            headers: vec![(HeaderName::Warning, warning)],
            body: None,
        }));
        let disposition = if status == 404 {
            Disposition::NotFound
        } else {
            Disposition::Failed
        };
        self.record_unconnected(msg, caller, dialed, disposition, code, wall);
    }

    fn record_unconnected(
        &mut self,
        msg: &Message,
        caller: &Party,
        callee: &str,
        disposition: Disposition,
        reason: &str,
        wall: SystemTime,
    ) {
        let callee = if callee.is_empty() {
            msg.request_uri()
                .and_then(Result::ok)
                .and_then(|u| u.user)
                .unwrap_or("")
                .to_string()
        } else {
            callee.to_string()
        };
        self.outputs.push(CallOutput::Record(CallRecord {
            call_id: msg
                .call_id()
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .unwrap_or_default(),
            caller: caller.number.clone(),
            callee,
            started_at: wall,
            answered_at: None,
            ended_at: wall,
            disposition,
            hung_up_by: HungUpBy::System,
            reason: reason.to_string(),
        }));
    }

    /// The extension on the side an in-dialog request came from, if that side is one of this PBX's extensions
    /// (rules about where an extension may be used hold inside its dialogs too).
    pub fn dialog_extension(&self, msg: &Message) -> Option<&str> {
        let (id, side) = self.match_dialog(msg)?;
        let party = self.calls.get(&id)?.party(side);
        party.extension.then_some(party.number.as_str())
    }

    /// The leg an in-dialog request belongs to, for checking where it came from ([`check_source`]) before
    /// [`Calls::in_dialog`] acts on it. `None` for a dialog no call holds.
    pub fn dialog_leg(&self, msg: &Message) -> Option<DialogLeg> {
        let (id, side) = self.match_dialog(msg)?;
        let call = self.calls.get(&id)?;
        let party = call.party(side);
        Some(DialogLeg {
            call_id: call.dialog(side).call_id.clone(),
            peer: call.peer(side),
            extension: party.extension.then(|| party.number.clone()),
        })
    }

    fn match_dialog(&self, msg: &Message) -> Option<(u64, Leg)> {
        self.dialogs.get(&dialog_key(msg)?).copied()
    }
}

impl Call {
    /// The caller and callee of the call record (after a transfer: the transferee and the target).
    fn record_parties(&self) -> (String, String) {
        self.cdr_parties
            .clone()
            .unwrap_or_else(|| (self.caller.number.clone(), self.callee.number.clone()))
    }

    /// The party on `side`.
    fn party(&self, side: Leg) -> &Party {
        match side {
            Leg::A => &self.caller,
            Leg::B => &self.callee,
        }
    }

    fn dialog(&self, side: Leg) -> &Dialog {
        match side {
            Leg::A => &self.a,
            Leg::B => self.b.as_ref().map_or(&self.a, |b| &b.dialog),
        }
    }

    fn dialog_mut(&mut self, side: Leg) -> &mut Dialog {
        match (side, self.b.as_mut()) {
            (Leg::B, Some(b)) => &mut b.dialog,
            _ => &mut self.a,
        }
    }

    fn peer(&self, side: Leg) -> Peer {
        match side {
            Leg::A => self.a_peer,
            Leg::B => self.b.as_ref().map_or(self.a_peer, |b| b.peer),
        }
    }
}

/// (Call-ID, To tag, From tag) of a request from the other side of a dialog: its key as Palisade holds it.
fn dialog_key(msg: &Message) -> Option<(String, String, String)> {
    let call_id = String::from_utf8_lossy(msg.call_id()?).into_owned();
    let local = msg.to().ok()?.tag()?.to_string();
    let remote = msg.from().ok()?.tag().unwrap_or_default().to_string();
    Some((call_id, local, remote))
}

/// Who a new INVITE is from, and the SRTP policy of the leg it opens.
struct OutgoingFrom {
    display_name: Option<String>,
    srtp: SrtpMode,
}

/// The INVITE of `b` again, with credentials for the challenge in `msg` (a trunk's 401/407), as request
/// `request_id`. `None` when the branch has no credentials or already tried them (the provider refused them).
fn reauthenticate(
    b: &mut Branch,
    request_id: u64,
    msg: &Message,
    status: u16,
) -> Option<(Bytes, Peer)> {
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
    let request = b.dialog.request(
        "INVITE",
        b.invite_cseq,
        &via(&b.transport, b.via_addr),
        &contact_uri(b.via_addr, &b.transport),
        b.max_forwards,
        &[
            (HeaderName::Allow, crate::core::ALLOW_CALLS.to_string()),
            (answer_header, answer),
        ],
        Some(("application/sdp", b.body.clone())),
    );
    Some((request, b.peer))
}

/// The final answer to the caller when every branch failed (RFC 3261 §16.7, simplified): busy wins, then a
/// global failure, then the lowest 4xx/5xx; timeouts become 480.
fn best_failure(failures: &[u16]) -> u16 {
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

/// An address from the SDP, or — when the phone advertised a private or unspecified address that differs from
/// where its signalling comes from — the signalling source's IP with the SDP port (NAT).
/// Points `leg` of the relay at the media a session description names — or, for a phone whose SDP names another
/// address than the one it signals from (NAT, or an attempt to aim the relay elsewhere), at its signalling source
/// with the port latched from its first packet ([`::media::nat::remote_for`]). A description without a usable
/// audio address (hold with `c=0.0.0.0`) leaves the leg as it was.
fn point_leg(
    media: &mut dyn MediaControl,
    local: &LocalAddrs,
    id: MediaId,
    leg: Leg,
    body: &[u8],
    source: SocketAddr,
    party: &Party,
) {
    let Some((rtp, rtcp)) = sdp::endpoint(body) else {
        return;
    };
    let trust = if party.extension {
        ::media::Trust::Phone
    } else {
        ::media::Trust::Trunk
    };
    let own: Vec<std::net::IpAddr> = local
        .by_transport
        .iter()
        .map(|(_, a)| a.ip())
        .chain([media.advertise_ip()])
        .collect();
    let remote = |addr| ::media::nat::remote_for(addr, source.ip(), trust, &own);
    media.set_remote(id, leg, remote(rtp), remote(rtcp));
}

/// The transaction-layer transport for a Via/registration transport token (`UDP` when unknown).
pub fn transport_of(token: &str) -> sip::transaction::Transport {
    match token.to_ascii_uppercase().as_str() {
        "TCP" => sip::transaction::Transport::Tcp,
        "TLS" => sip::transaction::Transport::Tls,
        "WS" => sip::transaction::Transport::Ws,
        "WSS" => sip::transaction::Transport::Wss,
        _ => sip::transaction::Transport::Udp,
    }
}

fn transport_token(t: sip::transaction::Transport) -> &'static str {
    match t {
        sip::transaction::Transport::Udp => "UDP",
        sip::transaction::Transport::Tcp => "TCP",
        sip::transaction::Transport::Tls => "TLS",
        sip::transaction::Transport::Ws => "WS",
        sip::transaction::Transport::Wss => "WSS",
    }
}

/// A request without a body in `dialog` (ACK, BYE, …), with Palisade's Via and Contact for `transport` at
/// `via_addr`.
fn bodyless(
    dialog: &Dialog,
    method: &str,
    cseq: u32,
    transport: &str,
    via_addr: SocketAddr,
) -> Bytes {
    dialog.request(
        method,
        cseq,
        &via(transport, via_addr),
        &contact_uri(via_addr, transport),
        70,
        &[],
        None,
    )
}

fn via(transport: &str, addr: SocketAddr) -> String {
    format!(
        "SIP/2.0/{} {};branch=z9hG4bK{:016x};rport",
        transport.to_ascii_uppercase(),
        addr,
        rand::random::<u64>()
    )
}

fn contact_uri(addr: SocketAddr, transport: &str) -> String {
    match transport.to_ascii_uppercase().as_str() {
        "UDP" => format!("<sip:{addr}>"),
        "TLS" => format!("<sip:{addr};transport=tls>"),
        t => format!("<sip:{addr};transport={}>", t.to_ascii_lowercase()),
    }
}

fn contact_header(local: &LocalAddrs, peer: &Peer) -> Option<(HeaderName, String)> {
    let t = transport_token(peer.transport);
    local
        .for_transport(t)
        .map(|a| (HeaderName::Contact, contact_uri(a, t)))
}

fn idx(leg: Leg) -> usize {
    match leg {
        Leg::A => 0,
        Leg::B => 1,
    }
}

/// Palisade's SRTP offer to a phone: a fresh key for each suite it can take, strongest first.
fn offer_keys() -> Vec<CryptoAttribute> {
    [Suite::AesCm128HmacSha1_80, Suite::AesCm128HmacSha1_32]
        .into_iter()
        .enumerate()
        .map(|(i, suite)| CryptoAttribute::generate(u32::try_from(i + 1).unwrap_or(1), suite))
        .collect()
}

/// The key pair for a leg: what the phone answered (it encrypts with that) and Palisade's offered key with the
/// same tag and suite.
fn answered_keys(
    offered: &[CryptoAttribute],
    answer_crypto: &[String],
) -> Option<(CryptoAttribute, CryptoAttribute)> {
    answer_crypto.iter().find_map(|value| {
        let theirs = CryptoAttribute::parse(value).ok()?;
        let ours = offered
            .iter()
            .find(|o| o.tag == theirs.tag && o.suite == theirs.suite)?
            .clone();
        Some((theirs, ours))
    })
}

fn leg_crypto(theirs: &CryptoAttribute, ours: &CryptoAttribute) -> Option<::media::LegCrypto> {
    ::media::LegCrypto::new(theirs.suite, theirs.key.clone(), ours.key.clone()).ok()
}

fn new_tag() -> String {
    format!("{:016x}", rand::random::<u64>())
}

fn new_call_id(domain: &str) -> String {
    format!(
        "{:016x}{:016x}@{domain}",
        rand::random::<u64>(),
        rand::random::<u64>()
    )
}
