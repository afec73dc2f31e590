//! Call-flow simulations: the B2BUA driven with real SIP messages and a fake relay, time passed in.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use sip::transaction::{Peer, ServerTxId, Transport};
use sip::{Framing, Limits, Message};

use super::*;
use crate::registrar::Binding;

#[derive(Default)]
struct FakeMedia {
    next: u64,
    live: HashMap<u64, [Option<(SocketAddr, SocketAddr)>; 2]>,
    released: Vec<u64>,
    idle: Option<Duration>,
    exhausted: bool,
    /// (session, is leg A) → SRTP set.
    crypto: HashMap<(u64, bool), bool>,
    /// (session, is leg A) → what the relay was told for RTP and RTCP.
    remotes: HashMap<(u64, bool), (::media::Remote, ::media::Remote)>,
}

impl FakeMedia {
    /// What the edge does for [`CallOutput::AllocateMedia`].
    fn allocate(&mut self) -> Result<MediaId, MediaError> {
        if self.exhausted {
            return Err(MediaError::Exhausted);
        }
        self.next += 1;
        self.live.insert(self.next, [None, None]);
        Ok(MediaId(self.next))
    }
}

impl MediaControl for FakeMedia {
    fn local_port(&self, id: MediaId, leg: Leg) -> Option<u16> {
        self.live
            .get(&id.0)
            .map(|_| if leg == Leg::A { 30000 } else { 30002 })
    }
    fn advertise_ip(&self) -> IpAddr {
        "192.0.2.1".parse().unwrap()
    }
    fn set_remote(&mut self, id: MediaId, leg: Leg, rtp: ::media::Remote, rtcp: ::media::Remote) {
        if let Some(l) = self.live.get_mut(&id.0) {
            l[if leg == Leg::A { 0 } else { 1 }] = Some((rtp.signalled, rtcp.signalled));
        }
        self.remotes.insert((id.0, leg == Leg::A), (rtp, rtcp));
    }
    fn idle_for(&self, _id: MediaId, _now: Instant) -> Option<Duration> {
        self.idle
    }
    fn set_crypto(&mut self, id: MediaId, leg: Leg, crypto: Option<::media::LegCrypto>) {
        self.crypto.insert((id.0, leg == Leg::A), crypto.is_some());
    }
    fn release(&mut self, id: MediaId) {
        self.live.remove(&id.0);
        self.released.push(id.0);
    }
}

const OFFER: &str = "v=0\r\no=alice 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n\
                     m=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
                     a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ssrc:1234 cname:sip:100@10.0.0.5\r\na=sendrecv\r\n";
const ANSWER: &str = "v=0\r\no=bob 7 7 IN IP4 10.0.0.6\r\ns=-\r\nc=IN IP4 10.0.0.6\r\nt=0 0\r\n\
                      m=audio 5000 RTP/AVP 8 9 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:9 G722/8000\r\n\
                      a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";

fn parse(s: &str) -> Message {
    Message::parse(
        Bytes::copy_from_slice(s.as_bytes()),
        Framing::Stream,
        &Limits::default(),
    )
    .unwrap()
}

fn parse_bytes(b: &Bytes) -> Message {
    Message::parse(b.clone(), Framing::Stream, &Limits::default()).unwrap()
}

fn local() -> LocalAddrs {
    LocalAddrs {
        by_transport: vec![
            ("UDP", "192.0.2.1:5060".parse().unwrap()),
            ("TCP", "192.0.2.1:5060".parse().unwrap()),
            ("TLS", "192.0.2.1:5061".parse().unwrap()),
        ],
        domain: "pbx.test".into(),
    }
}

fn binding(contact: &str, source: &str) -> Binding {
    Binding {
        aor: "101".into(),
        contact: contact.into(),
        transport: "UDP".into(),
        source: source.parse().unwrap(),
        local: "192.0.2.1:5060".parse().unwrap(),
        expires_at: u64::MAX,
        call_id: "r".into(),
        cseq: 1,
        q: None,
        user_agent: None,
    }
}

fn party(n: &str) -> Party {
    Party {
        number: n.into(),
        display_name: None,
        srtp: crate::model::SrtpMode::Enabled,
        voicemail: false,
        forward: Forwarding::default(),
        extension: true,
    }
}

fn a_peer() -> Peer {
    Peer::new("203.0.113.5:5062".parse().unwrap(), Transport::Udp)
}

fn invite_from_a() -> Message {
    let s = format!(
        "INVITE sip:101@pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bKa1;rport\r\n\
         Max-Forwards: 70\r\nFrom: \"Alice\" <sip:100@pbx.test>;tag=atag\r\nTo: <sip:101@pbx.test>\r\n\
         Call-ID: call-a@10.0.0.5\r\nCSeq: 20 INVITE\r\nContact: <sip:100@10.0.0.5:5062>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{OFFER}",
        OFFER.len()
    );
    parse(&s)
}

/// A response from B to a request we sent, echoing its dialog headers.
fn response_to(request: &Message, status: u16, to_tag: &str, body: Option<&str>) -> Message {
    let mut b = sip::ResponseBuilder::new(request, status).to_tag(to_tag);
    if (200..300).contains(&status) {
        b = b.header(sip::HeaderName::Contact, "<sip:101@10.0.0.6:5070>");
    }
    if let Some(body) = body {
        b = b.body("application/sdp", Bytes::copy_from_slice(body.as_bytes()));
    }
    parse_bytes(&b.build())
}

/// The caller's offer with SRTP (RTP/SAVP and its key).
fn srtp_offer() -> String {
    OFFER
        .replace("RTP/AVP", "RTP/SAVP")
        .replace("a=sendrecv", &format!("{CRYPTO_A}\r\na=sendrecv"))
}

/// The caller over TLS.
fn tls_peer() -> Peer {
    Peer::new("203.0.113.5:5061".parse().unwrap(), Transport::Tls)
}

struct World {
    calls: Calls,
    media: FakeMedia,
    now: Instant,
    wall: SystemTime,
}

impl World {
    /// What the call layer asked for, with its requests for relay ports answered as the edge would.
    fn outputs(&mut self) -> Vec<CallOutput> {
        let mut all = Vec::new();
        loop {
            let batch = self.calls.take_outputs();
            if batch.is_empty() {
                return all;
            }
            for o in batch {
                match o {
                    CallOutput::AllocateMedia { call } => {
                        let allocated = self.media.allocate();
                        let (now, wall) = (self.now, self.wall);
                        self.calls
                            .media_ready(call, allocated, &mut self.media, now, wall);
                    }
                    o => all.push(o),
                }
            }
        }
    }

    fn new() -> Self {
        World {
            calls: Calls::new(CallConfig::default(), local()),
            media: FakeMedia::default(),
            now: Instant::now(),
            wall: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        }
    }

    fn invite(&mut self, contacts: &[Binding]) -> Vec<CallOutput> {
        self.invite_to(party("101"), contacts)
    }

    /// 100 calls `callee` over TLS offering SRTP (RTP/SAVP with a key).
    fn invite_srtp_over_tls(&mut self, callee: Party, contacts: &[Binding]) {
        let wall = self.wall;
        self.calls.invite(
            ServerTxId::from_raw(1),
            &invite_with(&srtp_offer()),
            tls_peer(),
            party("100"),
            Some(callee),
            contacts,
            wall,
        );
    }

    /// 100 calls `callee`, whose phones are `contacts`.
    fn invite_to(&mut self, callee: Party, contacts: &[Binding]) -> Vec<CallOutput> {
        let wall = self.wall;
        self.calls.invite(
            ServerTxId::from_raw(1),
            &invite_from_a(),
            a_peer(),
            party("100"),
            Some(callee),
            contacts,
            wall,
        );
        self.outputs()
    }

    fn respond(&mut self, leg: LegKey, msg: &Message) -> Vec<CallOutput> {
        let (now, wall) = (self.now, self.wall);
        self.calls.response(leg, msg, &mut self.media, now, wall);
        self.outputs()
    }
}

fn sent_requests(out: &[CallOutput]) -> Vec<(LegKey, Message, Peer)> {
    out.iter()
        .filter_map(|o| match o {
            CallOutput::SendRequest { leg, request, peer } => {
                Some((*leg, parse_bytes(request), *peer))
            }
            _ => None,
        })
        .collect()
}

fn responses(out: &[CallOutput]) -> Vec<&Response> {
    out.iter()
        .filter_map(|o| match o {
            CallOutput::Respond(r) => Some(r),
            _ => None,
        })
        .collect()
}

fn record(out: &[CallOutput]) -> Option<&CallRecord> {
    out.iter().find_map(|o| match o {
        CallOutput::Record(r) => Some(r),
        _ => None,
    })
}

/// Both phones write a private address into their SDP and signal from a NAT's public address: the relay expects
/// each leg's media from that public address, learns the port from the first packet and sends nothing before.
#[test]
fn phones_behind_nat_get_media_from_their_signalling_source() {
    let mut w = World::new();
    let out = w.invite(&[binding("sip:101@10.0.0.6:5070", "198.51.100.7:5070")]);
    let (leg, inv_b, _) = &sent_requests(&out)[0];
    w.respond(*leg, &response_to(inv_b, 200, "btag", Some(ANSWER)));
    let (a_rtp, a_rtcp) = w.media.remotes[&(1, true)];
    assert_eq!(
        (a_rtp.expect, a_rtp.send_to(), a_rtp.signalled),
        (
            "203.0.113.5".parse().unwrap(),
            None,
            "10.0.0.5:4000".parse().unwrap()
        )
    );
    assert_eq!(
        (a_rtcp.expect, a_rtcp.trusted),
        ("203.0.113.5".parse().unwrap(), false)
    );
    let (b_rtp, _) = w.media.remotes[&(1, false)];
    assert_eq!(
        (b_rtp.expect, b_rtp.send_to()),
        ("198.51.100.7".parse().unwrap(), None)
    );
}

/// A trunk's SDP names its media server, on another host than its signalling: trusted as it is.
#[test]
fn a_trunk_media_server_elsewhere_is_trusted() {
    let mut w = World::new();
    let target = trunk_target("198.51.100.20:5060");
    let wall = w.wall;
    w.calls.invite_trunk(
        ServerTxId::from_raw(1),
        &invite_from_a(),
        a_peer(),
        party("100"),
        "0049301234",
        vec![target],
        wall,
    );
    let out = w.outputs();
    let (leg, inv_b, _) = &sent_requests(&out)[0];
    w.respond(*leg, &response_to(inv_b, 200, "btag", Some(ANSWER)));
    let (b_rtp, _) = w.media.remotes[&(1, false)];
    assert_eq!(
        b_rtp,
        ::media::Remote::exact("10.0.0.6:5000".parse().unwrap())
    );
}

