//! Calls between extensions: a back-to-back user agent (B2BUA).
//!
//! Each call has two independent dialogs. Leg A is the caller's INVITE, answered by Palisade as a UAS; leg B is
//! Palisade's own INVITE (its own Call-ID, tags and SDP) to every registered contact of the callee in parallel.
//! The first 2xx wins and the other branches are cancelled. Media always flows through Palisade's relay: each
//! leg's SDP points at the relay's port for that leg.
//!
//! Sans-IO: inputs are requests, responses and timeouts with `now`; outputs ([`CallOutput`]) are responses to
//! send in server transactions, new requests to send in client transactions, ACKs for 2xx (sent outside any
//! transaction), CANCELs, call records, and what the edge must do (open relay ports, start a media application),
//! answered by inputs ([`Calls::media_ready`], [`Calls::app_ready`]). An open relay session is driven through the
//! [`MediaControl`] trait (no I/O), which the binary implements over its socket relay and tests fake.
//!
//! The files follow a call's life: `setup` (a new INVITE, its relay ports), `branches` (leg B: ringing, answer,
//! failover), `in_dialog` (requests of an established call), `forward` and `transfer`, `apps` (voicemail),
//! `timers`, `ending` (CANCEL, BYE, records); `keys` (SRTP), `sdp`, `body`, `origin`, `dialog` and `wire` are the
//! pieces they share. Office features: `hunt` (ring groups), `pickup`, `park`, `attended` (REFER with Replaces).

mod app_handover;
mod apps;
mod attended;
pub mod body;
mod branches;
mod dialog;
mod ending;
mod forward;
mod hunt;
mod in_dialog;
mod keys;
mod media;
mod origin;
mod park;
mod pickup;
mod queue;
mod sdp;
mod setup;
#[cfg(test)]
mod tests;
mod timers;
mod transfer;
mod wire;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use sip::transaction::{Peer, ServerTxId};
use sip::{HeaderName, Message, Method};

pub use attended::{ReplaceMiss, invite_replaces};
pub use dialog::Dialog;
pub use forward::{
    ForwardReason, Forwarding, MAX_HOPS as MAX_FORWARD_HOPS, Resolved,
    validate_target as validate_forward_target,
};
pub use hunt::{GroupCall, GroupFallback, GroupMember};
pub use media::{Answered, HoldMusic, Leg, MediaControl, MediaError, MediaId, NoMedia};
pub use origin::{DialogLeg, SourceCheck, check_source};
pub use park::RetrieveMiss;
pub use pickup::PickupMiss;
pub use sdp::AppCodec;

use branches::*;
use keys::*;
use wire::*;

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
    /// The address to put in Via and Contact per transport Palisade listens on.
    pub by_transport: Vec<(sip::Transport, SocketAddr)>,
    /// The SIP domain, for From and To of the callee leg.
    pub domain: String,
}

impl LocalAddrs {
    /// The address to put in Via and Contact of what leaves by `transport`.
    pub fn address_for(&self, transport: sip::Transport) -> Option<SocketAddr> {
        address_for(&self.by_transport, transport)
    }
}

