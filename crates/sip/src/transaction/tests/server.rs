//! Transaction-layer simulation tests: server transactions, RFC 6026, CANCEL matching.

use super::*;

#[test]
fn server_non_invite_absorbs_retransmissions_and_resends_last_response() {
    let mut layer = TransactionLayer::default();
    let t0 = Instant::now();
    let req = request("OPTIONS", "z9hG4bKsrv", "UDP", 1);
    layer
        .handle_request(req.clone(), peer(Transport::Udp), t0)
        .unwrap();
    let (sent, ev) = drain(&mut layer);
    assert!(sent.is_empty());
    let [TuEvent::Request { tx, .. }] = ev.as_slice() else {
        panic!("{ev:?}")
    };
    let tx = *tx;
    assert_eq!(layer.server_state(tx), Some(ServerState::Trying));

    // Retransmission in Trying: absorbed, nothing to resend, TU not told.
    layer
        .handle_request(req.clone(), peer(Transport::Udp), t0 + T1)
        .unwrap();
    assert_eq!(shape(&mut layer), (0, 0));

    let ok = response(&req, 200);
    layer.respond(tx, ok.clone(), t0 + T1).unwrap();
    let (sent, _) = drain(&mut layer);
    assert_eq!(sent.len(), 1);
    assert_eq!(layer.server_state(tx), Some(ServerState::Completed));
    assert_eq!(
        layer.respond(tx, ok.clone(), t0 + T1),
        Err(RespondError::WrongState)
    );

    for i in 2..5 {
        layer
            .handle_request(req.clone(), peer(Transport::Udp), t0 + T1 * i)
            .unwrap();
        let (sent, ev) = drain(&mut layer);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].bytes, ok);
        assert!(ev.is_empty());
    }
    // Timer J: 64*T1 after the final response.
    assert_eq!(layer.poll_timeout(), Some(t0 + T1 + T1 * 64));
    layer.handle_timeout(t0 + T1 * 65);
    let (_, ev) = drain(&mut layer);
    assert!(matches!(ev.as_slice(), [TuEvent::Terminated { tx: TxId::Server(t) }] if *t == tx));
    assert_eq!(layer.server_count(), 0);
}

#[test]
fn rfc6026_client_passes_2xx_retransmissions_to_tu_until_timer_m() {
    let mut layer = TransactionLayer::default();
    let t0 = Instant::now();
    let invite = request("INVITE", "z9hG4bK6026c", "UDP", 1);
    let id = layer
        .send_request(invite.clone(), peer(Transport::Udp), t0)
        .unwrap();
    drain(&mut layer);
    let ok = parse(response(&invite, 200));
    for i in 0..3 {
        layer.handle_response(ok.clone(), t0 + T1 * i).unwrap();
        let (sent, ev) = drain(&mut layer);
        assert!(sent.is_empty(), "the TU, not the transaction, ACKs a 2xx");
        assert_eq!(statuses(&ev), vec![200]);
        assert_eq!(layer.client_state(id), Some(ClientState::Accepted));
    }
    // A 486 in Accepted is discarded.
    layer
        .handle_response(parse(response(&invite, 486)), t0 + T1 * 3)
        .unwrap();
    assert_eq!(shape(&mut layer), (0, 0));
    // Timer M: 64*T1 after the first 2xx; later 2xx are stray.
    assert_eq!(layer.poll_timeout(), Some(t0 + T1 * 64));
    layer.handle_timeout(t0 + T1 * 64);
    let (_, ev) = drain(&mut layer);
    assert!(matches!(ev.as_slice(), [TuEvent::Terminated { .. }]));
    layer.handle_response(ok, t0 + T1 * 65).unwrap();
    let (_, ev) = drain(&mut layer);
    assert!(matches!(ev.as_slice(), [TuEvent::StrayResponse { .. }]));
}

