//! Transaction-layer simulation tests: RFC 2543 matching, errors, a mixed workload, timer C, stateless challenges.

use super::*;

const BADBRANCH: &str = "OPTIONS sip:user@example.com SIP/2.0\r\n\
To: sip:user@example.com\r\n\
From: sip:caller@example.org;tag=33242\r\n\
Max-Forwards: 3\r\n\
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK\r\n\
Accept: application/sdp\r\n\
Call-ID: badbranch.sadonfo23i420jv0as0derf3j3n\r\n\
CSeq: 8 OPTIONS\r\n\
l: 0\r\n\
\r\n";

#[test]
fn rfc4475_badbranch_is_matched_by_rfc2543_rules() {
    let first = parse(Bytes::from_static(BADBRANCH.as_bytes()));
    assert!(!ServerKey::from_request(&first).unwrap().is_rfc3261());
    let second = parse(
        BADBRANCH
            .replace(
                "Call-ID: badbranch.sadonfo23i420jv0as0derf3j3n",
                "Call-ID: badbranch.second",
            )
            .replace("CSeq: 8", "CSeq: 9")
            .into(),
    );
    let mut layer = TransactionLayer::default();
    let t0 = Instant::now();
    layer
        .handle_request(first.clone(), peer(Transport::Udp), t0)
        .unwrap();
    let (_, ev) = drain(&mut layer);
    let [TuEvent::Request { tx, .. }] = ev.as_slice() else {
        panic!()
    };
    let ok = response(&first, 200);
    layer.respond(*tx, ok.clone(), t0).unwrap();
    drain(&mut layer);
    // Same message again: a retransmission, answered with the same 200.
    layer
        .handle_request(first.clone(), peer(Transport::Udp), t0)
        .unwrap();
    let (sent, ev) = drain(&mut layer);
    assert!(ev.is_empty());
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].bytes, ok);
    // Same (bare-cookie) branch, different Call-ID and CSeq: a new request, not the first one's retransmission.
    layer
        .handle_request(second, peer(Transport::Udp), t0)
        .unwrap();
    let (sent, ev) = drain(&mut layer);
    assert!(sent.is_empty());
    assert!(matches!(ev.as_slice(), [TuEvent::Request { .. }]));
    assert_eq!(layer.server_count(), 2);
}

#[test]
fn rfc2543_invite_ack_and_cancel_matching() {
    let mut layer = TransactionLayer::default();
    let t0 = Instant::now();
    let invite = request("INVITE", "", "UDP", 5);
    layer
        .handle_request(invite.clone(), peer(Transport::Udp), t0)
        .unwrap();
    let (_, ev) = drain(&mut layer);
    let [TuEvent::Request { tx, .. }] = ev.as_slice() else {
        panic!()
    };
    let tx = *tx;
    // CANCEL without a branch finds the INVITE too.
    let cancel = parse(crate::builder::cancel_for(&invite).unwrap());
    layer
        .handle_request(cancel, peer(Transport::Udp), t0)
        .unwrap();
    let (_, ev) = drain(&mut layer);
    assert!(matches!(ev.as_slice(), [TuEvent::Cancel { invite: Some(t), .. }] if *t == tx));
    let busy = response(&invite, 486);
    layer.respond(tx, busy.clone(), t0).unwrap();
    drain(&mut layer);
    // The ACK carries the response's To tag yet matches the INVITE transaction.
    let ack = parse(crate::builder::ack_for_non_2xx(&invite, &parse(busy)).unwrap());
    layer.handle_request(ack, peer(Transport::Udp), t0).unwrap();
    assert_eq!(shape(&mut layer), (0, 0));
    assert_eq!(layer.server_state(tx), Some(ServerState::Confirmed));
}

