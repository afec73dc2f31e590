//! TCP and TLS: accepting (with per-IP and total connection caps and a TLS handshake timeout), one task per
//! connection that frames the stream, answers keep-alives, feeds messages to the service and writes what is
//! queued for the connection, and outgoing TCP connections.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sip::framing::{Frame, StreamFramer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, timeout, timeout_at};
use tokio_rustls::TlsAcceptor;

use super::{ConnSlot, Edge, canonical};
use crate::service::{ConnId, Inbound, Outbound, Transport};
use crate::tls_client::TlsPeer;

/// How long one write may take before the peer is considered stuck and the connection closed.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an outgoing TCP connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Read size: the framer holds at most one message plus one read.
const READ_CHUNK: usize = 16 * 1024;

/// Accepts connections until the task is dropped. `tls` makes it a TLS listener.
pub async fn accept_loop(edge: Arc<Edge>, listener: TcpListener, tls: Option<TlsAcceptor>) {
    let transport = if tls.is_some() {
        Transport::Tls
    } else {
        Transport::Tcp
    };
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(transport = %transport.name(), error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let peer = canonical(peer);
        // Blacklisted and throttled sources get no connection at all (no answer, no TLS handshake).
        if !edge.allows_connection(peer.ip()) {
            drop(tcp);
            continue;
        }
        let Some(slot) = edge.reserve(peer.ip()) else {
            tracing::debug!(%peer, transport = %transport.name(), "connection limit reached; refused");
            drop(tcp);
            continue;
        };
        let local = tcp.local_addr().map(canonical).unwrap_or(peer);
        let _ = tcp.set_nodelay(true);
        let edge = edge.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve(edge, tcp, Transport::Tcp, peer, local, slot, None).await,
                Some(acceptor) => {
                    let handshake = edge.transport_limits.tls_handshake_timeout;
                    let accepted = tokio::select! {
                        r = timeout(handshake, acceptor.accept(tcp)) => r,
                        () = slot.evicted() => {
                            tracing::debug!(%peer, "connection limit reached: handshake abandoned");
                            return;
                        }
                    };
                    match accepted {
                        Ok(Ok(stream)) => {
                            serve(edge, stream, Transport::Tls, peer, local, slot, None).await
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
}

/// Opens a TCP connection to `dest` in the background and sends `first` on it.
pub fn connect(edge: Arc<Edge>, dest: SocketAddr, first: Bytes) {
    let Some(slot) = edge.reserve(dest.ip()) else {
        tracing::debug!(%dest, "connection limit reached; outgoing message dropped");
        return;
    };
    // Palisade opened it: never evicted for an incoming one.
    edge.mark_authenticated(&slot);
    tokio::spawn(async move {
        let tcp = match timeout(CONNECT_TIMEOUT, TcpStream::connect(dest)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => {
                tracing::debug!(%dest, error = %e, "TCP connect failed; message dropped");
                return;
            }
            Err(_) => {
                tracing::debug!(%dest, "TCP connect timed out; message dropped");
                return;
            }
        };
        let _ = tcp.set_nodelay(true);
        let local = tcp.local_addr().map(canonical).unwrap_or(dest);
        serve(edge, tcp, Transport::Tcp, dest, local, slot, Some(first)).await;
    });
}

/// Opens a TLS connection to the trunk at `dest` in the background, verifying its certificate as `peer` says,
/// and sends `first` on it. The connection is registered at once, so what is sent to `dest` meanwhile queues on
/// it instead of opening another; it then carries the trunk's requests and what the provider sends back.
pub fn connect_tls(edge: Arc<Edge>, dest: SocketAddr, peer: TlsPeer, first: Bytes) {
    let (config, name) = match edge.tls_clients.for_peer(&peer) {
        Ok(x) => x,
        Err(e) => {
            let reason = format!("{e:#}");
            tracing::warn!(%dest, server_name = %peer.server_name, error = %reason,
                "cannot connect to the trunk over TLS; message dropped");
            connect_failed(&edge, dest, &reason);
            return;
        }
    };
    let Some(mut slot) = edge.reserve(dest.ip()) else {
        tracing::debug!(%dest, "connection limit reached; outgoing message dropped");
        return;
    };
    // Palisade opened it to a trunk: never evicted for an incoming one.
    edge.mark_authenticated(&slot);
    let (id, rx) = edge.register(&mut slot, Transport::Tls, dest);
    let edge_idle = edge.transport_limits.idle_timeout;
    tokio::spawn(async move {
        let connected = timeout(CONNECT_TIMEOUT, async {
            let tcp = TcpStream::connect(dest).await?;
            let _ = tcp.set_nodelay(true);
            let local = tcp.local_addr().map(canonical).unwrap_or(dest);
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            std::io::Result::Ok((tls, local))
        })
        .await;
        let (stream, local) = match connected {
            Ok(Ok(x)) => x,
            Ok(Err(e)) => {
                // A certificate the trunk's CA file (or the system roots) does not vouch for ends up here.
                let ca = peer
                    .ca_file
                    .as_deref()
                    .map_or("the system roots".into(), |p| p.display().to_string());
                tracing::warn!(%dest, server_name = %peer.server_name, ca_file = %ca,
                    error = %e, "TLS connection to the trunk failed; messages dropped");
                let reason = format!("{e} (server name {}, CA file {ca})", peer.server_name);
                connect_failed(&edge, dest, &reason);
                return;
            }
            Err(_) => {
                tracing::warn!(%dest, "TLS connection to the trunk timed out; messages dropped");
                connect_failed(&edge, dest, "the TLS connection timed out");
                return;
            }
        };
        tracing::debug!(%dest, server_name = %peer.server_name, "TLS connection to the trunk open");
        serve_registered(
            edge,
            stream,
            Transport::Tls,
            dest,
            local,
            slot,
            Some(first),
            (id, rx),
            Some(keepalive_interval(edge_idle)),
        )
        .await;
    });
}

/// How often a connection Palisade opened to a trunk is kept alive with a CRLF CRLF ping (RFC 5626 §4.4.1):
/// well inside the idle timeouts (ours and, usually, the provider's), so the provider can always reach the
/// registered contact behind it.
fn keepalive_interval(idle: Duration) -> Duration {
    (idle / 3).clamp(Duration::from_secs(1), Duration::from_secs(30))
}

/// Tells the service that a TLS connection to `dest` failed (its registrations fail at once).
fn connect_failed(edge: &Arc<Edge>, dest: SocketAddr, reason: &str) {
    edge.with_service(|s| {
        s.connect_failed(Transport::Tls, dest, reason, std::time::Instant::now())
    });
    edge.wake_timers();
}

/// Runs one connection until the peer closes it, it idles out, it cannot be framed or a write gets stuck.
async fn serve<S>(
    edge: Arc<Edge>,
    stream: S,
    transport: Transport,
    peer: SocketAddr,
    local: SocketAddr,
    mut slot: ConnSlot,
    first: Option<Bytes>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let registered = edge.register(&mut slot, transport, peer);
    serve_registered(
        edge, stream, transport, peer, local, slot, first, registered, None,
    )
    .await
}

/// [`serve`] for a connection already registered with the edge.
#[allow(clippy::too_many_arguments)]
async fn serve_registered<S>(
    edge: Arc<Edge>,
    mut stream: S,
    transport: Transport,
    peer: SocketAddr,
    local: SocketAddr,
    slot: ConnSlot,
    first: Option<Bytes>,
    (id, mut rx): (ConnId, tokio::sync::mpsc::Receiver<Bytes>),
    keepalive: Option<Duration>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let tname = transport.name();
    tracing::debug!(%peer, transport = %tname, conn = id.0, "connection open");
    let idle = edge.transport_limits.idle_timeout;
    let mut deadline = Instant::now() + idle;
    // Until the peer sends a valid SIP message (a connection Palisade opened starts valid), the connection
    // also closes at this deadline, keep-alives or not.
    let mut first_deadline = first
        .is_none()
        .then(|| Instant::now() + edge.transport_limits.first_request_timeout);
    let mut authenticated = first.is_some();
    let mut framer = StreamFramer::new(edge.limits.clone());
    let mut buf = vec![0u8; READ_CHUNK];
    let mut to_write: Vec<Bytes> = first.into_iter().collect();
    // Outgoing trunk connections only: pinged while the peer is still a TLS trunk, else closed.
    let ka_every = keepalive.unwrap_or(Duration::from_secs(3600));
    let mut ka = tokio::time::interval_at(Instant::now() + ka_every, ka_every);
    let reason = 'conn: loop {
        for data in to_write.drain(..) {
            if let Err(reason) = write(&mut stream, &data).await {
                break 'conn reason;
            }
        }
        let wake = first_deadline.map_or(deadline, |f| f.min(deadline));
        tokio::select! {
            () = slot.evicted() => break 'conn "evicted: connection limit reached",
            r = timeout_at(wake, stream.read(&mut buf)) => {
                let n = match r {
                    Err(_) if first_deadline.is_some_and(|f| Instant::now() >= f) => {
                        break 'conn "no valid SIP message in time"
                    }
                    Err(_) if Instant::now() < deadline => continue,
                    Err(_) => break 'conn "idle timeout",
                    Ok(Ok(0)) => break 'conn "closed by peer",
                    Ok(Err(_)) => break 'conn "read error",
                    Ok(Ok(n)) => n,
                };
                framer.push(&buf[..n]);
                loop {
                    match framer.next() {
                        Ok(None) => break,
                        Ok(Some(frame @ (Frame::KeepAlivePing | Frame::KeepAlivePong))) => {
                            // Keep-alives count toward the source's packet rate like messages: a flood of
                            // CRLFs is throttled like any other.
                            if !edge.admit_keepalive(peer.ip()) {
                                break 'conn "source blocked by the guard";
                            }
                            deadline = Instant::now() + idle;
                            if matches!(frame, Frame::KeepAlivePing) {
                                to_write.push(Bytes::from_static(b"\r\n"));
                            }
                        }
                        Ok(Some(Frame::Message(data))) => {
                            deadline = Instant::now() + idle;
                            let inbound = Inbound { transport, source: peer, local, conn: Some(id), data };
                            let Some(outcome) = edge.handle_stream(inbound) else {
                                // Banned or throttled: the guard dropped the message; the connection goes too,
                                // so the client learns at once instead of waiting for answers that never come.
                                break 'conn "source blocked by the guard";
                            };
                            if outcome.valid {
                                first_deadline = None;
                            }
                            if outcome.authenticated && !authenticated {
                                authenticated = true;
                                edge.mark_authenticated(&slot);
                            }
                            let out = outcome.out;
                            // Answers on this connection are written here, in order and with backpressure;
                            // the rest is routed.
                            let (mine, others): (Vec<Outbound>, Vec<Outbound>) =
                                out.into_iter().partition(|o| o.conn == Some(id) && o.transport == transport);
                            to_write.extend(mine.into_iter().map(|o| o.data));
                            edge.dispatch(others);
                        }
                        Err(e) => {
                            tracing::debug!(%peer, transport = %tname, error = %e, "cannot frame stream; closing");
                            break 'conn "framing error";
                        }
                    }
                }
            }
            m = rx.recv() => match m {
                Some(data) => to_write.push(data),
                None => break 'conn "unregistered",
            },
            _ = ka.tick(), if keepalive.is_some() => {
                if edge.with_service(|s| s.tls_peer(peer)).is_none() {
                    break 'conn "no longer a TLS trunk";
                }
                to_write.push(Bytes::from_static(b"\r\n\r\n"));
                // The connection is wanted while its trunk is: our own idle timeout does not close it.
                deadline = Instant::now() + idle;
            }
        }
    };
    tracing::debug!(%peer, transport = %tname, conn = id.0, reason, "connection closed");
    let _ = timeout(Duration::from_millis(500), stream.shutdown()).await;
    drop(slot);
}

async fn write<S: AsyncWrite + Unpin>(stream: &mut S, data: &[u8]) -> Result<(), &'static str> {
    match timeout(WRITE_TIMEOUT, async {
        stream.write_all(data).await?;
        stream.flush().await
    })
    .await
    {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err("write error"),
        Err(_) => Err("write timed out"),
    }
}
