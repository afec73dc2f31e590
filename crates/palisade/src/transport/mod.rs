//! The socket edge: UDP receive loops, TCP/TLS acceptors and connections, and the registry that routes what the
//! service returns to the right socket or connection.
//!
//! Everything here is non-blocking towards the service: the service lock is held only for one call, never across
//! an `.await`, and writes to stream connections go through bounded per-connection queues that drop when full.

pub mod bind;
pub mod stream;
pub mod udp;
pub mod ws;

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::{Notify, mpsc};

use crate::config::TransportLimits;
use crate::metrics::counters::Direction;
use crate::service::{ConnId, Inbound, Outbound, Service, Transport};

/// Messages queued for one connection before further ones are dropped.
pub const CONN_QUEUE: usize = 64;

/// A bound UDP socket.
#[derive(Debug, Clone)]
pub struct UdpEndpoint {
    pub socket: Arc<UdpSocket>,
    pub local: SocketAddr,
    /// An IPv6 socket that also takes IPv4 (IPv4-mapped addresses).
    pub dual_stack: bool,
}

/// The service plus the timer bookkeeping, behind one lock.
struct Core {
    service: Service,
    /// The deadline the timer task is sleeping towards.
    armed: Option<Instant>,
}

struct ConnEntry {
    transport: Transport,
    peer: SocketAddr,
    tx: mpsc::Sender<Bytes>,
}

/// One counted connection slot (from accept, through the TLS and WebSocket handshakes, to close).
struct SlotEntry {
    /// The source it counts against ([`sip::transaction::source_key`]: IPv6 per /64).
    key: IpAddr,
    conn: Option<ConnId>,
    /// Tells the connection's task to close (it was evicted).
    kill: Arc<Notify>,
}

#[derive(Default)]
struct Conns {
    by_id: HashMap<ConnId, ConnEntry>,
    by_peer: HashMap<(Transport, SocketAddr), ConnId>,
    per_ip: HashMap<IpAddr, usize>,
    total: usize,
    slots: HashMap<u64, SlotEntry>,
    /// Slots whose connection has not authenticated (nor come from a trunk) yet, oldest first: when the total
    /// cap is reached the first of them is closed to make room, so idle connections from many addresses cannot
    /// lock phones out.
    unauthenticated: BTreeSet<u64>,
    next_slot: u64,
}

impl Conns {
    /// Releases slot `seq` (counts and routing); returns its entry if it was still held.
    fn release(&mut self, seq: u64) -> Option<SlotEntry> {
        // First, so that the eviction loop in `Edge::reserve` always makes progress.
        self.unauthenticated.remove(&seq);
        let entry = self.slots.remove(&seq)?;
        if let Some(n) = self.per_ip.get_mut(&entry.key) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&entry.key);
            }
        }
        self.total = self.total.saturating_sub(1);
        if let Some(id) = entry.conn
            && let Some(c) = self.by_id.remove(&id)
            && self.by_peer.get(&(c.transport, c.peer)) == Some(&id)
        {
            self.by_peer.remove(&(c.transport, c.peer));
        }
        Some(entry)
    }
}

/// What one message from a stream connection did, for the connection's bookkeeping.
#[derive(Debug, Default)]
pub struct StreamOutcome {
    pub out: Vec<Outbound>,
    /// It parsed as a SIP message (a request or a response).
    pub valid: bool,
    /// It authenticated (or came from a trunk's source address).
    pub authenticated: bool,
}

/// Shared by every transport task.
pub struct Edge {
    core: Mutex<Core>,
    timer_wake: Notify,
    /// Wakes the task that carries out the endpoint's events (crate::endpoint_events).
    events_wake: Notify,
    conns: Mutex<Conns>,
    next_conn: AtomicU64,
    udp: Vec<UdpEndpoint>,
    pub limits: sip::Limits,
    pub transport_limits: TransportLimits,
    /// Client configurations for outgoing TLS connections (to trunks).
    pub tls_clients: crate::tls_client::TlsClients,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub use sip::transport::canonical;

impl Edge {
    pub fn new(
        service: Service,
        udp: Vec<UdpEndpoint>,
        limits: sip::Limits,
        transport_limits: TransportLimits,
    ) -> Arc<Edge> {
        Arc::new(Edge {
            core: Mutex::new(Core {
                service,
                armed: None,
            }),
            timer_wake: Notify::new(),
            events_wake: Notify::new(),
            conns: Mutex::new(Conns::default()),
            next_conn: AtomicU64::new(1),
            udp,
            limits,
            transport_limits,
            tls_clients: Default::default(),
        })
    }

