//! A call from ring to hang-up: NAT, forking, busy, cancel, timers, hold, SRTP on each leg.

use super::*;

/// Both phones write a private address into their SDP and signal from a NAT's public address: the relay expects
/// each leg's media from that public address, learns the port from the first packet and sends nothing before.
#[test]
pub(super) fn phones_behind_nat_get_media_from_their_signalling_source() {
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
pub(super) fn a_trunk_media_server_elsewhere_is_trusted() {
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
pub(super) fn basic_call_ring_answer_and_hang_up() {
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
pub(super) fn forking_first_answer_wins_others_cancelled() {
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
pub(super) fn busy_everywhere_is_486_and_recorded() {
    let mut w = World::new();
    let out = w.invite(&[binding("sip:101@10.0.0.6", "198.51.100.7:5070")]);
    let (leg, inv, _) = &sent_requests(&out)[0];
    let out = w.respond(*leg, &response_to(inv, 486, "b", None));
    assert_eq!(responses(&out)[0].status, 486);
    assert_eq!(record(&out).unwrap().disposition, Disposition::Busy);
    assert!(w.calls.is_empty());
}

#[test]
pub(super) fn caller_cancel_gives_487_and_cancels_branches() {
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
pub(super) fn no_answer_timeout_is_480() {
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
pub(super) fn unknown_unregistered_and_no_offer() {
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
pub(super) fn talking(w: &mut World) -> (String, Message) {
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
pub(super) fn hold_from_the_callee_is_relayed_with_rewritten_sdp() {
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
    // The held caller hears the holding extension's music, in the PCMU its answer lists first.
    let session = *w.media.live.keys().next().unwrap();
    assert_eq!(
        w.media.music.get(&(session, true)),
        Some(&Some(HoldMusic {
            holder: Some("101".into()),
            payload_type: 0
        }))
    );
    assert_eq!(w.media.music.get(&(session, false)), None);

    // 101 resumes (sendrecv): the music stops once the caller answers.
    let resume = reinvite_from_b(&inv_b, 6, ANSWER);
    let (now, wall) = (w.now, w.wall);
    assert!(
        w.calls
            .in_dialog(ServerTxId::from_raw(8), &resume, &mut w.media, now, wall)
    );
    let out = w.outputs();
    let (leg, to_a, _) = sent_requests(&out).remove(0);
    assert!(w.media.music.get(&(session, true)).unwrap().is_some());
    w.respond(leg, &response_to(&to_a, 200, "x", Some(OFFER)));
    assert_eq!(w.media.music.get(&(session, true)), Some(&None));
}

/// A re-INVITE from the callee (101) of `talking`, with `body`.
fn reinvite_from_b(inv_b: &Message, cseq: u32, body: &str) -> Message {
    parse(&format!(
        "INVITE sip:pbx SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.6:5070;branch=z9hG4bKre{cseq}\r\nFrom: <sip:101@pbx.test>;tag=btag\r\n\
         To: {};tag={}\r\nCall-ID: {}\r\nCSeq: {cseq} INVITE\r\nContact: <sip:101@10.0.0.6:5070>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        inv_b
            .header_str(sip::HeaderName::From)
            .unwrap()
            .split(";tag=")
            .next()
            .unwrap(),
        inv_b.from().unwrap().tag().unwrap(),
        std::str::from_utf8(inv_b.call_id().unwrap()).unwrap(),
        body.len()
    ))
}

#[test]
pub(super) fn media_timeout_and_max_duration_end_calls() {
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
pub(super) fn unacknowledged_2xx_is_retransmitted_then_the_call_ends() {
    let mut w = World::new();
    let out = w.invite(&[binding("sip:101@10.0.0.6", "198.51.100.7:5070")]);
    let (leg, inv_b, _) = sent_requests(&out).remove(0);
    let answered = w.respond(leg, &response_to(&inv_b, 200, "btag", Some(ANSWER)));
    // The endpoint reports the 2xx it built; the call layer sends exactly those bytes again.
    let ok = responses(&answered)
        .into_iter()
        .find(|r| r.status == 200)
        .map(|r| r.tx)
        .unwrap();
    let sent = Bytes::from_static(b"SIP/2.0 200 OK\r\n\r\n");
    w.calls.answer_sent(ok, sent.clone());
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
            .filter(|o| matches!(o, CallOutput::Retransmit { tx, response } if *tx == ok && *response == sent))
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
pub(super) fn in_dialog_request_for_an_unknown_dialog_is_not_ours() {
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

pub(super) fn tls_binding(contact: &str, source: &str) -> Binding {
    Binding {
        transport: sip::Transport::Tls,
        ..binding(contact, source)
    }
}

pub(super) fn invite_with(sdp: &str) -> Message {
    parse(&format!(
        "INVITE sip:101@pbx.test SIP/2.0\r\nVia: SIP/2.0/TLS 10.0.0.5:5061;branch=z9hG4bKs1\r\n\
         From: <sip:100@pbx.test>;tag=atag\r\nTo: <sip:101@pbx.test>\r\nCall-ID: srtp@10.0.0.5\r\nCSeq: 1 INVITE\r\n\
         Contact: <sip:100@10.0.0.5:5061;transport=tls>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    ))
}

pub(super) const CRYPTO_A: &str =
    "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";

#[test]
pub(super) fn plain_caller_to_srtp_callee_over_tls_gets_keys_only_on_the_secure_leg() {
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
pub(super) fn srtp_caller_over_tls_gets_palisade_key_and_plain_callee_sees_no_key() {
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
pub(super) fn srtp_policy_refusals_are_488() {
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
