//! A simulation of the whole endpoint: the endpoint-level twin of the transaction-layer and call-layer
//! simulations. Three phones (100, 101, 102), a trunk and an attacker exchange real SIP with one [`Endpoint`] over
//! a virtual network in virtual time; the edge's part (opening relay sessions, running voicemail) is played by the
//! simulation when the endpoint asks ([`Event`]), and what the store would write is read with
//! [`Endpoint::poll_record`]. A seeded generator decides what the phones do that a real phone might do either way
//! (ring before answering or not, how long between steps), so each seed is a different, repeatable run.
//!
//! The scenario: the phones register (digest challenge answered); 100 calls 101, which answers; 101 transfers 100
//! to 102 by REFER; 100 hangs up; the trunk's DID call rings 100, which answers and the trunk hangs up; 100 calls
//! 101, which is busy, and leaves a voicemail; an attacker guessing passwords is banned and then ignored.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant, UNIX_EPOCH};

use bytes::Bytes;
use sip::{Framing, HeaderName, Limits, Message, Method};

use super::harness::FakeMedia;
use super::{
    AppEvent, Endpoint, Event, Inbound, Outbound, Parts, Record, ServiceConfig, WallClock,
};
use crate::auth::{Credentials, NonceKey};
use crate::calls::{AppKind, CallConfig, Calls, Disposition, LocalAddrs};
use crate::core::{CoreConfig, ExtensionAuth, PbxCore};
use crate::model::Counts;
use crate::registrar::Change;
use crate::trunks::{Trunk, answer_challenge, parse_challenge};
use sip::Transport;

const REALM: &str = "pbx.test";
const PASSWORD: &str = "Sim-Passw0rd-1";
const PBX: &str = "127.0.0.1:5060";
const TRUNK: &str = "198.51.100.10:5070";
const ATTACKER: &str = "203.0.113.66:5060";
/// Where the simulated voicemail application listens.
const APP: &str = "127.0.0.1:40000";

/// A seeded xorshift generator: the simulation's own choices, repeatable per seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What a user agent does with a new INVITE.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Answer,
    Busy,
}

/// One side of a dialog as a user agent keeps it, to send requests in it.
#[derive(Clone, Debug)]
struct DialogState {
    call_id: String,
    /// Our From value (with our tag) and the remote's To value (with its tag), as sent in requests.
    from: String,
    to: String,
    target: String,
    cseq: u32,
    ended: bool,
}

/// A phone or the trunk: answers what Palisade sends it the way a plain user agent does.
struct Ua {
    addr: SocketAddr,
    number: String,
    auth_id: String,
    mode: Mode,
    /// Whether it acknowledges a 2xx to its INVITE (a phone that vanished right after answering does not).
    acks: bool,
    dialogs: Vec<DialogState>,
    /// Every request Palisade sent it, and every response to its own requests.
    requests: Vec<Message>,
    responses: Vec<Message>,
}

struct Sim {
    ep: Endpoint,
    media: FakeMedia,
    now: Instant,
    rng: Rng,
    uas: Vec<Ua>,
    /// Messages on their way from the endpoint to a user agent.
    wire: VecDeque<Outbound>,
    apps: Vec<crate::calls::AppStart>,
    records: Vec<Record>,
    seq: u32,
}

fn parse(data: &Bytes) -> Message {
    Message::parse(data.clone(), Framing::Datagram, &Limits::default())
        .expect("the endpoint sends SIP")
}

fn header(msg: &Message, name: HeaderName) -> String {
    msg.header_str(name).unwrap_or_default().to_string()
}