#[test]
fn transport_error_ends_the_transaction() {
    let mut layer = TransactionLayer::default();
    let t0 = Instant::now();
    layer
        .send_request(
            request("INVITE", "z9hG4bKte", "TCP", 1),
            peer(Transport::Tcp),
            t0,
        )
        .unwrap();
    let (sent, _) = drain(&mut layer);
    layer.handle_transport_error(sent[0].tx, t0);
    let (_, ev) = drain(&mut layer);
    assert!(matches!(
        ev.as_slice(),
        [TuEvent::TransportError { .. }, TuEvent::Terminated { .. }]
    ));
    assert_eq!((layer.client_count(), layer.timer_count()), (0, 0));
    // Reported twice: nothing more happens.
    layer.handle_transport_error(sent[0].tx, t0);
    assert_eq!(shape(&mut layer), (0, 0));
}

#[test]
fn unmatchable_messages_and_bad_responses_are_errors() {
    let mut layer = TransactionLayer::default();
    let t0 = Instant::now();
    let mismatch = parse(
        RequestBuilder::new("INVITE", "sip:bob@example.com")
            .header(HeaderName::Via, "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKmm")
            .header(HeaderName::From, "<sip:a@example.com>;tag=1")
            .header(HeaderName::To, "<sip:b@example.com>")
            .header(HeaderName::CallId, "mm")
            .header(HeaderName::CSeq, "1 OPTIONS")
            .build(),
    );
    assert_eq!(
        layer.handle_request(mismatch, peer(Transport::Udp), t0),
        Err(KeyError::CSeqMismatch)
    );
    let req = request("OPTIONS", "z9hG4bKbad", "UDP", 1);
    layer
        .handle_request(req.clone(), peer(Transport::Udp), t0)
        .unwrap();
    let (_, ev) = drain(&mut layer);
    let [TuEvent::Request { tx, .. }] = ev.as_slice() else {
        panic!()
    };
    assert_eq!(
        layer.respond(*tx, Bytes::from_static(b"OPTIONS sip:x SIP/2.0\r\n"), t0),
        Err(RespondError::NotAResponse)
    );
    assert_eq!(
        layer.respond(ServerTxId(9999), response(&req, 200), t0),
        Err(RespondError::Unknown)
    );
    assert_eq!(
        crate::transaction::server::status_of(b"SIP/2.0 1800 Nope"),
        None
    );
    assert_eq!(
        crate::transaction::server::status_of(b"SIP/2.0 180 Ringing"),
        Some(180)
    );
}

#[test]
fn mixed_workload_under_heavy_loss_every_transaction_ends_exactly_once() {
    for seed in 100..110 {
        let mut sim = Sim::new(seed, 0.45, Transport::Udp);
        let mut rng = StdRng::seed_from_u64(seed);
        let statuses_by_seed: Vec<u16> = (0..60)
            .map(|_| [200, 404, 486, 503][rng.gen_range(0..4)])
            .collect();
        sim.server_tu = Box::new(move |layer, ev, now| {
            if let TuEvent::Request { tx, request, .. } = ev {
                let n = request.cseq().unwrap().seq as usize;
                if request.method() == Some(crate::method::Method::Invite) {
                    layer.respond(*tx, response(request, 180), now).unwrap();
                }
                layer
                    .respond(*tx, response(request, statuses_by_seed[n]), now)
                    .unwrap();
            }
        });
        let mut ids = Vec::new();
        for n in 0..60u32 {
            let method = if n % 3 == 0 { "INVITE" } else { "MESSAGE" };
            let req = request(method, &format!("z9hG4bKmix{n}"), "UDP", n);
            ids.push(
                sim.client
                    .send_request(req, Peer::new(server_addr(), Transport::Udp), sim.now)
                    .unwrap(),
            );
            sim.run_for(Duration::from_millis(37));
        }
        // Long enough for timer C (a 2xx lost for good is never retransmitted by this TU).
        sim.run_for(Duration::from_secs(400));
        assert!(
            sim.all_gone(),
            "seed {seed}: {} {} {} {} {:?}",
            sim.client.client_count(),
            sim.server.server_count(),
            sim.client.timer_count(),
            sim.server.timer_count(),
            sim.net.len()
        );
        for id in ids {
            let finals = count(
                &sim.client_events,
                |e| matches!(e, TuEvent::Response { tx, response } if *tx == id && response.status() >= Some(200)),
            );
            let timeouts = count(
                &sim.client_events,
                |e| matches!(e, TuEvent::Timeout { tx: TxId::Client(t) } if *t == id),
            );
            let ends = count(
                &sim.client_events,
                |e| matches!(e, TuEvent::Terminated { tx: TxId::Client(t) } if *t == id),
            );
            assert_eq!(ends, 1, "seed {seed} {id:?}");
            // One final answer or one timeout; a 2xx to an INVITE may be seen again (RFC 6026) but only via
            // retransmission from the server TU, which this TU never does.
            assert_eq!(
                finals + timeouts,
                1,
                "seed {seed} {id:?}: finals {finals}, timeouts {timeouts}"
            );
        }
        let requests = count(&sim.server_events, |e| matches!(e, TuEvent::Request { .. }));
        let server_ends = count(&sim.server_events, |e| {
            matches!(e, TuEvent::Terminated { .. })
        });
        assert_eq!(requests, server_ends, "seed {seed}");
        assert!(
            requests <= 60,
            "seed {seed}: a retransmission became a new transaction"
        );
    }
}