#[test]
fn basic_call_ring_answer_and_hang_up() {
    let mut w = World::new();
    let out = w.invite(&[binding("sip:101@10.0.0.6:5070", "198.51.100.7:5070")]);
    assert_eq!(
        responses(&out).iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![100]
    );
    let sent = sent_requests(&out);
    assert_eq!(sent.len(), 1);
    let (leg, inv_b, peer_b) = &sent[0];
    assert_eq!(
        peer_b.addr,
        "198.51.100.7:5070".parse().unwrap(),
        "sent where the phone registered from (NAT)"
    );
    assert_eq!(inv_b.request_uri_raw(), Some(&b"sip:101@10.0.0.6:5070"[..]));
    assert_ne!(
        inv_b.call_id(),
        Some(&b"call-a@10.0.0.5"[..]),
        "own Call-ID on the callee leg"
    );
    assert_eq!(inv_b.from().unwrap().uri.user, Some("100"));
    let body_b = std::str::from_utf8(inv_b.body()).unwrap();
    assert!(
        body_b.contains("c=IN IP4 192.0.2.1") && body_b.contains("m=audio 30002 "),
        "{body_b}"
    );
    assert!(
        !body_b.contains("10.0.0.5"),
        "caller's address hidden: {body_b}"
    );
    assert!(
        !body_b.contains("a=ssrc"),
        "source descriptions removed: {body_b}"
    );
    assert_eq!(
        w.media.live[&1][0].unwrap().0,
        "10.0.0.5:4000".parse().unwrap()
    );

    // 180 from B → 180 to A with our tag
    let out = w.respond(*leg, &response_to(inv_b, 180, "btag", None));
    let r = responses(&out);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].status, 180);
    let a_tag = r[0].to_tag.clone().unwrap();

    // 200 from B → ACK to B, 200 to A with SDP pointing at the relay's A port, only offered codecs
    let out = w.respond(*leg, &response_to(inv_b, 200, "btag", Some(ANSWER)));
    let ack = out.iter().find_map(|o| match o {
        CallOutput::SendRaw { bytes, peer } => Some((parse_bytes(bytes), *peer)),
        _ => None,
    });
    let (ack, ack_peer) = ack.expect("ACK for the 2xx");
    assert_eq!(ack.method_str(), Some("ACK"));
    assert_eq!(
        ack.request_uri_raw(),
        Some(&b"sip:101@10.0.0.6:5070"[..]),
        "to the 2xx's Contact"
    );
    assert_eq!(ack.to().unwrap().tag(), Some("btag"));
    assert_eq!(ack_peer.addr, "198.51.100.7:5070".parse().unwrap());
    let ok = responses(&out)[0];
    assert_eq!(
        (ok.status, ok.to_tag.as_deref()),
        (200, Some(a_tag.as_str()))
    );
    let (_, body) = ok.body.clone().unwrap();
    let body = String::from_utf8(body.to_vec()).unwrap();
    assert!(
        body.contains("m=audio 30000 RTP/AVP 8 101"),
        "G.722 was not offered: {body}"
    );
    assert_eq!(
        w.media.live[&1][1].unwrap().0,
        "10.0.0.6:5000".parse().unwrap()
    );
    assert_eq!(w.calls.active()[0].state, "answering");

    // ACK from A confirms
    let ack_a = parse(&format!(
        "ACK sip:pbx SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bKack\r\nFrom: <sip:100@pbx.test>;tag=atag\r\n\
         To: <sip:101@pbx.test>;tag={a_tag}\r\nCall-ID: call-a@10.0.0.5\r\nCSeq: 20 ACK\r\nContent-Length: 0\r\n\r\n"
    ));
    w.calls.ack(&ack_a);
    assert_eq!(w.calls.active()[0].state, "talking");

    // BYE from A → 200 to A, BYE to B, record
    let bye = parse(&format!(
        "BYE sip:pbx SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bKbye\r\nFrom: <sip:100@pbx.test>;tag=atag\r\n\
         To: <sip:101@pbx.test>;tag={a_tag}\r\nCall-ID: call-a@10.0.0.5\r\nCSeq: 21 BYE\r\nContent-Length: 0\r\n\r\n"
    ));
    w.wall += Duration::from_secs(65);
    let (now, wall) = (w.now, w.wall);
    assert!(
        w.calls
            .in_dialog(ServerTxId::from_raw(9), &bye, &mut w.media, now, wall)
    );
    let out = w.outputs();
    assert_eq!(responses(&out)[0].status, 200);
    let bye_b = &sent_requests(&out)[0].1;
    assert_eq!(bye_b.method_str(), Some("BYE"));
    assert_eq!(bye_b.to().unwrap().tag(), Some("btag"));
    assert_eq!(bye_b.cseq().unwrap().seq, 2);
    let rec = record(&out).unwrap();
    assert_eq!(
        (rec.disposition, rec.hung_up_by),
        (Disposition::Answered, HungUpBy::Caller)
    );
    assert_eq!(rec.duration_secs(), 65);
    assert!(w.calls.is_empty());
    assert_eq!(w.media.released, vec![1], "ports back to the pool");
}

#[test]
fn forking_first_answer_wins_others_cancelled() {
    let mut w = World::new();
    let out = w.invite(&[
        binding("sip:101@10.0.0.6", "198.51.100.7:5070"),
        binding("sip:101@10.0.0.9", "198.51.100.9:5070"),
    ]);
    let sent = sent_requests(&out);
    assert_eq!(sent.len(), 2);
    let out = w.respond(sent[1].0, &response_to(&sent[1].1, 200, "b2", Some(ANSWER)));
    let cancels: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            CallOutput::Cancel { leg } => Some(*leg),
            _ => None,
        })
        .collect();
    assert_eq!(cancels, vec![sent[0].0]);
    // the loser answers anyway: ACK and BYE it
    let out = w.respond(sent[0].0, &response_to(&sent[0].1, 200, "b1", Some(ANSWER)));
    assert!(out.iter().any(|o| matches!(o, CallOutput::SendRaw { .. })));
    assert_eq!(sent_requests(&out)[0].1.method_str(), Some("BYE"));
}

#[test]
fn busy_everywhere_is_486_and_recorded() {
    let mut w = World::new();
    let out = w.invite(&[binding("sip:101@10.0.0.6", "198.51.100.7:5070")]);
    let (leg, inv, _) = &sent_requests(&out)[0];
    let out = w.respond(*leg, &response_to(inv, 486, "b", None));
    assert_eq!(responses(&out)[0].status, 486);
    assert_eq!(record(&out).unwrap().disposition, Disposition::Busy);
    assert!(w.calls.is_empty());
}

#[test]
fn caller_cancel_gives_487_and_cancels_branches() {
    let mut w = World::new();
    let out = w.invite(&[binding("sip:101@10.0.0.6", "198.51.100.7:5070")]);
    let leg = sent_requests(&out)[0].0;
    let wall = w.wall;
    assert!(w.calls.cancel(ServerTxId::from_raw(1), &mut w.media, wall));
    let out = w.outputs();
    assert!(
        out.iter()
            .any(|o| matches!(o, CallOutput::Cancel { leg: l } if *l == leg))
    );
    assert_eq!(responses(&out)[0].status, 487);
    assert_eq!(record(&out).unwrap().disposition, Disposition::Cancelled);
    assert_eq!(w.media.released, vec![1]);
}

#[test]
fn no_answer_timeout_is_480() {
    let mut w = World::new();
    w.invite(&[binding("sip:101@10.0.0.6", "198.51.100.7:5070")]);
    let deadline = w.calls.poll_timeout().unwrap();
    assert_eq!(deadline, w.now + CallConfig::default().no_answer);
    let wall = w.wall;
    w.calls.handle_timeout(&mut w.media, deadline, wall);
    let out = w.outputs();
    assert!(out.iter().any(|o| matches!(o, CallOutput::Cancel { .. })));
    assert_eq!(responses(&out)[0].status, 480);
    assert_eq!(record(&out).unwrap().disposition, Disposition::NoAnswer);
}

#[test]
fn unknown_unregistered_and_no_offer() {
    let mut w = World::new();
    let wall = w.wall;
    w.calls.invite(
        ServerTxId::from_raw(1),
        &invite_from_a(),
        a_peer(),
        party("100"),
        None,
        &[],
        wall,
    );
    assert_eq!(responses(&w.outputs())[0].status, 404);
    w.calls.invite(
        ServerTxId::from_raw(2),
        &invite_from_a(),
        a_peer(),
        party("100"),
        Some(party("101")),
        &[],
        wall,
    );
    assert_eq!(responses(&w.outputs())[0].status, 480);
    let no_sdp = parse(
        "INVITE sip:101@pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5;branch=z9hG4bKn\r\nFrom: <sip:100@pbx.test>;tag=a\r\n\
         To: <sip:101@pbx.test>\r\nCall-ID: n\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
    );
    w.calls.invite(
        ServerTxId::from_raw(3),
        &no_sdp,
        a_peer(),
        party("100"),
        Some(party("101")),
        &[binding("sip:x@y", "198.51.100.7:1")],
        wall,
    );
    assert_eq!(responses(&w.outputs())[0].status, 488);
    w.media.exhausted = true;
    w.calls.invite(
        ServerTxId::from_raw(4),
        &invite_from_a(),
        a_peer(),
        party("100"),
        Some(party("101")),
        &[binding("sip:x@y", "198.51.100.7:1")],
        wall,
    );
    assert_eq!(responses(&w.outputs())[0].status, 503);
    assert!(w.calls.is_empty());
}

/// Sets up an answered and confirmed call; returns (A's tag, B's INVITE).
fn talking(w: &mut World) -> (String, Message) {
    let out = w.invite(&[binding("sip:101@10.0.0.6:5070", "198.51.100.7:5070")]);
    let (leg, inv_b, _) = sent_requests(&out).remove(0);
    let out = w.respond(leg, &response_to(&inv_b, 200, "btag", Some(ANSWER)));
    let a_tag = responses(&out)[0].to_tag.clone().unwrap();
    let ack = parse(&format!(
        "ACK sip:pbx SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5;branch=z9hG4bKack\r\nFrom: <sip:100@pbx.test>;tag=atag\r\n\
         To: <sip:101@pbx.test>;tag={a_tag}\r\nCall-ID: call-a@10.0.0.5\r\nCSeq: 20 ACK\r\nContent-Length: 0\r\n\r\n"
    ));
    w.calls.ack(&ack);
    (a_tag, inv_b)
}

#[test]
fn hold_from_the_callee_is_relayed_with_rewritten_sdp() {
    let mut w = World::new();
    let (_, inv_b) = talking(&mut w);
    let hold = ANSWER.replace("a=sendrecv", "a=sendonly");
    let reinvite = parse(&format!(
        "INVITE sip:pbx SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.6:5070;branch=z9hG4bKre\r\nFrom: <sip:101@pbx.test>;tag=btag\r\n\
         To: {};tag={}\r\nCall-ID: {}\r\nCSeq: 5 INVITE\r\nContact: <sip:101@10.0.0.6:5070>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{hold}",
        inv_b
            .header_str(sip::HeaderName::From)
            .unwrap()
            .split(";tag=")
            .next()
            .unwrap(),
        inv_b.from().unwrap().tag().unwrap(),
        std::str::from_utf8(inv_b.call_id().unwrap()).unwrap(),
        hold.len()
    ));
    let (now, wall) = (w.now, w.wall);
    assert!(
        w.calls
            .in_dialog(ServerTxId::from_raw(7), &reinvite, &mut w.media, now, wall)
    );
    let out = w.outputs();
    let (leg, to_a, peer) = sent_requests(&out).remove(0);
    assert_eq!(peer.addr, a_peer().addr);
    assert_eq!(to_a.method_str(), Some("INVITE"));
    assert_eq!(
        to_a.request_uri_raw(),
        Some(&b"sip:100@10.0.0.5:5062"[..]),
        "A's Contact"
    );
    let body = std::str::from_utf8(to_a.body()).unwrap();
    assert!(
        body.contains("a=sendonly") && body.contains("m=audio 30000"),
        "{body}"
    );
    // A answers 200: relayed to B, and Palisade ACKs A itself
    let ok = response_to(
        &to_a,
        200,
        "x",
        Some(&OFFER.replace("a=sendrecv", "a=recvonly")),
    );
    let out = w.respond(leg, &ok);
    assert!(out.iter().any(|o| matches!(o, CallOutput::SendRaw { .. })));
    let r = responses(&out)[0];
    assert_eq!(r.status, 200);
    assert!(String::from_utf8_lossy(&r.body.as_ref().unwrap().1).contains("m=audio 30002"));
}

