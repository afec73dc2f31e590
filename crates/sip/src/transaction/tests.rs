//! Deterministic simulation tests: a client layer and a server layer joined by a seeded lossy, reordering
//! network, driven by a virtual clock.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::builder::{RequestBuilder, ResponseBuilder};
use crate::header::HeaderName;
use crate::limits::Limits;
use crate::message::{Framing, Message};

const T1: Duration = Duration::from_millis(500);

fn client_addr() -> SocketAddr {
    "192.0.2.1:5060".parse().unwrap()
}

fn server_addr() -> SocketAddr {
    "192.0.2.2:5060".parse().unwrap()
}

fn parse(b: Bytes) -> Message {
    Message::parse(b, Framing::Datagram, &Limits::default()).unwrap()
}

fn request(method: &str, branch: &str, transport: &str, cseq: u32) -> Message {
    let via = if branch.is_empty() {
        format!("SIP/2.0/{transport} 192.0.2.1:5060")
    } else {
        format!("SIP/2.0/{transport} 192.0.2.1:5060;branch={branch}")
    };
    parse(
        RequestBuilder::new(method, "sip:bob@example.com")
            .header(HeaderName::Via, via)
            .header(HeaderName::From, "<sip:alice@example.com>;tag=a1")
            .header(HeaderName::To, "<sip:bob@example.com>")
            .header(HeaderName::CallId, format!("call-{branch}@192.0.2.1"))
            .header(HeaderName::CSeq, format!("{cseq} {method}"))
            .header(HeaderName::Contact, "<sip:alice@192.0.2.1>")
            .build(),
    )
}

fn response(req: &Message, status: u16) -> Bytes {
    ResponseBuilder::new(req, status).to_tag("s1").build()
}

fn status_of_event(ev: &TuEvent) -> Option<u16> {
    match ev {
        TuEvent::Response { response, .. } => response.status(),
        _ => None,
    }
}

fn statuses(events: &[TuEvent]) -> Vec<u16> {
    events.iter().filter_map(status_of_event).collect()
}

fn count(events: &[TuEvent], f: impl Fn(&TuEvent) -> bool) -> usize {
    events.iter().filter(|e| f(e)).count()
}

fn drain(layer: &mut TransactionLayer) -> (Vec<Transmit>, Vec<TuEvent>) {
    let (mut tx, mut ev) = (Vec::new(), Vec::new());
    while let Some(o) = layer.poll_output() {
        match o {
            Output::Transmit(t) => tx.push(t),
            Output::Event(e) => ev.push(e),
        }
    }
    (tx, ev)
}

/// (transmits, events) waiting in the layer, drained.
fn shape(layer: &mut TransactionLayer) -> (usize, usize) {
    let (t, e) = drain(layer);
    (t.len(), e.len())
}

/// Runs timers alone (no network) until `end`, recording when each output happened.
fn run_alone(layer: &mut TransactionLayer, end: Instant) -> Vec<(Instant, Output)> {
    let mut log = Vec::new();
    while let Some(t) = layer.poll_timeout().filter(|&t| t <= end) {
        layer.handle_timeout(t);
        while let Some(o) = layer.poll_output() {
            log.push((t, o));
        }
    }
    log
}

