//! The relay threads: one per core, each owning the sockets of the calls given to it and waiting on them all with
//! one epoll. A wake-up drains every socket that became readable — up to [`MAX_BATCH`] datagrams per
//! `recvmmsg` — asks each call's sans-IO [`Relay`] (locked once per batch) where each goes, and sends a batch's
//! forwards with one `sendmmsg`. No tokio task, waker or cross-thread hand-off per packet.
//!
//! **Coalescing.** At phone pacing one call's packets are 20 ms apart, so without help every packet would still
//! cost its own wake-up. When packets keep arriving sooner than [`COALESCE`] after the thread went to sleep, the
//! thread waits out the rest of [`COALESCE`] before the next epoll: the kernel queues what arrives meanwhile and
//! one wake-up moves it all. The price is at most [`COALESCE`] of added delay (and jitter) per relayed packet,
//! well inside a phone's jitter buffer; a lightly loaded relay never coalesces.
//!
//! The per-packet path allocates nothing: the thread's receive buffers have room past [`BUF_LEN`] for the SRTP
//! tag the relay may append in place, and sends are non-blocking (a full socket buffer drops the packet, as a
//! congested network would, instead of stalling the other calls).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use media::srtp::MAX_TRAILER;
use media::{Decision, Kind, Leg, Relay};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use tokio::sync::oneshot;
use udp_batch::{MAX_BATCH, Outgoing, Received};

use super::{Lease, lock};
use crate::metrics::counters::RELAY;

/// Largest datagram relayed; a longer one is dropped. RTP over UDP stays under the path MTU, so 2 KiB leaves
/// room for jumbo-ish SRTP/video without wasting memory.
const BUF_LEN: usize = 2048;

/// The most delay coalescing adds to a packet (see the module comment).
pub(super) const COALESCE: Duration = Duration::from_millis(1);

/// Batches drained from one socket per wake-up before the others get their turn (a flood on one port cannot
/// starve the rest); what is left is taken on the next turn of the loop.
const ROUNDS_PER_TURN: usize = 8;

/// The epoll token of the command queue's waker; socket tokens are `slot << 2 | socket`.
const WAKE: Token = Token(usize::MAX);

/// Socket `i` of a lease is leg `i / 2`, kind `i % 2`.
const ROUTES: [(Leg, Kind); 4] = [
    (Leg::A, Kind::Rtp),
    (Leg::A, Kind::Rtcp),
    (Leg::B, Kind::Rtp),
    (Leg::B, Kind::Rtcp),
];

fn socket_index(leg: Leg, kind: Kind) -> usize {
    let l = match leg {
        Leg::A => 0,
        Leg::B => 2,
    };
    l + match kind {
        Kind::Rtp => 0,
        Kind::Rtcp => 1,
    }
}

/// What a session handle asks of its thread.
pub(super) enum Command {
    /// Relay a new session's sockets.
    Add {
        id: u64,
        lease: Lease,
        relay: Arc<Mutex<Relay>>,
    },
    /// Close its sockets and return its ports, then say so on `done`.
    Remove {
        id: u64,
        done: Option<oneshot::Sender<()>>,
    },
    /// Music on hold or a recording notice started or stopped: look at its timer again.
    MusicChanged { id: u64 },
    /// The relay is gone: close everything and end the thread.
    Stop,
}

struct Inbox {
    commands: Mutex<Vec<Command>>,
    waker: Waker,
}

struct Worker {
    inbox: Arc<Inbox>,
    /// Sessions given to it and not yet removed (to place new ones on the least busy thread).
    load: AtomicUsize,
}

/// The relay threads of one [`super::MediaRelay`]. Dropping the last reference stops them (their sessions'
/// ports go back to the pool).
pub(super) struct WorkerSet {
    workers: Vec<Worker>,
}

impl std::fmt::Debug for WorkerSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerSet")
            .field("threads", &self.workers.len())
            .finish()
    }
}

impl WorkerSet {
    /// Starts `threads` relay threads.
    pub(super) fn start(threads: usize) -> io::Result<Arc<WorkerSet>> {
        let mut workers = Vec::with_capacity(threads);
        for n in 0..threads.max(1) {
            let poll = Poll::new()?;
            let waker = Waker::new(poll.registry(), WAKE)?;
            let inbox = Arc::new(Inbox {
                commands: Mutex::new(Vec::new()),
                waker,
            });
            let thread = Relaying::new(poll, inbox.clone());
            std::thread::Builder::new()
                .name(format!("relay-{n}"))
                .spawn(move || thread.run())?;
            workers.push(Worker {
                inbox,
                load: AtomicUsize::new(0),
            });
        }
        Ok(Arc::new(WorkerSet { workers }))
    }

    /// The thread with the fewest sessions (counted as taken).
    pub(super) fn pick(&self) -> usize {
        let (i, w) = self
            .workers
            .iter()
            .enumerate()
            .min_by_key(|(_, w)| w.load.load(Relaxed))
            .unwrap_or((0, &self.workers[0]));
        w.load.fetch_add(1, Relaxed);
        i
    }

