//! Office features: ring groups (members step by step, busy moves on, the first answer wins and becomes the
//! callee, the fallback), pickup, and park (a slot, retrieval, the ring-back to the parker).

use super::transfer::{in_dialog_from_b, sipfrag};
use super::*;

fn member(n: &str, port: u16) -> GroupMember {
    let b = binding_of(
        n,
        &format!("sip:{n}@10.0.1.{port}:5060"),
        &format!("198.51.100.{port}:5060"),
    );
    let calls = Calls::new(CallConfig::default(), local());
    GroupMember {
        party: party(n),
        targets: calls.contact_targets("100", &[b]),
    }
}

fn group_party(fallback: &GroupFallback) -> Party {
    Party {
        voicemail: matches!(fallback, GroupFallback::Mailbox(_)),
        forward: Forwarding {
            no_answer: match fallback {
                GroupFallback::Forward { target, .. } => Some(target.clone()),
                _ => None,
            },
            ..Forwarding::default()
        },
        ..party("600")
    }
}

impl World {
    fn invite_group(
        &mut self,
        steps: Vec<Vec<GroupMember>>,
        fallback: GroupFallback,
    ) -> Vec<CallOutput> {
        let wall = self.wall;
        let callee = group_party(&fallback);
        self.calls.invite_group(
            ServerTxId::from_raw(1),
            &invite_from_a(),
            a_peer(),
            party("100"),
            callee,
            GroupCall {
                steps,
                ring_each: Duration::from_secs(10),
                fallback,
            },
            wall,
        );
        self.outputs()
    }

    fn tick(&mut self, by: Duration) -> Vec<CallOutput> {
        self.now += by;
        self.wall += by;
        let (now, wall) = (self.now, self.wall);
        self.calls.handle_timeout(&mut self.media, now, wall);
        self.outputs()
    }
}

fn invited_users(out: &[CallOutput]) -> Vec<String> {
    sent_requests(out)
        .iter()
        .filter(|(_, m, _)| m.method() == Some(sip::Method::Invite))
        .filter_map(|(_, m, _)| {
            m.request_uri()
                .and_then(Result::ok)
                .and_then(|u| u.user.map(str::to_string))
        })
        .collect()
}

#[test]
fn all_rings_every_member_and_the_second_to_answer_loses_to_the_first() {
    let mut w = World::new();
    let out = w.invite_group(
        vec![vec![member("201", 1), member("202", 2), member("203", 3)]],
        GroupFallback::Hangup,
    );
    assert_eq!(invited_users(&out), ["201", "202", "203"]);
    let sent = sent_requests(&out);
    let (leg, req, _) = &sent[1];
    let out = w.respond(*leg, &response_to(req, 200, "b202", Some(ANSWER)));
    // 202 answered: the caller gets 200, 201 and 203 are cancelled.
    assert!(responses(&out).iter().any(|r| r.status == 200));
    let cancelled: Vec<LegKey> = out
        .iter()
        .filter_map(|o| match o {
            CallOutput::Cancel { leg } => Some(*leg),
            _ => None,
        })
        .collect();
    assert_eq!(cancelled, [sent[0].0, sent[2].0]);
    // The member is the callee from now on: in a call (busy for the next group call) and in the record.
    assert!(w.calls.busy_extensions().contains("202"));
    assert_eq!(w.calls.active()[0].callee, "202");
}