#[test]
fn media_timeout_and_max_duration_end_calls() {
    let mut w = World::new();
    talking(&mut w);
    w.media.idle = Some(Duration::from_secs(61));
    let (now, wall) = (w.now, w.wall);
    w.calls
        .handle_timeout(&mut w.media, now + Duration::from_secs(1), wall);
    let out = w.outputs();
    let byes: Vec<_> = sent_requests(&out)
        .into_iter()
        .map(|(_, m, p)| (m.method_str().map(str::to_string), p.addr))
        .collect();
    assert_eq!(byes.len(), 2, "BYE to both phones");
    assert_eq!(record(&out).unwrap().reason, "media_timeout");

    let mut w = World::new();
    talking(&mut w);
    let (now, wall) = (w.now, w.wall);
    w.calls
        .handle_timeout(&mut w.media, now + CallConfig::default().max_duration, wall);
    assert_eq!(record(&w.outputs()).unwrap().reason, "max_duration");
}

#[test]
fn unacknowledged_2xx_is_retransmitted_then_the_call_ends() {
    let mut w = World::new();
    let out = w.invite(&[binding("sip:101@10.0.0.6", "198.51.100.7:5070")]);
    let (leg, inv_b, _) = sent_requests(&out).remove(0);
    w.respond(leg, &response_to(&inv_b, 200, "btag", Some(ANSWER)));
    let mut retransmits = 0;
    let mut t = w.now;
    let wall = w.wall;
    for _ in 0..20 {
        let Some(next) = w.calls.poll_timeout() else {
            break;
        };
        t = next.max(t);
        w.calls.handle_timeout(&mut w.media, t, wall);
        let out = w.outputs();
        retransmits += out
            .iter()
            .filter(|o| matches!(o, CallOutput::Retransmit { .. }))
            .count();
        if let Some(r) = record(&out) {
            assert_eq!(r.reason, "no_ack");
            break;
        }
    }
    assert!((6..=10).contains(&retransmits), "{retransmits}");
    assert!(w.calls.is_empty());
}

#[test]
fn in_dialog_request_for_an_unknown_dialog_is_not_ours() {
    let mut w = World::new();
    let bye = parse(
        "BYE sip:pbx SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5;branch=z9hG4bKx\r\nFrom: <sip:100@pbx.test>;tag=z\r\n\
         To: <sip:101@pbx.test>;tag=nope\r\nCall-ID: nope\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
    );
    let (now, wall) = (w.now, w.wall);
    assert!(
        !w.calls
            .in_dialog(ServerTxId::from_raw(1), &bye, &mut w.media, now, wall)
    );
}

fn tls_binding(contact: &str, source: &str) -> Binding {
    Binding {
        transport: "TLS".into(),
        ..binding(contact, source)
    }
}

fn invite_with(sdp: &str) -> Message {
    parse(&format!(
        "INVITE sip:101@pbx.test SIP/2.0\r\nVia: SIP/2.0/TLS 10.0.0.5:5061;branch=z9hG4bKs1\r\n\
         From: <sip:100@pbx.test>;tag=atag\r\nTo: <sip:101@pbx.test>\r\nCall-ID: srtp@10.0.0.5\r\nCSeq: 1 INVITE\r\n\
         Contact: <sip:100@10.0.0.5:5061;transport=tls>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    ))
}

const CRYPTO_A: &str =
    "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";

#[test]
fn plain_caller_to_srtp_callee_over_tls_gets_keys_only_on_the_secure_leg() {
    let mut w = World::new();
    let out = w.invite(&[tls_binding(
        "sip:101@10.0.0.6:5061;transport=tls",
        "198.51.100.7:5061",
    )]);
    let (leg, inv_b, peer) = sent_requests(&out).remove(0);
    assert_eq!(peer.transport, Transport::Tls);
    let body = std::str::from_utf8(inv_b.body()).unwrap().to_string();
    assert!(body.contains("m=audio 30002 RTP/SAVP"), "{body}");
    assert_eq!(
        body.matches("a=crypto:").count(),
        2,
        "one fresh key per suite: {body}"
    );
    // B answers SRTP with tag 1
    assert!(
        body.lines()
            .any(|l| l.starts_with("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:")),
        "{body}"
    );
    let theirs = CRYPTO_A;
    let answer = ANSWER
        .replace("RTP/AVP", "RTP/SAVP")
        .replace("a=sendrecv", &format!("{theirs}\r\na=sendrecv"));
    let out = w.respond(leg, &response_to(&inv_b, 200, "btag", Some(&answer)));
    assert_eq!(
        w.media.crypto.get(&(1, false)),
        Some(&true),
        "SRTP on leg B"
    );
    assert_eq!(w.media.crypto.get(&(1, true)), None, "leg A stays plain");
    let ok = responses(&out)[0];
    let a_body = String::from_utf8(ok.body.clone().unwrap().1.to_vec()).unwrap();
    assert!(
        a_body.contains("RTP/AVP") && !a_body.contains("crypto"),
        "no key on the plain leg: {a_body}"
    );
}

#[test]
fn srtp_caller_over_tls_gets_palisade_key_and_plain_callee_sees_no_key() {
    let mut w = World::new();
    w.invite_srtp_over_tls(
        party("101"),
        &[binding("sip:101@10.0.0.6", "198.51.100.7:5070")],
    );
    let out = w.outputs();
    assert_eq!(w.media.crypto.get(&(1, true)), Some(&true), "SRTP on leg A");
    let (leg, inv_b, _) = sent_requests(&out).remove(0);
    let b_body = std::str::from_utf8(inv_b.body()).unwrap();
    assert!(
        b_body.contains("RTP/AVP") && !b_body.contains("crypto"),
        "the caller's key never reaches leg B: {b_body}"
    );
    let out = w.respond(leg, &response_to(&inv_b, 200, "btag", Some(ANSWER)));
    let a_body = String::from_utf8(responses(&out)[0].body.clone().unwrap().1.to_vec()).unwrap();
    assert!(
        a_body.contains("RTP/SAVP")
            && a_body.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"),
        "{a_body}"
    );
    assert!(
        !a_body.contains("WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"),
        "Palisade answers with its own key"
    );
}

#[test]
fn srtp_policy_refusals_are_488() {
    let mut w = World::new();
    let wall = w.wall;
    let enforced = Party {
        srtp: crate::model::SrtpMode::Enforced,
        ..party("100")
    };
    // enforced extension offering plain RTP
    w.calls.invite(
        ServerTxId::from_raw(1),
        &invite_from_a(),
        a_peer(),
        enforced.clone(),
        Some(party("101")),
        &[binding("sip:x@y", "198.51.100.7:1")],
        wall,
    );
    assert_eq!(responses(&w.outputs())[0].status, 488);
    // SRTP offered over UDP: keys would travel in clear
    let sdp = OFFER
        .replace("RTP/AVP", "RTP/SAVP")
        .replace("a=sendrecv", &format!("{CRYPTO_A}\r\na=sendrecv"));
    w.calls.invite(
        ServerTxId::from_raw(2),
        &invite_with(&sdp),
        a_peer(),
        party("100"),
        Some(party("101")),
        &[binding("sip:x@y", "198.51.100.7:1")],
        wall,
    );
    assert_eq!(responses(&w.outputs())[0].status, 488);
    // an enforced callee is not rung on a UDP contact: nothing left → 480
    let callee = Party {
        srtp: crate::model::SrtpMode::Enforced,
        ..party("101")
    };
    w.calls.invite(
        ServerTxId::from_raw(3),
        &invite_from_a(),
        a_peer(),
        party("100"),
        Some(callee),
        &[binding("sip:x@y", "198.51.100.7:1")],
        wall,
    );
    assert_eq!(responses(&w.outputs()).last().unwrap().status, 480);
    assert!(w.calls.is_empty());
    assert!(w.media.live.is_empty(), "no ports held by refused calls");
}

fn trunk_target(addr: &str) -> Target {
    Target {
        request_uri: format!("sip:4930123456@{addr}"),
        to_uri: format!("<sip:4930123456@{addr}>"),
        from_user: "4930999".into(),
        source: addr.parse().unwrap(),
        transport: "UDP".into(),
        credentials: Some(("acct".into(), "s3cret".into())),
        is_trunk: true,
        srtp: None,
    }
}

/// The INVITE a trunk call sends to a target with `transport` and the trunk's `srtp` mode.
fn trunk_invite_body(transport: &str, srtp: SrtpMode) -> String {
    let mut w = World::new();
    let wall = w.wall;
    let mut target = trunk_target("198.51.100.10:5061");
    target.transport = transport.into();
    target.srtp = Some(srtp);
    w.calls.invite_trunk(
        ServerTxId::from_raw(1),
        &invite_from_a(),
        a_peer(),
        party("100"),
        "004930123456",
        vec![target],
        wall,
    );
    let out = w.outputs();
    match sent_requests(&out).into_iter().next() {
        Some((_, inv, _)) => std::str::from_utf8(inv.body()).unwrap().to_string(),
        None => String::new(),
    }
}

#[test]
fn a_trunk_gets_srtp_keys_only_when_its_mode_asks_and_only_over_tls() {
    let tls_enabled = trunk_invite_body("TLS", SrtpMode::Enabled);
    assert!(tls_enabled.contains("RTP/SAVP"), "{tls_enabled}");
    assert!(tls_enabled.contains("a=crypto:"), "{tls_enabled}");
    let tls_disabled = trunk_invite_body("TLS", SrtpMode::Disabled);
    assert!(
        !tls_disabled.is_empty() && !tls_disabled.contains("a=crypto"),
        "{tls_disabled}"
    );
    let udp_enabled = trunk_invite_body("UDP", SrtpMode::Enabled);
    assert!(
        !udp_enabled.is_empty() && !udp_enabled.contains("a=crypto"),
        "keys never over UDP: {udp_enabled}"
    );
    assert_eq!(
        trunk_invite_body("UDP", SrtpMode::Enforced),
        "",
        "an enforced trunk is never used without TLS"
    );
}

#[test]
fn trunk_call_answers_the_trunks_challenge_once_and_fails_over_on_server_errors() {
    let mut w = World::new();
    let wall = w.wall;
    w.calls.invite_trunk(
        ServerTxId::from_raw(1),
        &invite_from_a(),
        a_peer(),
        party("100"),
        "004930123456",
        vec![
            trunk_target("198.51.100.10:5060"),
            trunk_target("198.51.100.20:5060"),
        ],
        wall,
    );
    let out = w.outputs();
    let (leg, inv, peer) = sent_requests(&out).remove(0);
    assert_eq!(peer.addr, "198.51.100.10:5060".parse().unwrap());
    assert_eq!(
        inv.from().unwrap().uri.user,
        Some("4930999"),
        "the trunk's caller ID"
    );
    // the trunk challenges: answered with the trunk's credentials, same Call-ID, next CSeq
    let challenge = parse_bytes(
        &sip::ResponseBuilder::new(&inv, 407)
            .to_tag("t1")
            .header(
                sip::HeaderName::ProxyAuthenticate,
                "Digest realm=\"carrier\", nonce=\"n1\", qop=\"auth\"",
            )
            .build(),
    );
    let out = w.respond(leg, &challenge);
    let (leg2, inv2, _) = sent_requests(&out).remove(0);
    assert_eq!(inv2.call_id(), inv.call_id());
    assert_eq!(inv2.cseq().unwrap().seq, 2);
    let auth = inv2
        .header_str(sip::HeaderName::ProxyAuthorization)
        .unwrap();
    assert!(
        auth.contains("username=\"acct\"") && auth.contains("realm=\"carrier\""),
        "{auth}"
    );
    // refused again: not retried a second time; a server error fails over to the next trunk
    let again = parse_bytes(
        &sip::ResponseBuilder::new(&inv2, 407)
            .to_tag("t1")
            .header(
                sip::HeaderName::ProxyAuthenticate,
                "Digest realm=\"carrier\", nonce=\"n2\"",
            )
            .build(),
    );
    let out = w.respond(leg2, &again);
    let next = sent_requests(&out);
    assert_eq!(
        next.len(),
        1,
        "credentials are tried once, then the next trunk"
    );
    assert_eq!(next[0].2.addr, "198.51.100.20:5060".parse().unwrap());
    // the last trunk refuses too: the caller gets 503, never the trunk's challenge
    let (leg3, inv3, _) = next.into_iter().next().unwrap();
    let out = w.respond(
        leg3,
        &parse_bytes(&sip::ResponseBuilder::new(&inv3, 407).to_tag("t3").build()),
    );
    assert_eq!(
        responses(&out)[0].status,
        503,
        "a trunk's challenge never reaches the caller"
    );

    let mut w = World::new();
    let wall = w.wall;
    w.calls.invite_trunk(
        ServerTxId::from_raw(1),
        &invite_from_a(),
        a_peer(),
        party("100"),
        "004930123456",
        vec![
            trunk_target("198.51.100.10:5060"),
            trunk_target("198.51.100.20:5060"),
        ],
        wall,
    );
    let (leg, inv, _) = sent_requests(&w.outputs()).remove(0);
    let out = w.respond(leg, &response_to(&inv, 503, "t", None));
    let (_, _, peer2) = sent_requests(&out).remove(0);
    assert_eq!(
        peer2.addr,
        "198.51.100.20:5060".parse().unwrap(),
        "failover to the second trunk"
    );
    assert!(
        responses(&out).iter().all(|r| r.status < 300),
        "the caller is not answered yet"
    );
}

#[test]
fn a_silent_trunk_is_given_up_after_a_few_seconds_for_the_next() {
    let mut w = World::new();
    let (now, wall) = (w.now, w.wall);
    w.calls.invite_trunk(
        ServerTxId::from_raw(1),
        &invite_from_a(),
        a_peer(),
        party("100"),
        "004930123456",
        vec![
            trunk_target("198.51.100.10:5060"),
            trunk_target("198.51.100.20:5060"),
        ],
        wall,
    );
    w.outputs();
    let deadline = w.calls.poll_timeout().unwrap();
    assert_eq!(deadline, now + Duration::from_secs(4));
    w.calls.handle_timeout(&mut w.media, deadline, wall);
    let out = w.outputs();
    assert!(out.iter().any(|o| matches!(o, CallOutput::Cancel { .. })));
    let next = sent_requests(&out);
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].2.addr, "198.51.100.20:5060".parse().unwrap());
}

