//! Parser micro-benchmarks: what one inbound message costs the proxy core.
//!
//! Run with `cargo bench -p palisade-sip --bench parse`. Results and the machine they were measured on are
//! recorded in docs/benchmarks.md.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sip::cseq::CSeq;
use sip::{Framing, Limits, Message, Method, ResponseBuilder};

/// A realistic INVITE as a proxy sees it after two hops: 3 Vias, Record-Route, Route, Contact, Allow,
/// Supported, User-Agent, Proxy-Authorization and an SDP offer (~1 KB in all).
const INVITE: &[u8] = b"INVITE sip:bob@biloxi.example.com;transport=udp SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport\r\n\
Via: SIP/2.0/UDP bigbox3.site3.atlanta.example.com;branch=z9hG4bK77ef4c2312983.1;received=192.0.2.2\r\n\
Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9;received=192.0.2.101\r\n\
Max-Forwards: 68\r\n\
Record-Route: <sip:bigbox3.site3.atlanta.example.com;lr>\r\n\
Route: <sip:ss2.biloxi.example.com;lr>\r\n\
From: \"Alice Liddell\" <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
To: \"Bob\" <sip:bob@biloxi.example.com>\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@192.0.2.101:5060;transport=udp>;+sip.instance=\"<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>\"\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, PRACK, UPDATE, REFER, NOTIFY, INFO\r\n\
Supported: replaces, timer, 100rel\r\n\
User-Agent: Palisade-Bench/1.0 (softphone 7.2.1)\r\n\
Proxy-Authorization: Digest username=\"alice\", realm=\"atlanta.example.com\", nonce=\"c60f3082ee1212b402a21831ae\", uri=\"sip:bob@biloxi.example.com\", response=\"245f23415f11432b3434341c022\", algorithm=MD5\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 228\r\n\
\r\n\
v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 192.0.2.101\r\n\
s=-\r\n\
c=IN IP4 192.0.2.101\r\n\
t=0 0\r\n\
m=audio 49172 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=ptime:20\r\n";

/// A REGISTER carrying digest credentials, as a phone sends it after a 401.
const REGISTER: &[u8] = b"REGISTER sip:registrar.biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.44:5060;branch=z9hG4bKnashds7;rport\r\n\
Max-Forwards: 70\r\n\
From: Bob <sip:bob@biloxi.example.com>;tag=a73kszlfl\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
Call-ID: 1j9FpLxk3uxtm8tn@192.0.2.44\r\n\
CSeq: 2 REGISTER\r\n\
Contact: <sip:bob@192.0.2.44:5060;transport=udp>;expires=3600\r\n\
Authorization: Digest username=\"bob\", realm=\"biloxi.example.com\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"sip:registrar.biloxi.example.com\", response=\"32fe2a6e1c4b0a8e2ff5a37e60ad5cb3\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"0a4f113b\"\r\n\
User-Agent: Palisade-Bench/1.0\r\n\
Expires: 3600\r\n\
Content-Length: 0\r\n\
\r\n";

/// The fields a stateless proxy reads from every request to match and forward it.
#[derive(Debug, PartialEq, Eq)]
struct ProxyView<'a> {
    branch: &'a str,
    from_tag: &'a str,
    to_uri: &'a str,
    to_tag: Option<&'a str>,
    call_id: &'a [u8],
    cseq_seq: u32,
    cseq_method: Method,
}

fn proxy_view(m: &Message) -> ProxyView<'_> {
    let via = m.top_via().expect("top Via");
    let from = m.from().expect("From");
    let to = m.to().expect("To");
    let CSeq { seq, method, .. } = m.cseq().expect("CSeq");
    ProxyView {
        branch: via.branch().expect("branch"),
        from_tag: from.tag().expect("From tag"),
        to_uri: to.uri.raw,
        to_tag: to.tag(),
        call_id: m.call_id().expect("Call-ID"),
        cseq_seq: seq,
        cseq_method: method,
    }
}

fn parse(buf: &Bytes) -> Message {
    Message::parse(buf.clone(), Framing::Datagram, &Limits::default()).expect("message parses")
}

/// Checks once, outside the timed loops, that every benchmark measures the success path.
fn sanity_check(invite: &Bytes, register: &Bytes) {
    let m = parse(invite);
    assert_eq!(m.method(), Some(Method::Invite));
    assert_eq!(m.body().len(), 228, "Content-Length must match the SDP");
    assert_eq!(
        proxy_view(&m),
        ProxyView {
            branch: "z9hG4bK776asdhds",
            from_tag: "1928301774",
            to_uri: "sip:bob@biloxi.example.com",
            to_tag: None,
            call_id: b"a84b4c76e66710@pc33.atlanta.example.com",
            cseq_seq: 314159,
            cseq_method: Method::Invite,
        }
    );
    assert_eq!(m.vias().filter(Result::is_ok).count(), 3);

    let r = parse(register);
    assert_eq!(r.method(), Some(Method::Register));
    assert!(
        r.header(sip::HeaderName::Authorization)
            .is_some_and(|a| a.starts_with(b"Digest "))
    );
    assert_eq!(r.contacts().filter(Result::is_ok).count(), 1);

    let resp = ResponseBuilder::new(&m, 200).to_tag("as83kd9bs").build();
    let resp = Message::parse(resp, Framing::Stream, &Limits::default()).expect("response parses");
    assert_eq!(resp.status(), Some(200));
    assert_eq!(resp.vias().count(), 3);
    assert_eq!(resp.to().unwrap().tag(), Some("as83kd9bs"));
    assert_eq!(resp.cseq().unwrap().seq, 314159);
}

fn benches(c: &mut Criterion) {
    let invite = Bytes::from_static(INVITE);
    let register = Bytes::from_static(REGISTER);
    sanity_check(&invite, &register);

    let mut g = c.benchmark_group("sip");
    g.throughput(Throughput::Bytes(INVITE.len() as u64));
    g.bench_function("invite_parse_and_proxy_view", |b| {
        b.iter(|| {
            let m = parse(black_box(&invite));
            let v = proxy_view(&m);
            black_box((
                v.branch,
                v.from_tag,
                v.to_uri,
                v.to_tag,
                v.call_id,
                v.cseq_seq,
                v.cseq_method,
            ));
        })
    });
    g.bench_function("invite_parse_only", |b| {
        b.iter(|| black_box(parse(black_box(&invite))))
    });
    g.throughput(Throughput::Bytes(REGISTER.len() as u64));
    g.bench_function("register_parse", |b| {
        b.iter(|| black_box(parse(black_box(&register))))
    });
    let m = parse(&invite);
    g.throughput(Throughput::Elements(1));
    g.bench_function("invite_build_200", |b| {
        b.iter(|| {
            black_box(
                ResponseBuilder::new(black_box(&m), 200)
                    .to_tag("as83kd9bs")
                    .build(),
            )
        })
    });
    g.finish();
}

criterion_group!(parse_benches, benches);
criterion_main!(parse_benches);