#[test]
fn order_moves_on_when_a_member_is_busy_or_does_not_answer_then_falls_back() {
    let mut w = World::new();
    let out = w.invite_group(
        vec![
            vec![member("201", 1)],
            vec![member("202", 2)],
            vec![member("203", 3)],
        ],
        GroupFallback::Forward {
            target: "210".into(),
            route_as: "100".into(),
        },
    );
    assert_eq!(invited_users(&out), ["201"]);
    // 201 is busy: 202 rings at once.
    let (leg, req, _) = sent_requests(&out).remove(0);
    let out = w.respond(leg, &response_to(&req, 486, "b201", None));
    assert_eq!(invited_users(&out), ["202"]);
    assert!(
        responses(&out).iter().all(|r| r.status != 486),
        "the caller keeps waiting"
    );
    // 202 does not answer within the ring time: cancelled, 203 rings.
    let out = w.tick(Duration::from_secs(9));
    assert!(invited_users(&out).is_empty());
    let out = w.tick(Duration::from_secs(2));
    assert!(out.iter().any(|o| matches!(o, CallOutput::Cancel { .. })));
    assert_eq!(invited_users(&out), ["203"]);
    // 203 does not answer either: the fallback, routed as the caller (100) would dial it.
    let out = w.tick(Duration::from_secs(11));
    let fw = forwards(&out);
    assert_eq!(fw.len(), 1, "{out:?}");
    assert_eq!((fw[0].1.as_str(), fw[0].2.as_str()), ("100", "210"));
    assert_eq!(fw[0].3, ForwardReason::NoAnswer);
}

#[test]
fn nobody_available_goes_straight_to_the_fallback_or_480() {
    let mut w = World::new();
    let out = w.invite_group(Vec::new(), GroupFallback::Hangup);
    assert_eq!(responses(&out).last().map(|r| r.status), Some(480));
    let mut w = World::new();
    let out = w.invite_group(Vec::new(), GroupFallback::Mailbox("201".into()));
    let app = out.iter().find_map(|o| match o {
        CallOutput::StartApp(s) => Some(s.kind.clone()),
        _ => None,
    });
    assert_eq!(
        app,
        Some(AppKind::Deposit {
            mailbox: "201".into()
        })
    );
}

fn invite_from_c(target: &str) -> Message {
    let s = format!(
        "INVITE sip:{target}@pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.7:5064;branch=z9hG4bKc1;rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:102@pbx.test>;tag=ctag\r\nTo: <sip:{target}@pbx.test>\r\n\
         Call-ID: call-c@10.0.0.7\r\nCSeq: 5 INVITE\r\nContact: <sip:102@10.0.0.7:5064>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{ANSWER}",
        ANSWER.len()
    );
    parse(&s)
}

#[test]
fn a_ringing_call_is_picked_up_by_another_phone() {
    let mut w = World::new();
    let b = binding_of("101", "sip:101@10.0.0.6:5070", "198.51.100.6:5070");
    let out = w.invite(&[b]);
    assert_eq!(invited_users(&out), ["101"]);
    let ringing = w.calls.ringing_extensions();
    assert_eq!(ringing.len(), 1);
    assert_eq!(ringing[0].1, "101");
    let c_peer = Peer::new("198.51.100.7:5064".parse().unwrap(), Transport::Udp);
    let (now, wall) = (w.now, w.wall);
    w.calls
        .pick_up(
            ringing[0].0,
            ServerTxId::from_raw(9),
            &invite_from_c("*8"),
            c_peer,
            party("102"),
            &mut w.media,
            now,
            wall,
        )
        .expect("picked up");
    let out = w.outputs();
    // 101 stops ringing; the caller and the picker both get 200 with the relay's addresses.
    assert!(out.iter().any(|o| matches!(o, CallOutput::Cancel { .. })));
    let answers: Vec<_> = responses(&out)
        .into_iter()
        .filter(|r| r.status == 200)
        .collect();
    assert_eq!(answers.len(), 2);
    assert_eq!(
        answers.iter().map(|r| r.tx).collect::<Vec<_>>(),
        [ServerTxId::from_raw(1), ServerTxId::from_raw(9)]
    );
    assert!(w.calls.ringing_extensions().is_empty());
    assert_eq!(w.calls.active()[0].callee, "102");
    assert!(w.calls.busy_extensions().contains("102"));
    // Nothing left to pick up.
    assert_eq!(
        w.calls.pick_up(
            ringing[0].0,
            ServerTxId::from_raw(10),
            &invite_from_c("*8"),
            c_peer,
            party("103"),
            &mut w.media,
            now,
            wall,
        ),
        Err(PickupMiss::NothingRinging)
    );
}