    /// Runs one received message through the service; wakes the timer task when a sooner timer appeared.
    pub fn handle(&self, inbound: Inbound) -> Vec<Outbound> {
        let source = inbound.source;
        self.handle_with(source, |service| {
            service
                .admit(source.ip(), Instant::now())
                .then_some(inbound)
        })
    }

    /// A message framed from a TCP/TLS connection (or one WebSocket message); `None` when the guard refused it
    /// (close the connection).
    pub fn handle_stream(&self, inbound: Inbound) -> Option<StreamOutcome> {
        let source = inbound.source;
        let mut admitted = false;
        let mut before = (0, 0);
        let out = self.handle_with(source, |service| {
            admitted = service.admit(source.ip(), Instant::now());
            before = service.progress();
            admitted.then_some(inbound)
        });
        if !admitted {
            return None;
        }
        let (after, trunk) = {
            let core = lock(&self.core);
            (
                core.service.progress(),
                core.service.is_trunk_source(source.ip()),
            )
        };
        let valid = after.0 > before.0;
        Some(StreamOutcome {
            out,
            valid,
            authenticated: after.1 > before.1 || (valid && trunk),
        })
    }

    /// A keep-alive (CRLF, WebSocket ping) from a connection: counted toward the source's packet rate like a
    /// message; `false` when the guard drops it (close the connection).
    pub fn admit_keepalive(&self, ip: IpAddr) -> bool {
        lock(&self.core).service.admit(ip, Instant::now())
    }

    /// A datagram: the guard's verdict comes first, so a dropped packet is neither copied nor parsed.
    pub fn handle_datagram(
        &self,
        data: &[u8],
        source: SocketAddr,
        local: SocketAddr,
    ) -> Vec<Outbound> {
        self.handle_with(source, |service| {
            service.admit(source.ip(), Instant::now()).then(|| Inbound {
                transport: Transport::Udp,
                source,
                local,
                conn: None,
                data: Bytes::copy_from_slice(data),
            })
        })
    }

    /// Runs `make` (which may refuse the message) and the service under one lock.
    fn handle_with(
        &self,
        source: SocketAddr,
        make: impl FnOnce(&mut Service) -> Option<Inbound>,
    ) -> Vec<Outbound> {
        let (out, wake, events) = {
            let mut core = lock(&self.core);
            // A bug in the service must cost one message, not the listener that called it.
            let out =
                match std::panic::catch_unwind(AssertUnwindSafe(|| match make(&mut core.service) {
                    // `make` asked the guard already.
                    Some(inbound) => {
                        crate::metrics::counters::SIP.count(Direction::In, &inbound.data);
                        core.service.process(inbound, Instant::now())
                    }
                    None => Vec::new(),
                })) {
                    Ok(out) => out,
                    Err(_) => {
                        tracing::error!(%source, "service panicked on a message; message dropped");
                        Vec::new()
                    }
                };
            let next = core.service.poll_timeout();
            let wake = match (next, core.armed) {
                (Some(n), Some(a)) => n < a,
                (Some(_), None) => true,
                _ => false,
            };
            (out, wake, core.service.has_events())
        };
        if wake {
            self.timer_wake.notify_one();
        }
        if events {
            self.events_wake.notify_one();
        }
        out
    }

    /// Whether the guard lets `ip` open a TCP/TLS connection.
    pub fn allows_connection(&self, ip: std::net::IpAddr) -> bool {
        lock(&self.core)
            .service
            .allows_connection(ip, Instant::now())
    }