fn sdp(addr: SocketAddr) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 {0}\r\ns=-\r\nc=IN IP4 {0}\r\nt=0 0\r\nm=audio {1} RTP/AVP 0 8 101\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n",
        addr.ip(),
        addr.port() + 1000
    )
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let start = Instant::now();
        let mut core = PbxCore::new(CoreConfig::new(REALM), NonceKey::from_bytes([9; 32]))
            .expect("static configuration");
        let ext = |n: &str, voicemail: bool| {
            let auth_id = format!("sim{n}");
            let mut e = ExtensionAuth::new(
                n,
                &auth_id,
                Credentials::from_password(&auth_id, REALM, PASSWORD),
            );
            e.voicemail = voicemail;
            e
        };
        core.set_extensions(vec![ext("100", false), ext("101", true), ext("102", false)]);
        let local: SocketAddr = PBX.parse().expect("static address");
        let media = FakeMedia::default();
        let mut parts = Parts::for_tests(core);
        parts.media = Box::new(media.clone());
        parts.calls = Calls::new(
            CallConfig::default(),
            LocalAddrs {
                by_transport: vec![(Transport::Udp, local)],
                domain: REALM.into(),
            },
        );
        parts.guard.set_config(guard::GuardConfig {
            auth_failures_before_ban: 3,
            ..Default::default()
        });
        let clock = WallClock {
            mono: start,
            wall: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        };
        let mut ep = Endpoint::new(
            ServiceConfig {
                domain: REALM.into(),
                server_header: None,
                limits: Limits::default(),
            },
            parts,
            clock,
        );
        ep.set_local_addrs(vec![(Transport::Udp, local)]);
        ep.enable_apps();
        ep.apply_trunks(
            vec![Trunk {
                name: "carrier".into(),
                host: "198.51.100.10".into(),
                port: 5070,
                transport: Transport::Udp,
                username: None,
                password: None,
                register: false,
                sources: Vec::new(),
                caller_id: None,
                dids: vec![("4930123456".into(), "100".into())],
                addresses: Vec::new(),
                auth_user: None,
                tls: Default::default(),
                srtp: Default::default(),
            }],
            start,
        );
        let ua = |addr: &str, number: &str| Ua {
            addr: addr.parse().expect("static address"),
            number: number.into(),
            auth_id: format!("sim{number}"),
            mode: Mode::Answer,
            acks: true,
            dialogs: Vec::new(),
            requests: Vec::new(),
            responses: Vec::new(),
        };
        Sim {
            ep,
            media,
            now: start,
            rng: Rng(seed.max(1)),
            uas: vec![
                ua("127.0.0.10:5060", "100"),
                ua("127.0.0.11:5062", "101"),
                ua("127.0.0.12:5064", "102"),
                ua(TRUNK, "carrier"),
                ua(ATTACKER, "attacker"),
            ],
            wire: VecDeque::new(),
            apps: Vec::new(),
            records: Vec::new(),
            seq: 0,
        }
    }

    fn ua(&mut self, number: &str) -> &mut Ua {
        self.uas
            .iter_mut()
            .find(|u| u.number == number)
            .expect("a simulated user agent")
    }

    /// Some time passes (a random part of `max`): the endpoint's timers run when due.
    fn wait(&mut self, max: Duration) {
        let ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX).max(1);
        let ms = self.rng.below(ms);
        self.advance(Duration::from_millis(ms));
    }

    fn advance(&mut self, by: Duration) {
        let until = self.now + by;
        for _ in 0..10_000 {
            match self.ep.poll_timeout() {
                Some(t) if t <= until => {
                    self.now = self.now.max(t);
                    let out = self.ep.handle_timeout(self.now);
                    self.carry(out);
                }
                _ => break,
            }
        }
        self.now = until;
    }

    /// A datagram from `from` reaches the endpoint; everything that follows (answers, the user agents' own
    /// reactions, the edge's work) runs until the network is quiet.
    fn send(&mut self, from: SocketAddr, text: String) {
        let out = self.ep.handle_inbound(
            Inbound {
                transport: Transport::Udp,
                source: from,
                local: PBX.parse().expect("static address"),
                conn: None,
                data: Bytes::from(text),
            },
            self.now,
        );
        self.carry(out);
    }

    /// Puts what the endpoint sent on the wire, plays the edge for its events, and lets the user agents react.
    fn carry(&mut self, out: Vec<Outbound>) {
        self.wire.extend(out);
        for _ in 0..1_000 {
            while let Some(event) = self.ep.poll_event() {
                let out = match event {
                    Event::AllocateMedia { call } => {
                        let opened = self.media.allocate();
                        self.ep.media_ready(call, opened, self.now)
                    }
                    Event::StartApp(start) => {
                        let call = start.call;
                        self.apps.push(start);
                        let addr = APP.parse().expect("static address");
                        self.ep.app_ready(call, Ok(addr), self.now)
                    }
                    Event::AppDigit { .. }
                    | Event::StopApp { .. }
                    | Event::QueuePosition { .. }
                    | Event::AppRefused { .. } => Vec::new(),
                };
                self.wire.extend(out);
            }
            let Some(o) = self.wire.pop_front() else {
                return;
            };
            assert_eq!(o.transport, Transport::Udp);
            let msg = parse(&o.data);
            let Some(i) = self.uas.iter().position(|u| u.addr == o.dest) else {
                panic!("sent to {} which is nobody in the simulation", o.dest);
            };
            let replies = self.react(i, msg);
            for text in replies {
                let from = self.uas[i].addr;
                let out = self.ep.handle_inbound(
                    Inbound {
                        transport: Transport::Udp,
                        source: from,
                        local: PBX.parse().expect("static address"),
                        conn: None,
                        data: Bytes::from(text),
                    },
                    self.now,
                );
                self.wire.extend(out);
            }
        }
        panic!("the network never went quiet");
    }

    /// What user agent `i` sends back for `msg`.
    fn react(&mut self, i: usize, msg: Message) -> Vec<String> {
        let ring_first = self.rng.below(2) == 0;
        self.seq += 1;
        let seq = self.seq;
        let ua = &mut self.uas[i];
        let Some(method) = msg.method() else {
            ua.responses.push(msg.clone());
            return ua.on_response(&msg, seq).into_iter().collect();
        };
        ua.requests.push(msg.clone());
        match method {
            Method::Ack => Vec::new(),
            Method::Invite if msg.to().is_ok_and(|t| t.tag().is_none()) => match ua.mode {
                Mode::Busy => vec![ua.response(&msg, 486, None)],
                Mode::Answer => {
                    let mut out = Vec::new();
                    if ring_first {
                        out.push(ua.response(&msg, 180, None));
                    }
                    let ok = ua.response(&msg, 200, Some(sdp(ua.addr)));
                    ua.dialogs.push(DialogState {
                        call_id: header(&msg, HeaderName::CallId),
                        from: format!("{};tag=uas{}", header(&msg, HeaderName::To), ua.number),
                        to: header(&msg, HeaderName::From),
                        target: contact_uri(&msg),
                        cseq: 1,
                        ended: false,
                    });
                    out.push(ok);
                    out
                }
            },
            Method::Invite => vec![ua.response(&msg, 200, Some(sdp(ua.addr)))],
            _ => {
                if method == Method::Bye {
                    let call_id = header(&msg, HeaderName::CallId);
                    for d in ua.dialogs.iter_mut().filter(|d| d.call_id == call_id) {
                        d.ended = true;
                    }
                }
                vec![ua.response(&msg, 200, None)]
            }
        }
    }

    fn request(&mut self, from: &str, method: &str, to: &str, auth: Option<&Message>) -> String {
        self.seq += 1;
        let seq = self.seq;
        let ua = self.ua(from);
        ua.new_request(method, to, seq, auth)
    }

    /// `number` registers: challenged, then accepted with its password.
    fn register(&mut self, number: &str) {
        let addr = self.ua(number).addr;
        let first = self.request(number, "REGISTER", number, None);
        self.send(addr, first);
        let challenge = self
            .ua(number)
            .responses
            .last()
            .cloned()
            .expect("a challenge");
        assert_eq!(challenge.status(), Some(401));
        let second = self.request(number, "REGISTER", number, Some(&challenge));
        self.send(addr, second);
        let ok = self
            .ua(number)
            .responses
            .last()
            .cloned()
            .expect("an answer");
        assert_eq!(ok.status(), Some(200), "{number} registered");
    }

    /// `from` calls `to`: challenged (407), then the call goes on with credentials. Returns the final status.
    fn call(&mut self, from: &str, to: &str) -> u16 {
        let addr = self.ua(from).addr;
        let invite = self.request(from, "INVITE", to, None);
        self.send(addr, invite);
        let challenge = self
            .ua(from)
            .responses
            .last()
            .cloned()
            .expect("a challenge");
        assert_eq!(challenge.status(), Some(407));
        let invite = self.request(from, "INVITE", to, Some(&challenge));
        self.send(addr, invite);
        self.final_status(from)
    }

    fn final_status(&mut self, number: &str) -> u16 {
        self.ua(number)
            .responses
            .iter()
            .rev()
            .filter_map(Message::status)
            .find(|s| *s >= 200)
            .unwrap_or(0)
    }

    /// `number` sends `method` in its latest live dialog.
    fn in_dialog(&mut self, number: &str, method: &str, extra: &str) {
        self.seq += 1;
        let seq = self.seq;
        let ua = self.ua(number);
        let addr = ua.addr;
        let text = ua.in_dialog(method, extra, seq).expect("a live dialog");
        self.send(addr, text);
    }

    fn drain_records(&mut self) {
        while let Some(r) = self.ep.poll_record() {
            self.records.push(r);
        }
    }
}