// ---- Voicemail: calls answered by a media application ----

fn vm_party(n: &str) -> Party {
    Party {
        voicemail: true,
        ..party(n)
    }
}

fn app_start(out: &[CallOutput]) -> Option<&AppStart> {
    out.iter().find_map(|o| match o {
        CallOutput::StartApp(s) => Some(s),
        _ => None,
    })
}

impl World {
    fn invite_vm(&mut self, contacts: &[Binding]) -> Vec<CallOutput> {
        self.invite_to(vm_party("101"), contacts)
    }

    /// The edge started the application at `addr`.
    fn app_ready(&mut self, call: u64, addr: &str) -> Vec<CallOutput> {
        let (now, wall) = (self.now, self.wall);
        self.calls
            .app_ready(call, addr.parse().unwrap(), &mut self.media, now, wall);
        self.outputs()
    }
}

#[test]
fn unregistered_callee_with_voicemail_is_answered_by_its_mailbox() {
    let mut w = World::new();
    let out = w.invite_vm(&[]);
    let start = app_start(&out).expect("StartApp").clone();
    assert_eq!(
        start.kind,
        AppKind::Deposit {
            mailbox: "101".into()
        }
    );
    assert_eq!(start.caller, "100");
    assert_eq!(start.source, a_peer().addr);
    // PCMU first in the offer; its telephone-event type.
    assert_eq!(start.codec.payload_type, 0);
    assert_eq!(start.codec.dtmf_payload_type, Some(101));
    assert_eq!(start.relay_port, 30002);
    assert!(responses(&out).iter().all(|r| r.status == 100));
    let out = w.app_ready(start.call, "127.0.0.1:41000");
    let ok = responses(&out)
        .into_iter()
        .find(|r| r.status == 200)
        .expect("200 to the caller");
    let body = std::str::from_utf8(&ok.body.as_ref().unwrap().1).unwrap();
    assert!(body.contains("m=audio 30000 RTP/AVP 0 101"), "{body}");
    assert!(
        !body.contains("127.0.0.1"),
        "application address hidden: {body}"
    );
    // The relay's callee side now talks to the application.
    assert_eq!(
        w.media.live[&1][1].unwrap().0,
        "127.0.0.1:41000".parse().unwrap()
    );
}

#[test]
fn callee_without_voicemail_still_gets_480() {
    let mut w = World::new();
    let out = w.invite(&[]);
    assert!(app_start(&out).is_none());
    assert!(responses(&out).iter().any(|r| r.status == 480));
}

#[test]
fn busy_and_no_answer_divert_to_voicemail() {
    // Busy.
    let mut w = World::new();
    let out = w.invite_vm(&[binding("sip:101@10.0.0.6:5070", "198.51.100.7:5070")]);
    let (leg, inv_b, _) = sent_requests(&out).remove(0);
    let out = w.respond(leg, &response_to(&inv_b, 486, "btag", None));
    assert!(app_start(&out).is_some(), "busy → mailbox");
    assert!(!responses(&out).iter().any(|r| r.status == 486));
    // No answer: the voicemail ring time (20 s by default) ends the ringing, the branch is cancelled.
    let mut w = World::new();
    let out = w.invite_vm(&[binding("sip:101@10.0.0.6:5070", "198.51.100.7:5070")]);
    let (leg, inv_b, _) = sent_requests(&out).remove(0);
    w.respond(leg, &response_to(&inv_b, 180, "btag", None));
    assert_eq!(
        w.calls.poll_timeout(),
        Some(w.now + Duration::from_secs(20)),
        "voicemail ring time, not the 60 s no-answer limit"
    );
    let later = w.now + Duration::from_secs(20);
    w.calls.handle_timeout(&mut w.media, later, w.wall);
    let out = w.outputs();
    assert!(out.iter().any(|o| matches!(o, CallOutput::Cancel { .. })));
    let start = app_start(&out).expect("no answer → mailbox").clone();
    // A late 200 from the phone after the diversion is hung up, not connected.
    let out = w.respond(leg, &response_to(&inv_b, 200, "btag", Some(ANSWER)));
    assert!(
        sent_requests(&out)
            .iter()
            .any(|(_, m, _)| m.method() == Some(Method::Bye))
    );
    assert!(!responses(&out).iter().any(|r| r.status == 200));
    let out = w.app_ready(start.call, "127.0.0.1:41000");
    assert!(responses(&out).iter().any(|r| r.status == 200));
}

#[test]
fn no_common_g711_codec_gives_the_original_failure() {
    let mut w = World::new();
    let offer = OFFER.replace("RTP/AVP 0 8 101", "RTP/AVP 9 101");
    let s = format!(
        "INVITE sip:101@pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bKa1;rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:100@pbx.test>;tag=atag\r\nTo: <sip:101@pbx.test>\r\n\
         Call-ID: call-g722@10.0.0.5\r\nCSeq: 20 INVITE\r\nContact: <sip:100@10.0.0.5:5062>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{offer}",
        offer.len()
    );
    let wall = w.wall;
    w.calls.invite(
        ServerTxId::from_raw(1),
        &parse(&s),
        a_peer(),
        party("100"),
        Some(vm_party("101")),
        &[],
        wall,
    );
    let out = w.outputs();
    assert!(app_start(&out).is_none());
    assert!(responses(&out).iter().any(|r| r.status == 480));
    assert_eq!(w.media.released, vec![1], "relay ports returned");
}

