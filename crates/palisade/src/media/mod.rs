//! The media relay's socket edge: a port pool shared by all calls, per call four UDP sockets (leg A RTP/RTCP,
//! leg B RTP/RTCP), and one relay thread per core ([`worker`]) that waits on the sockets of the calls given to it,
//! drains them in batches and asks each call's sans-IO [`media::Relay`] where each datagram goes.
//!
//! Ports always go back to the pool: when [`MediaSessionHandle::close`] is called, when the handle is dropped
//! (the call vanished), and when the last [`MediaRelay`] and handle are gone (the threads stop) — the sockets are
//! closed first, then the ports released.

mod worker;

use std::io;
use std::net::UdpSocket;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use media::{Kind, Leg, LegCrypto, LegStats, PoolError, PortPool, Relay, Remote};
use tokio::sync::oneshot;

use worker::{Command, WorkerSet};

/// Why a media session could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error(transparent)]
    Pool(#[from] PoolError),
    #[error("cannot bind media port {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("cannot start the media relay threads: {0}")]
    Threads(io::Error),
}

/// The relay for all calls: the addresses to bind and advertise, and the port pool.
#[derive(Debug, Clone)]
pub struct MediaRelay {
    shared: Arc<Shared>,
    workers: Arc<WorkerSet>,
}

#[derive(Debug)]
struct Shared {
    advertise_ip: IpAddr,
    bind_ip: IpAddr,
    pool: Mutex<PortPool>,
}

impl Shared {
    fn pool(&self) -> MutexGuard<'_, PortPool> {
        self.pool.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn lock(relay: &Mutex<Relay>) -> MutexGuard<'_, Relay> {
    relay.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Ports taken from the pool and the sockets bound to them. Dropping it closes the sockets, then returns the
/// ports, so the next session that gets them can bind them.
#[derive(Debug)]
struct Lease {
    shared: Arc<Shared>,
    ports: Vec<u16>,
    sockets: Vec<UdpSocket>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.sockets.clear();
        let mut pool = self.shared.pool();
        for port in self.ports.drain(..) {
            if let Err(e) = pool.release(port) {
                tracing::error!(port, error = %e, "media port release refused");
            }
        }
    }
}

impl MediaRelay {
    /// `advertise_ip` goes into SDP; sockets bind to `bind_ip`; RTP ports are the even ports of `ports`. Starts one
    /// relay thread per core.
    pub fn new(
        advertise_ip: IpAddr,
        bind_ip: IpAddr,
        ports: RangeInclusive<u16>,
    ) -> Result<Self, MediaError> {
        let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Self::with_threads(advertise_ip, bind_ip, ports, threads)
    }

    /// As [`MediaRelay::new`], with `threads` relay threads (at least one).
    pub fn with_threads(
        advertise_ip: IpAddr,
        bind_ip: IpAddr,
        ports: RangeInclusive<u16>,
        threads: usize,
    ) -> Result<Self, MediaError> {
        let pool = Mutex::new(PortPool::new(ports)?);
        Ok(MediaRelay {
            shared: Arc::new(Shared {
                advertise_ip,
                bind_ip,
                pool,
            }),
            workers: WorkerSet::start(threads).map_err(MediaError::Threads)?,
        })
    }

    pub fn advertise_ip(&self) -> IpAddr {
        self.shared.advertise_ip
    }

    /// Port pairs in the pool / free now.
    pub fn capacity(&self) -> usize {
        self.shared.pool().capacity()
    }

    pub fn available(&self) -> usize {
        self.shared.pool().available()
    }

    /// Bind a session's four sockets (a pair per leg; a pair already used by another program is skipped) and
    /// hand them to the least busy relay thread.
    pub fn allocate(&self) -> Result<MediaSessionHandle, MediaError> {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let mut lease = Lease {
            shared: self.shared.clone(),
            ports: Vec::new(),
            sockets: Vec::new(),
        };
        for _ in [Leg::A, Leg::B] {
            self.bind_pair(&mut lease)?;
        }
        let ports = [lease.ports[0], lease.ports[1]];
        let relay = Arc::new(Mutex::new(Relay::new(Instant::now())));
        let id = NEXT_ID.fetch_add(1, Relaxed);
        let worker = self.workers.pick();
        self.workers.send(
            worker,
            Command::Add {
                id,
                lease,
                relay: relay.clone(),
            },
        );
        tracing::debug!(
            a = ports[0],
            b = ports[1],
            worker,
            "media session allocated"
        );
        Ok(MediaSessionHandle {
            ports,
            advertise_ip: self.shared.advertise_ip,
            relay,
            id,
            worker,
            workers: self.workers.clone(),
            removed: false,
        })
    }

