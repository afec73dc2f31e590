//! Calls answered by a media application (voicemail, access, unlock).

use super::*;

// ---- Voicemail: calls answered by a media application ----

pub(super) fn vm_party(n: &str) -> Party {
    Party {
        voicemail: true,
        ..party(n)
    }
}

pub(super) fn app_start(out: &[CallOutput]) -> Option<&AppStart> {
    out.iter().find_map(|o| match o {
        CallOutput::StartApp(s) => Some(s),
        _ => None,
    })
}

impl World {
    pub(super) fn invite_vm(&mut self, contacts: &[Binding]) -> Vec<CallOutput> {
        self.invite_to(vm_party("101"), contacts)
    }

    /// The edge started the application at `addr`.
    pub(super) fn app_ready(&mut self, call: u64, addr: &str) -> Vec<CallOutput> {
        let (now, wall) = (self.now, self.wall);
        self.calls
            .app_ready(call, addr.parse().unwrap(), &mut self.media, now, wall);
        self.outputs()
    }
}

#[test]
pub(super) fn unregistered_callee_with_voicemail_is_answered_by_its_mailbox() {
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
pub(super) fn callee_without_voicemail_still_gets_480() {
    let mut w = World::new();
    let out = w.invite(&[]);
    assert!(app_start(&out).is_none());
    assert!(responses(&out).iter().any(|r| r.status == 480));
}

#[test]
pub(super) fn busy_and_no_answer_divert_to_voicemail() {
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
pub(super) fn no_common_g711_codec_gives_the_original_failure() {
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

pub(super) fn in_dialog_from_a(
    method: &str,
    to_tag: &str,
    cseq: u32,
    extra: &str,
    body: &str,
) -> Message {
    parse(&format!(
        "{method} sip:pbx@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bK{method}{cseq}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:100@pbx.test>;tag=atag\r\nTo: <sip:101@pbx.test>;tag={to_tag}\r\n\
         Call-ID: call-a@10.0.0.5\r\nCSeq: {cseq} {method}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    ))
}

#[test]
pub(super) fn voicemail_call_takes_info_keys_refuses_refer_and_stops_on_bye() {
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
pub(super) fn application_hangs_up_and_access_calls() {
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
