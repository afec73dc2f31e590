//! Transaction-layer simulation tests: table caps and CANCEL ordering.

use super::*;

#[test]
fn one_source_cannot_fill_the_server_table() {
    let cfg = Config {
        max_server_transactions_per_source: 2,
        ..Config::default()
    };
    let mut layer = TransactionLayer::new(cfg);
    let t0 = Instant::now();
    let from = |addr: &str| Peer::new(addr.parse().unwrap(), Transport::Udp);
    let send = |layer: &mut TransactionLayer, i: usize, p: Peer| {
        let r = request("OPTIONS", &format!("z9hG4bKps{i}"), "UDP", 1);
        layer.handle_request(r, p, t0).unwrap();
        let (_, ev) = drain(layer);
        matches!(ev.as_slice(), [TuEvent::Request { .. }])
    };
    assert!(send(&mut layer, 0, from("192.0.2.1:5060")));
    assert!(send(&mut layer, 1, from("192.0.2.1:5070")));
    assert!(
        !send(&mut layer, 2, from("192.0.2.1:5080")),
        "third from one address: overloaded"
    );
    assert!(
        send(&mut layer, 3, from("192.0.2.2:5060")),
        "another source is unaffected"
    );
    // IPv6 counts per /64.
    assert!(send(&mut layer, 4, from("[2001:db8:1:2::1]:5060")));
    assert!(send(&mut layer, 5, from("[2001:db8:1:2::2]:5060")));
    assert!(!send(&mut layer, 6, from("[2001:db8:1:2:ffff::3]:5060")));
    assert!(send(&mut layer, 7, from("[2001:db8:1:3::1]:5060")));
    assert_eq!(layer.server_count(), 6);
    // When they end, the source's slots come back.
    layer.handle_timeout(t0 + Duration::from_secs(40));
    drain(&mut layer);
    assert_eq!(layer.server_count(), 0);
    assert!(send(&mut layer, 8, from("192.0.2.1:5060")));
}

#[test]
fn cancel_end_to_end_deferred_until_provisional_under_loss() {
    for seed in 0..20 {
        let mut sim = Sim::new(seed, 0.2, Transport::Udp);
        // Server TU: rings at once; on CANCEL answers 200 and 487s the INVITE.
        sim.server_tu = Box::new(|layer, ev, now| match ev {
            TuEvent::Request { tx, request, .. } => {
                let ring = ResponseBuilder::new(request, 180).to_tag("s1").build();
                layer.respond(*tx, ring, now).unwrap();
            }
            TuEvent::Cancel {
                tx,
                request,
                invite,
                ..
            } => {
                layer.respond(*tx, response(request, 200), now).unwrap();
                let inv = invite.unwrap();
                if layer.server_state(inv) == Some(ServerState::Proceeding) {
                    let terminated = response(layer.server_request(inv).unwrap(), 487);
                    layer.respond(inv, terminated, now).unwrap();
                }
            }
            _ => {}
        });
        let invite = request("INVITE", "z9hG4bKce2e", "UDP", 1);
        let inv = sim
            .client
            .send_request(invite, Peer::new(server_addr(), Transport::Udp), sim.now)
            .unwrap();
        // Cancel straight away, before any provisional: the CANCEL waits for the 180.
        let cancel = sim.client.cancel(inv, sim.now).unwrap();
        assert_eq!(
            sim.client.cancel(inv, sim.now),
            Err(CancelError::AlreadyCancelled)
        );
        assert_eq!(sim.client.client_state(cancel), None);
        sim.drain();
        assert!(
            sim.client_sent.iter().all(|b| b.starts_with(b"INVITE ")),
            "seed {seed}"
        );
        sim.run_for(Duration::from_secs(60));

        let first_cancel = sim
            .client_sent
            .iter()
            .position(|b| b.starts_with(b"CANCEL "));
        assert!(first_cancel.is_some(), "seed {seed}");
        let inv_responses: Vec<u16> = sim
            .client_events
            .iter()
            .filter_map(|e| match e {
                TuEvent::Response { tx, response } if *tx == inv => response.status(),
                _ => None,
            })
            .collect();
        assert_eq!(
            inv_responses
                .iter()
                .filter(|&&s| s >= 200)
                .collect::<Vec<_>>(),
            vec![&487],
            "seed {seed}"
        );
        let cancel_responses: Vec<u16> = sim
            .client_events
            .iter()
            .filter_map(|e| match e {
                TuEvent::Response { tx, response } if *tx == cancel => response.status(),
                _ => None,
            })
            .collect();
        assert_eq!(cancel_responses, vec![200], "seed {seed}");
        assert_eq!(
            count(&sim.server_events, |e| matches!(e, TuEvent::Cancel { .. })),
            1,
            "seed {seed}"
        );
        assert!(sim.all_gone(), "seed {seed}");
    }
}

