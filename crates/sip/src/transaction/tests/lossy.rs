//! Transaction-layer simulation tests: whole exchanges under packet loss.

use super::*;

#[test]
fn invite_486_under_30_percent_loss_completes_and_ack_is_absorbed() {
    let mut lossy_runs = 0;
    for seed in 0..40 {
        let mut sim = Sim::new(seed, 0.3, Transport::Udp);
        sim.server_tu = answer_with(486);
        let invite = request("INVITE", "z9hG4bKinv1", "UDP", 1);
        let id = sim
            .client
            .send_request(invite, Peer::new(server_addr(), Transport::Udp), sim.now)
            .unwrap();
        sim.drain();
        sim.run_for(Duration::from_secs(120));

        assert_eq!(
            statuses(&sim.client_events)
                .iter()
                .filter(|&&s| s >= 200)
                .count(),
            1,
            "seed {seed}"
        );
        assert_eq!(
            statuses(&sim.client_events).last(),
            Some(&486),
            "seed {seed}"
        );
        assert_eq!(
            count(&sim.server_events, |e| matches!(e, TuEvent::Request { .. })),
            1,
            "seed {seed}"
        );
        // The ACK for the 486 belongs to the transaction: the server TU never sees it, nothing times out.
        assert_eq!(
            count(&sim.server_events, |e| matches!(e, TuEvent::Ack { .. })),
            0,
            "seed {seed}"
        );
        assert_eq!(
            count(&sim.server_events, |e| matches!(e, TuEvent::Timeout { .. })),
            0,
            "seed {seed}"
        );
        assert_eq!(
            count(&sim.client_events, |e| matches!(e, TuEvent::Timeout { .. })),
            0,
            "seed {seed}"
        );
        assert!(
            sim.client_events
                .iter()
                .any(|e| matches!(e, TuEvent::Terminated { tx: TxId::Client(t) } if *t == id))
        );
        assert_eq!(
            count(&sim.server_events, |e| matches!(
                e,
                TuEvent::Terminated { .. }
            )),
            1,
            "seed {seed}"
        );
        // The client sent at least one ACK and it was built from the INVITE (same branch).
        let acks: Vec<_> = sim
            .client_sent
            .iter()
            .filter(|b| b.starts_with(b"ACK "))
            .collect();
        assert!(!acks.is_empty(), "seed {seed}");
        assert!(parse(acks[0].clone()).top_via().unwrap().branch() == Some("z9hG4bKinv1"));
        assert!(sim.all_gone(), "seed {seed}");
        lossy_runs += usize::from(sim.client_sent.len() + sim.server_sent.len() > 3);
    }
    // The network really did lose messages and the retransmission timers made up for it.
    assert!(lossy_runs >= 10, "{lossy_runs}");
}

#[test]
fn non_invite_under_30_percent_loss_completes_once() {
    let mut lossy_runs = 0;
    for seed in 0..40 {
        let mut sim = Sim::new(seed, 0.3, Transport::Udp);
        sim.server_tu = answer_with(200);
        let opts = request("OPTIONS", "z9hG4bKopt1", "UDP", 7);
        sim.client
            .send_request(opts, Peer::new(server_addr(), Transport::Udp), sim.now)
            .unwrap();
        sim.run_for(Duration::from_secs(60));
        assert_eq!(statuses(&sim.client_events), vec![200], "seed {seed}");
        assert_eq!(
            count(&sim.server_events, |e| matches!(e, TuEvent::Request { .. })),
            1,
            "seed {seed}"
        );
        assert_eq!(
            count(&sim.client_events, |e| matches!(e, TuEvent::Timeout { .. })),
            0,
            "seed {seed}"
        );
        assert!(sim.all_gone(), "seed {seed}");
        lossy_runs += usize::from(sim.client_sent.len() > 1);
    }
    assert!(lossy_runs >= 10, "{lossy_runs}");
}

#[test]
fn lossless_invite_486_exact_message_counts() {
    let mut sim = Sim::new(1, 0.0, Transport::Udp);
    sim.server_tu = answer_with(486);
    let invite = request("INVITE", "z9hG4bKinv2", "UDP", 1);
    sim.client
        .send_request(invite, Peer::new(server_addr(), Transport::Udp), sim.now)
        .unwrap();
    sim.run_for(Duration::from_secs(60));
    assert_eq!(sim.client_sent.len(), 2, "INVITE + ACK");
    assert_eq!(
        sim.server_sent.len(),
        1,
        "486 only; no 100 because the TU answered at once"
    );
    assert_eq!(statuses(&sim.client_events), vec![486]);
    assert!(sim.all_gone());
}
