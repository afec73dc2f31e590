//! One call's relay task: wait on the four sockets, ask the relay core, send. The per-packet path allocates
//! nothing: each socket has one receive buffer for the task's life — with room past [`BUF_LEN`] for the SRTP
//! tag the relay may append in place — and sends are non-blocking (`try_send_to`; a full socket buffer drops
//! the packet, as a congested network would, instead of stalling the other legs).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use media::srtp::MAX_TRAILER;
use media::{Decision, Kind, Leg, Relay};
use tokio::sync::{Notify, oneshot};

use super::{Lease, lock};

/// Largest datagram relayed; a longer one (truncated by the receive) is dropped. RTP over UDP stays under the
/// path MTU, so 2 KiB leaves room for jumbo-ish SRTP/video without wasting memory per session.
const BUF_LEN: usize = 2048;

/// Socket `i` of the lease is leg `i / 2`, kind `i % 2`.
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

/// Relay until the handle says stop (or is dropped). Dropping `lease` at the end closes the sockets and returns
/// the ports; it happens also when the runtime drops this future.
pub(super) async fn run(
    lease: Lease,
    relay: Arc<Mutex<Relay>>,
    music_changed: Arc<Notify>,
    mut stop: oneshot::Receiver<()>,
) {
    let s = &lease.sockets;
    let v6 = s
        .first()
        .and_then(|s| s.local_addr().ok())
        .is_some_and(|a| a.is_ipv6());
    // Received datagrams fill a buffer's spare capacity (cleared before each receive); one longer than BUF_LEN
    // is dropped, so an SRTP protect never has to grow the buffer.
    let buffer = || Vec::<u8>::with_capacity(BUF_LEN + MAX_TRAILER);
    let (mut b0, mut b1, mut b2, mut b3) = (buffer(), buffer(), buffer(), buffer());
    let mut music = buffer();
    if s.len() != 4 {
        return;
    }
    loop {
        for b in [&mut b0, &mut b1, &mut b2, &mut b3] {
            b.clear();
        }
        // Music on hold: a timer only while a leg is held (a call without it costs no wake-ups).
        let music_at = lock(&relay).next_music_at();
        let music_due = async {
            match music_at {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let (i, received) = tokio::select! {
            _ = &mut stop => break,
            () = music_changed.notified() => continue,
            () = music_due => {
                send_music(s, &relay, &mut music, v6);
                continue;
            }
            r = s[0].recv_buf_from(&mut b0) => (0, r),
            r = s[1].recv_buf_from(&mut b1) => (1, r),
            r = s[2].recv_buf_from(&mut b2) => (2, r),
            r = s[3].recv_buf_from(&mut b3) => (3, r),
        };
        let (len, source) = match received {
            Ok(x) => x,
            Err(e) => {
                tracing::trace!(error = %e, "media socket receive error");
                continue;
            }
        };
        if len > BUF_LEN {
            continue;
        }
        crate::metrics::counters::RELAY.received(len);
        let packet = match i {
            0 => &mut b0,
            1 => &mut b1,
            2 => &mut b2,
            _ => &mut b3,
        };
        let (leg, kind) = ROUTES[i];
        let decision = lock(&relay).on_packet(leg, kind, source, packet, Instant::now());
        if let Decision::Forward {
            to,
            via: (out_leg, out_kind),
        } = decision
        {
            let to = if v6 { mapped(to) } else { to };
            match s[socket_index(out_leg, out_kind)].try_send_to(packet.as_slice(), to) {
                Ok(sent) => crate::metrics::counters::RELAY.forwarded(sent),
                Err(e) => tracing::trace!(%to, error = %e, "media send failed; packet dropped"),
            }
        }
    }
    drop(lease);
}

/// Sends the music packets due now, each out of its held leg's RTP socket.
fn send_music(s: &[tokio::net::UdpSocket], relay: &Mutex<Relay>, buf: &mut Vec<u8>, v6: bool) {
    let now = Instant::now();
    // Bounded: a packet is due every 20 ms per leg, and a player catches up at most 200 ms.
    for _ in 0..32 {
        let Some((leg, to)) = lock(relay).poll_music(now, buf) else {
            return;
        };
        let to = if v6 { mapped(to) } else { to };
        match s[socket_index(leg, Kind::Rtp)].try_send_to(buf.as_slice(), to) {
            Ok(sent) => crate::metrics::counters::RELAY.forwarded(sent),
            Err(e) => tracing::trace!(%to, error = %e, "music on hold send failed; packet dropped"),
        }
    }
}

/// An IPv4 destination as seen from an IPv6 (dual-stack) socket.
fn mapped(to: SocketAddr) -> SocketAddr {
    match to {
        SocketAddr::V4(v4) => SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port()),
        v6 => v6,
    }
}