/// Runs the call timers until nothing is due or the call ended; the retransmissions of `tx`'s 2xx sent.
fn retransmissions_of(w: &mut World, tx: ServerTxId, upto: Instant) -> usize {
    let mut n = 0;
    let mut t = w.now;
    let wall = w.wall;
    for _ in 0..40 {
        let Some(next) = w.calls.poll_timeout().filter(|n| *n <= upto) else {
            break;
        };
        t = next.max(t);
        w.calls.handle_timeout(&mut w.media, t, wall);
        n += w
            .outputs()
            .iter()
            .filter(|o| matches!(o, CallOutput::Retransmit { tx: x, .. } if *x == tx))
            .count();
    }
    n
}

#[test]
fn the_200_to_a_picker_is_retransmitted_until_its_ack() {
    let mut w = World::new();
    let b = binding_of("101", "sip:101@10.0.0.6:5070", "198.51.100.6:5070");
    w.invite(&[b]);
    let id = w.calls.ringing_extensions()[0].0;
    let c_peer = Peer::new("198.51.100.7:5064".parse().unwrap(), Transport::Udp);
    let (now, wall) = (w.now, w.wall);
    let picker_tx = ServerTxId::from_raw(9);
    let invite = invite_from_c("*8");
    w.calls
        .pick_up(
            id,
            picker_tx,
            &invite,
            c_peer,
            party("102"),
            &mut w.media,
            now,
            wall,
        )
        .expect("picked up");
    let out = w.outputs();
    let tag_of = |tx: ServerTxId| {
        responses(&out)
            .into_iter()
            .find(|r| r.tx == tx && r.status == 200)
            .and_then(|r| r.to_tag.clone())
            .unwrap()
    };
    let (caller_tag, picker_tag) = (tag_of(ServerTxId::from_raw(1)), tag_of(picker_tx));
    w.calls
        .answer_sent(picker_tx, Bytes::from_static(b"SIP/2.0 200 OK\r\n\r\n"));
    // The caller's ACK stops only the caller's retransmissions; the picker's 200 goes on (T1, 2·T1, …).
    w.calls.ack(&parse(&format!(
        "ACK sip:101@10.0.0.6:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKack1\r\n\
         From: <sip:100@pbx.test>;tag=atag\r\nTo: <sip:101@pbx.test>;tag={}\r\nCall-ID: call-a@10.0.0.5\r\n\
         CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
        caller_tag
    )));
    let upto = now + Duration::from_secs(2);
    assert!(retransmissions_of(&mut w, picker_tx, upto) >= 2);
    // The picker's ACK ends them.
    w.calls.ack(&parse(&format!(
        "ACK sip:pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.7:5064;branch=z9hG4bKack2\r\n\
         From: <sip:102@pbx.test>;tag=ctag\r\nTo: <sip:*8@pbx.test>;tag={}\r\nCall-ID: call-c@10.0.0.7\r\n\
         CSeq: 5 ACK\r\nContent-Length: 0\r\n\r\n",
        picker_tag
    )));
    assert_eq!(
        retransmissions_of(&mut w, picker_tx, now + Duration::from_secs(40)),
        0
    );
    assert_eq!(w.calls.active().len(), 1, "the call goes on");
}