    /// Lets the timer task re-read the service's next deadline (after work done through [`Edge::with_service`]).
    pub fn wake_timers(&self) {
        self.timer_wake.notify_one();
    }

    /// Runs `f` on the service under its lock (for the store synchronisation; never across an await).
    pub fn with_service<R>(&self, f: impl FnOnce(&mut Service) -> R) -> R {
        let (result, events) = {
            let mut core = lock(&self.core);
            let result = f(&mut core.service);
            (result, core.service.has_events())
        };
        if events {
            self.events_wake.notify_one();
        }
        result
    }

    /// Waits until the service may have events for the edge (`Service::poll_event`).
    pub async fn events_ready(&self) {
        self.events_wake.notified().await;
    }

    /// The timer task: sleeps until the service's next timer (at most a second), runs it, sends the results.
    pub async fn run_timers(self: Arc<Self>) {
        const MAX_SLEEP: std::time::Duration = std::time::Duration::from_secs(1);
        loop {
            let when = {
                let mut core = lock(&self.core);
                let cap = Instant::now() + MAX_SLEEP;
                let when = core.service.poll_timeout().map_or(cap, |t| t.min(cap));
                core.armed = Some(when);
                when
            };
            tokio::select! {
                () = tokio::time::sleep_until(tokio::time::Instant::from_std(when)) => {
                    let out = self.with_service(|s| s.handle_timeout(Instant::now()));
                    self.dispatch(out);
                }
                () = self.timer_wake.notified() => {}
            }
        }
    }

    /// Sends what the service returned. Never waits: full queues and sockets drop the message.
    pub fn dispatch(self: &Arc<Self>, out: Vec<Outbound>) {
        for o in out {
            self.send(o);
        }
    }

    pub fn send(self: &Arc<Self>, o: Outbound) {
        match o.transport {
            Transport::Udp => self.send_udp(o.dest, &o.data),
            Transport::Tcp | Transport::Tls | Transport::Ws | Transport::Wss => self.send_stream(o),
        }
    }

    /// Sends a datagram from the first socket that can reach `dest`.
    fn send_udp(&self, dest: SocketAddr, data: &[u8]) {
        let ep = self
            .udp
            .iter()
            .find(|ep| ep.local.is_ipv4() == dest.is_ipv4())
            .or_else(|| self.udp.iter().find(|ep| dest.is_ipv4() && ep.dual_stack));
        match ep {
            Some(ep) => send_datagram(ep, dest, data),
            None => {
                tracing::debug!(%dest, "no UDP socket for this address family; message dropped")
            }
        }
    }

