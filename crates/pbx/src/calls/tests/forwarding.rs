//! Call forwarding: always, busy, no answer, refusals, loops.

use super::*;

// ---- Call forwarding ----

pub(super) fn forwarding_party(n: &str, forward: Forwarding) -> Party {
    Party {
        forward,
        ..party(n)
    }
}

pub(super) fn binding_of(aor: &str, contact: &str, source: &str) -> Binding {
    Binding {
        aor: aor.into(),
        ..binding(contact, source)
    }
}

/// The `Forward` requests among the outputs: (call, from, target, reason).
pub(super) fn forwards(out: &[CallOutput]) -> Vec<(u64, String, String, ForwardReason)> {
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

pub(super) fn records(out: &[CallOutput]) -> Vec<&CallRecord> {
    out.iter()
        .filter_map(|o| match o {
            CallOutput::Record(r) => Some(r),
            _ => None,
        })
        .collect()
}

pub(super) fn warning_of(r: &Response) -> Option<&str> {
    r.headers
        .iter()
        .find(|(n, _)| *n == sip::HeaderName::Warning)
        .map(|(_, v)| v.as_str())
}

impl World {
    pub(super) fn invite_party(&mut self, callee: Party, contacts: &[Binding]) -> Vec<CallOutput> {
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

    pub(super) fn forward_to(&mut self, call: u64, resolved: Resolved) -> Vec<CallOutput> {
        let (now, wall) = (self.now, self.wall);
        self.calls
            .forward_to(call, resolved, &mut self.media, now, wall);
        self.outputs()
    }

    pub(super) fn in_dialog(&mut self, tx: u64, msg: &Message) -> Vec<CallOutput> {
        let (now, wall) = (self.now, self.wall);
        assert!(
            self.calls
                .in_dialog(ServerTxId::from_raw(tx), msg, &mut self.media, now, wall),
            "in a dialog of a call"
        );
        self.outputs()
    }
}

pub(super) fn ext_102(forward: Forwarding) -> Resolved {
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
pub(super) fn forward_always_rings_the_target_and_not_the_callee() {
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
pub(super) fn forward_on_busy_takes_precedence_over_voicemail_and_may_go_out_through_a_trunk() {
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
pub(super) fn forward_on_no_answer_at_the_ring_time_and_when_unregistered() {
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
pub(super) fn refused_forward_to_a_disallowed_country_is_403_with_the_reason_code() {
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
pub(super) fn forward_loops_and_long_chains_are_482() {
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
pub(super) fn caller_cancel_while_forwarding_ends_the_call() {
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