fn in_dialog_from_a(method: &str, to_tag: &str, cseq: u32, extra: &str, body: &str) -> Message {
    parse(&format!(
        "{method} sip:pbx@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bK{method}{cseq}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:100@pbx.test>;tag=atag\r\nTo: <sip:101@pbx.test>;tag={to_tag}\r\n\
         Call-ID: call-a@10.0.0.5\r\nCSeq: {cseq} {method}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    ))
}

#[test]
fn voicemail_call_takes_info_keys_refuses_refer_and_stops_on_bye() {
    let mut w = World::new();
    let out = w.invite_vm(&[]);
    let call = app_start(&out).unwrap().call;
    let out = w.app_ready(call, "127.0.0.1:41000");
    let tag = responses(&out)
        .into_iter()
        .find(|r| r.status == 200)
        .and_then(|r| r.to_tag.clone())
        .unwrap();
    let (now, wall) = (w.now, w.wall);
    let info = in_dialog_from_a(
        "INFO",
        &tag,
        21,
        "Content-Type: application/dtmf-relay\r\n",
        "Signal=5\r\nDuration=160\r\n",
    );
    assert!(
        w.calls
            .in_dialog(ServerTxId::from_raw(2), &info, &mut w.media, now, wall)
    );
    let out = w.outputs();
    assert!(
        out.iter()
            .any(|o| matches!(o, CallOutput::AppDigit { call: c, digit: '5' } if *c == call))
    );
    assert_eq!(responses(&out)[0].status, 200);
    let refer = in_dialog_from_a(
        "REFER",
        &tag,
        22,
        "Refer-To: <sip:0049301234@pbx.test>\r\n",
        "",
    );
    w.calls
        .in_dialog(ServerTxId::from_raw(3), &refer, &mut w.media, now, wall);
    let out = w.outputs();
    assert_eq!(responses(&out)[0].status, 403, "no dial-out from voicemail");
    let bye = in_dialog_from_a("BYE", &tag, 23, "", "");
    w.calls
        .in_dialog(ServerTxId::from_raw(4), &bye, &mut w.media, now, wall);
    let out = w.outputs();
    assert!(
        out.iter()
            .any(|o| matches!(o, CallOutput::StopApp { call: c } if *c == call))
    );
    let rec = record(&out).expect("record");
    assert_eq!(rec.disposition, Disposition::Answered);
    assert_eq!(rec.callee, "101");
    assert!(w.calls.is_empty());
    assert_eq!(w.media.released, vec![1]);
}

#[test]
fn application_hangs_up_and_access_calls() {
    let mut w = World::new();
    let wall = w.wall;
    w.calls.invite_app(
        ServerTxId::from_raw(1),
        &invite_from_a(),
        a_peer(),
        party("100"),
        AppKind::Access {
            mailbox: "100".into(),
        },
        wall,
    );
    let out = w.outputs();
    let start = app_start(&out).expect("StartApp").clone();
    assert_eq!(
        start.kind,
        AppKind::Access {
            mailbox: "100".into()
        }
    );
    w.app_ready(start.call, "127.0.0.1:41000");
    w.calls.app_hangup(start.call, &mut w.media, wall);
    let out = w.outputs();
    assert!(
        sent_requests(&out)
            .iter()
            .any(|(_, m, _)| m.method() == Some(Method::Bye))
    );
    assert!(
        !out.iter().any(|o| matches!(o, CallOutput::StopApp { .. })),
        "the application ended itself"
    );
    assert!(record(&out).is_some());
    // An application that cannot start: 480, ports back.
    let mut w = World::new();
    let out = w.invite_vm(&[]);
    let call = app_start(&out).unwrap().call;
    w.calls.app_failed(call, &mut w.media, wall);
    let out = w.outputs();
    assert!(responses(&out).iter().any(|r| r.status == 480));
    assert_eq!(w.media.released, vec![1]);
}

// ---- Call forwarding ----

fn forwarding_party(n: &str, forward: Forwarding) -> Party {
    Party {
        forward,
        ..party(n)
    }
}

fn binding_of(aor: &str, contact: &str, source: &str) -> Binding {
    Binding {
        aor: aor.into(),
        ..binding(contact, source)
    }
}

/// The `Forward` requests among the outputs: (call, from, target, reason).
fn forwards(out: &[CallOutput]) -> Vec<(u64, String, String, ForwardReason)> {
    out.iter()
        .filter_map(|o| match o {
            CallOutput::Forward {
                call,
                from,
                target,
                reason,
                ..
            } => Some((*call, from.clone(), target.clone(), *reason)),
            _ => None,
        })
        .collect()
}

fn records(out: &[CallOutput]) -> Vec<&CallRecord> {
    out.iter()
        .filter_map(|o| match o {
            CallOutput::Record(r) => Some(r),
            _ => None,
        })
        .collect()
}

fn warning_of(r: &Response) -> Option<&str> {
    r.headers
        .iter()
        .find(|(n, _)| *n == sip::HeaderName::Warning)
        .map(|(_, v)| v.as_str())
}

impl World {
    fn invite_party(&mut self, callee: Party, contacts: &[Binding]) -> Vec<CallOutput> {
        let wall = self.wall;
        self.calls.invite(
            ServerTxId::from_raw(1),
            &invite_from_a(),
            a_peer(),
            party("100"),
            Some(callee),
            contacts,
            wall,
        );
        self.outputs()
    }

    fn forward_to(&mut self, call: u64, resolved: Resolved) -> Vec<CallOutput> {
        let (now, wall) = (self.now, self.wall);
        self.calls
            .forward_to(call, resolved, &mut self.media, now, wall);
        self.outputs()
    }

    fn in_dialog(&mut self, tx: u64, msg: &Message) -> Vec<CallOutput> {
        let (now, wall) = (self.now, self.wall);
        assert!(
            self.calls
                .in_dialog(ServerTxId::from_raw(tx), msg, &mut self.media, now, wall),
            "in a dialog of a call"
        );
        self.outputs()
    }
}

fn ext_102(forward: Forwarding) -> Resolved {
    Resolved::Extension {
        party: forwarding_party("102", forward),
        contacts: vec![binding_of(
            "102",
            "sip:102@10.0.0.8:5070",
            "198.51.100.8:5070",
        )],
    }
}

#[test]
fn forward_always_rings_the_target_and_not_the_callee() {
    let mut w = World::new();
    let callee = forwarding_party(
        "101",
        Forwarding {
            always: Some("102".into()),
            ..Forwarding::default()
        },
    );
    let out = w.invite_party(
        callee,
        &[binding("sip:101@10.0.0.6:5070", "198.51.100.7:5070")],
    );
    assert!(sent_requests(&out).is_empty(), "101's phone does not ring");
    assert_eq!(
        responses(&out).iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![100, 181]
    );
    let fw = forwards(&out);
    assert_eq!(fw.len(), 1);
    let (call, from, target, reason) = fw[0].clone();
    assert_eq!(
        (from.as_str(), target.as_str(), reason),
        ("101", "102", ForwardReason::Always),
        "routed as the forwarding extension"
    );
    assert_eq!(w.calls.active()[0].state, "ringing");
    let out = w.forward_to(call, ext_102(Forwarding::default()));
    let sent = sent_requests(&out);
    assert_eq!(sent.len(), 1);
    let (leg, inv, peer) = &sent[0];
    assert_eq!(peer.addr, "198.51.100.8:5070".parse().unwrap());
    assert_eq!(inv.request_uri_raw(), Some(&b"sip:102@10.0.0.8:5070"[..]));
    assert_eq!(
        inv.from().unwrap().uri.user,
        Some("100"),
        "the caller's number"
    );
    let rec = records(&out)[0];
    assert_eq!(
        (rec.callee.as_str(), rec.reason.as_str()),
        ("101", "forward_always:102")
    );
    let out = w.respond(*leg, &response_to(inv, 200, "ctag", Some(ANSWER)));
    assert_eq!(responses(&out)[0].status, 200);
    assert_eq!(w.calls.active()[0].callee, "102");
}

#[test]
fn forward_on_busy_takes_precedence_over_voicemail_and_may_go_out_through_a_trunk() {
    let mut w = World::new();
    let callee = Party {
        voicemail: true,
        ..forwarding_party(
            "101",
            Forwarding {
                busy: Some("0049301234".into()),
                ..Forwarding::default()
            },
        )
    };
    let out = w.invite_party(
        callee,
        &[binding("sip:101@10.0.0.6:5070", "198.51.100.7:5070")],
    );
    let (leg, inv_b, _) = sent_requests(&out).remove(0);
    let out = w.respond(leg, &response_to(&inv_b, 486, "btag", None));
    assert!(app_start(&out).is_none(), "not to the mailbox");
    assert!(!responses(&out).iter().any(|r| r.status == 486));
    let (call, from, target, reason) = forwards(&out).remove(0);
    assert_eq!(
        (from.as_str(), target.as_str(), reason),
        ("101", "0049301234", ForwardReason::Busy)
    );
    let out = w.forward_to(
        call,
        Resolved::External {
            number: "0049301234".into(),
            targets: vec![trunk_target("198.51.100.20:5060")],
        },
    );
    let sent = sent_requests(&out);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].2.addr, "198.51.100.20:5060".parse().unwrap());
    let rec = records(&out)[0];
    assert_eq!(rec.disposition, Disposition::Busy);
    assert_eq!(rec.reason, "forward_busy:0049301234");
    assert_eq!(w.calls.active()[0].callee, "0049301234");
}

#[test]
fn forward_on_no_answer_at_the_ring_time_and_when_unregistered() {
    let no_answer = Forwarding {
        no_answer: Some("102".into()),
        ..Forwarding::default()
    };
    let mut w = World::new();
    let out = w.invite_party(
        forwarding_party("101", no_answer.clone()),
        &[binding("sip:101@10.0.0.6:5070", "198.51.100.7:5070")],
    );
    let (leg, inv_b, _) = sent_requests(&out).remove(0);
    w.respond(leg, &response_to(&inv_b, 180, "btag", None));
    assert_eq!(
        w.calls.poll_timeout(),
        Some(w.now + Duration::from_secs(20)),
        "the shorter ring time, as for voicemail"
    );
    let later = w.now + Duration::from_secs(20);
    w.calls.handle_timeout(&mut w.media, later, w.wall);
    let out = w.outputs();
    assert!(out.iter().any(|o| matches!(o, CallOutput::Cancel { .. })));
    let (call, _, target, reason) = forwards(&out).remove(0);
    assert_eq!((target.as_str(), reason), ("102", ForwardReason::NoAnswer));
    w.now = later;
    let out = w.forward_to(call, ext_102(Forwarding::default()));
    let (leg2, inv_c, _) = sent_requests(&out).remove(0);
    // A late 200 from 101's phone is hung up, not connected; 102 still rings.
    let out = w.respond(leg, &response_to(&inv_b, 200, "btag", Some(ANSWER)));
    assert!(
        sent_requests(&out)
            .iter()
            .any(|(_, m, _)| m.method() == Some(Method::Bye))
    );
    assert!(!responses(&out).iter().any(|r| r.status == 200));
    let out = w.respond(leg2, &response_to(&inv_c, 200, "ctag", Some(ANSWER)));
    assert_eq!(responses(&out)[0].status, 200);

    // No phone registered: forwarded at once.
    let mut w = World::new();
    let out = w.invite_party(forwarding_party("101", no_answer), &[]);
    let (_, _, target, reason) = forwards(&out).remove(0);
    assert_eq!(
        (target.as_str(), reason),
        ("102", ForwardReason::Unavailable)
    );
}

#[test]
fn refused_forward_to_a_disallowed_country_is_403_with_the_reason_code() {
    let mut w = World::new();
    let out = w.invite_party(
        forwarding_party(
            "101",
            Forwarding {
                always: Some("00441234567890".into()),
                ..Forwarding::default()
            },
        ),
        &[binding("sip:101@10.0.0.6:5070", "198.51.100.7:5070")],
    );
    let (call, ..) = forwards(&out).remove(0);
    let out = w.forward_to(
        call,
        Resolved::Refused {
            status: 403,
            reason: "Forbidden (calls to country code 44 are not allowed)".into(),
            code: "country_not_allowed".into(),
        },
    );
    assert!(sent_requests(&out).is_empty(), "nothing rings");
    let r = responses(&out)[0];
    assert_eq!(r.status, 403);
    assert_eq!(warning_of(r), Some("399 palisade \"country_not_allowed\""));
    let rec = record(&out).unwrap();
    assert_eq!(
        (rec.disposition, rec.reason.as_str()),
        (Disposition::Failed, "country_not_allowed")
    );
    assert!(w.calls.is_empty());
    assert_eq!(w.media.released, vec![1]);
}

