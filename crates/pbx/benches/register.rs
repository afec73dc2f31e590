//! The authenticated REGISTER hot path of the endpoint, driven as the socket edge drives it: a REGISTER without
//! credentials (answered 401), then the same REGISTER with an MD5 `qop=auth` digest answer (answered 200), each
//! through `Endpoint::handle_inbound` (guard verdict, parse, validation, transaction layer, authenticator,
//! registrar, response building), with the store records drained and the timers run as the edge does.
//!
//! 1,000 extensions registering in turn from 250 source addresses; virtual time advances 1 ms per registration,
//! so the transaction table holds what 1,000 registrations/s leave in it (a 200's transaction lives 32 s on UDP).
//! Only the endpoint's calls are timed; building the requests and the phone's digest answer are not.
//! `cargo bench -p palisade-pbx --bench register` (docs/benchmarks.md).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use pbx::auth::{Credentials, NonceKey};
use pbx::core::{CoreConfig, ExtensionAuth, PbxCore};
use pbx::endpoint::{Endpoint, Inbound, Outbound, Parts, ServiceConfig, Transport, WallClock};
use pbx::trunks::{answer_challenge, parse_challenge};
use sip::{Framing, HeaderName, Message};

const REALM: &str = "pbx.test";
const PASSWORD: &str = "Bench2Pass9";
const USERS: u32 = 1000;
const SOURCES: u32 = 250;
const LOCAL: &str = "127.0.0.1:5060";

fn auth_id(n: u32) -> String {
    format!("a{n:04}x")
}

fn endpoint(start: Instant) -> Endpoint {
    let mut core = PbxCore::new(CoreConfig::new(REALM), NonceKey::from_bytes([9; 32]))
        .expect("static bench configuration");
    core.set_extensions(
        (0..USERS)
            .map(|i| {
                let number = (1000 + i).to_string();
                let id = auth_id(i);
                let creds = Credentials::from_password(&id, REALM, PASSWORD);
                ExtensionAuth::new(&number, &id, creds)
            })
            .collect(),
    );
    Endpoint::new(
        ServiceConfig {
            domain: REALM.into(),
            server_header: None,
            limits: sip::Limits::default(),
        },
        // The default guard (flood tiers included): 4 phones per source address stay far below them.
        Parts::for_tests(core),
        WallClock {
            mono: start,
            wall: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        },
    )
}

/// Registration `k` (of user `k % USERS`): its source address and its REGISTER (with `auth`, if any).
fn register(k: u64, cseq: u32, auth: Option<&str>) -> (SocketAddr, Bytes) {
    let user = (k % u64::from(USERS)) as u32;
    let ip = Ipv4Addr::new(127, 0, 1, 1 + (user % SOURCES) as u8);
    let source = SocketAddr::new(IpAddr::V4(ip), 5089);
    let number = 1000 + user;
    let auth = auth.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    let text = format!(
        "REGISTER sip:{REALM} SIP/2.0\r\nVia: SIP/2.0/UDP {source};branch=z9hG4bK-{k}-{cseq};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:{number}@{REALM}>;tag=t{k}\r\nTo: <sip:{number}@{REALM}>\r\n\
         Call-ID: c{k}@bench\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{number}@{source}>\r\nExpires: 3600\r\n\
         User-Agent: bench\r\n{auth}Content-Length: 0\r\n\r\n"
    );
    (source, Bytes::from(text))
}

fn inbound(source: SocketAddr, data: Bytes) -> Inbound {
    Inbound {
        transport: Transport::Udp,
        source,
        local: LOCAL.parse().expect("static address"),
        conn: None,
        data,
    }
}

fn response(out: &[Outbound]) -> Option<(u16, Message)> {
    let data = out.first()?.data.clone();
    let m = Message::parse(data, Framing::Datagram, &sip::Limits::default()).ok()?;
    Some((m.status()?, m))
}

/// The phone's answer to a 401: its Authorization header value.
fn answer(challenge: &Message, k: u64) -> String {
    let raw = challenge
        .header_str(HeaderName::WwwAuthenticate)
        .expect("a 401 carries a challenge");
    let c = parse_challenge(raw).expect("a Digest challenge");
    let user = (k % u64::from(USERS)) as u32;
    answer_challenge(
        &c,
        &auth_id(user),
        PASSWORD,
        "REGISTER",
        &format!("sip:{REALM}"),
    )
}

/// An endpoint and the registrations sent to it so far, in virtual time.
struct Run {
    ep: Endpoint,
    now: Instant,
    k: u64,
    /// Registrations not answered 200 (checked after the timed loop: it must stay 0).
    failed: u64,
}

impl Run {
    fn new() -> Self {
        let now = Instant::now();
        Run {
            ep: endpoint(now),
            now,
            k: 0,
            failed: 0,
        }
    }

    /// One registration: the time spent in the endpoint, and the final status.
    fn one(&mut self) -> (Duration, u16) {
        let k = self.k;
        self.k += 1;
        self.now += Duration::from_millis(1);
        let now = self.now;
        let (source, first) = register(k, 1, None);
        let t = Instant::now();
        let out = self.ep.handle_inbound(inbound(source, first), now);
        let mut spent = t.elapsed();
        let challenge = match response(&out) {
            Some((401, m)) => m,
            other => return (spent, other.map_or(0, |(s, _)| s)),
        };
        let auth = answer(&challenge, k);
        let (source, second) = register(k, 2, Some(&auth));
        let t = Instant::now();
        let out = self.ep.handle_inbound(inbound(source, second), now);
        while self.ep.poll_record().is_some() {}
        while self.ep.poll_event().is_some() {}
        if self.ep.poll_timeout().is_some_and(|due| due <= now) {
            black_box(self.ep.handle_timeout(now));
        }
        spent += t.elapsed();
        (spent, response(&out).map_or(0, |(s, _)| s))
    }
}

fn bench(c: &mut Criterion) {
    // Checked once outside the timed loop: every registration of two warm-up rounds ends in 200.
    let mut run = Run::new();
    for _ in 0..u64::from(USERS) * 2 {
        let (_, status) = run.one();
        assert_eq!(status, 200, "registration {} answered {status}", run.k);
    }
    c.bench_function("endpoint/register_401_then_200", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (spent, status) = run.one();
                run.failed += u64::from(status != 200);
                total += spent;
            }
            total
        })
    });
    assert_eq!(run.failed, 0, "registrations not answered 200 while timed");
}

criterion_group!(benches, bench);
criterion_main!(benches);
