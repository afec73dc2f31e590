//! Drives a whole [`Endpoint`] from arbitrary bytes, for the `service` fuzz target (fuzz/fuzz_targets/service.rs)
//! and for the unit tests that replay its seeds on every `cargo test`.
//!
//! Random bytes rarely get past digest authentication, so the input is read as a script of operations that a
//! phone, an attacker and the clock can perform: raw datagrams and stream messages from a few sources, well-formed
//! requests with a fuzzer-chosen method, target, body and one mutated byte, answers to the challenges the service
//! sent (so authenticated REGISTERs, calls and subscriptions happen), responses to the requests the service sent to
//! a registered phone (so calls ring and get answered), in-dialog ACK/BYE, and the passage of time.
//!
//! What must hold whatever the script (checked here, so a fuzzer run finds a breach as a panic): the service never
//! panics, everything it sends parses as SIP, and it only ever sends to addresses that sent it something.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::auth::Credentials;
use crate::calls::{Leg, MediaControl, MediaError, MediaId};
use crate::core::{CoreConfig, ExtensionAuth, PbxCore};
use crate::trunks::{TrunkChallenge, answer_challenge, parse_challenge};
use bytes::Bytes;
use sip::{Framing, HeaderName, Message};

use super::{
    ConnId, Endpoint, Event, Inbound, Outbound, Parts, ServiceConfig, Transport, WallClock,
};

const REALM: &str = "pbx.test";
const PASSWORD: &str = "Harness-Pw-1234";
/// Extension numbers and their auth IDs.
const EXTENSIONS: [(&str, &str); 3] = [
    ("100", "h100auth"),
    ("101", "h101auth"),
    ("102", "h102auth"),
];
/// Where packets come from: two phones on loopback, one on IPv6, one "internet" attacker.
const SOURCES: [&str; 4] = [
    "127.0.0.10:5060",
    "127.0.0.11:5062",
    "[::1]:5070",
    "203.0.113.7:5060",
];
const METHODS: [&str; 12] = [
    "REGISTER",
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "OPTIONS",
    "SUBSCRIBE",
    "NOTIFY",
    "REFER",
    "INFO",
    "UPDATE",
    "MESSAGE",
];
const TARGETS: [&str; 8] = [
    "100",
    "101",
    "102",
    "999",
    "777",
    "004930123456",
    "112",
    "nobody",
];
const STATUSES: [u16; 8] = [100, 180, 183, 200, 200, 486, 487, 603];
/// Operations per input, so one input stays cheap however long it is.
const MAX_OPS: usize = 96;

/// Reads the fuzz input; zeros once it runs out, so every input is a complete script.
struct Cursor<'a> {
    data: &'a [u8],
}

impl Cursor<'_> {
    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.byte() as usize % from.len()]
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }

    fn bytes(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }
}

/// A relay that hands out port numbers and remembers nothing else: the service's media decisions are what is
/// under test, not sockets. The harness opens sessions (as the binary's edge does, answering
/// [`Event::AllocateMedia`]); the endpoint's clone points them at phones and releases them.
#[derive(Default, Clone)]
pub(crate) struct FakeMedia {
    state: std::sync::Arc<std::sync::Mutex<FakeSessions>>,
}

#[derive(Default)]
struct FakeSessions {
    next: u64,
    live: HashSet<u64>,
}