#[test]
fn timer_c_ends_an_invite_stuck_in_proceeding_and_restarts_on_each_provisional() {
    let mut layer = TransactionLayer::default();
    let t0 = Instant::now();
    let invite = request("INVITE", "z9hG4bKtc", "UDP", 1);
    let id = layer
        .send_request(invite.clone(), peer(Transport::Udp), t0)
        .unwrap();
    let ring = parse(response(&invite, 180));
    layer
        .handle_response(ring.clone(), t0 + Duration::from_secs(1))
        .unwrap();
    layer
        .handle_response(ring, t0 + Duration::from_secs(60))
        .unwrap();
    drain(&mut layer);
    let c = layer.config().timers.timer_c;
    assert_eq!(layer.poll_timeout(), Some(t0 + Duration::from_secs(60) + c));
    layer.handle_timeout(t0 + Duration::from_secs(60) + c);
    let (sent, ev) = drain(&mut layer);
    assert!(sent.is_empty());
    assert!(
        matches!(ev.as_slice(), [TuEvent::Timeout { tx: TxId::Client(t) }, TuEvent::Terminated { .. }] if *t == id)
    );
}

#[test]
fn respond_once_sends_a_challenge_once_and_forgets_the_invite() {
    use crate::transaction::{Config, Output, Peer, TransactionLayer, Transport, TuEvent};
    let mut layer = TransactionLayer::new(Config::default());
    let now = std::time::Instant::now();
    let invite = crate::Message::parse(
        bytes::Bytes::from_static(
            b"INVITE sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKonce\r\nFrom: <sip:a@h>;tag=1\r\n\
              To: <sip:b@h>\r\nCall-ID: once\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
        ),
        crate::Framing::Datagram,
        &crate::Limits::default(),
    )
    .unwrap();
    let peer = Peer::new("192.0.2.1:5060".parse().unwrap(), Transport::Udp);
    layer.handle_request(invite.clone(), peer, now).unwrap();
    let tx = loop {
        match layer.poll_output() {
            Some(Output::Event(TuEvent::Request { tx, .. })) => break tx,
            Some(_) => continue,
            None => panic!("no request event"),
        }
    };
    let resp = crate::ResponseBuilder::new(&invite, 407)
        .to_tag("x")
        .build();
    layer.respond_once(tx, resp, now).unwrap();
    let mut transmits = 0;
    while let Some(o) = layer.poll_output() {
        if matches!(o, Output::Transmit(_)) {
            transmits += 1;
        }
    }
    assert_eq!(transmits, 1);
    assert_eq!(layer.server_count(), 0, "no state kept");
    // Nothing is retransmitted later.
    layer.handle_timeout(now + std::time::Duration::from_secs(40));
    assert!(std::iter::from_fn(|| layer.poll_output()).all(|o| !matches!(o, Output::Transmit(_))));
}