#[test]
fn forward_loops_and_long_chains_are_482() {
    // 101 → 102 → back to 101.
    let mut w = World::new();
    let out = w.invite_party(
        forwarding_party(
            "101",
            Forwarding {
                always: Some("102".into()),
                ..Forwarding::default()
            },
        ),
        &[],
    );
    let (call, ..) = forwards(&out).remove(0);
    let out = w.forward_to(
        call,
        ext_102(Forwarding {
            always: Some("101".into()),
            ..Forwarding::default()
        }),
    );
    let (_, from, target, _) = forwards(&out).remove(0);
    assert_eq!((from.as_str(), target.as_str()), ("102", "101"));
    let out = w.forward_to(
        call,
        Resolved::Extension {
            party: forwarding_party(
                "101",
                Forwarding {
                    always: Some("102".into()),
                    ..Forwarding::default()
                },
            ),
            contacts: Vec::new(),
        },
    );
    assert!(sent_requests(&out).is_empty());
    let r = responses(&out)[0];
    assert_eq!(r.status, 482);
    assert_eq!(warning_of(r), Some("399 palisade \"forward_loop\""));
    assert!(w.calls.is_empty());

    // 101 → 200 → 201 → … : stops after MAX_FORWARD_HOPS forwards.
    let mut w = World::new();
    let out = w.invite_party(
        forwarding_party(
            "101",
            Forwarding {
                always: Some("200".into()),
                ..Forwarding::default()
            },
        ),
        &[],
    );
    let (call, ..) = forwards(&out).remove(0);
    let mut hops = 1;
    loop {
        let n = 199 + hops;
        let out = w.forward_to(
            call,
            Resolved::Extension {
                party: forwarding_party(
                    &n.to_string(),
                    Forwarding {
                        always: Some((n + 1).to_string()),
                        ..Forwarding::default()
                    },
                ),
                contacts: Vec::new(),
            },
        );
        if forwards(&out).is_empty() {
            assert_eq!(responses(&out)[0].status, 482);
            break;
        }
        hops += 1;
        assert!(hops <= MAX_FORWARD_HOPS, "the chain must stop");
    }
    assert_eq!(hops, MAX_FORWARD_HOPS);
}

#[test]
fn caller_cancel_while_forwarding_ends_the_call() {
    let mut w = World::new();
    let out = w.invite_party(
        forwarding_party(
            "101",
            Forwarding {
                always: Some("102".into()),
                ..Forwarding::default()
            },
        ),
        &[],
    );
    let (call, ..) = forwards(&out).remove(0);
    assert!(
        w.calls
            .cancel(ServerTxId::from_raw(1), &mut w.media, w.wall)
    );
    let out = w.outputs();
    assert_eq!(responses(&out)[0].status, 487);
    // The service's answer comes too late: nothing happens.
    let out = w.forward_to(call, ext_102(Forwarding::default()));
    assert!(out.is_empty());
}

// ---- Blind transfer (REFER) ----

/// An in-dialog request from B (the callee's phone) in the dialog of `inv_b`.
fn in_dialog_from_b(inv_b: &Message, method: &str, cseq: u32, extra: &str, body: &str) -> Message {
    parse(&format!(
        "{method} sip:pbx@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.6:5070;branch=z9hG4bK{method}b{cseq}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:101@pbx.test>;tag=btag\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\n\
         Contact: <sip:101@10.0.0.6:5070>\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        inv_b.header_str(sip::HeaderName::From).unwrap(),
        std::str::from_utf8(inv_b.call_id().unwrap()).unwrap(),
        body.len()
    ))
}

fn sipfrag(m: &Message) -> String {
    assert_eq!(m.method_str(), Some("NOTIFY"));
    assert_eq!(
        m.header_str(sip::HeaderName::ContentType),
        Some("message/sipfrag;version=2.0")
    );
    assert!(
        m.header_str(sip::HeaderName::Event)
            .is_some_and(|e| e.starts_with("refer"))
    );
    String::from_utf8_lossy(m.body()).trim().to_string()
}

#[test]
fn refer_to_an_extension_transfers_the_caller_to_it() {
    let mut w = World::new();
    let (a_tag, inv_b) = talking(&mut w);
    // 101 (the callee) transfers the caller to 102.
    let refer = in_dialog_from_b(&inv_b, "REFER", 7, "Refer-To: <sip:102@pbx.test>\r\n", "");
    let out = w.in_dialog(20, &refer);
    assert!(responses(&out).is_empty(), "answered once routed");
    let (call, from, target, reason) = forwards(&out).remove(0);
    assert_eq!(
        (from.as_str(), target.as_str(), reason),
        ("101", "102", ForwardReason::Transfer),
        "routed as the transferor"
    );
    let out = w.forward_to(call, ext_102(Forwarding::default()));
    let r = responses(&out)[0];
    assert_eq!((r.status, r.tx), (202, ServerTxId::from_raw(20)));
    let sent = sent_requests(&out);
    let notify = sent
        .iter()
        .find(|(_, m, _)| m.method_str() == Some("NOTIFY"))
        .expect("NOTIFY to the transferor");
    assert_eq!(notify.2.addr, "198.51.100.7:5070".parse().unwrap());
    assert_eq!(sipfrag(&notify.1), "SIP/2.0 100 Trying");
    assert_eq!(
        notify.1.header_str(sip::HeaderName::SubscriptionState),
        Some("active;expires=60")
    );
    let (leg, inv_c, peer_c) = sent
        .iter()
        .find(|(_, m, _)| m.method_str() == Some("INVITE"))
        .cloned()
        .expect("INVITE to the target");
    assert_eq!(peer_c.addr, "198.51.100.8:5070".parse().unwrap());
    assert_eq!(
        inv_c.from().unwrap().uri.user,
        Some("100"),
        "from the transferee"
    );
    let body = std::str::from_utf8(inv_c.body()).unwrap();
    assert!(
        body.contains("m=audio 30002 RTP/AVP 8 101") && body.contains("a=sendrecv"),
        "the transferor's relay port and the codecs the transferee agreed on: {body}"
    );
    // While 102 rings, the call goes on.
    assert_eq!(w.calls.active()[0].state, "talking");
    w.respond(leg, &response_to(&inv_c, 180, "ctag", None));
    let answer_c = ANSWER
        .replace("10.0.0.6", "10.0.0.8")
        .replace("5000", "6000");
    let out = w.respond(leg, &response_to(&inv_c, 200, "ctag", Some(&answer_c)));
    assert!(
        out.iter().any(|o| matches!(o, CallOutput::SendRaw { .. })),
        "ACK"
    );
    let sent = sent_requests(&out);
    let to_b: Vec<_> = sent
        .iter()
        .filter(|(_, _, p)| p.addr == "198.51.100.7:5070".parse().unwrap())
        .map(|(_, m, _)| m.clone())
        .collect();
    assert_eq!(to_b.len(), 2, "final NOTIFY and BYE to the transferor");
    assert!(
        sent.iter().all(|(_, _, p)| p.addr != a_peer().addr),
        "a transferee that is not on hold gets no re-INVITE"
    );
    assert_eq!(sipfrag(&to_b[0]), "SIP/2.0 200 OK");
    assert!(
        to_b[0]
            .header_str(sip::HeaderName::SubscriptionState)
            .is_some_and(|s| s.starts_with("terminated"))
    );
    assert_eq!(to_b[1].method_str(), Some("BYE"));
    assert_eq!(
        w.media.live[&1][1].unwrap().0,
        "10.0.0.8:6000".parse().unwrap(),
        "the relay's B side now talks to the target"
    );
    assert_eq!(
        w.media.live[&1][0].unwrap().0,
        "10.0.0.5:4000".parse().unwrap(),
        "the transferee's side is unchanged"
    );
    let rec = record(&out).unwrap();
    assert_eq!(
        (
            rec.caller.as_str(),
            rec.callee.as_str(),
            rec.reason.as_str(),
            rec.hung_up_by
        ),
        ("100", "101", "transfer", HungUpBy::Callee)
    );
    // The transferor's BYE crossing ours is answered.
    let bye_b = in_dialog_from_b(&inv_b, "BYE", 8, "", "");
    let out = w.in_dialog(21, &bye_b);
    assert_eq!(responses(&out)[0].status, 200);
    assert!(sent_requests(&out).is_empty());
    // The caller hangs up: BYE goes to the target; the record is transferee → target.
    let bye = in_dialog_from_a("BYE", &a_tag, 30, "", "");
    let out = w.in_dialog(22, &bye);
    let (_, bye_c, peer) = sent_requests(&out).remove(0);
    assert_eq!(bye_c.method_str(), Some("BYE"));
    assert_eq!(peer.addr, "198.51.100.8:5070".parse().unwrap());
    assert_eq!(bye_c.to().unwrap().tag(), Some("ctag"));
    let rec = record(&out).unwrap();
    assert_eq!(
        (
            rec.caller.as_str(),
            rec.callee.as_str(),
            rec.reason.as_str()
        ),
        ("100", "102", "bye")
    );
    assert!(w.calls.is_empty());
}

#[test]
fn refer_from_the_caller_hands_the_callee_to_the_target() {
    let mut w = World::new();
    let (a_tag, inv_b) = talking(&mut w);
    let refer = in_dialog_from_a("REFER", &a_tag, 21, "Refer-To: <sip:102@pbx.test>\r\n", "");
    let out = w.in_dialog(20, &refer);
    let (call, from, ..) = forwards(&out).remove(0);
    assert_eq!(from, "100");
    let out = w.forward_to(call, ext_102(Forwarding::default()));
    let (leg, inv_c, _) = sent_requests(&out)
        .into_iter()
        .find(|(_, m, _)| m.method_str() == Some("INVITE"))
        .unwrap();
    assert_eq!(
        inv_c.from().unwrap().uri.user,
        Some("101"),
        "from the transferee"
    );
    assert!(
        std::str::from_utf8(inv_c.body())
            .unwrap()
            .contains("m=audio 30000 ")
    );
    let out = w.respond(leg, &response_to(&inv_c, 200, "ctag", Some(ANSWER)));
    let byes: Vec<_> = sent_requests(&out)
        .into_iter()
        .filter(|(_, m, _)| m.method_str() == Some("BYE"))
        .collect();
    assert_eq!(byes.len(), 1);
    assert_eq!(byes[0].2.addr, a_peer().addr, "the transferor leaves");
    // The transferee hangs up: BYE to the target, which took the caller's place.
    let bye = in_dialog_from_b(&inv_b, "BYE", 9, "", "");
    let out = w.in_dialog(21, &bye);
    let (_, bye_c, _) = sent_requests(&out).remove(0);
    assert_eq!(bye_c.to().unwrap().tag(), Some("ctag"));
    let rec = record(&out).unwrap();
    assert_eq!((rec.caller.as_str(), rec.callee.as_str()), ("101", "102"));
}

#[test]
fn refused_refer_is_403_with_the_reason_code_and_the_call_goes_on() {
    let mut w = World::new();
    let (a_tag, inv_b) = talking(&mut w);
    let refer = in_dialog_from_b(
        &inv_b,
        "REFER",
        7,
        "Refer-To: <sip:00441234567890@pbx.test>\r\n",
        "",
    );
    let out = w.in_dialog(20, &refer);
    let (call, ..) = forwards(&out).remove(0);
    let out = w.forward_to(
        call,
        Resolved::Refused {
            status: 403,
            reason: "Forbidden (calls to country code 44 are not allowed)".into(),
            code: "country_not_allowed".into(),
        },
    );
    assert!(sent_requests(&out).is_empty(), "nothing is sent anywhere");
    let r = responses(&out)[0];
    assert_eq!((r.status, r.tx), (403, ServerTxId::from_raw(20)));
    assert_eq!(warning_of(r), Some("399 palisade \"country_not_allowed\""));
    assert!(record(&out).is_none());
    assert_eq!(w.calls.active()[0].state, "talking");
    // The call is intact: a BYE ends it normally.
    let out = w.in_dialog(21, &in_dialog_from_a("BYE", &a_tag, 30, "", ""));
    assert_eq!(
        sent_requests(&out)[0].2.addr,
        "198.51.100.7:5070".parse().unwrap()
    );
    assert_eq!(record(&out).unwrap().callee, "101");
}