    fn send_stream(self: &Arc<Self>, o: Outbound) {
        crate::metrics::counters::SIP.count(Direction::Out, &o.data);
        let dest = canonical(o.dest);
        let tx = {
            let conns = lock(&self.conns);
            let by_id = o
                .conn
                .and_then(|id| conns.by_id.get(&id))
                .filter(|c| c.transport == o.transport && !c.tx.is_closed());
            by_id
                .or_else(|| {
                    conns
                        .by_peer
                        .get(&(o.transport, dest))
                        .and_then(|id| conns.by_id.get(id))
                })
                .filter(|c| !c.tx.is_closed())
                .map(|c| c.tx.clone())
        };
        match tx {
            Some(tx) => match tx.try_send(o.data) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::debug!(%dest, transport = %o.transport.name(), "connection queue full; message dropped");
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    tracing::debug!(%dest, transport = %o.transport.name(), "connection closed; message dropped");
                }
            },
            None => match o.transport {
                Transport::Tcp => stream::connect(self.clone(), dest, o.data),
                Transport::Ws | Transport::Wss => tracing::debug!(
                    %dest,
                    transport = %o.transport.name(),
                    "no open WebSocket connection to the peer (phones connect to Palisade); message dropped"
                ),
                Transport::Tls => match self.with_service(|s| s.tls_peer(dest)) {
                    Some(peer) => stream::connect_tls(self.clone(), dest, peer, o.data),
                    None => tracing::debug!(
                        %dest,
                        "no open TLS connection to the peer, which is no TLS trunk (phones connect to Palisade); \
                         message dropped"
                    ),
                },
                Transport::Udp => {}
            },
        }
    }

    /// Takes a connection slot for `ip`, or `None` when its source (an IPv4 address, or an IPv6 /64) is at the
    /// per-source limit. At the total limit the oldest connection that has not authenticated is closed to make
    /// room; when every open connection has authenticated, the new one is refused.
    pub fn reserve(self: &Arc<Self>, ip: IpAddr) -> Option<ConnSlot> {
        let key = sip::transaction::source_key(ip);
        let mut conns = lock(&self.conns);
        let per_ip = conns.per_ip.get(&key).copied().unwrap_or(0);
        if per_ip >= self.transport_limits.max_connections_per_ip {
            return None;
        }
        while conns.total >= self.transport_limits.max_connections {
            let oldest = conns.unauthenticated.first().copied()?;
            if let Some(evicted) = conns.release(oldest) {
                tracing::debug!(source = %evicted.key, "connection limit reached: closing the oldest unauthenticated connection");
                evicted.kill.notify_one();
            }
        }
        let per_ip = conns.per_ip.get(&key).copied().unwrap_or(0);
        conns.per_ip.insert(key, per_ip + 1);
        conns.total += 1;
        let seq = conns.next_slot;
        conns.next_slot += 1;
        let kill = Arc::new(Notify::new());
        conns.slots.insert(
            seq,
            SlotEntry {
                key,
                conn: None,
                kill: kill.clone(),
            },
        );
        conns.unauthenticated.insert(seq);
        Some(ConnSlot {
            edge: self.clone(),
            seq,
            kill,
            id: None,
        })
    }

    /// The connection in `slot` authenticated (or is one Palisade opened, or a trunk's): it is never evicted.
    pub fn mark_authenticated(&self, slot: &ConnSlot) {
        lock(&self.conns).unauthenticated.remove(&slot.seq);
    }

    /// Makes an open connection reachable for outbound messages; returns its id and queue.
    pub fn register(
        &self,
        slot: &mut ConnSlot,
        transport: Transport,
        peer: SocketAddr,
    ) -> (ConnId, mpsc::Receiver<Bytes>) {
        let id = ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = mpsc::channel(CONN_QUEUE);
        let mut conns = lock(&self.conns);
        slot.id = Some(id);
        // An evicted slot stays unreachable: its task is closing.
        let Some(entry) = conns.slots.get_mut(&slot.seq) else {
            return (id, rx);
        };
        entry.conn = Some(id);
        conns.by_id.insert(
            id,
            ConnEntry {
                transport,
                peer,
                tx,
            },
        );
        conns.by_peer.insert((transport, peer), id);
        (id, rx)
    }

    /// Open stream connections (for tests and status).
    pub fn open_connections(&self) -> usize {
        lock(&self.conns).total
    }
}

/// Sends one datagram without waiting: a full socket buffer drops it.
pub fn send_datagram(ep: &UdpEndpoint, dest: SocketAddr, data: &[u8]) {
    crate::metrics::counters::SIP.count(Direction::Out, data);
    let dest = match dest {
        SocketAddr::V4(v4) if ep.local.is_ipv6() => {
            SocketAddr::V6(SocketAddrV6::new(v4.ip().to_ipv6_mapped(), v4.port(), 0, 0))
        }
        d => d,
    };
    if let Err(e) = ep.socket.try_send_to(data, dest) {
        tracing::debug!(%dest, error = %e, "UDP send failed; message dropped");
    }
}

/// One counted connection (or connection attempt). Dropping it releases the slot and unregisters the connection.
pub struct ConnSlot {
    edge: Arc<Edge>,
    seq: u64,
    kill: Arc<Notify>,
    id: Option<ConnId>,
}