#[test]
fn a_call_transferred_to_the_park_number_waits_on_a_slot_until_retrieved() {
    let mut w = World::new();
    let (_, inv_b) = talking(&mut w);
    // B (101) transfers A to the park number: the endpoint resolves it as the park.
    let refer = in_dialog_from_b(&inv_b, "REFER", 7, "Refer-To: <sip:800@pbx.test>\r\n", "");
    let (call, ..) = forwards(&w.in_dialog(20, &refer)).remove(0);
    let park = Resolved::Park {
        slots: vec!["801".into(), "802".into()],
        timeout: Duration::from_secs(60),
    };
    let out = w.forward_to(call, park.clone());
    assert_eq!(responses(&out)[0].status, 202);
    let sent = sent_requests(&out);
    let notify = sent
        .iter()
        .find(|(_, m, _)| m.method_str() == Some("NOTIFY"))
        .unwrap();
    assert_eq!(sipfrag(&notify.1), "SIP/2.0 200 OK");
    assert!(
        sent.iter().any(|(_, m, _)| m.method_str() == Some("BYE")),
        "the parker hangs up"
    );
    assert_eq!(w.calls.parked_slots(), vec![("801".to_string(), call)]);
    let active = &w.calls.active()[0];
    assert_eq!((active.callee.as_str(), active.state), ("801", "parked"));
    // An empty slot finds nothing; C dials 801 and takes the call.
    let c_peer = Peer::new("198.51.100.7:5064".parse().unwrap(), Transport::Udp);
    let (now, wall) = (w.now, w.wall);
    assert_eq!(
        w.calls.retrieve(
            "802",
            ServerTxId::from_raw(8),
            &invite_from_c("802"),
            c_peer,
            party("102"),
            &mut w.media,
            now,
            wall
        ),
        Err(RetrieveMiss::Empty)
    );
    w.calls
        .retrieve(
            "801",
            ServerTxId::from_raw(9),
            &invite_from_c("801"),
            c_peer,
            party("102"),
            &mut w.media,
            now,
            wall,
        )
        .expect("retrieved");
    let out = w.outputs();
    assert!(
        responses(&out)
            .iter()
            .any(|r| r.status == 200 && r.tx == ServerTxId::from_raw(9))
    );
    assert!(w.calls.parked_slots().is_empty());
    let active = &w.calls.active()[0];
    assert_eq!(
        (active.caller.as_str(), active.callee.as_str(), active.state),
        ("100", "102", "talking")
    );
    // The retriever's 200 is sent again until its ACK (none comes here: the call ends after 64·T1).
    let retriever_tx = ServerTxId::from_raw(9);
    w.calls
        .answer_sent(retriever_tx, Bytes::from_static(b"SIP/2.0 200 OK\r\n\r\n"));
    assert!(retransmissions_of(&mut w, retriever_tx, now + Duration::from_secs(2)) >= 2);
}

#[test]
fn a_parked_call_nobody_retrieves_rings_the_parker_again() {
    let mut w = World::new();
    let (_, inv_b) = talking(&mut w);
    let refer = in_dialog_from_b(&inv_b, "REFER", 7, "Refer-To: <sip:800@pbx.test>\r\n", "");
    let (call, ..) = forwards(&w.in_dialog(20, &refer)).remove(0);
    w.forward_to(
        call,
        Resolved::Park {
            slots: vec!["801".into()],
            timeout: Duration::from_secs(30),
        },
    );
    assert!(
        w.tick(Duration::from_secs(29))
            .iter()
            .all(|o| !matches!(o, CallOutput::ParkTimeout { .. }))
    );
    let out = w.tick(Duration::from_secs(2));
    let parker = out.iter().find_map(|o| match o {
        CallOutput::ParkTimeout { call: c, parker } if *c == call => Some(parker.clone()),
        _ => None,
    });
    assert_eq!(parker.as_deref(), Some("101"));
    // The endpoint finds the parker's phones: they ring.
    let b = binding_of("101", "sip:101@10.0.0.6:5070", "198.51.100.6:5070");
    let targets = w.calls.contact_targets("park", &[b]);
    let (now, wall) = (w.now, w.wall);
    w.calls.park_return(call, targets, &mut w.media, now, wall);
    let out = w.outputs();
    assert_eq!(invited_users(&out), ["101"]);
}
