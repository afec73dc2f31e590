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
    /// (session, is leg A) → the music on hold that leg hears.
    music: HashMap<(u64, bool), Option<HoldMusic>>,
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
    fn set_music(&mut self, id: MediaId, leg: Leg, music: Option<HoldMusic>) {
        self.music.insert((id.0, leg == Leg::A), music);
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
            (sip::Transport::Udp, "192.0.2.1:5060".parse().unwrap()),
            (sip::Transport::Tcp, "192.0.2.1:5060".parse().unwrap()),
            (sip::Transport::Tls, "192.0.2.1:5061".parse().unwrap()),
        ],
        domain: "pbx.test".into(),
    }
}

fn binding(contact: &str, source: &str) -> Binding {
    Binding {
        aor: "101".into(),
        contact: contact.into(),
        transport: sip::Transport::Udp,
        source: source.parse().unwrap(),
        local: "192.0.2.1:5060".parse().unwrap(),
        expires_at: u64::MAX,
        call_id: "r".into(),
        cseq: 1,
        q: None,
        user_agent: None,
        via_node: None,
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
            CallOutput::SendRequest { leg, request, peer } => Some((*leg, request.clone(), *peer)),
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

mod basic;
mod forwarding;
mod office;
mod transfer;
mod trunks;
mod voicemail;

use basic::*;
use forwarding::*;
use trunks::*;
use voicemail::*;