#[test]
fn refer_from_a_trunk_leg_attended_transfer_and_bad_refer_to_are_refused() {
    // The caller came in through a trunk: not an extension.
    let mut w = World::new();
    let wall = w.wall;
    let outside = Party {
        extension: false,
        ..party("4930555")
    };
    w.calls.invite(
        ServerTxId::from_raw(1),
        &invite_from_a(),
        a_peer(),
        outside,
        Some(party("101")),
        &[binding("sip:101@10.0.0.6:5070", "198.51.100.7:5070")],
        wall,
    );
    let out = w.outputs();
    let (leg, inv_b, _) = sent_requests(&out).remove(0);
    let out = w.respond(leg, &response_to(&inv_b, 200, "btag", Some(ANSWER)));
    let a_tag = responses(&out)[0].to_tag.clone().unwrap();
    w.calls.ack(&in_dialog_from_a("ACK", &a_tag, 20, "", ""));
    let refer = in_dialog_from_a(
        "REFER",
        &a_tag,
        21,
        "Refer-To: <sip:0049301234@pbx.test>\r\n",
        "",
    );
    let out = w.in_dialog(30, &refer);
    assert!(forwards(&out).is_empty(), "not even routed");
    let r = responses(&out)[0];
    assert_eq!(r.status, 403);
    assert_eq!(warning_of(r), Some("399 palisade \"transfer_not_allowed\""));

    // Attended transfer and a Refer-To that is no number.
    let mut w = World::new();
    let (_, inv_b) = talking(&mut w);
    let replaces = in_dialog_from_b(
        &inv_b,
        "REFER",
        7,
        "Refer-To: <sip:102@pbx.test?Replaces=x%3Bto-tag%3D1%3Bfrom-tag%3D2>\r\n",
        "",
    );
    let out = w.in_dialog(20, &replaces);
    assert!(forwards(&out).is_empty());
    assert_eq!(responses(&out)[0].status, 501);
    let bad = in_dialog_from_b(&inv_b, "REFER", 8, "Refer-To: <sip:alice@pbx.test>\r\n", "");
    let out = w.in_dialog(21, &bad);
    assert_eq!(responses(&out)[0].status, 400);
    assert_eq!(w.calls.active()[0].state, "talking");
}

#[test]
fn a_failed_transfer_target_returns_to_the_transferor_or_ends_the_call_without_it() {
    // The transferor is still there: NOTIFY with the failure, the call goes on.
    let mut w = World::new();
    let (_, inv_b) = talking(&mut w);
    let refer = in_dialog_from_b(&inv_b, "REFER", 7, "Refer-To: <sip:102@pbx.test>\r\n", "");
    let (call, ..) = forwards(&w.in_dialog(20, &refer)).remove(0);
    let out = w.forward_to(call, ext_102(Forwarding::default()));
    let (leg, inv_c, _) = sent_requests(&out)
        .into_iter()
        .find(|(_, m, _)| m.method_str() == Some("INVITE"))
        .unwrap();
    let out = w.respond(leg, &response_to(&inv_c, 486, "ctag", None));
    let notify = sent_requests(&out).remove(0).1;
    assert_eq!(sipfrag(&notify), "SIP/2.0 486 Busy Here");
    assert!(record(&out).is_none());
    assert_eq!(w.calls.active()[0].state, "talking");
    assert_eq!(w.calls.active()[0].callee, "101");

    // The transferor hung up right after 202: the transferee hears the failure as the end of the call.
    let mut w = World::new();
    let (_, inv_b) = talking(&mut w);
    let refer = in_dialog_from_b(&inv_b, "REFER", 7, "Refer-To: <sip:102@pbx.test>\r\n", "");
    let (call, ..) = forwards(&w.in_dialog(20, &refer)).remove(0);
    let out = w.forward_to(call, ext_102(Forwarding::default()));
    let (leg, _, _) = sent_requests(&out)
        .into_iter()
        .find(|(_, m, _)| m.method_str() == Some("INVITE"))
        .unwrap();
    let out = w.in_dialog(21, &in_dialog_from_b(&inv_b, "BYE", 8, "", ""));
    assert_eq!(responses(&out)[0].status, 200);
    assert!(sent_requests(&out).is_empty(), "the transferee stays");
    assert!(record(&out).is_none());
    // Ringing for too long.
    let later = w.now + CallConfig::default().no_answer;
    w.calls.handle_timeout(&mut w.media, later, w.wall);
    let out = w.outputs();
    assert!(
        out.iter()
            .any(|o| matches!(o, CallOutput::Cancel { leg: l } if *l == leg))
    );
    let sent = sent_requests(&out);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].1.method_str(), Some("BYE"));
    assert_eq!(sent[0].2.addr, a_peer().addr, "BYE to the transferee");
    assert_eq!(record(&out).unwrap().reason, "transfer_failed");
    assert!(w.calls.is_empty());
}

#[test]
fn voicemail_answers_an_srtp_caller_with_its_own_key_and_plain_rtp_toward_the_application() {
    let mut w = World::new();
    w.invite_srtp_over_tls(vm_party("101"), &[]);
    let out = w.outputs();
    let call = app_start(&out).expect("StartApp").call;
    let out = w.app_ready(call, "127.0.0.1:41000");
    let ok = responses(&out)
        .into_iter()
        .find(|r| r.status == 200)
        .expect("200");
    let body = std::str::from_utf8(&ok.body.as_ref().unwrap().1).unwrap();
    assert!(
        body.contains("RTP/SAVP") && body.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"),
        "{body}"
    );
    assert!(!body.contains("WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"));
    assert_eq!(
        w.media.crypto.get(&(1, true)),
        Some(&true),
        "SRTP on the caller's leg"
    );
    assert_eq!(
        w.media.crypto.get(&(1, false)),
        Some(&false),
        "plain RTP toward the application"
    );
}

/// 101 puts the caller on hold (re-INVITE sendonly, the caller answers recvonly), then transfers it to 102,
/// which answers. Returns the caller's To tag and Palisade's re-INVITE to the caller (with its leg key).
fn hold_then_transfer(w: &mut World) -> (String, LegKey, Message) {
    let (a_tag, inv_b) = talking(w);
    let hold = ANSWER.replace("a=sendrecv", "a=sendonly");
    let reinvite = in_dialog_from_b(
        &inv_b,
        "INVITE",
        5,
        "Content-Type: application/sdp\r\n",
        &hold,
    );
    let out = w.in_dialog(10, &reinvite);
    let (leg, to_a, _) = sent_requests(&out).remove(0);
    assert!(
        std::str::from_utf8(to_a.body())
            .unwrap()
            .contains("a=sendonly")
    );
    let held = OFFER.replace("a=sendrecv", "a=recvonly");
    let out = w.respond(leg, &response_to(&to_a, 200, "atag", Some(&held)));
    assert_eq!(responses(&out)[0].status, 200, "B's hold is answered");

    let refer = in_dialog_from_b(&inv_b, "REFER", 7, "Refer-To: <sip:102@pbx.test>\r\n", "");
    let (call, ..) = forwards(&w.in_dialog(20, &refer)).remove(0);
    let out = w.forward_to(call, ext_102(Forwarding::default()));
    let (leg_c, inv_c, _) = sent_requests(&out)
        .into_iter()
        .find(|(_, m, _)| m.method_str() == Some("INVITE"))
        .expect("INVITE to the target");
    let offer_c = std::str::from_utf8(inv_c.body()).unwrap().to_string();
    assert!(
        offer_c.contains("a=sendrecv") && !offer_c.contains("recvonly"),
        "{offer_c}"
    );
    assert!(
        sent_requests(&out)
            .iter()
            .all(|(_, _, p)| p.addr != a_peer().addr),
        "nothing to the transferee while the target rings"
    );
    let answer_c = ANSWER
        .replace("10.0.0.6", "10.0.0.8")
        .replace("5000", "6000")
        .replace("8 9 101", "8 101");
    let out = w.respond(leg_c, &response_to(&inv_c, 200, "ctag", Some(&answer_c)));
    let sent = sent_requests(&out);
    assert!(
        sent.iter()
            .any(|(_, m, p)| m.method_str() == Some("BYE") && p.addr != a_peer().addr),
        "the transferor is released"
    );
    let mut to_a: Vec<_> = sent
        .into_iter()
        .filter(|(_, _, p)| p.addr == a_peer().addr)
        .collect();
    assert_eq!(to_a.len(), 1, "one request to the transferee");
    let (leg, resume, _) = to_a.remove(0);
    (a_tag, leg, resume)
}

#[test]
fn a_transferee_on_hold_is_taken_off_hold_by_a_reinvite_when_the_target_answers() {
    let mut w = World::new();
    let (a_tag, leg, resume) = hold_then_transfer(&mut w);
    assert_eq!(resume.method_str(), Some("INVITE"));
    assert_eq!(
        resume.request_uri_raw(),
        Some(&b"sip:100@10.0.0.5:5062"[..]),
        "in the transferee's dialog"
    );
    assert_eq!(resume.to().unwrap().tag(), Some("atag"));
    assert_eq!(resume.from().unwrap().tag(), Some(a_tag.as_str()));
    let seq = resume.cseq().unwrap().seq;
    let body = std::str::from_utf8(resume.body()).unwrap();
    assert!(
        body.contains("m=audio 30000 RTP/AVP 8 101")
            && body.contains("a=sendrecv")
            && !body.contains("sendonly")
            && !body.contains("recvonly"),
        "two-way, the transferee's relay port, the codecs agreed with the target: {body}"
    );
    // The origin Palisade last used toward the transferee (101's, from the hold), one version later.
    assert!(body.contains("o=bob 7 8 IN IP4 "), "{body}");
    assert!(
        !body.contains("10.0.0.8"),
        "nothing of the target leaks: {body}"
    );
    // The transferee answers from a new port: ACKed, and the relay follows.
    let answer = OFFER.replace("4000", "4002");
    let ok = response_to(&resume, 200, "atag", Some(&answer));
    let out = w.respond(leg, &ok);
    let acks: Vec<Message> = out
        .iter()
        .filter_map(|o| match o {
            CallOutput::SendRaw { bytes, peer } if peer.addr == a_peer().addr => {
                Some(parse_bytes(bytes))
            }
            _ => None,
        })
        .collect();
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].method_str(), Some("ACK"));
    assert_eq!(acks[0].cseq().unwrap().seq, seq);
    assert_eq!(
        w.media.live[&1][0].unwrap().0,
        "10.0.0.5:4002".parse().unwrap()
    );
    assert_eq!(
        w.media.live[&1][1].unwrap().0,
        "10.0.0.8:6000".parse().unwrap()
    );
    // A retransmitted 200 is ACKed again.
    let out = w.respond(leg, &ok);
    assert!(
        out.iter()
            .any(|o| matches!(o, CallOutput::SendRaw { peer, .. } if peer.addr == a_peer().addr))
    );
    // The transferee's own re-INVITE is relayed to the target as usual afterwards.
    let reinvite = in_dialog_from_a(
        "INVITE",
        &a_tag,
        40,
        "Content-Type: application/sdp\r\n",
        OFFER,
    );
    let out = w.in_dialog(30, &reinvite);
    let (_, to_c, peer) = sent_requests(&out).remove(0);
    assert_eq!(to_c.method_str(), Some("INVITE"));
    assert_eq!(peer.addr, "198.51.100.8:5070".parse().unwrap());
    assert_eq!(w.calls.active()[0].state, "talking");
}