fn peer(transport: Transport) -> Peer {
    Peer::new(client_addr(), transport)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Side {
    Client,
    Server,
}

type Tu = Box<dyn FnMut(&mut TransactionLayer, &TuEvent, Instant)>;

struct Sim {
    now: Instant,
    client: TransactionLayer,
    server: TransactionLayer,
    rng: StdRng,
    loss: f64,
    transport: Transport,
    /// (delivery time, sequence, destination, bytes)
    net: Vec<(Instant, u64, Side, Bytes)>,
    seq: u64,
    client_events: Vec<TuEvent>,
    server_events: Vec<TuEvent>,
    client_sent: Vec<Bytes>,
    server_sent: Vec<Bytes>,
    client_tu: Tu,
    server_tu: Tu,
}

impl Sim {
    fn new(seed: u64, loss: f64, transport: Transport) -> Sim {
        Sim {
            now: Instant::now(),
            client: TransactionLayer::default(),
            server: TransactionLayer::default(),
            rng: StdRng::seed_from_u64(seed),
            loss,
            transport,
            net: Vec::new(),
            seq: 0,
            client_events: Vec::new(),
            server_events: Vec::new(),
            client_sent: Vec::new(),
            server_sent: Vec::new(),
            client_tu: Box::new(|_, _, _| {}),
            server_tu: Box::new(|_, _, _| {}),
        }
    }

    fn send(&mut self, to: Side, bytes: Bytes) {
        match to {
            Side::Server => self.client_sent.push(bytes.clone()),
            Side::Client => self.server_sent.push(bytes.clone()),
        }
        if self.rng.gen_bool(self.loss) {
            return;
        }
        // 10–90 ms: enough spread to reorder back-to-back messages.
        let delay = Duration::from_millis(self.rng.gen_range(10..90));
        self.seq += 1;
        self.net.push((self.now + delay, self.seq, to, bytes));
    }

    fn drain(&mut self) {
        loop {
            let mut progress = false;
            while let Some(o) = self.client.poll_output() {
                progress = true;
                match o {
                    Output::Transmit(t) => self.send(Side::Server, t.bytes),
                    Output::Event(e) => {
                        (self.client_tu)(&mut self.client, &e, self.now);
                        self.client_events.push(e);
                    }
                }
            }
            while let Some(o) = self.server.poll_output() {
                progress = true;
                match o {
                    Output::Transmit(t) => self.send(Side::Client, t.bytes),
                    Output::Event(e) => {
                        (self.server_tu)(&mut self.server, &e, self.now);
                        self.server_events.push(e);
                    }
                }
            }
            if !progress {
                return;
            }
        }
    }

    fn deliver(&mut self, to: Side, bytes: Bytes) {
        let msg = parse(bytes);
        let (layer, from) = match to {
            Side::Server => (&mut self.server, Peer::new(client_addr(), self.transport)),
            Side::Client => (&mut self.client, Peer::new(server_addr(), self.transport)),
        };
        if msg.is_request() {
            layer.handle_request(msg, from, self.now).unwrap();
        } else {
            layer.handle_response(msg, self.now).unwrap();
        }
    }

    fn run_until(&mut self, end: Instant) {
        loop {
            self.drain();
            let next = [
                self.net.iter().map(|p| p.0).min(),
                self.client.poll_timeout(),
                self.server.poll_timeout(),
            ]
            .into_iter()
            .flatten()
            .min();
            let Some(t) = next.filter(|&t| t <= end) else {
                break;
            };
            self.now = self.now.max(t);
            self.net.sort_by_key(|p| (p.0, p.1));
            while self.net.first().is_some_and(|p| p.0 <= self.now) {
                let (_, _, to, bytes) = self.net.remove(0);
                self.deliver(to, bytes);
                self.drain();
            }
            self.client.handle_timeout(self.now);
            self.server.handle_timeout(self.now);
        }
        self.now = end;
    }

    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        self.run_until(end);
    }

    fn all_gone(&self) -> bool {
        self.client.client_count() == 0
            && self.client.server_count() == 0
            && self.server.client_count() == 0
            && self.server.server_count() == 0
            && self.client.timer_count() == 0
            && self.server.timer_count() == 0
    }
}

/// A server TU that answers every new request with `status` (and every CANCEL 200) at once.
fn answer_with(status: u16) -> Tu {
    Box::new(move |layer, ev, now| {
        if let TuEvent::Request { tx, request, .. } = ev {
            layer.respond(*tx, response(request, status), now).unwrap();
        }
    })
}

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
    assert_eq!(super::server::status_of(b"SIP/2.0 1800 Nope"), None);
    assert_eq!(super::server::status_of(b"SIP/2.0 180 Ringing"), Some(180));
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