    /// Take pairs from the pool until one binds; pairs in use elsewhere go back to the end of the queue.
    fn bind_pair(&self, lease: &mut Lease) -> Result<(), MediaError> {
        let attempts = self.shared.pool().available();
        for _ in 0..attempts {
            let port = self.shared.pool().allocate_one()?;
            match bind_two(self.shared.bind_ip, port) {
                Ok([rtp, rtcp]) => {
                    lease.ports.push(port);
                    lease.sockets.extend([rtp, rtcp]);
                    return Ok(());
                }
                Err(e) => {
                    // Release after the failed sockets are gone (bind_two dropped them).
                    let _ = self.shared.pool().release(port);
                    match e {
                        MediaError::Bind { ref source, addr }
                            if source.kind() == io::ErrorKind::AddrInUse =>
                        {
                            tracing::debug!(%addr, "media port in use by another program; skipped");
                        }
                        e => return Err(e),
                    }
                }
            }
        }
        Err(PoolError::Exhausted {
            capacity: self.capacity(),
        }
        .into())
    }
}

fn bind_two(ip: IpAddr, rtp_port: u16) -> Result<[UdpSocket; 2], MediaError> {
    let bind = |port: u16| {
        let addr = SocketAddr::new(ip, port);
        let socket = UdpSocket::bind(addr)
            .and_then(|s| s.set_nonblocking(true).map(|()| s))
            .map_err(|source| MediaError::Bind { addr, source })?;
        Ok::<_, MediaError>(socket)
    };
    let rtp = bind(rtp_port)?;
    let rtcp = bind(rtp_port + 1)?;
    Ok([rtp, rtcp])
}

/// Both legs' counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionStats {
    pub a: LegStats,
    pub b: LegStats,
}

/// One call's media session. Dropping it closes the sockets and returns the ports (on its relay thread).
#[derive(Debug)]
pub struct MediaSessionHandle {
    ports: [u16; 2],
    advertise_ip: IpAddr,
    relay: Arc<Mutex<Relay>>,
    id: u64,
    /// The relay thread that owns the sockets.
    worker: usize,
    workers: Arc<WorkerSet>,
    /// `close` already asked the thread to remove the session.
    removed: bool,
}

impl MediaSessionHandle {
    /// Wakes the thread when music on hold or a recording notice starts or stops (its timer depends on it).
    fn music_changed(&self) {
        self.workers
            .send(self.worker, Command::MusicChanged { id: self.id });
    }
}

impl Drop for MediaSessionHandle {
    fn drop(&mut self) {
        if !self.removed {
            self.workers.send(
                self.worker,
                Command::Remove {
                    id: self.id,
                    done: None,
                },
            );
        }
    }
}

impl MediaSessionHandle {
    /// Where a leg's media may come from and go to, from its SDP and signalling source (initial or
    /// re-INVITE/UPDATE; a changed remote re-arms the latch).
    pub fn set_remote(&self, leg: Leg, rtp: Remote, rtcp: Remote) {
        lock(&self.relay).set_remote(leg, rtp, rtcp);
    }

    /// SRTP for a leg (keys from the SDES exchange: `rx` is the phone's, `tx` Palisade's toward it), or plain RTP
    /// with `None`. On a re-INVITE with new keys the changed direction's context is replaced; an unchanged key
    /// keeps its rollover counter and replay window.
    pub fn set_crypto(&self, leg: Leg, crypto: Option<LegCrypto>) {
        lock(&self.relay).set_crypto(leg, crypto);
    }

    /// Music on hold to `leg` (in place of what the other leg sends), or none.
    pub fn set_music(&self, leg: Leg, player: Option<media::moh::MusicPlayer>) {
        lock(&self.relay).set_music(leg, player);
        self.music_changed();
    }

    /// Records the call with `recorder` (announcing it with `notices` when it starts).
    pub fn set_recording(
        &self,
        recorder: media::recorder::Recorder,
        notices: [Option<media::moh::Music>; 2],
    ) {
        lock(&self.relay).set_recording(recorder, notices, Instant::now());
        self.music_changed();
    }

    /// The call's recording, taken out of the relay.
    pub fn take_recording(&self) -> Option<media::recorder::Recorder> {
        lock(&self.relay).take_recording()
    }

    /// The leg's RTP port, for its SDP (RTCP is the port above).
    pub fn ports(&self, leg: Leg) -> u16 {
        match leg {
            Leg::A => self.ports[0],
            Leg::B => self.ports[1],
        }
    }

    /// The address to put in the SDP sent on either leg.
    pub fn advertise_ip(&self) -> IpAddr {
        self.advertise_ip
    }

    /// Where media of `kind` is sent on `leg` now (latched, else signalled).
    pub fn remote(&self, leg: Leg, kind: Kind) -> Option<SocketAddr> {
        lock(&self.relay).remote(leg, kind)
    }

    pub fn stats(&self) -> SessionStats {
        let relay = lock(&self.relay);
        SessionStats {
            a: *relay.stats(Leg::A),
            b: *relay.stats(Leg::B),
        }
    }

    /// The media timeout's input: how long the quieter leg has sent nothing acceptable.
    pub fn idle_for(&self) -> Duration {
        lock(&self.relay).idle_for(Instant::now())
    }

    /// Wait until the session's sockets are closed and its ports are back in the pool.
    pub async fn close(mut self) {
        let (done, closed) = oneshot::channel();
        self.removed = true;
        self.workers.send(
            self.worker,
            Command::Remove {
                id: self.id,
                done: Some(done),
            },
        );
        // An error means the thread is gone, and with it the session.
        let _ = closed.await;
    }
}

#[cfg(test)]
mod tests;