impl FakeMedia {
    /// Sessions open now.
    pub(crate) fn open(&self) -> usize {
        self.sessions().live.len()
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, FakeSessions> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Opens a session, as the edge does for [`Event::AllocateMedia`] (at most 16 at once).
    pub(crate) fn allocate(&self) -> Result<MediaId, MediaError> {
        let mut s = self.sessions();
        if s.live.len() >= 16 {
            return Err(MediaError::Exhausted);
        }
        s.next += 1;
        let id = s.next;
        s.live.insert(id);
        Ok(MediaId(id))
    }
}

impl MediaControl for FakeMedia {
    fn local_port(&self, id: MediaId, leg: Leg) -> Option<u16> {
        let base = 30_000 + (id.0 % 1000) as u16 * 4;
        self.sessions().live.contains(&id.0).then_some(match leg {
            Leg::A => base,
            Leg::B => base + 2,
        })
    }
    fn advertise_ip(&self) -> IpAddr {
        IpAddr::from([127, 0, 0, 1])
    }
    fn set_remote(&mut self, _: MediaId, _: Leg, _: media::Remote, _: media::Remote) {}
    fn idle_for(&self, _: MediaId, _: Instant) -> Option<Duration> {
        None
    }
    fn set_crypto(&mut self, _: MediaId, _: Leg, _: Option<media::LegCrypto>) {}
    fn release(&mut self, id: MediaId) {
        self.sessions().live.remove(&id.0);
    }
}

/// A dialog a harness phone saw answered (its INVITE got a 2xx with a To tag).
#[derive(Clone)]
struct Answered {
    call_id: String,
    from: String,
    to: String,
    cseq: u32,
}

/// The service under test and what the harness's phones remember.
pub struct Harness {
    svc: Endpoint,
    /// The relay's sessions, opened by the harness when the endpoint asks.
    media: FakeMedia,
    start: Instant,
    now: Instant,
    /// Every address that sent the service something: the only places it may send to.
    seen: HashSet<SocketAddr>,
    /// The latest challenge each source received.
    challenges: HashMap<SocketAddr, TrunkChallenge>,
    /// The latest request the service sent to each source (a ringing phone, a NOTIFY), to respond to.
    requests_to: HashMap<SocketAddr, Message>,
    answered: Vec<Answered>,
    seq: u32,
    /// HARNESS_TRACE set: every message in and out goes to stderr (to read what a seed or a crash does).
    trace: bool,
    /// Messages the service sent, for tests.
    pub sent: usize,
}

impl Default for Harness {
    fn default() -> Self {
        Harness::new()
    }
}

impl Harness {
    /// A service for realm `pbx.test` with extensions 100–102 (password [`PASSWORD`]), a fake relay and a fixed
    /// wall clock.
    pub fn new() -> Self {
        let start = Instant::now();
        let mut core = PbxCore::new(
            CoreConfig::new(REALM),
            crate::auth::NonceKey::from_bytes([7; 32]),
        )
        .expect("static harness configuration");
        core.set_extensions(
            EXTENSIONS
                .iter()
                .map(|(number, auth_id)| {
                    ExtensionAuth::new(
                        number,
                        auth_id,
                        Credentials::from_password(auth_id, REALM, PASSWORD),
                    )
                })
                .collect(),
        );
        let local: SocketAddr = "127.0.0.1:5060".parse().expect("static address");
        let by_transport: Vec<(Transport, SocketAddr)> =
            Transport::ALL.iter().map(|t| (*t, local)).collect();
        let media = FakeMedia::default();
        let mut parts = Parts::for_tests(core);
        parts.media = Box::new(media.clone());
        parts.calls = crate::calls::Calls::new(
            crate::calls::CallConfig::default(),
            crate::calls::LocalAddrs {
                by_transport: by_transport.clone(),
                domain: REALM.into(),
            },
        );
        let mut svc = Endpoint::new(
            ServiceConfig {
                domain: REALM.into(),
                server_header: Some("Palisade".into()),
                limits: sip::Limits::default(),
            },
            parts,
            WallClock {
                mono: start,
                wall: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            },
        );
        svc.set_local_addrs(by_transport);
        Harness {
            svc,
            media,
            start,
            now: start,
            seen: HashSet::new(),
            challenges: HashMap::new(),
            requests_to: HashMap::new(),
            answered: Vec::new(),
            seq: 0,
            trace: std::env::var_os("HARNESS_TRACE").is_some(),
            sent: 0,
        }
    }

    /// Runs one fuzz input as a script. Panics when the service breaks one of the rules in the module doc.
    pub fn run(data: &[u8]) -> Harness {
        let mut h = Harness::new();
        let mut c = Cursor { data };
        for _ in 0..MAX_OPS {
            if c.data.is_empty() {
                break;
            }
            h.step(&mut c);
        }
        // Let every timer run out: retransmissions, transaction and call timeouts.
        for _ in 0..8 {
            h.advance(Duration::from_secs(40));
        }
        h
    }