#[test]
fn a_refused_or_unanswered_resume_reinvite_keeps_the_call() {
    // Refused (488), after a glare: the transferee's own re-INVITE meanwhile gets 491.
    let mut w = World::new();
    let (a_tag, leg, resume) = hold_then_transfer(&mut w);
    let glare = in_dialog_from_a(
        "INVITE",
        &a_tag,
        40,
        "Content-Type: application/sdp\r\n",
        OFFER,
    );
    let out = w.in_dialog(30, &glare);
    assert_eq!(responses(&out)[0].status, 491);
    assert!(sent_requests(&out).is_empty(), "not relayed to the target");
    let out = w.respond(leg, &response_to(&resume, 488, "atag", None));
    assert!(sent_requests(&out).is_empty(), "no BYE");
    assert!(record(&out).is_none());
    assert_eq!(w.calls.active()[0].state, "talking");
    assert_eq!(w.calls.active()[0].callee, "102");
    // Later, the transferee's re-INVITE goes through.
    let out = w.in_dialog(
        31,
        &in_dialog_from_a(
            "INVITE",
            &a_tag,
            41,
            "Content-Type: application/sdp\r\n",
            OFFER,
        ),
    );
    assert!(responses(&out).is_empty());
    assert_eq!(sent_requests(&out)[0].1.method_str(), Some("INVITE"));

    // No answer at all (timer B).
    let mut w = World::new();
    let (_, leg, _) = hold_then_transfer(&mut w);
    let (now, wall) = (w.now, w.wall);
    w.calls.leg_failed(leg, &mut w.media, now, wall);
    let out = w.outputs();
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(w.calls.active()[0].state, "talking");
    assert_eq!(w.calls.active()[0].callee, "102");
}

#[test]
fn a_hold_still_unanswered_when_the_target_answers_is_resumed_after_its_answer() {
    let mut w = World::new();
    let (_, inv_b) = talking(&mut w);
    let hold = ANSWER.replace("a=sendrecv", "a=inactive");
    let reinvite = in_dialog_from_b(
        &inv_b,
        "INVITE",
        5,
        "Content-Type: application/sdp\r\n",
        &hold,
    );
    let (hold_leg, hold_to_a, _) = sent_requests(&w.in_dialog(10, &reinvite)).remove(0);
    let refer = in_dialog_from_b(&inv_b, "REFER", 7, "Refer-To: <sip:102@pbx.test>\r\n", "");
    let (call, ..) = forwards(&w.in_dialog(20, &refer)).remove(0);
    let out = w.forward_to(call, ext_102(Forwarding::default()));
    let (leg_c, inv_c, _) = sent_requests(&out)
        .into_iter()
        .find(|(_, m, _)| m.method_str() == Some("INVITE"))
        .unwrap();
    let answer_c = ANSWER.replace("10.0.0.6", "10.0.0.8");
    let out = w.respond(leg_c, &response_to(&inv_c, 200, "ctag", Some(&answer_c)));
    assert!(
        sent_requests(&out)
            .iter()
            .all(|(_, _, p)| p.addr != a_peer().addr),
        "not while the hold re-INVITE is in flight"
    );
    // The caller answers the hold (inactive): now Palisade takes it off hold.
    let held = OFFER.replace("a=sendrecv", "a=inactive");
    let out = w.respond(hold_leg, &response_to(&hold_to_a, 200, "atag", Some(&held)));
    let (_, resume, peer) = sent_requests(&out).remove(0);
    assert_eq!(peer.addr, a_peer().addr);
    assert_eq!(resume.method_str(), Some("INVITE"));
    assert!(
        resume.cseq().unwrap().seq > hold_to_a.cseq().unwrap().seq,
        "the next CSeq of the dialog"
    );
    let body = std::str::from_utf8(resume.body()).unwrap();
    assert!(
        body.contains("a=sendrecv") && body.contains("m=audio 30000"),
        "{body}"
    );
}

#[test]
fn an_srtp_transferee_is_taken_off_hold_with_a_fresh_key() {
    let mut w = World::new();
    let (sdp, a_tls) = (srtp_offer(), tls_peer());
    w.invite_srtp_over_tls(
        party("101"),
        &[binding("sip:101@10.0.0.6", "198.51.100.7:5070")],
    );
    let (leg, inv_b, _) = sent_requests(&w.outputs()).remove(0);
    let out = w.respond(leg, &response_to(&inv_b, 200, "btag", Some(ANSWER)));
    let a_tag = responses(&out)[0].to_tag.clone().unwrap();
    w.calls.ack(&parse(&format!(
        "ACK sip:pbx SIP/2.0\r\nVia: SIP/2.0/TLS 10.0.0.5:5061;branch=z9hG4bKack\r\nFrom: <sip:100@pbx.test>;tag=atag\r\n\
         To: <sip:101@pbx.test>;tag={a_tag}\r\nCall-ID: srtp@10.0.0.5\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    )));
    // 101 holds the caller, which answers with a key for Palisade's fresh one.
    let hold = ANSWER.replace("a=sendrecv", "a=sendonly");
    let reinvite = in_dialog_from_b(
        &inv_b,
        "INVITE",
        5,
        "Content-Type: application/sdp\r\n",
        &hold,
    );
    let (hold_leg, hold_to_a, _) = sent_requests(&w.in_dialog(10, &reinvite)).remove(0);
    let hold_body = std::str::from_utf8(hold_to_a.body()).unwrap().to_string();
    assert!(hold_body.contains("RTP/SAVP"), "{hold_body}");
    let held = sdp.replace("a=sendrecv", "a=recvonly");
    w.respond(hold_leg, &response_to(&hold_to_a, 200, "atag", Some(&held)));
    let refer = in_dialog_from_b(&inv_b, "REFER", 7, "Refer-To: <sip:102@pbx.test>\r\n", "");
    let (call, ..) = forwards(&w.in_dialog(20, &refer)).remove(0);
    let out = w.forward_to(call, ext_102(Forwarding::default()));
    let (leg_c, inv_c, _) = sent_requests(&out)
        .into_iter()
        .find(|(_, m, _)| m.method_str() == Some("INVITE"))
        .unwrap();
    assert!(
        !std::str::from_utf8(inv_c.body())
            .unwrap()
            .contains("crypto"),
        "the plain target sees no key"
    );
    let answer_c = ANSWER.replace("10.0.0.6", "10.0.0.8");
    let out = w.respond(leg_c, &response_to(&inv_c, 200, "ctag", Some(&answer_c)));
    let (leg, resume, peer) = sent_requests(&out)
        .into_iter()
        .find(|(_, m, _)| m.method_str() == Some("INVITE"))
        .expect("re-INVITE to the transferee");
    assert_eq!(peer, a_tls);
    let body = std::str::from_utf8(resume.body()).unwrap().to_string();
    assert!(
        body.contains("m=audio 30000 RTP/SAVP") && body.contains("a=sendrecv"),
        "{body}"
    );
    let keys: Vec<&str> = body
        .lines()
        .filter(|l| l.starts_with("a=crypto:"))
        .collect();
    assert_eq!(keys.len(), 2, "{body}");
    for k in &keys {
        assert!(!hold_body.contains(k), "a fresh key, not the hold's: {k}");
        assert!(!k.contains("WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"));
    }
    // The transferee answers with a new key of its own: the relay's leg A is keyed again.
    w.media.crypto.clear();
    let answer = sdp.replace(
        "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz",
        "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNk",
    );
    let out = w.respond(leg, &response_to(&resume, 200, "atag", Some(&answer)));
    assert!(
        out.iter()
            .any(|o| matches!(o, CallOutput::SendRaw { peer, .. } if *peer == a_tls)),
        "ACK"
    );
    assert_eq!(w.media.crypto.get(&(1, true)), Some(&true), "SRTP on leg A");
    assert_eq!(w.media.crypto.get(&(1, false)), None, "leg B untouched");
}

#[test]
fn a_callee_held_by_the_transferring_caller_is_taken_off_hold_too() {
    let mut w = World::new();
    let (a_tag, _) = talking(&mut w);
    // The caller holds 101 (sendonly; 101 answers recvonly), then transfers it to 102.
    let hold = OFFER.replace("a=sendrecv", "a=sendonly");
    let reinvite = in_dialog_from_a(
        "INVITE",
        &a_tag,
        21,
        "Contact: <sip:100@10.0.0.5:5062>\r\nContent-Type: application/sdp\r\n",
        &hold,
    );
    let (hold_leg, hold_to_b, peer_b) = sent_requests(&w.in_dialog(10, &reinvite)).remove(0);
    let held = ANSWER.replace("a=sendrecv", "a=recvonly");
    w.respond(hold_leg, &response_to(&hold_to_b, 200, "btag", Some(&held)));
    let refer = in_dialog_from_a("REFER", &a_tag, 22, "Refer-To: <sip:102@pbx.test>\r\n", "");
    let (call, ..) = forwards(&w.in_dialog(20, &refer)).remove(0);
    let out = w.forward_to(call, ext_102(Forwarding::default()));
    let (leg_c, inv_c, _) = sent_requests(&out)
        .into_iter()
        .find(|(_, m, _)| m.method_str() == Some("INVITE"))
        .unwrap();
    let answer_c = ANSWER
        .replace("10.0.0.6", "10.0.0.8")
        .replace("5000", "6000");
    let out = w.respond(leg_c, &response_to(&inv_c, 200, "ctag", Some(&answer_c)));
    let (leg, resume, peer) = sent_requests(&out)
        .into_iter()
        .find(|(_, m, _)| m.method_str() == Some("INVITE"))
        .expect("re-INVITE to the transferee (the callee)");
    assert_eq!(peer, peer_b);
    assert_eq!(resume.to().unwrap().tag(), Some("btag"));
    assert!(resume.cseq().unwrap().seq > hold_to_b.cseq().unwrap().seq);
    let body = std::str::from_utf8(resume.body()).unwrap();
    assert!(
        body.contains("m=audio 30002 ") && body.contains("a=sendrecv"),
        "{body}"
    );
    let out = w.respond(leg, &response_to(&resume, 200, "btag", Some(ANSWER)));
    assert!(
        out.iter()
            .any(|o| matches!(o, CallOutput::SendRaw { peer, .. } if *peer == peer_b)),
        "ACK"
    );
    assert_eq!(
        w.media.live[&1][1].unwrap().0,
        "10.0.0.6:5000".parse().unwrap()
    );
    assert_eq!(
        w.media.live[&1][0].unwrap().0,
        "10.0.0.8:6000".parse().unwrap(),
        "the target took the caller's place"
    );
}