#[test]
fn rfc6026_server_accepted_absorbs_invites_sends_tu_2xx_and_passes_acks() {
    let mut layer = TransactionLayer::default();
    let t0 = Instant::now();
    let invite = request("INVITE", "z9hG4bK6026s", "UDP", 1);
    layer
        .handle_request(invite.clone(), peer(Transport::Udp), t0)
        .unwrap();
    let (_, ev) = drain(&mut layer);
    let [TuEvent::Request { tx, .. }] = ev.as_slice() else {
        panic!("{ev:?}")
    };
    let tx = *tx;
    let ok = response(&invite, 200);
    layer.respond(tx, ok.clone(), t0).unwrap();
    assert_eq!(shape(&mut layer), (1, 0));
    assert_eq!(layer.server_state(tx), Some(ServerState::Accepted));

    // INVITE retransmission: absorbed, the transaction does not resend the 2xx on its own.
    layer
        .handle_request(invite.clone(), peer(Transport::Udp), t0 + T1)
        .unwrap();
    assert_eq!(shape(&mut layer), (0, 0));
    // The TU retransmits its 2xx through the transaction.
    layer.respond(tx, ok.clone(), t0 + T1).unwrap();
    let (sent, _) = drain(&mut layer);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].bytes, ok);
    assert_eq!(
        layer.respond(tx, response(&invite, 486), t0 + T1),
        Err(RespondError::WrongState)
    );

    // ACK for the 2xx with its own branch: outside the transaction.
    let ack = request("ACK", "z9hG4bKack2xx", "UDP", 1);
    layer
        .handle_request(ack, peer(Transport::Udp), t0 + T1)
        .unwrap();
    let (_, ev) = drain(&mut layer);
    assert!(matches!(ev.as_slice(), [TuEvent::Ack { invite: None, .. }]));
    // An ACK that matches the INVITE transaction in Accepted also goes to the TU.
    let ack = request("ACK", "z9hG4bK6026s", "UDP", 1);
    layer
        .handle_request(ack, peer(Transport::Udp), t0 + T1)
        .unwrap();
    let (_, ev) = drain(&mut layer);
    assert!(matches!(ev.as_slice(), [TuEvent::Ack { invite: Some(t), .. }] if *t == tx));

    // Timer L: 64*T1 after the 2xx.
    layer.handle_timeout(t0 + T1 * 64 - Duration::from_millis(1));
    assert_eq!(layer.server_count(), 1);
    layer.handle_timeout(t0 + T1 * 64);
    assert_eq!(layer.server_count(), 0);
}

#[test]
fn invite_server_sends_100_trying_after_200ms_or_on_retransmission() {
    let t0 = Instant::now();
    // The TU is silent: 100 Trying exactly 200 ms after the INVITE, once.
    let mut layer = TransactionLayer::default();
    let invite = request("INVITE", "z9hG4bK100a", "UDP", 1);
    layer
        .handle_request(invite.clone(), peer(Transport::Udp), t0)
        .unwrap();
    assert_eq!(shape(&mut layer), (0, 1));
    assert_eq!(layer.poll_timeout(), Some(t0 + Duration::from_millis(200)));
    layer.handle_timeout(t0 + Duration::from_millis(200));
    let (sent, _) = drain(&mut layer);
    assert_eq!(sent.len(), 1);
    assert_eq!(parse(sent[0].bytes.clone()).status(), Some(100));
    // The INVITE again: the 100 is resent.
    layer
        .handle_request(invite.clone(), peer(Transport::Udp), t0 + T1)
        .unwrap();
    let (again, _) = drain(&mut layer);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].bytes, sent[0].bytes);

    // A retransmission before 200 ms: 100 Trying at once and the timer is disarmed.
    let mut layer = TransactionLayer::default();
    let invite = request("INVITE", "z9hG4bK100b", "UDP", 1);
    layer
        .handle_request(invite.clone(), peer(Transport::Udp), t0)
        .unwrap();
    drain(&mut layer);
    layer
        .handle_request(
            invite.clone(),
            peer(Transport::Udp),
            t0 + Duration::from_millis(100),
        )
        .unwrap();
    assert_eq!(shape(&mut layer), (1, 0));
    layer.handle_timeout(t0 + Duration::from_secs(1));
    assert_eq!(shape(&mut layer), (0, 0));

    // The TU answers within 200 ms: no 100 from the transaction.
    let mut layer = TransactionLayer::default();
    let invite = request("INVITE", "z9hG4bK100c", "UDP", 1);
    layer
        .handle_request(invite.clone(), peer(Transport::Udp), t0)
        .unwrap();
    let (_, ev) = drain(&mut layer);
    let [TuEvent::Request { tx, .. }] = ev.as_slice() else {
        panic!()
    };
    layer
        .respond(*tx, response(&invite, 180), t0 + Duration::from_millis(50))
        .unwrap();
    layer.handle_timeout(t0 + Duration::from_secs(1));
    let (sent, _) = drain(&mut layer);
    assert_eq!(
        sent.iter()
            .map(|t| parse(t.bytes.clone()).status())
            .collect::<Vec<_>>(),
        vec![Some(180)]
    );
}

#[test]
fn invite_server_timer_g_and_h_without_ack() {
    let mut layer = TransactionLayer::default();
    let t0 = Instant::now();
    let invite = request("INVITE", "z9hG4bKgh", "UDP", 1);
    layer
        .handle_request(invite.clone(), peer(Transport::Udp), t0)
        .unwrap();
    let (_, ev) = drain(&mut layer);
    let [TuEvent::Request { tx, .. }] = ev.as_slice() else {
        panic!()
    };
    let tx = *tx;
    layer.respond(tx, response(&invite, 603), t0).unwrap();
    assert_eq!(shape(&mut layer), (1, 0));
    let log = run_alone(&mut layer, t0 + Duration::from_secs(100));
    let g: Vec<_> = log
        .iter()
        .filter(|(_, o)| matches!(o, Output::Transmit(_)))
        .map(|(t, _)| (*t - t0).as_millis() as u64)
        .collect();
    assert_eq!(
        g,
        vec![
            500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
        ]
    );
    let timeouts: Vec<_> = log
        .iter()
        .filter(|(_, o)| matches!(o, Output::Event(TuEvent::Timeout { tx: TxId::Server(t) }) if *t == tx))
        .map(|(t, _)| *t - t0)
        .collect();
    assert_eq!(timeouts, vec![T1 * 64]);
    assert_eq!(layer.server_count(), 0);
}