    fn step(&mut self, c: &mut Cursor<'_>) {
        let source: SocketAddr = c.pick(&SOURCES).parse().expect("static address");
        let transport = c.pick(&Transport::ALL);
        match c.byte() % 6 {
            0 => {
                let n = c.u16() as usize % 2048;
                let data = Bytes::copy_from_slice(c.bytes(n));
                self.deliver(source, transport, data);
            }
            1 | 2 => {
                let text = self.request(c, source, transport);
                let mut data = text.into_bytes();
                // One byte replaced: the parser and every layer above it meet nearly-right messages.
                let (at, value) = (c.u16() as usize, c.byte());
                if value != 0 && !data.is_empty() {
                    let i = at % data.len();
                    data[i] = value;
                }
                self.deliver(source, transport, Bytes::from(data));
            }
            3 => self.respond(c, source, transport),
            4 => self.in_dialog(c, source, transport),
            _ => self.advance(Duration::from_millis(c.u16() as u64 * 10)),
        }
    }

    fn inbound(source: SocketAddr, transport: Transport, data: Bytes) -> Inbound {
        let local: SocketAddr = if source.is_ipv6() {
            "[::1]:5060".parse().expect("static address")
        } else {
            "127.0.0.1:5060".parse().expect("static address")
        };
        Inbound {
            transport,
            source,
            local,
            conn: transport
                .is_stream()
                .then(|| ConnId(source.port() as u64 * 8 + transport as u64)),
            data,
        }
    }

    fn deliver(&mut self, source: SocketAddr, transport: Transport, data: Bytes) {
        if self.trace {
            eprintln!("<- {source}\n{}", String::from_utf8_lossy(&data));
        }
        self.seen.insert(source);
        let out = self
            .svc
            .handle_inbound(Harness::inbound(source, transport, data), self.now);
        self.absorb(out);
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        // Bounded: a timer that keeps asking to run "now" must not hang the fuzzer.
        for _ in 0..64 {
            match self.svc.poll_timeout() {
                Some(t) if t <= self.now => {
                    let out = self.svc.handle_timeout(self.now);
                    self.absorb(out);
                }
                _ => break,
            }
        }
        let out = self.svc.handle_timeout(self.now);
        self.absorb(out);
    }

    /// Checks what the service sent and remembers what a phone would: challenges, requests to answer, answered
    /// dialogs.
    fn absorb(&mut self, out: Vec<Outbound>) {
        self.check_sent(out);
        // What the endpoint asks of the edge: relay ports are opened at once; there are no media applications.
        for _ in 0..64 {
            let Some(event) = self.svc.poll_event() else {
                break;
            };
            if let Event::AllocateMedia { call } = event {
                let allocated = self.media.allocate();
                let out = self.svc.media_ready(call, allocated, self.now);
                self.check_sent(out);
            }
        }
    }

    fn check_sent(&mut self, out: Vec<Outbound>) {
        for o in out {
            self.sent += 1;
            if self.trace {
                eprintln!("-> {}\n{}", o.dest, String::from_utf8_lossy(&o.data));
            }
            assert!(
                self.seen.contains(&o.dest),
                "the service sent to {} which never sent it anything",
                o.dest
            );
            let msg =
                match Message::parse(o.data.clone(), Framing::Datagram, &sip::Limits::default()) {
                    Ok(m) => m,
                    Err(e) => panic!(
                        "the service sent something that is not SIP ({e}): {:?}",
                        String::from_utf8_lossy(&o.data)
                    ),
                };
            if let Some(status) = msg.status() {
                for name in [HeaderName::WwwAuthenticate, HeaderName::ProxyAuthenticate] {
                    if let Some(ch) = msg.header_str(name).and_then(parse_challenge) {
                        self.challenges.insert(o.dest, ch);
                    }
                }
                if (200..300).contains(&status)
                    && msg.cseq().is_ok_and(|c| c.method == sip::Method::Invite)
                {
                    self.remember_answered(&msg);
                }
            } else if self.requests_to.len() < 64 || self.requests_to.contains_key(&o.dest) {
                self.requests_to.insert(o.dest, msg);
            }
        }
    }

