//! Property tests for the message parser: no input makes parsing or any accessor panic, and requests written by
//! `RequestBuilder` read back unchanged.

use std::hint::black_box;

use bytes::Bytes;
use proptest::prelude::*;
use sip::addr::{Contact, NameAddr};
use sip::uri::Uri;
use sip::{Framing, HeaderName, Limits, Message, RequestBuilder, ResponseBuilder};

/// Valid messages that the mutation strategy starts from.
const SEEDS: &[&[u8]] = &[
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;rport, SIP/2.0/TCP [2001:db8::1]:5070;branch=z9hG4bKx\r\n\
Max-Forwards: 70\r\n\
Route: <sip:ss2.biloxi.example.com;lr>\r\n\
From: \"Alice \\\"A\\\"\" <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@192.0.2.101:5060;transport=udp>;expires=60;q=0.5\r\n\
Content-Type: application/sdp; charset=\"utf-8\"\r\n\
Content-Length: 10\r\n\
\r\n\
v=0\r\ns=-\r\n",
    b"REGISTER sips:registrar.example.com SIP/2.0\r\n\
v: SIP/2.0/TLS 192.0.2.44:5061;branch=z9hG4bKnashds7;received=192.0.2.9\r\n\
f: sip:bob@example.com;tag=a73\r\n\
t: sip:bob@example.com\r\n\
i: 1j9FpLxk3uxtm8tn\r\n\
CSeq: 0002\r\n REGISTER\r\n\
m: *\r\n\
Expires: 0\r\n\
Authorization: Digest username=\"bob\", nonce=\"a,b\", response=\"32fe\"\r\n\
l: 0\r\n\
\r\n",
    b"SIP/2.0 180 Ringing\r\n\
Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
Record-Route: <sip:p1;lr>, <sip:p2;lr>\r\n\
From: <tel:+1-201-555-0123>;tag=1\r\n\
To: <sip:%61lice@example.com?Subject=x>;tag=2\r\n\
Call-ID: c\r\n\
CSeq: 1 INVITE\r\n\
Content-Length: 0\r\n\
\r\n",
];

fn uri(u: &Uri<'_>) {
    black_box((
        u.raw, u.scheme, u.user, u.password, u.host, u.port, u.params, u.headers,
    ));
    black_box((u.param("lr"), u.transport(), u.user_unescaped(), u.is_sip()));
    if let Some(h) = u.host {
        black_box((h.ip(), h.to_string()));
    }
}

fn name_addr(a: &NameAddr<'_>) {
    uri(&a.uri);
    black_box((
        a.tag(),
        a.param("expires"),
        a.display_name(),
        a.params_raw(),
    ));
}

/// Calls every accessor and builds responses; only panics matter here, not the results.
fn exercise(m: &Message) {
    black_box((
        m.is_request(),
        m.is_response(),
        m.method(),
        m.method_str(),
        m.version(),
    ));
    black_box((
        m.status(),
        m.reason(),
        m.body(),
        m.body_bytes(),
        m.wire(),
        m.request_uri_raw(),
    ));
    if let Some(Ok(u)) = m.request_uri() {
        uri(&u);
    }
    for h in m.headers() {
        if let Ok(name) = std::str::from_utf8(h.name_text) {
            black_box(m.other_header_values(name).count());
        }
    }
    for &name in HeaderName::ALL {
        black_box(m.header_elements(name).count());
        black_box(m.option_tags(name).count());
        black_box((m.header_occurrences(name), m.header_str(name)));
        for r in m.routes(name).flatten() {
            name_addr(&r);
        }
    }
    if let Ok(v) = m.top_via() {
        black_box((
            v.branch(),
            v.has_rfc3261_branch(),
            v.rport(),
            v.received(),
            v.params_raw(),
        ));
    }
    for v in m.vias().flatten() {
        black_box((v.transport, v.host, v.port, v.sent_by, v.branch()));
    }
    for c in m.contacts().flatten() {
        if let Contact::Addr(a) = c {
            name_addr(&a);
        }
    }
    if let Ok(f) = m.from() {
        name_addr(&f);
    }
    if let Ok(t) = m.to() {
        name_addr(&t);
    }
    let _ = black_box((
        m.cseq(),
        m.call_id(),
        m.max_forwards(),
        m.expires(),
        m.user_agent(),
    ));
    if let Some(Ok(ct)) = m.content_type() {
        black_box((ct.kind, ct.subtype, ct.param("charset")));
    }
    if m.is_request() {
        black_box(ResponseBuilder::new(m, 200).to_tag("t1").build());
        black_box(
            ResponseBuilder::new(m, 400)
                .received_from("192.0.2.1:5060".parse().unwrap())
                .build(),
        );
        black_box(
            ResponseBuilder::new(m, 100)
                .received_from("[2001:db8::2]:5061".parse().unwrap())
                .build(),
        );
        black_box(sip::builder::cancel_for(m));
        black_box(sip::builder::ack_for_non_2xx(m, m));
    }
}

