//! Parses arbitrary bytes as a datagram and as a stream message and, whenever the parser hands back a message
//! (complete, or the partial one attached to an error), exercises every accessor and builds responses from it.
//! Nothing in here may panic: a remote peer controls every byte.
#![no_main]

use std::hint::black_box;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sip::addr::NameAddr;
use sip::uri::Uri;
use sip::{Framing, HeaderName, Limits, Message, ResponseBuilder};

fn uri(u: &Uri<'_>) {
    black_box((
        u.raw, u.scheme, u.user, u.password, u.host, u.port, u.params, u.headers,
    ));
    black_box(u.param("lr"));
    black_box(u.param("transport"));
    black_box(u.transport());
    black_box(u.user_unescaped());
    black_box(u.is_sip());
    if let Some(h) = u.host {
        black_box(h.ip());
        black_box(h.to_string());
    }
}

fn name_addr(a: &NameAddr<'_>) {
    uri(&a.uri);
    black_box(a.tag());
    black_box(a.param("expires"));
    black_box(a.display_name());
    black_box(a.params_raw());
}

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
        m.bytes().len(),
    ));
    if let Some(Ok(u)) = m.request_uri() {
        uri(&u);
    }
    black_box(m.request_uri_raw());
    for h in m.headers() {
        black_box((h.name, h.name_text, h.value));
        if h.name == HeaderName::Other
            && let Ok(name) = std::str::from_utf8(h.name_text)
        {
            black_box(m.other_header_values(name).count());
        }
    }
    black_box(m.header_count());
    for &name in HeaderName::ALL {
        black_box(m.header_elements(name).count());
        black_box(m.header_values(name).count());
        black_box(m.option_tags(name).count());
        black_box(m.header_occurrences(name));
        black_box(m.header_str(name));
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
        black_box((v.transport, v.host, v.port, v.sent_by));
    }
    for v in m.vias().flatten() {
        black_box((v.branch(), v.rport(), v.received()));
    }
    for c in m.contacts().flatten() {
        if let sip::addr::Contact::Addr(a) = c {
            name_addr(&a);
        }
    }
    let _ = black_box(m.cseq());
    if let Ok(f) = m.from() {
        name_addr(&f);
    }
    if let Ok(t) = m.to() {
        name_addr(&t);
    }
    black_box(m.call_id());
    let _ = black_box(m.max_forwards());
    let _ = black_box(m.expires());
    if let Some(Ok(ct)) = m.content_type() {
        black_box((
            ct.kind,
            ct.subtype,
            ct.is("application", "sdp"),
            ct.param("boundary"),
        ));
    }
    black_box(m.user_agent());

    if m.is_request() {
        for status in [100, 200, 400, 503] {
            black_box(ResponseBuilder::new(m, status).build());
        }
        let r = ResponseBuilder::with_reason(m, 486, "Busy\r\nX: injected")
            .to_tag("fz1")
            .received_from("192.0.2.7:4000".parse().unwrap())
            .header(HeaderName::Allow, "INVITE, ACK")
            .body("text/plain", Bytes::from_static(b"x"))
            .build();
        // What we send must at least not make our own parser panic.
        if let Ok(resp) = Message::parse(r, Framing::Stream, &Limits::default()) {
            black_box(resp.vias().count());
        }
        let r6 = ResponseBuilder::new(m, 200)
            .received_from("[2001:db8::1]:5060".parse().unwrap())
            .build();
        black_box(r6);
        black_box(sip::builder::cancel_for(m));
        black_box(sip::builder::ack_for_non_2xx(m, m));
    }
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    for framing in [Framing::Datagram, Framing::Stream] {
        match Message::parse(Bytes::copy_from_slice(data), framing, &limits) {
            Ok(m) => exercise(&m),
            Err(e) => {
                black_box((e.kind.status(), e.to_string()));
                if let Some(p) = e.partial() {
                    exercise(p);
                }
            }
        }
    }
});