    fn remember_answered(&mut self, msg: &Message) {
        let (Some(call_id), Some(from), Some(to), Ok(cseq)) = (
            msg.header_str(HeaderName::CallId),
            msg.header_str(HeaderName::From),
            msg.header_str(HeaderName::To),
            msg.cseq(),
        ) else {
            return;
        };
        if self.answered.len() >= 16 {
            self.answered.remove(0);
        }
        self.answered.push(Answered {
            call_id: call_id.into(),
            from: from.into(),
            to: to.into(),
            cseq: cseq.seq,
        });
    }

    /// A well-formed request from `source`, answering the latest challenge it got when the script says so.
    fn request(&mut self, c: &mut Cursor<'_>, source: SocketAddr, transport: Transport) -> String {
        self.seq += 1;
        let method = c.pick(&METHODS);
        let target = c.pick(&TARGETS);
        let (number, auth_id) = c.pick(&EXTENSIONS);
        let flags = c.byte();
        let call_id = format!("call-{}@harness", flags % 4);
        let cseq = self.seq;
        let ruri = if method == "REGISTER" {
            format!("sip:{REALM}")
        } else {
            format!("sip:{target}@{REALM}")
        };
        let mut headers = format!(
            "Via: SIP/2.0/{} {source};branch=z9hG4bK-h{};rport\r\nMax-Forwards: 70\r\n\
             From: <sip:{number}@{REALM}>;tag=f{}\r\nTo: <sip:{}@{REALM}>\r\nCall-ID: {call_id}\r\n\
             CSeq: {cseq} {method}\r\nContact: <sip:{number}@{source};transport={}>\r\n",
            transport.via_token(),
            self.seq,
            flags % 3,
            if method == "REGISTER" { number } else { target },
            transport.name(),
        );
        match method {
            "REGISTER" => headers.push_str(&format!(
                "Expires: {}\r\n",
                [0, 60, 3600][flags as usize % 3]
            )),
            "SUBSCRIBE" | "NOTIFY" => {
                headers.push_str("Event: message-summary\r\nExpires: 600\r\n")
            }
            "REFER" => headers.push_str(&format!("Refer-To: <sip:{target}@{REALM}>\r\n")),
            _ => {}
        }
        if flags & 0x80 != 0
            && let Some(ch) = self.challenges.remove(&source)
        {
            let name = if method == "REGISTER" {
                "Authorization"
            } else {
                "Proxy-Authorization"
            };
            let value = answer_challenge(&ch, auth_id, PASSWORD, method, &ruri);
            headers.push_str(&format!("{name}: {value}\r\n"));
        }
        let body = if flags & 0x40 != 0 {
            let ip = source.ip();
            let family = if ip.is_ipv6() { "IP6" } else { "IP4" };
            let crypto = if flags & 0x20 != 0 {
                "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n"
            } else {
                ""
            };
            let proto = if crypto.is_empty() {
                "RTP/AVP"
            } else {
                "RTP/SAVP"
            };
            format!(
                "v=0\r\no=- 1 1 IN {family} {ip}\r\ns=-\r\nc=IN {family} {ip}\r\nt=0 0\r\n\
                 m=audio {} {proto} 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n{crypto}a=sendrecv\r\n",
                4000 + (flags as u16 & 0x1f) * 2
            )
        } else {
            String::new()
        };
        if !body.is_empty() {
            headers.push_str("Content-Type: application/sdp\r\n");
        }
        format!(
            "{method} {ruri} SIP/2.0\r\n{headers}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    /// A response from `source` to the latest request the service sent it (a phone ringing, answering, busy).
    fn respond(&mut self, c: &mut Cursor<'_>, source: SocketAddr, transport: Transport) {
        let status = c.pick(&STATUSES);
        let Some(req) = self.requests_to.get(&source) else {
            return;
        };
        let mut text = format!("SIP/2.0 {status} Harness\r\n");
        for name in [
            HeaderName::Via,
            HeaderName::From,
            HeaderName::CallId,
            HeaderName::CSeq,
        ] {
            for v in req.header_values(name) {
                text.push_str(&format!(
                    "{}: {}\r\n",
                    name.as_str(),
                    String::from_utf8_lossy(v)
                ));
            }
        }
        if let Some(to) = req.header_str(HeaderName::To) {
            let tag = if status > 100 && !to.contains("tag=") {
                ";tag=callee"
            } else {
                ""
            };
            text.push_str(&format!("To: {to}{tag}\r\n"));
        }
        let invite = req.method() == Some(sip::Method::Invite);
        let body = if invite && (200..300).contains(&status) {
            text.push_str(&format!("Contact: <sip:phone@{source}>\r\n"));
            format!(
                "v=0\r\no=- 2 2 IN IP4 {0}\r\ns=-\r\nc=IN IP4 {0}\r\nt=0 0\r\nm=audio 4100 RTP/AVP 0 101\r\n\
                 a=rtpmap:101 telephone-event/8000\r\n",
                source.ip()
            )
        } else {
            String::new()
        };
        if !body.is_empty() {
            text.push_str("Content-Type: application/sdp\r\n");
        }
        text.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        self.deliver(source, transport, Bytes::from(text));
    }

    /// ACK or BYE inside a dialog a harness phone saw answered.
    fn in_dialog(&mut self, c: &mut Cursor<'_>, source: SocketAddr, transport: Transport) {
        if self.answered.is_empty() {
            return;
        }
        let d = self.answered[c.byte() as usize % self.answered.len()].clone();
        let (method, cseq) = if c.byte() & 1 == 0 {
            ("ACK", d.cseq)
        } else {
            ("BYE", d.cseq + 1)
        };
        self.seq += 1;
        let text = format!(
            "{method} sip:{REALM} SIP/2.0\r\nVia: SIP/2.0/{} {source};branch=z9hG4bK-d{};rport\r\n\
             Max-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\n\
             Content-Length: 0\r\n\r\n",
            transport.via_token(),
            self.seq,
            d.from,
            d.to,
            d.call_id
        );
        self.deliver(source, transport, Bytes::from(text));
    }

    /// Time since the harness started, for tests.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// The wall-clock time the service sees now.
    pub fn wall(&self) -> SystemTime {
        self.svc.wall(self.now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed seeds of the fuzz target (fuzz/seeds/service) run as tests.
    #[test]
    fn seeds_run_clean() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/service");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).expect("fuzz/seeds/service") {
            let data = std::fs::read(entry.expect("seed").path()).expect("seed");
            Harness::run(&data);
            n += 1;
        }
        assert!(n > 0, "no seeds in {}", dir.display());
    }

    /// A phone registers with the answered challenge and a call from another phone rings it and is answered:
    /// the script format reaches the deep paths the fuzzer needs.
    #[test]
    fn scripted_register_and_call_reach_the_callee() {
        // REGISTER from source 0 (UDP) without, then with, credentials of 101.
        let mut s = vec![0, 0, 1, 0, 0, 1, 0x00, 0, 0, 0];
        s.extend([0, 0, 1, 0, 0, 1, 0x80, 0, 0, 0]);
        // INVITE to 101 from source 1 as 100, without then with credentials, SDP body.
        s.extend([1, 0, 1, 1, 1, 0, 0x41, 0, 0, 0]);
        s.extend([1, 0, 1, 1, 1, 0, 0xc1, 0, 0, 0]);
        // Source 0 (the registered 101) answers 200.
        s.extend([0, 0, 3, 3]);
        let h = Harness::run(&s);
        assert!(h.sent >= 6, "sent {}", h.sent);
        assert!(!h.answered.is_empty(), "the call was never answered");
    }

    /// Random scripts never break the rules (a small, always-on slice of what the fuzzer does).
    #[test]
    fn random_scripts_run_clean() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
        for _ in 0..200 {
            let len = rng.gen_range(0..600);
            let data: Vec<u8> = (0..len).map(|_| rng.r#gen()).collect();
            Harness::run(&data);
        }
    }
}