impl ConnSlot {
    /// Resolves when the slot was evicted to make room (the task must close its connection).
    pub async fn evicted(&self) {
        self.kill.notified().await
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        // Already released when it was evicted.
        lock(&self.edge.conns).release(self.seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn edge(limits: TransportLimits) -> Arc<Edge> {
        let service = Service::for_tests();
        Edge::new(service, Vec::new(), sip::Limits::default(), limits)
    }

    #[tokio::test]
    async fn outbound_tcp_without_connection_opens_one() {
        let edge = edge(TransportLimits::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dest = listener.local_addr().unwrap();
        let data = Bytes::from_static(b"OPTIONS sip:a SIP/2.0\r\nContent-Length: 0\r\n\r\n");
        edge.send(Outbound {
            transport: Transport::Tcp,
            dest,
            conn: Some(ConnId(999)),
            data: data.clone(),
        });
        let io = async {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut got = vec![0u8; data.len()];
            s.read_exact(&mut got).await.unwrap();
            got
        };
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), io)
            .await
            .unwrap();
        assert_eq!(got, data);
        assert_eq!(edge.open_connections(), 1);
    }

    #[tokio::test]
    async fn connection_slots_are_capped_and_released() {
        let edge = edge(TransportLimits {
            max_connections_per_ip: 2,
            max_connections: 3,
            ..Default::default()
        });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let s1 = edge.reserve(a).unwrap();
        let s2 = edge.reserve(a).unwrap();
        assert!(edge.reserve(a).is_none(), "per-IP cap");
        let s3 = edge.reserve(b).unwrap();
        // Every slot authenticated: at the total cap a new connection is refused.
        for s in [&s1, &s2, &s3] {
            edge.mark_authenticated(s);
        }
        assert!(edge.reserve(b).is_none(), "total cap");
        drop(s1);
        assert_eq!(edge.open_connections(), 2);
        assert!(edge.reserve(a).is_some());
    }

    #[tokio::test]
    async fn at_the_total_cap_the_oldest_unauthenticated_connection_makes_room() {
        let edge = edge(TransportLimits {
            max_connections_per_ip: 10,
            max_connections: 3,
            ..Default::default()
        });
        let ip = |i: u8| IpAddr::from([192, 0, 2, i]);
        let phone = edge.reserve(ip(1)).unwrap();
        edge.mark_authenticated(&phone);
        let idle1 = edge.reserve(ip(2)).unwrap();
        let idle2 = edge.reserve(ip(3)).unwrap();
        let newcomer = edge.reserve(ip(4)).expect("room made");
        assert_eq!(edge.open_connections(), 3);
        // The oldest idle one was told to close; the phone and the younger idle one were not.
        let told = |s: &ConnSlot| futures_util::FutureExt::now_or_never(s.evicted()).is_some();
        assert!(told(&idle1));
        assert!(!told(&idle2) && !told(&phone) && !told(&newcomer));
        drop(idle1); // its task ends: nothing counted twice
        assert_eq!(edge.open_connections(), 3);
        let _again = edge.reserve(ip(5)).unwrap();
        assert!(told(&idle2));
        drop(idle2);
        drop(newcomer);
        assert_eq!(edge.open_connections(), 2);
    }

    #[tokio::test]
    async fn ipv6_sources_are_capped_per_64() {
        let edge = edge(TransportLimits {
            max_connections_per_ip: 2,
            ..Default::default()
        });
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let _a = edge.reserve(ip("2001:db8:1:2::1")).unwrap();
        let _b = edge.reserve(ip("2001:db8:1:2::2")).unwrap();
        assert!(
            edge.reserve(ip("2001:db8:1:2:ffff::9")).is_none(),
            "same /64"
        );
        assert!(edge.reserve(ip("2001:db8:1:3::1")).is_some(), "another /64");
    }

    #[test]
    fn mapped_addresses_are_canonical() {
        let m: SocketAddr = "[::ffff:192.0.2.1]:5060".parse().unwrap();
        assert_eq!(
            canonical(m),
            "192.0.2.1:5060".parse::<SocketAddr>().unwrap()
        );
        let v6: SocketAddr = "[2001:db8::1]:5060".parse().unwrap();
        assert_eq!(canonical(v6), v6);
    }
}