/// The address listed for `transport` in `by_transport` (Palisade's own address per transport).
pub fn address_for(
    by_transport: &[(sip::Transport, SocketAddr)],
    transport: sip::Transport,
) -> Option<SocketAddr> {
    by_transport
        .iter()
        .find(|(t, _)| *t == transport)
        .map(|(_, a)| *a)
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
    /// Send a new request in a client transaction; report its responses with `leg`. The request is the built
    /// message itself, so the endpoint hands it to the transaction layer without parsing it again.
    SendRequest {
        leg: LegKey,
        request: Message,
        peer: Peer,
    },
    /// Send bytes outside any transaction (the ACK for a 2xx).
    SendRaw { bytes: Bytes, peer: Peer },
    /// Cancel the pending INVITE sent for `leg`.
    Cancel { leg: LegKey },
    /// Send `response` again in server transaction `tx`: the 2xx to the caller's INVITE, not yet ACKed (RFC 3261
    /// §13.3.1.4). The bytes are those the endpoint reported with [`Calls::answer_sent`].
    Retransmit { tx: ServerTxId, response: Bytes },
    /// A call ended: store its record.
    Record(CallRecord),
    /// Start a media application for `call` (voicemail); answer with [`Calls::app_ready`] or
    /// [`Calls::app_failed`].
    StartApp(AppStart),
    /// A key the caller pressed, sent by SIP INFO, for the application of `call`.
    AppDigit { call: u64, digit: char },
    /// The extension the application of `call` handed its caller to did not answer (busy, no answer,
    /// unreachable): the application goes on (an attendant offers its menu again).
    AppHandoverFailed { call: u64 },
    /// The call of a media application ended: stop it (keeping a message being recorded).
    StopApp { call: u64 },
    /// A request inside a call was refused by a rule of the call layer (e.g. an attended transfer naming another
    /// extension's call): the endpoint records it as a policy event with reason `code`.
    Refused {
        code: &'static str,
        detail: String,
        source: Peer,
    },
    /// The agents offered queued call `call` answered (`agent`, the caller is connected and no longer waits) or
    /// not (`None`: it waits on).
    QueueOffered { call: u64, agent: Option<String> },
    /// A parked call's time ran out: ring extension `parker`'s phones for it ([`Calls::park_return`]).
    ParkTimeout { call: u64, parker: String },
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
    /// The caller waits in call queue `queue` with its music (`default` or a WAV file) until an agent answers.
    Queue { queue: String, music: String },
    /// The caller joins conference room `room` (after its PIN, if it has one).
    Conference { room: String },
    /// The auto attendant `name` answers (its menu, then the caller is handed on).
    Attendant { name: String },
}

/// What the edge needs to run a media application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppStart {
    pub call: u64,
    pub kind: AppKind,
    /// The calling number and name, as for the call record.
    pub caller: String,
    pub caller_name: Option<String>,
    /// The caller's signalling source (wrong PINs count against it) and its transport.
    pub source: SocketAddr,
    pub transport: sip::Transport,
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
    transport: sip::Transport,
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
    pub transport: sip::Transport,
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
    /// An offer that holds the other side (`Some(true)`: sendonly/inactive) or takes it off hold (`Some(false)`);
    /// `None` without a session description. Decides the music on hold once answered.
    hold: Option<bool>,
}

/// The deadlines of one call (run by `timers.rs`).
struct CallTimers {
    /// Ringing with no answer ends here (480, or the mailbox).
    ringing_deadline: Instant,
    /// The longest call ends here, whatever happens.
    ends_at: Instant,
    /// Session-timer deadline on the caller's leg (RFC 4028), when the caller asked for one.
    session_deadline: Option<(Instant, Duration)>,
    /// Retransmission of the 2xx to the caller until its ACK arrives (RFC 3261 §13.3.1.4).
    retransmit_2xx: Option<timers::Retransmission>,
    /// Retransmission of the 2xx to a phone that joined the call by its own INVITE (pickup, park retrieval, call
    /// pull) until its ACK arrives.
    joined_2xx: Option<timers::JoinedAnswer>,
}

/// The SRTP state of one call's two legs (`keys.rs`).
struct CallKeys {
    /// Per leg (A, B): whether its media is SRTP.
    secure: [bool; 2],
    /// The key the caller offered (what it encrypts with) and Palisade's key toward it, when leg A is SRTP.
    a_keys: Option<(CryptoAttribute, CryptoAttribute)>,
    /// Keys of a re-INVITE/UPDATE offer in flight, per leg: what the offering side sent, and what Palisade
    /// offered the other side.
    pending_rx: [Option<CryptoAttribute>; 2],
    pending_offer: [Vec<CryptoAttribute>; 2],
}

/// Where a call goes instead of (or after) its first callee: a media application (`apps.rs`) and forwards
/// (`forward.rs`).
struct Diversion {
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
}

