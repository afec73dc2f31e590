//! The endpoint: everything Palisade does between a received message and what it sends, as one sans-IO state
//! machine (shaped like `quinn-proto`'s `Endpoint` or `str0m`'s `Rtc`). The edge hands it what arrived (with the
//! transport source address and the current time) and sends what it returns; it runs the guard, the parser, the
//! transaction layer, the PBX core, the call layer, trunks, message-waiting and the resource limits.
//!
//! It never does I/O: what needs a socket or a task (a call's relay ports, a voicemail application) is an
//! [`Event`] the edge carries out without the endpoint's lock and answers ([`Endpoint::media_ready`],
//! [`Endpoint::app_ready`]); what must be stored is a [`Record`] the store writer polls; time comes in as `now`
//! (registrations and bans expire in [`Endpoint::handle_timeout`]).

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Instant, SystemTime};

use crate::core::{AuthSignal, PbxCore};
use crate::registrar::Origin;
use bytes::Bytes;
use guard::{Guard, Verdict};
pub use sip::Transport;

mod calls;
mod cluster;
mod events;
mod features;
mod groups;
#[cfg(any(test, feature = "fuzzing"))]
pub mod harness;
mod limits;
mod office;
mod queues;
mod router;
#[cfg(test)]
mod simulation;
use calls::same_flow;
mod trunks;
mod voicemail;
use crate::calls::{CallRecord, Calls, LegKey, MediaControl};
pub use events::{Event, MAX_REQUEUED_RECORDS, Record};
use sip::transaction::{
    ClientTxId, Config as TxConfig, Output, Peer, ServerTxId, TransactionLayer, TuEvent, TxId,
};
use sip::validate::{Capabilities, Triage, triage};
use sip::{Framing, HeaderName, Message, Method, ResponseBuilder};
pub use trunks::{Resolved, TlsPeer};
pub use voicemail::AppEvent;

/// What Palisade accepts: no option tags; the bodies it reads (SDP, keys by INFO) or passes between the legs of a
/// call (transfer progress) — anything else is refused with 415 before it reaches a call.
const CAPABILITIES: Capabilities<'static> = Capabilities {
    // `replaces`: an INVITE with Replaces (RFC 3891) is understood (endpoint/features.rs).
    supported: &["replaces"],
    accepted_types: &[
        "application/sdp",
        "multipart/mixed",
        "application/dtmf-relay",
        "application/dtmf",
        "message/sipfrag",
    ],
};

/// How often registrations and IP-list rules are checked for expiry: a registration or ban outlives its time by
/// at most this much.
const EXPIRY_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);

/// Identifies one accepted TCP or TLS connection for as long as it is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// One message received: a whole datagram, or one message cut from a stream by the framer.
#[derive(Debug, Clone)]
pub struct Inbound {
    pub transport: Transport,
    /// The transport source address: the only address security decisions may key on.
    pub source: SocketAddr,
    /// The local address it arrived on.
    pub local: SocketAddr,
    /// The stream connection it arrived on (None for UDP).
    pub conn: Option<ConnId>,
    pub data: Bytes,
}

/// One message to send. For stream transports, `conn` names the connection to use when it is still open;
/// otherwise the transport layer opens (or reuses) a connection to `dest`.
#[derive(Debug, Clone)]
pub struct Outbound {
    pub transport: Transport,
    pub dest: SocketAddr,
    pub conn: Option<ConnId>,
    pub data: Bytes,
}

/// Settings the service needs; filled from the command line and palisade.toml.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// The SIP domain Palisade is authoritative for.
    pub domain: String,
    /// Server header value; `None` sends no Server header.
    pub server_header: Option<String>,
    pub limits: sip::Limits,
}

/// Counters of what the service saw, for logs, tests and (later) metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Packets the guard dropped before parsing (blacklisted or throttled sources).
    pub guard_dropped: u64,
    pub requests: u64,
    pub responses: u64,
    pub rejected: u64,
    pub dropped: u64,
}

/// The sizes of the state that traffic can grow, for the periodic `service state` log line (crate::state_log)
/// and tests: each is bounded (docs/security.md, "State from unauthenticated requests").
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StateSizes {
    pub server_transactions: usize,
    pub client_transactions: usize,
    pub guard_sources: usize,
    pub blacklist_auto: usize,
}