    pub(super) fn send(&self, worker: usize, command: Command) {
        let Some(w) = self.workers.get(worker) else {
            return;
        };
        if matches!(command, Command::Remove { .. }) {
            w.load.fetch_sub(1, Relaxed);
        }
        w.inbox
            .commands
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(command);
        if let Err(e) = w.inbox.waker.wake() {
            tracing::error!(error = %e, "cannot wake a media relay thread");
        }
    }
}

impl Drop for WorkerSet {
    fn drop(&mut self) {
        for i in 0..self.workers.len() {
            self.send(i, Command::Stop);
        }
    }
}

struct Slot {
    id: u64,
    lease: Lease,
    relay: Arc<Mutex<Relay>>,
    /// The sockets are IPv6 (dual-stack): IPv4 destinations are sent to as mapped addresses.
    v6: bool,
}

/// One relay thread's state.
struct Relaying {
    poll: Poll,
    inbox: Arc<Inbox>,
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    by_id: HashMap<u64, usize>,
    /// Slots whose music timer may be armed.
    music: Vec<usize>,
    /// Sockets left readable after their turn (their tokens).
    backlog: Vec<Token>,
    bufs: Vec<Vec<u8>>,
    meta: [Received; MAX_BATCH],
    music_buf: Vec<u8>,
    coalesce_until: Option<Instant>,
}

impl Relaying {
    fn new(poll: Poll, inbox: Arc<Inbox>) -> Self {
        let buffer = || Vec::with_capacity(BUF_LEN + MAX_TRAILER);
        Relaying {
            poll,
            inbox,
            slots: Vec::new(),
            free: Vec::new(),
            by_id: HashMap::new(),
            music: Vec::new(),
            backlog: Vec::new(),
            bufs: (0..MAX_BATCH).map(|_| buffer()).collect(),
            meta: [Received::default(); MAX_BATCH],
            music_buf: buffer(),
            coalesce_until: None,
        }
    }