#[test]
fn cancel_is_dropped_when_a_final_response_comes_first() {
    let mut layer = TransactionLayer::default();
    let t0 = Instant::now();
    let invite = request("INVITE", "z9hG4bKlate", "UDP", 1);
    let inv = layer
        .send_request(invite.clone(), peer(Transport::Udp), t0)
        .unwrap();
    let cancel = layer.cancel(inv, t0).unwrap();
    drain(&mut layer);
    layer
        .handle_response(parse(response(&invite, 486)), t0)
        .unwrap();
    let (sent, ev) = drain(&mut layer);
    assert_eq!(sent.len(), 1);
    assert!(
        sent[0].bytes.starts_with(b"ACK "),
        "only the ACK, no CANCEL"
    );
    assert!(
        ev.iter()
            .any(|e| matches!(e, TuEvent::Terminated { tx: TxId::Client(t) } if *t == cancel))
    );
    assert_eq!(layer.cancel(inv, t0), Err(CancelError::AlreadyCancelled));
    let other = layer
        .send_request(
            request("OPTIONS", "z9hG4bKo", "UDP", 2),
            peer(Transport::Udp),
            t0,
        )
        .unwrap();
    assert_eq!(layer.cancel(other, t0), Err(CancelError::NotInvite));
}

#[test]
fn cap_refuses_new_server_transactions_without_growing() {
    let cfg = Config {
        max_server_transactions: 3,
        max_client_transactions: 2,
        ..Config::default()
    };
    let mut layer = TransactionLayer::new(cfg);
    let t0 = Instant::now();
    let reqs: Vec<_> = (0..5)
        .map(|i| request("OPTIONS", &format!("z9hG4bKcap{i}"), "UDP", 1))
        .collect();
    for r in &reqs[..3] {
        layer
            .handle_request(r.clone(), peer(Transport::Udp), t0)
            .unwrap();
    }
    let (_, ev) = drain(&mut layer);
    assert_eq!(count(&ev, |e| matches!(e, TuEvent::Request { .. })), 3);
    for r in &reqs[3..] {
        layer
            .handle_request(r.clone(), peer(Transport::Udp), t0)
            .unwrap();
    }
    let (_, ev) = drain(&mut layer);
    assert_eq!(count(&ev, |e| matches!(e, TuEvent::Overloaded { .. })), 2);
    assert_eq!(layer.server_count(), 3);
    // A retransmission of a live one is still a retransmission, not an overload.
    layer
        .handle_request(reqs[0].clone(), peer(Transport::Udp), t0)
        .unwrap();
    assert_eq!(shape(&mut layer), (0, 0));
    // ACKs never take a slot.
    layer
        .handle_request(
            request("ACK", "z9hG4bKcapack", "UDP", 1),
            peer(Transport::Udp),
            t0,
        )
        .unwrap();
    let (_, ev) = drain(&mut layer);
    assert!(matches!(ev.as_slice(), [TuEvent::Ack { invite: None, .. }]));

    // Silent TU: the transactions are abandoned after 64*T1 and the slots come back.
    layer.handle_timeout(t0 + T1 * 64);
    let (_, ev) = drain(&mut layer);
    assert_eq!(count(&ev, |e| matches!(e, TuEvent::Timeout { .. })), 3);
    assert_eq!(count(&ev, |e| matches!(e, TuEvent::Terminated { .. })), 3);
    assert_eq!((layer.server_count(), layer.timer_count()), (0, 0));
    layer
        .handle_request(reqs[4].clone(), peer(Transport::Udp), t0 + T1 * 64)
        .unwrap();
    let (_, ev) = drain(&mut layer);
    assert!(matches!(ev.as_slice(), [TuEvent::Request { .. }]));

    // Client side.
    let p = peer(Transport::Udp);
    layer
        .send_request(request("OPTIONS", "z9hG4bKc1", "UDP", 1), p, t0)
        .unwrap();
    assert_eq!(
        layer.send_request(request("OPTIONS", "z9hG4bKc1", "UDP", 1), p, t0),
        Err(SendError::Duplicate)
    );
    layer
        .send_request(request("OPTIONS", "z9hG4bKc2", "UDP", 1), p, t0)
        .unwrap();
    assert_eq!(
        layer.send_request(request("OPTIONS", "z9hG4bKc3", "UDP", 1), p, t0),
        Err(SendError::Full)
    );
    assert_eq!(
        layer.send_request(request("ACK", "z9hG4bKc4", "UDP", 1), p, t0),
        Err(SendError::Ack)
    );
}