/// Maps the monotonic `now` the edge passes in to wall-clock time (for nonces, expiry and event times) from one
/// reading taken at start, so the service itself never reads a clock.
#[derive(Debug, Clone, Copy)]
pub struct WallClock {
    pub mono: Instant,
    pub wall: SystemTime,
}

impl WallClock {
    pub fn now() -> Self {
        WallClock {
            mono: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    pub fn at(&self, now: Instant) -> SystemTime {
        self.wall + now.saturating_duration_since(self.mono)
    }
}

/// The endpoint's state. Not thread-safe by itself: the edge keeps it behind a mutex and never holds the lock
/// across an await or any I/O.
pub struct Endpoint {
    config: ServiceConfig,
    stats: Stats,
    transactions: TransactionLayer,
    core: PbxCore,
    guard: Guard,
    calls: Calls,
    media: Box<dyn MediaControl + Send>,
    /// Client transactions opened for calls, and back.
    client_legs: HashMap<ClientTxId, LegKey>,
    leg_clients: HashMap<LegKey, ClientTxId>,
    /// Finished calls, drained by the store synchronisation.
    records: Vec<CallRecord>,
    /// Records being handed to the store writer ([`Endpoint::poll_record`]).
    records_out: VecDeque<Record>,
    /// The SIP trunks (providers).
    trunks: Vec<crate::trunks::Trunk>,
    /// Trunks as configured, resolved host names, trunk registrations (service/trunks.rs).
    trunk_state: trunks::TrunkState,
    clock: WallClock,
    /// The edge runs media applications (voicemail); not in unit tests.
    apps_enabled: bool,
    /// What the edge must do for the endpoint, oldest first ([`Endpoint::poll_event`]).
    events: VecDeque<Event>,
    /// When registrations and IP-list rules (bans) are next checked for expiry.
    expiry_due: Instant,
    mwi: voicemail::Mwi,
    /// Per-extension and per-trunk resource limits (service/limits.rs).
    limits: crate::limits::ResourceLimits,
    /// Ring groups (endpoint/groups.rs).
    ring_groups: crate::office::RingGroups,
    /// Feature codes, pickup groups and park (endpoint/features.rs).
    features: features::OfficeFeatures,
    /// Call queues, and their statistics and agent records for the store (endpoint/queues.rs).
    queues: crate::office::Queues,
    queue_records: Vec<Record>,
    /// Numbers answered by Palisade's own office applications (conference rooms; endpoint/office.rs).
    office: crate::office::OfficeNumbers,
    /// The other nodes of a cluster and the phones registered through them (endpoint/cluster.rs).
    cluster: crate::cluster::ClusterView,
    /// Attendant callers being handed to a ring group, step by step (endpoint/office.rs).
    group_handovers: std::collections::HashMap<u64, office::GroupHandover>,
}

/// The stateful parts a service is built from.
pub struct Parts {
    pub core: PbxCore,
    pub guard: Guard,
    pub calls: Calls,
    pub media: Box<dyn MediaControl + Send>,
}

impl Endpoint {
    pub fn new(config: ServiceConfig, parts: Parts, clock: WallClock) -> Self {
        Endpoint {
            config,
            stats: Stats::default(),
            transactions: TransactionLayer::new(TxConfig::default()),
            core: parts.core,
            guard: parts.guard,
            calls: parts.calls,
            media: parts.media,
            client_legs: HashMap::new(),
            leg_clients: HashMap::new(),
            records: Vec::new(),
            records_out: VecDeque::new(),
            trunks: Vec::new(),
            trunk_state: trunks::TrunkState::default(),
            clock,
            apps_enabled: false,
            events: VecDeque::new(),
            expiry_due: clock.mono,
            mwi: voicemail::Mwi::default(),
            limits: crate::limits::ResourceLimits::default(),
            ring_groups: crate::office::RingGroups::default(),
            features: features::OfficeFeatures::default(),
            queues: crate::office::Queues::default(),
            queue_records: Vec::new(),
            office: crate::office::OfficeNumbers::default(),
            cluster: crate::cluster::ClusterView::default(),
            group_handovers: std::collections::HashMap::new(),
        }
    }

    /// The anti-hacking guard, for the store synchronisation (rules, settings, events).
    pub fn guard_mut(&mut self) -> &mut Guard {
        &mut self.guard
    }

    /// The guard's verdict on a packet from `ip`, before anything is parsed or copied. Counted toward the flood
    /// tiers; a `false` means drop it silently.
    pub fn admit(&mut self, ip: IpAddr, now: Instant) -> bool {
        let ms = unix_ms(self.clock.at(now));
        if self.guard.check_packet(ip, ms) == Verdict::Drop {
            self.stats.guard_dropped += 1;
            return false;
        }
        true
    }

    /// Whether a new TCP/TLS connection from `ip` may be accepted.
    pub fn allows_connection(&self, ip: IpAddr, now: Instant) -> bool {
        self.guard
            .allows_connection(ip, unix_ms(self.clock.at(now)))
    }

    /// An endpoint for unit tests (its own and the socket edge's): realm `pbx.test`, no extensions, no Server
    /// header, no media relay.
    pub fn for_tests() -> Self {
        let core = PbxCore::new(
            crate::core::CoreConfig::new("pbx.test"),
            crate::auth::NonceKey::from_bytes([1; 32]),
        )
        .expect("static test configuration");
        Endpoint::new(
            ServiceConfig {
                domain: "pbx.test".into(),
                server_header: None,
                limits: sip::Limits::default(),
            },
            Parts::for_tests(core),
            WallClock::now(),
        )
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Counters that tell the edge what one message did: (messages parsed, successful authentications). Each
    /// only grows; compare before and after [`Endpoint::process`].
    pub fn progress(&self) -> (u64, u64) {
        (
            self.stats.requests + self.stats.responses,
            self.guard.auth_successes(),
        )
    }

    /// Whether `ip` is a configured trunk's source (trusted by address: it never authenticates).
    pub fn is_trunk_source(&self, ip: IpAddr) -> bool {
        crate::trunks::trunk_of(&self.trunks, ip).is_some()
    }

    pub fn state_sizes(&self) -> StateSizes {
        StateSizes {
            server_transactions: self.transactions.server_count(),
            client_transactions: self.transactions.client_count(),
            guard_sources: self.guard.tracked_sources(),
            blacklist_auto: self.guard.lists().auto_count(),
        }
    }

    /// The PBX core, for the store synchronisation (extension reloads, write-behind of events and bindings).
    pub fn core_mut(&mut self) -> &mut PbxCore {
        &mut self.core
    }

    /// Wall-clock time for a monotonic instant.
    pub fn wall(&self, now: Instant) -> SystemTime {
        self.clock.at(now)
    }

    /// Handles one received message (guard verdict first) and returns what to send.
    pub fn handle_inbound(&mut self, inbound: Inbound, now: Instant) -> Vec<Outbound> {
        if !self.admit(inbound.source.ip(), now) {
            return Vec::new();
        }
        self.process(inbound, now)
    }

    /// Handles a message the guard already admitted.
    pub fn process(&mut self, inbound: Inbound, now: Instant) -> Vec<Outbound> {
        // A WebSocket message is whole, like a datagram: Content-Length is optional there (RFC 7118).
        let framing = if inbound.transport.is_stream() && !inbound.transport.is_websocket() {
            Framing::Stream
        } else {
            Framing::Datagram
        };
        let peer = Peer {
            addr: inbound.source,
            transport: inbound.transport,
            connection: inbound.conn.map(|c| c.0),
        };
        let mut out = Vec::new();
        match triage(inbound.data, framing, &self.config.limits, &CAPABILITIES) {
            Triage::Request(msg) => {
                self.stats.requests += 1;
                if let Err(e) = self.transactions.handle_request(msg, peer, now) {
                    // Validation guarantees a Via and a CSeq, so this is not expected; never answer blindly.
                    tracing::debug!(source = %peer.addr, error = %e, "request cannot be matched to a transaction");
                }
            }
            Triage::Response(msg) => {
                self.stats.responses += 1;
                if let Err(e) = self.transactions.handle_response(msg, now) {
                    tracing::debug!(source = %peer.addr, error = %e, "response cannot be matched");
                }
            }
            Triage::Reject { request, rejection } => {
                self.stats.rejected += 1;
                tracing::debug!(source = %peer.addr, status = rejection.status, reason = %rejection.reason,
                    "request refused");
                // Refused statelessly: a retransmission is simply refused again. An ACK is never answered
                // (RFC 3261 §17.2.1).
                if request.method() != Some(Method::Ack) {
                    let mut b =
                        ResponseBuilder::with_reason(&request, rejection.status, &rejection.reason);
                    for (name, value) in &rejection.headers {
                        b = b.header(*name, value);
                    }
                    out.push(to_outbound(peer, self.finish(b, peer, None)));
                }
            }
            Triage::Drop(why) => {
                self.stats.dropped += 1;
                tracing::debug!(source = %peer.addr, reason = %why, "message dropped");
            }
        }
        self.drain(now, &mut out);
        out
    }

    /// Runs expired timers (retransmissions, transaction timeouts, call timers) and expires registrations and
    /// bans whose time is up.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Outbound> {
        self.transactions.handle_timeout(now);
        let wall = self.clock.at(now);
        if now >= self.expiry_due {
            self.expiry_due = now + EXPIRY_INTERVAL;
            self.core.expire(wall);
            self.guard.expire(unix_ms(wall));
        }
        self.calls.handle_timeout(self.media.as_mut(), now, wall);
        self.queue_timeout(now);
        self.trunk_timeout(now);
        let mut out = Vec::new();
        self.drain(now, &mut out);
        out
    }

    /// When `handle_timeout` should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        // Expiry is checked periodically while something can expire (cheaper than tracking the earliest of
        // thousands of registrations on every message); an idle endpoint asks for no timer at all.
        let expiring = !self.core.registrar().is_empty() || !self.guard.lists().is_empty();
        [
            self.transactions.poll_timeout(),
            self.calls.poll_timeout(),
            self.queue_poll_timeout(),
            self.trunk_poll_timeout(),
            expiring.then_some(self.expiry_due),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Acts on everything the transaction layer produced: transmits go out, requests are answered (which may
    /// produce more transmits, so this loops until the layer is quiet).
    fn drain(&mut self, now: Instant, out: &mut Vec<Outbound>) {
        loop {
            let mut busy = false;
            while let Some(output) = self.transactions.poll_output() {
                busy = true;
                match output {
                    Output::Transmit(t) => out.push(to_outbound(t.peer, t.bytes)),
                    Output::Event(ev) => self.on_event(ev, now, out),
                }
            }
            let call_outputs = self.calls.take_outputs();
            if !call_outputs.is_empty() {
                busy = true;
                self.run_call_outputs(call_outputs, now, out);
            }
            if !busy {
                break;
            }
        }
    }

    fn on_event(&mut self, ev: TuEvent, now: Instant, out: &mut Vec<Outbound>) {
        let wall = self.clock.at(now);
        match ev {
            TuEvent::Request { tx, request, peer } => self.on_request(tx, request, peer, now),
            TuEvent::Cancel {
                tx,
                request,
                invite,
                peer,
            } => {
                // RFC 3261 §9.2: 200 when the CANCEL matches a transaction, 481 otherwise; the call layer
                // answers the INVITE with 487 when it was still ringing. A CANCEL must come from where its INVITE
                // came from: one from elsewhere (the branch is visible on the wire) cancels nothing.
                let foreign = invite
                    .and_then(|i| self.transactions.server_peer(i))
                    .is_some_and(|p| !same_flow(&p, &peer));
                if foreign {
                    self.foreign_cancel(tx, &request, peer, now);
                    return;
                }
                let status = if invite.is_some() { 200 } else { 481 };
                let response = self.finish(ResponseBuilder::new(&request, status), peer, None);
                if let Err(e) = self.transactions.respond(tx, response, now) {
                    tracing::warn!(error = %e, "could not answer a CANCEL");
                }
                if let Some(invite) = invite {
                    self.calls.cancel(invite, self.media.as_mut(), wall);
                }
            }
            TuEvent::StrayCancel { request, peer } => {
                // Nothing to cancel: 481, statelessly (no transaction was created for it).
                let response = self.finish(ResponseBuilder::new(&request, 481), peer, None);
                out.push(to_outbound(peer, response));
            }
            TuEvent::Ack { request, peer, .. } => {
                // An ACK from elsewhere than the call's leg confirms nothing (and is recorded).
                let foreign = self
                    .in_dialog_source(&request, &peer, now)
                    .is_some_and(|(_, check)| !check.accepted());
                if foreign {
                    self.refuse_foreign_in_dialog(None, &request, peer, now);
                } else {
                    self.calls.ack(&request);
                }
            }
            TuEvent::Response { tx, response } => {
                if let Some(leg) = self.client_legs.get(&tx).copied() {
                    let response = self.session_response(response);
                    self.calls
                        .response(leg, &response, self.media.as_mut(), now, wall);
                } else {
                    self.trunk_response(tx, &response, now);
                }
            }
            TuEvent::Timeout {
                tx: TxId::Client(c),
            }
            | TuEvent::TransportError {
                tx: TxId::Client(c),
            } => {
                if let Some(leg) = self.client_legs.get(&c).copied() {
                    self.calls.leg_failed(leg, self.media.as_mut(), now, wall);
                } else {
                    self.trunk_failed(c, now);
                }
            }
            TuEvent::Terminated {
                tx: TxId::Client(c),
            } => {
                if let Some(leg) = self.client_legs.remove(&c) {
                    self.leg_clients.remove(&leg);
                }
                self.trunk_terminated(c);
            }
            TuEvent::Overloaded { request, peer } => {
                let b = ResponseBuilder::new(&request, 503).header(HeaderName::RetryAfter, "5");
                out.push(to_outbound(peer, self.finish(b, peer, None)));
            }
            TuEvent::StrayResponse { response } => {
                // RFC 3261 §18.1.2: a response matching no transaction is discarded.
                tracing::debug!(
                    status = response.status(),
                    "response matches no transaction"
                );
            }
            ev => tracing::trace!(event = ?ev, "transaction event"),
        }
    }

    /// A new request in server transaction `tx`: calls to the call layer, everything else to the PBX core.
    fn on_request(&mut self, tx: ServerTxId, request: Message, peer: Peer, now: Instant) {
        let in_dialog = request.to().is_ok_and(|t| t.tag().is_some());
        if in_dialog && self.refuse_foreign_in_dialog(Some(tx), &request, peer, now) {
            return;
        }
        if in_dialog && self.in_dialog_refused(tx, &request, peer, now) {
            return;
        }
        let Some(request) = self.session_request(tx, request, peer, now) else {
            return;
        };
        if in_dialog
            && self
                .calls
                .in_dialog(tx, &request, self.media.as_mut(), now, self.clock.at(now))
        {
            return;
        }
        if !in_dialog && request.method() == Some(Method::Invite) {
            self.on_invite(tx, &request, peer, now);
            return;
        }
        if request.method() == Some(Method::Subscribe) {
            self.on_subscribe(tx, &request, peer, now);
            return;
        }
        let (response, once) = self.answer(&request, peer, now);
        // Challenges and refusals of unauthenticated requests go out once: no retransmission that a spoofed
        // source could turn into amplification.
        let sent = if once {
            self.transactions.respond_once(tx, response, now)
        } else {
            self.transactions.respond(tx, response, now)
        };
        if let Err(e) = sent {
            tracing::warn!(error = %e, "could not answer a request");
        }
    }

    /// A request inside a call of an extension whose location rules (`--lan-only`, `--require-tls`,
    /// `--block-remote-ws`) it breaks — a re-INVITE, REFER, INFO … sent from elsewhere than the extension may be
    /// used — is refused with 403 and a policy event, like the same request outside a dialog. A BYE always
    /// passes: ending a call gives nothing away and frees its ports.
    fn in_dialog_refused(
        &mut self,
        tx: ServerTxId,
        request: &Message,
        peer: Peer,
        now: Instant,
    ) -> bool {
        if matches!(request.method(), Some(Method::Bye | Method::Ack)) {
            return false;
        }
        let Some(number) = self.calls.dialog_extension(request).map(str::to_string) else {
            return false;
        };
        let origin = Origin {
            transport: peer.transport,
            source: peer.addr,
            local: unspecified(peer.addr),
        };
        let method = request.method_str().unwrap_or("request").to_string();
        let wall = self.clock.at(now);
        let Some(reply) = self.core.in_dialog_location(&number, &method, origin, wall) else {
            return false;
        };
        let b = ResponseBuilder::with_reason(
            request,
            reply.status,
            reply.reason.as_deref().unwrap_or("Forbidden"),
        );
        let bytes = self.finish(b, peer, None);
        if let Err(e) = self.transactions.respond_once(tx, bytes, now) {
            tracing::warn!(error = %e, "could not refuse an in-dialog request");
        }
        true
    }

    /// The response to a new request inside its server transaction: the PBX core decides.
    fn answer(&mut self, msg: &Message, peer: Peer, now: Instant) -> (Bytes, bool) {
        let origin = Origin {
            transport: peer.transport,
            source: peer.addr,
            local: unspecified(peer.addr),
        };
        let wall = self.clock.at(now);
        let reply = self.core.handle_request(msg, origin, wall);
        let (ip, ms) = (peer.addr.ip(), unix_ms(wall));
        match reply.auth {
            AuthSignal::None => {}
            AuthSignal::Challenged => self.guard.on_challenge(ip, ms),
            AuthSignal::Succeeded => self.guard.on_auth_success(ip, ms),
            AuthSignal::Failed => self.guard.on_auth_failure(ip, ms),
        }
        let mut b = match &reply.reason {
            Some(reason) => ResponseBuilder::with_reason(msg, reply.status, reason),
            None => ResponseBuilder::new(msg, reply.status),
        };
        for (name, value) in &reply.headers {
            b = b.header(*name, value);
        }
        // Challenges, refusals, OPTIONS — and every REGISTER — are answered once and forgotten, as Kamailio's
        // `sl` does: no server transaction, so the sustained rate is set by CPU and not by a table holding each
        // answered request for 32 s. A request without valid credentials costs no state and is never amplified.
        // A REGISTER's retransmission is recognised by the verifier (same bytes, same nonce count: not a replay)
        // and the registrar (same CSeq: the same change again). Other authenticated requests keep their
        // transaction, which absorbs their retransmissions.
        let once = reply.auth != AuthSignal::Succeeded || msg.method() == Some(Method::Register);
        (self.finish(b, peer, None), once)
    }

    /// Finishes a response: To tag (the dialog's, else a new one), received/rport, Server header.
    fn finish(&self, b: ResponseBuilder<'_>, peer: Peer, to_tag: Option<&str>) -> Bytes {
        let tag = to_tag.map_or_else(new_tag, str::to_string);
        let mut b = b.to_tag(tag).received_from(peer.addr);
        if let Some(server) = &self.config.server_header {
            b = b.header(HeaderName::Server, server);
        }
        b.build()
    }
}

/// The local address is not tracked per transaction yet; bindings record the unspecified address.
fn unspecified(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
    }
}

fn to_outbound(peer: Peer, data: Bytes) -> Outbound {
    Outbound {
        transport: peer.transport,
        dest: peer.addr,
        conn: peer.connection.map(ConnId),
        data,
    }
}

/// Unix milliseconds, the guard's clock.
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A To tag: 64 random bits, hex.
fn new_tag() -> String {
    format!("{:016x}", rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service_with(server_header: Option<&str>) -> Endpoint {
        let core = PbxCore::new(
            crate::core::CoreConfig::new("pbx.test"),
            crate::auth::NonceKey::from_bytes([1; 32]),
        )
        .unwrap();
        Endpoint::new(
            ServiceConfig {
                domain: "pbx.test".into(),
                server_header: server_header.map(str::to_string),
                limits: sip::Limits::default(),
            },
            Parts::for_tests(core),
            WallClock::now(),
        )
    }

    fn service() -> Endpoint {
        service_with(Some("Palisade"))
    }

    fn udp(data: &str) -> Inbound {
        Inbound {
            transport: Transport::Udp,
            source: "127.0.0.9:5099".parse().unwrap(),
            local: "127.0.0.1:5060".parse().unwrap(),
            conn: None,
            data: Bytes::copy_from_slice(data.as_bytes()),
        }
    }

    fn request(method: &str, extra: &str) -> String {
        format!(
            "{method} sip:pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP 10.1.1.1:5060;branch=z9hG4bK-t1;rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:100@pbx.test>;tag=a1\r\nTo: <sip:pbx.test>\r\nCall-ID: c1@h\r\n\
             CSeq: 1 {method}\r\n{extra}Content-Length: 0\r\n\r\n"
        )
    }

    fn answer(svc: &mut Endpoint, data: &str) -> Option<Message> {
        let out = svc.handle_inbound(udp(data), Instant::now());
        assert!(out.len() <= 1);
        out.into_iter().next().map(|o| {
            assert_eq!(o.dest, "127.0.0.9:5099".parse().unwrap());
            Message::parse(o.data, Framing::Stream, &sip::Limits::default()).unwrap()
        })
    }

    #[test]
    fn options_gets_200_with_allow_and_nat_annotations() {
        let mut svc = service();
        let r = answer(&mut svc, &request("OPTIONS", "")).unwrap();
        assert_eq!(r.status(), Some(200));
        assert_eq!(r.header_str(HeaderName::Allow), Some(crate::core::ALLOW));
        assert_eq!(r.header_str(HeaderName::Server), Some("Palisade"));
        let via = r.top_via().unwrap();
        assert_eq!(via.received(), Some("127.0.0.9"));
        assert_eq!(via.rport(), Some(Some(5099)));
        assert!(r.to().unwrap().tag().is_some());
    }

    #[test]
    fn phone_requests_are_challenged_and_cancel_without_invite_is_481() {
        let mut svc = service();
        let r = answer(&mut svc, &request("REGISTER", "")).unwrap();
        assert_eq!(r.status(), Some(401));
        assert!(r.header(HeaderName::WwwAuthenticate).is_some());
        let r = answer(&mut svc, &request("MESSAGE", "")).unwrap();
        assert_eq!(r.status(), Some(407));
        assert!(r.header(HeaderName::ProxyAuthenticate).is_some());
        assert_eq!(
            answer(&mut svc, &request("FROB", "")).unwrap().status(),
            Some(501)
        );
        assert_eq!(
            answer(&mut svc, &request("CANCEL", "")).unwrap().status(),
            Some(481)
        );
        assert!(answer(&mut svc, &request("ACK", "")).is_none());
    }

    #[test]
    fn malformed_requests_get_400_with_reason_and_responses_are_dropped() {
        let mut svc = service();
        let bad = request("OPTIONS", "").replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE");
        let r = answer(&mut svc, &bad).unwrap();
        assert_eq!(r.status(), Some(400));
        assert!(String::from_utf8_lossy(r.reason().unwrap()).contains("CSeq"));
        assert!(
            answer(
                &mut svc,
                "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP x;branch=z9hG4bK1\r\n\r\n"
            )
            .is_none()
        );
        assert!(answer(&mut svc, "\x00\x01garbage").is_none());
        let s = svc.stats();
        assert_eq!((s.rejected, s.dropped), (1, 2));
    }

    #[test]
    fn server_header_can_be_turned_off() {
        let mut svc = service_with(None);
        let r = answer(&mut svc, &request("OPTIONS", "")).unwrap();
        assert_eq!(r.header(HeaderName::Server), None);
    }

    #[test]
    fn unauthenticated_requests_keep_no_transaction_state() {
        let mut svc = service();
        let req = request("OPTIONS", "");
        let first = answer(&mut svc, &req).unwrap();
        assert!(
            svc.poll_timeout().is_none(),
            "answered once and forgotten: nothing to retransmit or absorb"
        );
        // a retransmission is simply answered again
        let again = answer(&mut svc, &req).unwrap();
        assert_eq!((first.status(), again.status()), (Some(200), Some(200)));
        let challenge = answer(&mut svc, &request("REGISTER", "")).unwrap();
        assert_eq!(challenge.status(), Some(401));
        assert!(svc.poll_timeout().is_none());
    }

    #[test]
    fn unmatched_cancels_and_unauthenticated_invites_leave_no_transaction() {
        let mut svc = service();
        svc.guard_mut().set_config(guard::GuardConfig {
            flood_amber_pps: 1_000_000,
            flood_red_pps: 2_000_000,
            unanswered_challenges_before_ban: 1_000_000,
            ..Default::default()
        });
        let invite = |i: usize| {
            request("INVITE", "Contact: <sip:100@10.1.1.1>\r\n")
                .replace("z9hG4bK-t1", &format!("z9hG4bK-i{i}"))
                .replace("c1@h", &format!("c{i}@h"))
                .replace("To: <sip:pbx.test>", "To: <sip:200@pbx.test>")
        };
        let cancel = |i: usize| {
            request("CANCEL", "")
                .replace("z9hG4bK-t1", &format!("z9hG4bK-x{i}"))
                .replace("c1@h", &format!("x{i}@h"))
        };
        for i in 0..2_000 {
            let r = answer(&mut svc, &cancel(i)).expect("answered");
            assert_eq!(r.status(), Some(481));
            let r = answer(&mut svc, &invite(i)).expect("answered");
            assert_eq!(r.status(), Some(407));
        }
        // The same CANCEL again (a retransmission) is answered again, still statelessly.
        assert_eq!(answer(&mut svc, &cancel(0)).unwrap().status(), Some(481));
        let sizes = svc.state_sizes();
        assert_eq!(
            (sizes.server_transactions, sizes.client_transactions),
            (0, 0),
            "{sizes:?}"
        );
        assert_eq!(sizes.guard_sources, 1, "one source, one guard entry");
        assert!(svc.poll_timeout().is_none(), "no timer either");
    }

    /// Three wrong passwords from the test source: banned.
    fn ban_test_source(svc: &mut Endpoint) {
        for i in 0..3 {
            let r = answer(svc, &request("REGISTER", "")).expect("challenge");
            let www = r
                .header_str(HeaderName::WwwAuthenticate)
                .unwrap()
                .to_string();
            let nonce = www
                .split("nonce=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
                .to_string();
            let auth = format!(
                "Authorization: Digest username=\"nobody\", realm=\"pbx.test\", nonce=\"{nonce}\", \
                 uri=\"sip:pbx.test\", response=\"00000000000000000000000000000000\", algorithm=MD5, qop=auth, \
                 nc=00000001, cnonce=\"x{i}\"\r\n"
            );
            let req = request("REGISTER", &auth).replace("z9hG4bK-t1", &format!("z9hG4bK-f{i}"));
            let r = answer(svc, &req).expect("failure answered like a challenge");
            assert_eq!(r.status(), Some(401));
        }
    }

    #[test]
    fn failed_authentications_ban_the_source_which_then_gets_silence() {
        let mut svc = service();
        svc.guard_mut().set_config(guard::GuardConfig {
            auth_failures_before_ban: 3,
            ..Default::default()
        });
        ban_test_source(&mut svc);
        assert!(
            answer(&mut svc, &request("OPTIONS", "")).is_none(),
            "banned: dropped silently"
        );
        assert!(svc.stats().guard_dropped >= 1);
        let bans: Vec<_> = svc
            .guard_mut()
            .take_events()
            .into_iter()
            .filter(|e| matches!(e, guard::GuardEvent::Banned { .. }))
            .collect();
        assert_eq!(bans.len(), 1);
    }

    #[test]
    fn a_ban_expires_in_handle_timeout() {
        let mut svc = service();
        svc.guard_mut().set_config(guard::GuardConfig {
            auth_failures_before_ban: 3,
            ban_seconds: 60,
            ..Default::default()
        });
        ban_test_source(&mut svc);
        let _ = svc.guard_mut().take_events();
        let due = svc
            .poll_timeout()
            .expect("a ban to expire asks for a timer");
        assert!(due <= Instant::now() + EXPIRY_INTERVAL);
        // Before its time the ban holds; after it, the timer lifts it (no store loop involved).
        let _ = svc.handle_timeout(Instant::now() + std::time::Duration::from_secs(30));
        assert!(svc.guard_mut().take_events().is_empty());
        let _ = svc.handle_timeout(Instant::now() + std::time::Duration::from_secs(61));
        let expired = svc.guard_mut().take_events();
        assert!(
            matches!(expired.as_slice(), [guard::GuardEvent::Expired { .. }]),
            "{expired:?}"
        );
        assert_eq!(
            answer(&mut svc, &request("OPTIONS", "")).and_then(|r| r.status()),
            Some(200),
            "answered again"
        );
    }
}