#[test]
fn invite_server_ack_confirms_then_timer_i() {
    let mut layer = TransactionLayer::default();
    let t0 = Instant::now();
    let invite = request("INVITE", "z9hG4bKconf", "UDP", 1);
    layer
        .handle_request(invite.clone(), peer(Transport::Udp), t0)
        .unwrap();
    let (_, ev) = drain(&mut layer);
    let [TuEvent::Request { tx, .. }] = ev.as_slice() else {
        panic!()
    };
    let tx = *tx;
    let busy = response(&invite, 486);
    layer.respond(tx, busy.clone(), t0).unwrap();
    drain(&mut layer);
    // INVITE again in Completed: the 486 is resent.
    layer
        .handle_request(
            invite.clone(),
            peer(Transport::Udp),
            t0 + Duration::from_millis(100),
        )
        .unwrap();
    let (sent, _) = drain(&mut layer);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].bytes, busy);
    let ack = parse(crate::builder::ack_for_non_2xx(&invite, &parse(busy)).unwrap());
    for _ in 0..3 {
        layer
            .handle_request(ack.clone(), peer(Transport::Udp), t0 + T1)
            .unwrap();
        assert_eq!(shape(&mut layer), (0, 0), "ACK and its copies are absorbed");
        assert_eq!(layer.server_state(tx), Some(ServerState::Confirmed));
    }
    // Timer I = T4; no G retransmission after the ACK.
    assert_eq!(layer.poll_timeout(), Some(t0 + T1 + Duration::from_secs(5)));
    layer.handle_timeout(t0 + T1 + Duration::from_secs(5));
    let (sent, ev) = drain(&mut layer);
    assert!(sent.is_empty());
    assert!(matches!(ev.as_slice(), [TuEvent::Terminated { .. }]));
}

#[test]
fn cancel_matches_its_invite_and_unknown_cancel_is_reported() {
    let mut layer = TransactionLayer::default();
    let t0 = Instant::now();
    let invite = request("INVITE", "z9hG4bKcx", "UDP", 1);
    layer
        .handle_request(invite.clone(), peer(Transport::Udp), t0)
        .unwrap();
    let (_, ev) = drain(&mut layer);
    let [TuEvent::Request { tx: inv, .. }] = ev.as_slice() else {
        panic!()
    };
    let inv = *inv;
    let cancel = parse(crate::builder::cancel_for(&invite).unwrap());
    layer
        .handle_request(cancel.clone(), peer(Transport::Udp), t0)
        .unwrap();
    let (_, ev) = drain(&mut layer);
    let [
        TuEvent::Cancel {
            tx: ctx,
            invite: Some(found),
            ..
        },
    ] = ev.as_slice()
    else {
        panic!("{ev:?}")
    };
    assert_eq!(*found, inv);
    assert_ne!(*ctx, inv);
    // The CANCEL is a transaction of its own: retransmission absorbed.
    layer
        .handle_request(cancel, peer(Transport::Udp), t0)
        .unwrap();
    assert_eq!(shape(&mut layer), (0, 0));

    // A CANCEL whose INVITE we never saw: the TU is told (it answers 481 statelessly), and no transaction is
    // created for it, however many come.
    let live = layer.server_count();
    let other = request("INVITE", "z9hG4bKnever", "UDP", 1);
    let stray = parse(crate::builder::cancel_for(&other).unwrap());
    for _ in 0..3 {
        layer
            .handle_request(stray.clone(), peer(Transport::Udp), t0)
            .unwrap();
        let (_, ev) = drain(&mut layer);
        assert!(matches!(ev.as_slice(), [TuEvent::StrayCancel { .. }]));
    }
    assert_eq!(layer.server_count(), live);
    // Same branch but from another sent-by: not the same transaction.
    let spoof_text = String::from_utf8(crate::builder::cancel_for(&invite).unwrap().to_vec())
        .unwrap()
        .replace("192.0.2.1:5060", "198.51.100.9:5060");
    layer
        .handle_request(parse(spoof_text.into()), peer(Transport::Udp), t0)
        .unwrap();
    let (_, ev) = drain(&mut layer);
    assert!(matches!(ev.as_slice(), [TuEvent::StrayCancel { .. }]));
    assert_eq!(layer.server_count(), live);
}
