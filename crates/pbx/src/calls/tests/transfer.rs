//! Blind transfer (REFER): to extensions and back, refusals, failures, hold and resume around it.

use super::*;

// ---- Blind transfer (REFER) ----

/// An in-dialog request from B (the callee's phone) in the dialog of `inv_b`.
pub(super) fn in_dialog_from_b(
    inv_b: &Message,
    method: &str,
    cseq: u32,
    extra: &str,
    body: &str,
) -> Message {
    parse(&format!(
        "{method} sip:pbx@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.6:5070;branch=z9hG4bK{method}b{cseq}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:101@pbx.test>;tag=btag\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\n\
         Contact: <sip:101@10.0.0.6:5070>\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        inv_b.header_str(sip::HeaderName::From).unwrap(),
        std::str::from_utf8(inv_b.call_id().unwrap()).unwrap(),
        body.len()
    ))
}

pub(super) fn sipfrag(m: &Message) -> String {
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
pub(super) fn refer_to_an_extension_transfers_the_caller_to_it() {
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
pub(super) fn refer_from_the_caller_hands_the_callee_to_the_target() {
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
pub(super) fn refused_refer_is_403_with_the_reason_code_and_the_call_goes_on() {
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
pub(super) fn refer_from_a_trunk_leg_attended_transfer_and_bad_refer_to_are_refused() {
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
    // Attended transfer naming a dialog no call holds (calls/attended.rs): refused, the call goes on.
    assert_eq!(responses(&out)[0].status, 403);
    assert_eq!(
        warning_of(responses(&out)[0]),
        Some("399 palisade \"replaces_not_found\"")
    );
    let bad = in_dialog_from_b(&inv_b, "REFER", 8, "Refer-To: <sip:alice@pbx.test>\r\n", "");
    let out = w.in_dialog(21, &bad);
    assert_eq!(responses(&out)[0].status, 400);
    assert_eq!(w.calls.active()[0].state, "talking");
}

#[test]
pub(super) fn a_failed_transfer_target_returns_to_the_transferor_or_ends_the_call_without_it() {
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
pub(super) fn voicemail_answers_an_srtp_caller_with_its_own_key_and_plain_rtp_toward_the_application()
 {
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
pub(super) fn hold_then_transfer(w: &mut World) -> (String, LegKey, Message) {
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
pub(super) fn a_transferee_on_hold_is_taken_off_hold_by_a_reinvite_when_the_target_answers() {
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
pub(super) fn a_refused_or_unanswered_resume_reinvite_keeps_the_call() {
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
pub(super) fn a_hold_still_unanswered_when_the_target_answers_is_resumed_after_its_answer() {
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
pub(super) fn an_srtp_transferee_is_taken_off_hold_with_a_fresh_key() {
    let mut w = World::new();
    let (sdp, a_tls) = (srtp_offer(), tls_peer());
    w.invite_srtp_over_tls(
        party("101"),
        &[binding("sip:101@10.0.0.6", "198.51.100.7:5070")],
    );
    let (leg, inv_b, _) = sent_requests(&w.outputs()).remove(0);
    let out = w.respond(leg, &response_to(&inv_b, 200, "btag", Some(ANSWER)));
    let a_tag = responses(&out)[0].to_tag.clone().unwrap();
    let answered_a =
        String::from_utf8_lossy(&responses(&out)[0].body.as_ref().unwrap().1).to_string();
    let key_to_a = answered_a
        .lines()
        .find(|l| l.starts_with("a=crypto:"))
        .expect("Palisade's key toward A")
        .to_string();
    w.calls.ack(&parse(&format!(
        "ACK sip:pbx SIP/2.0\r\nVia: SIP/2.0/TLS 10.0.0.5:5061;branch=z9hG4bKack\r\nFrom: <sip:100@pbx.test>;tag=atag\r\n\
         To: <sip:101@pbx.test>;tag={a_tag}\r\nCall-ID: srtp@10.0.0.5\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    )));
    // 101 holds the caller: the hold offer to A keeps Palisade's key toward A (a phone that does not re-key on a
    // re-INVITE goes on decrypting, music on hold included); A answers with its key.
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
    let hold_keys: Vec<&str> = hold_body
        .lines()
        .filter(|l| l.starts_with("a=crypto:"))
        .collect();
    assert_eq!(hold_keys, [key_to_a.as_str()], "the key in use, kept");
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
pub(super) fn a_callee_held_by_the_transferring_caller_is_taken_off_hold_too() {
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