fn parse_all_ways(data: &[u8]) {
    for framing in [Framing::Datagram, Framing::Stream] {
        match Message::parse(Bytes::copy_from_slice(data), framing, &Limits::default()) {
            Ok(m) => exercise(&m),
            Err(e) => {
                black_box((e.kind.status(), e.to_string()));
                if let Some(p) = e.partial() {
                    exercise(p);
                }
            }
        }
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Replace(usize, u8),
    Insert(usize, u8),
    Delete(usize, usize),
    Duplicate(usize, usize),
    Truncate(usize),
}

/// Bytes that matter to the SIP grammar, so that mutations hit interesting paths more often than `any::<u8>()`.
fn sip_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        any::<u8>(),
        prop::sample::select(b"\r\n \t:;,<>\"\\@[]=/?%0123456789*".to_vec()),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let idx = any::<prop::sample::Index>();
    prop_oneof![
        (idx.clone(), sip_byte()).prop_map(|(i, b)| Mutation::Replace(i.index(usize::MAX), b)),
        (idx.clone(), sip_byte()).prop_map(|(i, b)| Mutation::Insert(i.index(usize::MAX), b)),
        (idx.clone(), 1usize..64).prop_map(|(i, n)| Mutation::Delete(i.index(usize::MAX), n)),
        (idx.clone(), 1usize..64).prop_map(|(i, n)| Mutation::Duplicate(i.index(usize::MAX), n)),
        idx.prop_map(|i| Mutation::Truncate(i.index(usize::MAX))),
    ]
}

fn apply(mut v: Vec<u8>, muts: &[Mutation]) -> Vec<u8> {
    for m in muts {
        if v.is_empty() {
            break;
        }
        let at = |i: usize| i % v.len();
        match *m {
            Mutation::Replace(i, b) => {
                let i = at(i);
                v[i] = b;
            }
            Mutation::Insert(i, b) => {
                let i = at(i);
                v.insert(i, b);
            }
            Mutation::Delete(i, n) => {
                let i = at(i);
                let end = (i + n).min(v.len());
                v.drain(i..end);
            }
            Mutation::Duplicate(i, n) => {
                let i = at(i);
                let end = (i + n).min(v.len());
                let chunk = v[i..end].to_vec();
                v.splice(end..end, chunk);
            }
            Mutation::Truncate(i) => {
                let i = at(i);
                v.truncate(i);
            }
        }
    }
    v
}

const METHODS: &[&str] = &[
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "OPTIONS",
    "REGISTER",
    "PRACK",
    "SUBSCRIBE",
    "NOTIFY",
    "MESSAGE",
    "X-EXT",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..2048)) {
        parse_all_ways(&data);
    }

    #[test]
    fn arbitrary_sip_like_bytes_never_panic(data in prop::collection::vec(sip_byte(), 0..1024)) {
        let mut msg = b"OPTIONS sip:a@b SIP/2.0\r\nVia: ".to_vec();
        msg.extend_from_slice(&data);
        parse_all_ways(&msg);
    }

    #[test]
    fn mutated_messages_never_panic(
        seed in prop::sample::select(SEEDS),
        muts in prop::collection::vec(mutation(), 1..8),
    ) {
        let data = apply(seed.to_vec(), &muts);
        parse_all_ways(&data);
    }

    #[test]
    fn built_requests_round_trip(
        method in prop::sample::select(METHODS),
        user in "[a-zA-Z0-9_.!~*'()-]{1,16}",
        host in "[a-z][a-z0-9]{0,9}(\\.[a-z][a-z0-9]{0,9}){0,3}",
        port in prop::option::of(1u16..),
        branch in "[a-zA-Z0-9.-]{1,24}",
        call_id in "[a-zA-Z0-9.!%*_+`'~-]{1,32}(@[a-z0-9.]{1,16})?",
        seq in 0u32..(1 << 31),
        tag in "[a-zA-Z0-9]{1,16}",
        extra in "[a-zA-Z0-9 .,;=_-]{0,60}",
        body in prop::option::of(prop::collection::vec(any::<u8>(), 0..512)),
    ) {
        let uri = match port {
            Some(p) => format!("sip:{user}@{host}:{p}"),
            None => format!("sip:{user}@{host}"),
        };
        let mut b = RequestBuilder::new(method, &uri)
            .header(HeaderName::Via, format!("SIP/2.0/UDP {host};branch=z9hG4bK{branch}"))
            .header(HeaderName::From, format!("<sip:{user}@{host}>;tag={tag}"))
            .header(HeaderName::To, format!("<{uri}>"))
            .header(HeaderName::CallId, &call_id)
            .header(HeaderName::CSeq, format!("{seq} {method}"))
            .header_named("X-Prop", &extra);
        if let Some(body) = &body {
            b = b.body("application/octet-stream", Bytes::copy_from_slice(body));
        }
        let wire = b.build();
        for framing in [Framing::Stream, Framing::Datagram] {
            let m = Message::parse(wire.clone(), framing, &Limits::default())
                .map_err(|e| TestCaseError::fail(format!("{e}: {:?}", String::from_utf8_lossy(&wire))))?;
            prop_assert_eq!(m.method_str(), Some(method));
            prop_assert_eq!(m.request_uri_raw(), Some(uri.as_bytes()));
            let ruri = m.request_uri().unwrap().unwrap();
            prop_assert_eq!(ruri.user, Some(user.as_str()));
            prop_assert_eq!(ruri.port, port);
            prop_assert_eq!(m.call_id(), Some(call_id.as_bytes()));
            let cseq = m.cseq().unwrap();
            prop_assert_eq!((cseq.seq, cseq.method_text), (seq, method));
            prop_assert_eq!(m.body(), body.as_deref().unwrap_or(b""));
            let want_branch = format!("z9hG4bK{branch}");
            prop_assert_eq!(m.top_via().unwrap().branch(), Some(want_branch.as_str()));
            prop_assert_eq!(m.from().unwrap().tag(), Some(tag.as_str()));
            prop_assert_eq!(m.max_forwards(), Ok(Some(70)));
            prop_assert_eq!(m.other_header_values("x-prop").next(), Some(extra.trim().as_bytes()));
            exercise(&m);
        }
    }
}