fn contact_uri(msg: &Message) -> String {
    let contact = header(msg, HeaderName::Contact);
    let start = contact.find('<').map_or(0, |i| i + 1);
    let end = contact[start..]
        .find('>')
        .map_or(contact.len(), |i| start + i);
    contact[start..end].to_string()
}

impl Ua {
    /// A new request outside any dialog (REGISTER, INVITE, OPTIONS), answering `challenge` when given.
    fn new_request(
        &mut self,
        method: &str,
        to: &str,
        seq: u32,
        challenge: Option<&Message>,
    ) -> String {
        let ruri = if method == "REGISTER" {
            format!("sip:{REALM}")
        } else {
            format!("sip:{to}@{REALM}")
        };
        let mut headers = format!(
            "Via: SIP/2.0/UDP {0};branch=z9hG4bK-sim{seq};rport\r\nMax-Forwards: 70\r\n\
             From: <sip:{1}@{REALM}>;tag=t{1}\r\nTo: <sip:{to}@{REALM}>\r\nCall-ID: {method}-{1}-{2}@sim\r\n\
             CSeq: {seq} {method}\r\nContact: <sip:{1}@{0}>\r\n",
            self.addr,
            self.number,
            // A challenged request is sent again in the same call: its Call-ID must not change.
            if challenge.is_some() { seq - 1 } else { seq },
        );
        if method == "REGISTER" {
            headers.push_str("Expires: 3600\r\n");
        }
        if let Some(ch) = challenge {
            let (name, value) = if method == "REGISTER" {
                ("Authorization", header(ch, HeaderName::WwwAuthenticate))
            } else {
                (
                    "Proxy-Authorization",
                    header(ch, HeaderName::ProxyAuthenticate),
                )
            };
            let parsed = parse_challenge(&value).expect("a digest challenge");
            let password = if self.number == "attacker" {
                "guess"
            } else {
                PASSWORD
            };
            let answer = answer_challenge(&parsed, &self.auth_id, password, method, &ruri);
            headers.push_str(&format!("{name}: {answer}\r\n"));
        }
        let body = if method == "INVITE" {
            headers.push_str("Content-Type: application/sdp\r\n");
            sdp(self.addr)
        } else {
            String::new()
        };
        format!(
            "{method} {ruri} SIP/2.0\r\n{headers}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    /// A response to `req` (a To tag of ours when it has none), with `body` as SDP.
    fn response(&self, req: &Message, status: u16, body: Option<String>) -> String {
        let mut text = format!("SIP/2.0 {status} Sim\r\n");
        for v in req.header_values(HeaderName::Via) {
            text.push_str(&format!("Via: {}\r\n", String::from_utf8_lossy(v)));
        }
        let to = header(req, HeaderName::To);
        let to = if to.contains("tag=") || status == 100 {
            to
        } else {
            format!("{to};tag=uas{}", self.number)
        };
        text.push_str(&format!(
            "From: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\n",
            header(req, HeaderName::From),
            header(req, HeaderName::CallId),
            header(req, HeaderName::CSeq),
        ));
        if req.method() == Some(Method::Invite) && (200..300).contains(&status) {
            text.push_str(&format!("Contact: <sip:{}@{}>\r\n", self.number, self.addr));
        }
        let body = body.unwrap_or_default();
        if !body.is_empty() {
            text.push_str("Content-Type: application/sdp\r\n");
        }
        text.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        text
    }

    /// A 2xx to our INVITE is acknowledged and its dialog kept.
    fn on_response(&mut self, msg: &Message, seq: u32) -> Option<String> {
        let cseq = msg.cseq().ok()?;
        if cseq.method != Method::Invite || !msg.status().is_some_and(|s| (200..300).contains(&s)) {
            return None;
        }
        let call_id = header(msg, HeaderName::CallId);
        let dialog = DialogState {
            call_id: call_id.clone(),
            from: header(msg, HeaderName::From),
            to: header(msg, HeaderName::To),
            target: contact_uri(msg),
            cseq: cseq.seq,
            ended: false,
        };
        let ack = format!(
            "ACK {} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK-ack{seq};rport\r\nMax-Forwards: 70\r\n\
             From: {}\r\nTo: {}\r\nCall-ID: {call_id}\r\nCSeq: {} ACK\r\nContent-Length: 0\r\n\r\n",
            dialog.target, self.addr, dialog.from, dialog.to, cseq.seq
        );
        if !self.dialogs.iter().any(|d| d.call_id == call_id) {
            self.dialogs.push(dialog);
        }
        self.acks.then_some(ack)
    }

    /// A request in the latest dialog still up.
    fn in_dialog(&mut self, method: &str, extra: &str, seq: u32) -> Option<String> {
        let addr = self.addr;
        let d = self.dialogs.iter_mut().rev().find(|d| !d.ended)?;
        d.cseq += 1;
        if method == "BYE" {
            d.ended = true;
        }
        Some(format!(
            "{method} {} SIP/2.0\r\nVia: SIP/2.0/UDP {addr};branch=z9hG4bK-dlg{seq};rport\r\nMax-Forwards: 70\r\n\
             From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {} {method}\r\nContact: <sip:{addr}>\r\n{extra}\
             Content-Length: 0\r\n\r\n",
            d.target, d.from, d.to, d.call_id, d.cseq
        ))
    }

    fn live_dialogs(&self) -> usize {
        self.dialogs.iter().filter(|d| !d.ended).count()
    }

    fn got(&self, method: Method) -> usize {
        self.requests
            .iter()
            .filter(|m| m.method() == Some(method))
            .count()
    }
}

fn run(seed: u64) {
    let mut sim = Sim::new(seed);
    let step = Duration::from_millis(300);

    // The phones register.
    for n in ["100", "101", "102"] {
        sim.register(n);
        sim.wait(step);
    }
    sim.drain_records();
    let registered = sim
        .records
        .iter()
        .filter(|r| matches!(r, Record::Binding(Change::Upsert(_))))
        .count();
    assert_eq!(registered, 3, "seed {seed}: every registration is recorded");

    // 100 calls 101, which answers; then 101 hands 100 over to 102.
    assert_eq!(sim.call("100", "101"), 200, "seed {seed}");
    assert_eq!(sim.media.open(), 1, "one relay session for the call");
    assert_eq!(sim.ua("101").live_dialogs(), 1);
    sim.wait(step);
    sim.in_dialog("101", "REFER", &format!("Refer-To: <sip:102@{REALM}>\r\n"));
    sim.wait(step);
    assert!(
        sim.ua("101")
            .responses
            .iter()
            .any(|r| r.status() == Some(202)),
        "seed {seed}: REFER accepted"
    );
    assert_eq!(
        sim.ua("102").live_dialogs(),
        1,
        "seed {seed}: 102 took the call"
    );
    assert!(
        sim.ua("101").got(Method::Notify) >= 1,
        "seed {seed}: transfer progress"
    );
    sim.wait(step);
    // The transferee hangs up: the transfer target is told, the relay session closes.
    sim.in_dialog("100", "BYE", "");
    sim.wait(step);
    assert_eq!(
        sim.ua("102").live_dialogs(),
        0,
        "seed {seed}: 102 got the BYE"
    );
    assert_eq!(sim.media.open(), 0, "seed {seed}: relay released");

    // A call from the trunk to its DID rings 100; the trunk hangs up.
    let trunk: SocketAddr = TRUNK.parse().expect("static address");
    let invite = sim.request("carrier", "INVITE", "4930123456", None);
    sim.send(trunk, invite);
    assert_eq!(
        sim.final_status("carrier"),
        200,
        "seed {seed}: DID call answered"
    );
    sim.wait(step);
    sim.in_dialog("carrier", "BYE", "");
    assert_eq!(
        sim.ua("100").live_dialogs(),
        0,
        "seed {seed}: 100 got the BYE"
    );

    // 101 is busy: 100 leaves a message in its mailbox.
    sim.ua("101").mode = Mode::Busy;
    assert_eq!(
        sim.call("100", "101"),
        200,
        "seed {seed}: answered by voicemail"
    );
    let app = sim.apps.last().cloned().expect("a voicemail application");
    assert_eq!(
        app.kind,
        AppKind::Deposit {
            mailbox: "101".into()
        }
    );
    sim.wait(Duration::from_secs(5));
    let out = sim.ep.on_app_event(
        AppEvent::MailboxChanged {
            mailbox: "101".into(),
            counts: Counts { new: 1, old: 0 },
        },
        sim.now,
    );
    sim.carry(out);
    let out = sim
        .ep
        .on_app_event(AppEvent::Hangup { call: app.call }, sim.now);
    sim.carry(out);
    assert_eq!(
        sim.ua("100").live_dialogs(),
        0,
        "seed {seed}: voicemail hung up"
    );

    // An attacker guesses 101's password: banned after three failures, then not answered at all.
    let attacker: SocketAddr = ATTACKER.parse().expect("static address");
    sim.ua("attacker").auth_id = "sim101".into();
    for _ in 0..3 {
        let first = sim.request("attacker", "REGISTER", "101", None);
        sim.send(attacker, first);
        let challenge = sim.ua("attacker").responses.last().cloned();
        if let Some(ch) = challenge.filter(|c| c.status() == Some(401)) {
            let guess = sim.request("attacker", "REGISTER", "101", Some(&ch));
            sim.send(attacker, guess);
        }
    }
    let answered = sim.ua("attacker").responses.len();
    let options = sim.request("attacker", "OPTIONS", "100", None);
    sim.send(attacker, options);
    assert_eq!(
        sim.ua("attacker").responses.len(),
        answered,
        "seed {seed}: a banned source gets silence"
    );

    // Everything settles (transactions time out) and the store sees what happened.
    sim.advance(Duration::from_secs(40));
    sim.drain_records();
    let calls: Vec<Disposition> = sim
        .records
        .iter()
        .filter_map(|r| match r {
            Record::Call(c) => Some(c.disposition),
            _ => None,
        })
        .collect();
    assert!(
        calls.len() >= 3 && calls.iter().all(|d| *d == Disposition::Answered),
        "seed {seed}: {calls:?}"
    );
    assert!(
        sim.records
            .iter()
            .any(|r| matches!(r, Record::Guard(guard::GuardEvent::Banned { .. }))),
        "seed {seed}: the ban is recorded"
    );
    assert!(
        sim.records.iter().any(|r| matches!(r, Record::Security(_))),
        "seed {seed}: the failed authentications are recorded"
    );
    assert_eq!(sim.ep.state_sizes().server_transactions, 0);
    assert_eq!(sim.ep.state_sizes().client_transactions, 0);
}

/// A caller that never ACKs Palisade's 2xx gets the very same 2xx again (T1, doubling up to T2) until 64·T1,
/// then both sides are hung up and the call is recorded as ended for want of an ACK.
#[test]
fn an_unacknowledged_2xx_is_sent_again_then_the_call_ends() {
    let mut sim = Sim::new(1);
    for n in ["100", "101"] {
        sim.register(n);
    }
    sim.ua("100").acks = false;
    assert_eq!(sim.call("100", "101"), 200);
    let oks = |sim: &mut Sim| -> Vec<Bytes> {
        sim.ua("100")
            .responses
            .iter()
            .filter(|r| {
                r.status() == Some(200) && r.cseq().is_ok_and(|c| c.method == Method::Invite)
            })
            .map(Message::wire)
            .collect()
    };
    let first = oks(&mut sim);
    assert_eq!(first.len(), 1);
    sim.advance(Duration::from_secs(10));
    let again = oks(&mut sim);
    assert!(again.len() >= 4, "retransmitted: {}", again.len());
    assert!(
        again.iter().all(|b| *b == first[0]),
        "the same bytes each time"
    );
    sim.advance(Duration::from_secs(30));
    assert_eq!(sim.ua("101").live_dialogs(), 0, "the callee got a BYE");
    assert!(sim.ua("100").got(Method::Bye) >= 1, "the caller got a BYE");
    sim.drain_records();
    assert!(
        sim.records
            .iter()
            .any(|r| matches!(r, Record::Call(c) if c.reason == "no_ack")),
        "the call is recorded as ended without ACK"
    );
    let retransmitted = oks(&mut sim).len() - 1;
    assert!((6..=10).contains(&retransmitted), "{retransmitted}");
}

#[test]
fn phones_a_trunk_and_an_attacker_in_virtual_time() {
    for seed in 1..=8 {
        run(seed);
    }
}

/// A REGISTER keeps no server transaction (answered once, as Kamailio's `sl` answers): its retransmission — the same
/// bytes — is answered 200 again instead of being refused as a nonce-count replay, while another request reusing
/// its credentials (a new branch, so not a retransmission) is still a replay.
#[test]
fn a_register_keeps_no_transaction_and_its_retransmission_is_answered_again() {
    let mut sim = Sim::new(1);
    let addr = sim.ua("100").addr;
    let first = sim.request("100", "REGISTER", "100", None);
    sim.send(addr, first);
    let challenge = sim
        .ua("100")
        .responses
        .last()
        .cloned()
        .expect("a challenge");
    assert_eq!(challenge.status(), Some(401));
    let second = sim.request("100", "REGISTER", "100", Some(&challenge));
    let statuses = |sim: &mut Sim| -> Vec<u16> {
        sim.ua("100")
            .responses
            .iter()
            .filter_map(Message::status)
            .collect()
    };
    sim.send(addr, second.clone());
    assert_eq!(statuses(&mut sim), [401, 200]);
    assert_eq!(
        sim.ep.state_sizes().server_transactions,
        0,
        "nothing kept for an answered REGISTER"
    );
    sim.advance(Duration::from_millis(500));
    sim.send(addr, second.clone());
    assert_eq!(
        statuses(&mut sim),
        [401, 200, 200],
        "the retransmission is answered again"
    );
    let replayed = second.replacen("branch=z9hG4bK-sim", "branch=z9hG4bK-other", 1);
    assert_ne!(replayed, second);
    sim.send(addr, replayed);
    let last = *statuses(&mut sim).last().expect("an answer");
    assert_ne!(
        last, 200,
        "the same nonce count on another request is a replay"
    );
    assert_eq!(sim.ep.state_sizes().server_transactions, 0);
}
