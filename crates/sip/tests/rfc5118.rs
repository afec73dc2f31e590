//! RFC 5118 (SIP torture tests for IPv6), section 4: each message, rewritten here from the RFC's text, with the
//! outcome the RFC asks for.

use std::net::Ipv6Addr;

use bytes::Bytes;
use sip::uri::Host;
use sip::validate::{Capabilities, Triage, triage};
use sip::{Framing, Limits, Message};

fn register(ruri: &str, via: &str, contact: &str, body: &str) -> String {
    let ct = if body.is_empty() {
        String::new()
    } else {
        "Content-Type: application/sdp\r\n".to_string()
    };
    format!(
        "REGISTER {ruri} SIP/2.0\r\nTo: sip:user@example.com\r\nFrom: sip:user@example.com;tag=81x2\r\n\
         Via: {via}\r\nCall-ID: SSG9559905523997077@hlau_4100\r\nMax-Forwards: 70\r\nContact: {contact}\r\n\
         CSeq: 98176 REGISTER\r\n{ct}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

const VIA: &str = "SIP/2.0/UDP [2001:db8::9:1];branch=z9hG4bKas3-111";
const CONTACT: &str = "\"Caller\" <sip:caller@[2001:db8::1]>";

fn run(msg: &str) -> Triage {
    triage(
        Bytes::copy_from_slice(msg.as_bytes()),
        Framing::Datagram,
        &Limits::default(),
        &Capabilities::default(),
    )
}

fn accepted(msg: &str) -> Message {
    match run(msg) {
        Triage::Request(m) => m,
        other => panic!("expected acceptance, got {other:?}"),
    }
}

fn v6(s: &str) -> Host<'static> {
    Host::V6(s.parse::<Ipv6Addr>().unwrap())
}

#[test]
fn s4_1_valid_ipv6_reference() {
    let m = accepted(&register("sip:[2001:db8::10]", VIA, CONTACT, ""));
    assert_eq!(
        m.request_uri().unwrap().unwrap().host,
        Some(v6("2001:db8::10"))
    );
    assert_eq!(m.top_via().unwrap().host, v6("2001:db8::9:1"));
    let sip::addr::Contact::Addr(c) = m.contacts().next().unwrap().unwrap() else {
        panic!()
    };
    assert_eq!(c.uri.host, Some(v6("2001:db8::1")));
}

#[test]
fn s4_2_ipv6_without_brackets_is_400() {
    match run(&register("sip:2001:db8::10", VIA, CONTACT, "")) {
        Triage::Reject { rejection, .. } => assert_eq!(rejection.status, 400),
        other => panic!("expected 400, got {other:?}"),
    }
}

#[test]
fn s4_3_port_ambiguous_is_an_address() {
    let m = accepted(&register("sip:[2001:db8::10:5070]", VIA, CONTACT, ""));
    let uri = m.request_uri().unwrap().unwrap();
    assert_eq!(uri.host, Some(v6("2001:db8::10:5070")));
    assert_eq!(uri.port, None);
}

#[test]
fn s4_4_port_unambiguous() {
    let m = accepted(&register("sip:[2001:db8::10]:5070", VIA, CONTACT, ""));
    let uri = m.request_uri().unwrap().unwrap();
    assert_eq!(uri.host, Some(v6("2001:db8::10")));
    assert_eq!(uri.port, Some(5070));
}

#[test]
fn s4_5_received_with_and_without_delimiters() {
    for received in ["[2001:db8::9:255]", "2001:db8::9:255"] {
        let via =
            format!("SIP/2.0/UDP [2001:db8::9:1]:5060;received={received};branch=z9hG4bKas3-111");
        let m = accepted(&register("sip:[2001:db8::10]", &via, CONTACT, ""));
        let v = m.top_via().unwrap();
        assert_eq!(v.port, Some(5060));
        assert_eq!(v.received(), Some(received));
        assert_eq!(v.branch(), Some("z9hG4bKas3-111"));
    }
}

#[test]
fn s4_6_ipv6_in_sdp() {
    let sdp = "v=0\r\no=assistant 971731711378798081 0 IN IP6 2001:db8::20\r\ns=Live video feed\r\n\
               c=IN IP6 2001:db8::20\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
    let m = accepted(&register("sip:[2001:db8::10]", VIA, CONTACT, sdp));
    assert_eq!(m.body(), sdp.as_bytes());
}

#[test]
fn s4_7_multiple_ip_families_in_headers() {
    let via = "SIP/2.0/UDP [2001:db8::9:1];branch=z9hG4bKas3-111, SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKjhja8781hjuaij65144";
    let m = accepted(&register("sip:[2001:db8::10]", via, CONTACT, ""));
    let hosts: Vec<_> = m.vias().map(|v| v.unwrap().host).collect();
    assert_eq!(
        hosts,
        vec![v6("2001:db8::9:1"), Host::V4("192.0.2.1".parse().unwrap())]
    );
}

#[test]
fn s4_8_multiple_ip_families_in_sdp() {
    let sdp = "v=0\r\no=bob 280744730 28977631 IN IP4 host.example.com\r\ns=\r\nt=0 0\r\n\
               m=audio 22334 RTP/AVP 0\r\nc=IN IP4 192.0.2.1\r\nm=video 6024 RTP/AVP 107\r\n\
               c=IN IP6 2001:db8::1\r\na=rtpmap:107 H263-1998/90000\r\n";
    let m = accepted(&register("sip:[2001:db8::10]", VIA, CONTACT, sdp));
    assert_eq!(m.body().len(), sdp.len());
}

#[test]
fn s4_9_ipv4_mapped_ipv6() {
    let m = accepted(&register(
        "sip:[::ffff:192.0.2.10]",
        VIA,
        "<sip:caller@[::ffff:192.0.2.1]>",
        "",
    ));
    assert_eq!(
        m.request_uri().unwrap().unwrap().host,
        Some(v6("::ffff:192.0.2.10"))
    );
}

#[test]
fn s4_10_abnf_two_colons_valid_three_colons_invalid() {
    accepted(&register("sip:[2001:db8::192.0.2.1]", VIA, CONTACT, ""));
    match run(&register("sip:[2001:db8:::192.0.2.1]", VIA, CONTACT, "")) {
        Triage::Reject { rejection, .. } => assert_eq!(rejection.status, 400),
        other => panic!("expected 400, got {other:?}"),
    }
}