/// The transfer side of a call (`transfer.rs`).
#[derive(Default)]
struct Handover {
    /// A blind transfer in progress (the target ringing).
    transfer: Option<transfer::Transfer>,
    /// Per leg: REFERs accepted in its dialog (the `id` of the refer event package, RFC 3515 §2.4.6).
    refers: [u32; 2],
    /// Per leg: that side left (a transferor that hung up while its transfer target rang).
    gone: [bool; 2],
    /// Dialogs of transferors handed over to a transfer target: a BYE crossing Palisade's gets 200.
    detached: Vec<(String, String, String)>,
    /// After a transfer, the parties of the call record: the transferee and the target.
    cdr_parties: Option<(String, String)>,
    /// After a transfer: the transferee's leg still to be taken off hold, with the target's answer (sent once no
    /// other INVITE is in flight on that leg).
    resume_due: Option<(Leg, Bytes)>,
    /// Palisade's own re-INVITE taking a transferee off hold.
    resume: Option<transfer::Resume>,
    /// A parked call whose time ran out: the side to fill and the parker to ring (`park.rs`).
    parked_return: Option<(Leg, Party)>,
    /// A second leg to re-INVITE once the first is done (`attended.rs`).
    resume_after: Option<(Leg, Bytes)>,
    /// A leg moved onto this call's relay: its re-INVITE is sent even when its media is two-way.
    moved_leg: Option<Leg>,
}

/// One call: its parties and state, then its parts grouped by concern — the caller's leg (`a`), the callee's
/// branches (`b`, `branches`, `failover`, `retired`), the relay session, `timers`, SRTP `keys`, the media
/// application answering it, forwards, and a transfer in progress.
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
    /// When the call's own clocks run out.
    timers: CallTimers,
    relayed: BTreeMap<u64, Relayed>,
    /// Failures collected from branches, for choosing the answer to the caller.
    failures: Vec<u16>,
    /// The SRTP state of both legs.
    keys: CallKeys,
    /// Trunks still to try, in order, if the current one fails.
    failover: Vec<Target>,
    /// Media port and address for ringing a failover target.
    b_port: Option<u16>,
    advertise: std::net::IpAddr,
    max_forwards: u8,
    /// Where the call is diverted: a media application, forwards.
    diversion: Diversion,
    /// Branches of earlier targets (before a forward or a transfer): a late 2xx from one is hung up.
    retired: Vec<Branch>,
    /// Blind transfers: the one in progress, the REFERs, and what a completed one left behind.
    handover: Handover,
    /// Per leg: the session description of the last completed offer/answer (the codecs that leg agreed on).
    answers: [Option<Bytes>; 2],
    /// Per leg: the session description Palisade last sent that leg (its origin is the one a new offer of
    /// Palisade's own continues).
    sent: [Option<Bytes>; 2],
    /// A call to a ring group: the members still to ring and the fallback (`hunt.rs`).
    hunt: Option<hunt::Hunt>,
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
    /// Parked calls by slot (`park.rs`).
    parked: park::ParkSlots,
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
            parked: park::ParkSlots::new(),
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
    ) -> Option<Message> {
        let transport = peer.transport;
        let via_addr = self.local.address_for(transport)?;
        built(dialog.request(
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
        let parked: Vec<u64> = self.parked.values().map(|p| p.call).collect();
        self.calls
            .iter()
            .map(|(id, c)| ActiveCall {
                call_id: c.call_id_a.clone(),
                caller: c.record_parties().0,
                callee: c.record_parties().1,
                started_at: c.started_at,
                answered_at: c.answered_at,
                // A call answered by voicemail is shown as answered by its mailbox (the callee).
                state: match c.state {
                    _ if parked.contains(id) => "parked",
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

    /// The extensions in a call now (placing one, or talking as the callee): a ring group skips them.
    pub fn busy_extensions(&self) -> std::collections::HashSet<String> {
        let mut busy = std::collections::HashSet::new();
        for c in self.calls.values() {
            if c.caller.extension {
                busy.insert(c.caller.number.clone());
            }
            if c.callee.extension && c.b.is_some() {
                busy.insert(c.callee.number.clone());
            }
        }
        busy
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
        self.handover
            .cdr_parties
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

fn idx(leg: Leg) -> usize {
    match leg {
        Leg::A => 0,
        Leg::B => 1,
    }
}
