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

mod cancel_and_caps;
mod client_timers;
mod lossy;
mod matching;
mod server;
