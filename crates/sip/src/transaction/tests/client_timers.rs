//! Transaction-layer simulation tests: client timers (B, E, F) and reliable transports.

use super::*;

#[test]
fn timer_b_fires_at_64_t1_after_7_transmissions() {
    let mut layer = TransactionLayer::default();
    let t0 = Instant::now();
    let id = layer
        .send_request(
            request("INVITE", "z9hG4bKb", "UDP", 1),
            peer(Transport::Udp),
            t0,
        )
        .unwrap();
    let (sent, _) = drain(&mut layer);
    assert_eq!(sent.len(), 1);
    let log = run_alone(&mut layer, t0 + Duration::from_secs(100));
    let retransmits: Vec<_> = log
        .iter()
        .filter(|(_, o)| matches!(o, Output::Transmit(_)))
        .map(|(t, _)| *t - t0)
        .collect();
    let ms = |v: &[u64]| {
        v.iter()
            .map(|&m| Duration::from_millis(m))
            .collect::<Vec<_>>()
    };
    assert_eq!(retransmits, ms(&[500, 1500, 3500, 7500, 15500, 31500]));
    let timeouts: Vec<_> = log
        .iter()
        .filter(|(_, o)| matches!(o, Output::Event(TuEvent::Timeout { .. })))
        .map(|(t, _)| *t - t0)
        .collect();
    assert_eq!(timeouts, vec![T1 * 64]);
    assert!(
        matches!(log.last(), Some((_, Output::Event(TuEvent::Terminated { tx: TxId::Client(t) }))) if *t == id)
    );
    assert_eq!(
        (
            layer.client_count(),
            layer.timer_count(),
            layer.poll_timeout()
        ),
        (0, 0, None)
    );
}

#[test]
fn timer_f_fires_at_64_t1_with_e_capped_at_t2() {
    let mut layer = TransactionLayer::default();
    let t0 = Instant::now();
    layer
        .send_request(
            request("OPTIONS", "z9hG4bKf", "UDP", 1),
            peer(Transport::Udp),
            t0,
        )
        .unwrap();
    drain(&mut layer);
    let log = run_alone(&mut layer, t0 + Duration::from_secs(100));
    let retransmits: Vec<_> = log
        .iter()
        .filter(|(_, o)| matches!(o, Output::Transmit(_)))
        .map(|(t, _)| (*t - t0).as_millis() as u64)
        .collect();
    assert_eq!(
        retransmits,
        vec![
            500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
        ]
    );
    let timeouts = log
        .iter()
        .filter(|(_, o)| matches!(o, Output::Event(TuEvent::Timeout { .. })))
        .count();
    assert_eq!(timeouts, 1);
    assert_eq!(layer.client_count(), 0);
}

#[test]
fn non_invite_proceeding_retransmits_every_t2() {
    let mut layer = TransactionLayer::default();
    let t0 = Instant::now();
    let req = request("REGISTER", "z9hG4bKp", "UDP", 1);
    let id = layer
        .send_request(req.clone(), peer(Transport::Udp), t0)
        .unwrap();
    drain(&mut layer);
    layer
        .handle_response(
            parse(ResponseBuilder::new(&req, 100).build()),
            t0 + Duration::from_millis(100),
        )
        .unwrap();
    assert_eq!(layer.client_state(id), Some(ClientState::Proceeding));
    let log = run_alone(&mut layer, t0 + Duration::from_secs(10));
    let retransmits: Vec<_> = log
        .iter()
        .filter(|(_, o)| matches!(o, Output::Transmit(_)))
        .map(|(t, _)| (*t - t0).as_millis() as u64)
        .collect();
    // E fired at 500 ms in Proceeding: from then on every T2.
    assert_eq!(retransmits, vec![500, 4500, 8500]);
}

#[test]
fn reliable_transport_never_retransmits_and_lingers_zero() {
    // INVITE client over TCP with no answer: one transmission, timeout at 64*T1.
    let mut layer = TransactionLayer::default();
    let t0 = Instant::now();
    layer
        .send_request(
            request("INVITE", "z9hG4bKtcp", "TCP", 1),
            peer(Transport::Tcp),
            t0,
        )
        .unwrap();
    let (sent, _) = drain(&mut layer);
    assert_eq!(sent.len(), 1);
    let log = run_alone(&mut layer, t0 + Duration::from_secs(100));
    assert_eq!(
        log.iter()
            .filter(|(_, o)| matches!(o, Output::Transmit(_)))
            .count(),
        0
    );
    assert_eq!(log[0].0 - t0, T1 * 64);

    // Over a lossless reliable network the whole exchange ends as soon as the final response / ACK arrive.
    for (method, status) in [("INVITE", 486), ("OPTIONS", 200)] {
        let mut sim = Sim::new(3, 0.0, Transport::Tcp);
        sim.server_tu = answer_with(status);
        let req = request(method, "z9hG4bKtcp2", "TCP", 1);
        sim.client
            .send_request(req, Peer::new(server_addr(), Transport::Tcp), sim.now)
            .unwrap();
        sim.run_for(Duration::from_secs(1));
        assert!(
            sim.all_gone(),
            "{method}: K / D / I / J are zero on reliable transports"
        );
        assert_eq!(
            sim.client_sent.len(),
            if method == "INVITE" { 2 } else { 1 }
        );
        assert_eq!(sim.server_sent.len(), 1);
    }
}