    fn run(mut self) {
        let mut events = Events::with_capacity(256);
        while self.apply_commands() {
            let next_music = self.play_music(Instant::now());
            if let Some(until) = self.coalesce_until {
                let now = Instant::now();
                if until > now {
                    std::thread::sleep(until - now);
                }
            }
            let timeout = if self.backlog.is_empty() {
                next_music.map(|at| at.saturating_duration_since(Instant::now()))
            } else {
                Some(Duration::ZERO)
            };
            let slept = Instant::now();
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    tracing::error!(error = %e, "media relay poll failed");
                    std::thread::sleep(Duration::from_millis(10));
                }
                continue;
            }
            let woke = Instant::now();
            let mut packets = 0;
            for token in std::mem::take(&mut self.backlog) {
                packets += self.drain(token);
            }
            for event in events.iter() {
                if event.token() != WAKE {
                    packets += self.drain(event.token());
                }
            }
            self.coalesce_until = (packets > 0 && woke - slept < COALESCE).then(|| woke + COALESCE);
        }
        for slot in self.slots.iter().flatten() {
            deregister(&self.poll, slot);
        }
    }

    /// Applies what the handles asked; false when the thread must end.
    fn apply_commands(&mut self) -> bool {
        let commands = std::mem::take(
            &mut *self
                .inbox
                .commands
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for command in commands {
            match command {
                Command::Add { id, lease, relay } => self.add(id, lease, relay),
                Command::Remove { id, done } => {
                    self.remove(id);
                    if let Some(done) = done {
                        let _ = done.send(());
                    }
                }
                Command::MusicChanged { id } => {
                    if let Some(&i) = self.by_id.get(&id)
                        && !self.music.contains(&i)
                    {
                        self.music.push(i);
                    }
                }
                Command::Stop => return false,
            }
        }
        true
    }

    fn add(&mut self, id: u64, lease: Lease, relay: Arc<Mutex<Relay>>) {
        let v6 = lease
            .sockets
            .first()
            .and_then(|s| s.local_addr().ok())
            .is_some_and(|a| a.is_ipv6());
        let i = self.free.pop().unwrap_or(self.slots.len());
        for (k, socket) in lease.sockets.iter().enumerate() {
            let fd = socket.as_raw_fd();
            if let Err(e) = self.poll.registry().register(
                &mut SourceFd(&fd),
                Token(i << 2 | k),
                Interest::READABLE,
            ) {
                tracing::error!(error = %e, "media socket not relayed: epoll refused it");
            }
        }
        let slot = Slot {
            id,
            lease,
            relay,
            v6,
        };
        if i == self.slots.len() {
            self.slots.push(Some(slot));
        } else {
            self.slots[i] = Some(slot);
        }
        self.by_id.insert(id, i);
    }

    /// Closes the session's sockets and returns its ports (dropping the lease).
    fn remove(&mut self, id: u64) {
        let Some(i) = self.by_id.remove(&id) else {
            return;
        };
        if let Some(slot) = self.slots.get_mut(i).and_then(Option::take) {
            deregister(&self.poll, &slot);
            debug_assert_eq!(slot.id, id);
        }
        self.music.retain(|&m| m != i);
        self.backlog.retain(|t| t.0 >> 2 != i);
        self.free.push(i);
    }

    /// Relays what waits on the socket of `token`; returns how many datagrams it took.
    fn drain(&mut self, token: Token) -> usize {
        let (i, k) = (token.0 >> 2, token.0 & 3);
        let Some(slot) = self.slots.get(i).and_then(Option::as_ref) else {
            return 0;
        };
        let Some(socket) = slot.lease.sockets.get(k) else {
            return 0;
        };
        let (leg, kind) = ROUTES[k];
        let mut total = 0;
        for _ in 0..ROUNDS_PER_TURN {
            let n = match udp_batch::recv_batch(socket, &mut self.bufs, &mut self.meta) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return total,
                Err(e) => {
                    // A pending socket error is reported (and cleared) by this receive; datagrams may still wait
                    // behind it, and the edge-triggered epoll will not say so again: read on.
                    tracing::trace!(error = %e, "media socket receive error");
                    continue;
                }
            };
            total += n;
            RELAY.received_batch(n, self.bufs[..n].iter().map(Vec::len).sum());
            // (index of the buffer, destination, socket to send from)
            let mut forwards = [(0usize, None::<SocketAddr>, 0usize); MAX_BATCH];
            let mut count = 0;
            {
                let now = Instant::now();
                let mut relay = lock(&slot.relay);
                for (b, (buf, meta)) in self.bufs[..n].iter_mut().zip(&self.meta).enumerate() {
                    let Some(source) = meta.source else { continue };
                    if meta.truncated || buf.len() > BUF_LEN {
                        continue;
                    }
                    if let Decision::Forward { to, via } =
                        relay.on_packet(leg, kind, source, buf, now)
                    {
                        let to = if slot.v6 { mapped(to) } else { to };
                        forwards[count] = (b, Some(to), socket_index(via.0, via.1));
                        count += 1;
                    }
                }
            }
            send_forwards(&slot.lease.sockets, &self.bufs, &forwards[..count]);
            if n < MAX_BATCH {
                return total;
            }
        }
        self.backlog.push(token);
        total
    }

    /// Sends the music packets due now; returns when the next is due on any held leg.
    fn play_music(&mut self, now: Instant) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let (slots, buf) = (&self.slots, &mut self.music_buf);
        self.music.retain(|&i| {
            let Some(slot) = slots.get(i).and_then(Option::as_ref) else {
                return false;
            };
            let mut relay = lock(&slot.relay);
            // Bounded: a packet is due every 20 ms per leg, and a player catches up at most 200 ms.
            for _ in 0..32 {
                let Some((leg, to)) = relay.poll_music(now, buf) else {
                    break;
                };
                let to = if slot.v6 { mapped(to) } else { to };
                match slot.lease.sockets[socket_index(leg, Kind::Rtp)].send_to(buf, to) {
                    Ok(sent) => RELAY.forwarded_batch(1, sent),
                    Err(e) => {
                        tracing::trace!(%to, error = %e, "music on hold send failed; packet dropped")
                    }
                }
            }
            match relay.next_music_at() {
                Some(at) => {
                    next = Some(next.map_or(at, |n| n.min(at)));
                    true
                }
                None => false,
            }
        });
        next
    }
}

/// Sends each forward from its socket, one `sendmmsg` per run of forwards leaving by the same socket (a batch
/// from one socket normally all leaves by one).
fn send_forwards(
    sockets: &[std::net::UdpSocket],
    bufs: &[Vec<u8>],
    forwards: &[(usize, Option<SocketAddr>, usize)],
) {
    let mut start = 0;
    while start < forwards.len() {
        let via = forwards[start].2;
        let run = forwards[start..].iter().take_while(|f| f.2 == via).count();
        let placeholder = Outgoing {
            data: &[],
            to: SocketAddr::from(([0, 0, 0, 0], 0)),
        };
        let mut out = [placeholder; MAX_BATCH];
        let mut k = 0;
        for &(b, to, _) in &forwards[start..start + run] {
            if let Some(to) = to {
                out[k] = Outgoing { data: &bufs[b], to };
                k += 1;
            }
        }
        if let Some(socket) = sockets.get(via) {
            let sent = udp_batch::send_batch(socket, &out[..k]);
            RELAY.forwarded_batch(sent.packets, sent.bytes);
            if let Some(e) = sent.first_error {
                tracing::trace!(error = %e, dropped = sent.dropped, "media send failed; packets dropped");
            }
        }
        start += run;
    }
}

fn deregister(poll: &Poll, slot: &Slot) {
    for socket in &slot.lease.sockets {
        let _ = poll
            .registry()
            .deregister(&mut SourceFd(&socket.as_raw_fd()));
    }
}

/// An IPv4 destination as seen from an IPv6 (dual-stack) socket.
fn mapped(to: SocketAddr) -> SocketAddr {
    match to {
        SocketAddr::V4(v4) => SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port()),
        v6 => v6,
    }
}
