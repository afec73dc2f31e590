//! Batched UDP datagram I/O for the media relay's workers (`palisade::media`): on Linux one `recvmmsg` fills up to
//! [`MAX_BATCH`] buffers and one `sendmmsg` sends up to [`MAX_BATCH`] datagrams, so a relay thread woken for a
//! socket pays two system calls for everything waiting on it instead of two per packet. Elsewhere the same API
//! falls back to one `recv_from`/`send_to` per datagram.
//!
//! This is the one crate of the workspace with `unsafe` code (every other crate forbids it): the blocks hand the
//! kernel pointers into buffers and address arrays that live on this function's stack or in the caller's
//! `Vec`s for exactly the duration of the call, and read back only what the kernel reports it wrote.
#![deny(unsafe_op_in_unsafe_fn)]

use std::io;
use std::net::{SocketAddr, UdpSocket};

#[cfg(target_os = "linux")]
mod linux;

/// Most datagrams moved by one call.
pub const MAX_BATCH: usize = 32;

/// What [`recv_batch`] learnt about one datagram.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Received {
    /// Where it came from (`None` for an address family the relay does not speak).
    pub source: Option<SocketAddr>,
    /// It was longer than its buffer's capacity: the buffer holds only its start.
    pub truncated: bool,
}

/// One datagram to send.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    pub data: &'a [u8],
    pub to: SocketAddr,
}

/// How a [`send_batch`] went: a datagram the kernel refused is dropped (as a congested network would) and the
/// rest are still tried, except after a full socket buffer (`WouldBlock`), which drops the rest too.
#[derive(Debug, Default)]
pub struct Sent {
    pub packets: usize,
    pub bytes: usize,
    pub dropped: usize,
    /// The first refusal, for the log.
    pub first_error: Option<io::Error>,
}

/// Receives what is waiting on the non-blocking `socket`, up to `min(bufs.len(), meta.len(), MAX_BATCH)`
/// datagrams: datagram `i` goes into the capacity of `bufs[i]` (cleared first; its length becomes the datagram's,
/// capped at the capacity) and what is known of it into `meta[i]`. `Ok(n)` with `n >= 1`, or `WouldBlock` when
/// nothing was waiting.
pub fn recv_batch(
    socket: &UdpSocket,
    bufs: &mut [Vec<u8>],
    meta: &mut [Received],
) -> io::Result<usize> {
    let max = bufs.len().min(meta.len()).min(MAX_BATCH);
    if max == 0 {
        return Ok(0);
    }
    #[cfg(target_os = "linux")]
    {
        linux::recv_batch(socket, &mut bufs[..max], &mut meta[..max])
    }
    #[cfg(not(target_os = "linux"))]
    {
        fallback::recv_batch(socket, &mut bufs[..max], &mut meta[..max])
    }
}

/// Sends `out` (at most [`MAX_BATCH`] at a time; longer slices go in several calls) from the non-blocking
/// `socket`.
pub fn send_batch(socket: &UdpSocket, out: &[Outgoing<'_>]) -> Sent {
    let mut sent = Sent::default();
    for chunk in out.chunks(MAX_BATCH) {
        #[cfg(target_os = "linux")]
        linux::send_batch(socket, chunk, &mut sent);
        #[cfg(not(target_os = "linux"))]
        fallback::send_batch(socket, chunk, &mut sent);
    }
    sent
}

#[cfg(not(target_os = "linux"))]
mod fallback {
    use super::*;

    pub(super) fn recv_batch(
        socket: &UdpSocket,
        bufs: &mut [Vec<u8>],
        meta: &mut [Received],
    ) -> io::Result<usize> {
        let mut n = 0;
        for (buf, meta) in bufs.iter_mut().zip(meta.iter_mut()) {
            buf.resize(buf.capacity(), 0);
            match socket.recv_from(buf) {
                Ok((len, source)) => {
                    buf.truncate(len);
                    *meta = Received {
                        source: Some(source),
                        truncated: false,
                    };
                    n += 1;
                }
                Err(e) if n > 0 && e.kind() == io::ErrorKind::WouldBlock => {
                    buf.clear();
                    break;
                }
                Err(e) => {
                    buf.clear();
                    return if n > 0 { Ok(n) } else { Err(e) };
                }
            }
        }
        Ok(n)
    }

    pub(super) fn send_batch(socket: &UdpSocket, out: &[Outgoing<'_>], sent: &mut Sent) {
        for (i, o) in out.iter().enumerate() {
            match socket.send_to(o.data, o.to) {
                Ok(len) => {
                    sent.packets += 1;
                    sent.bytes += len;
                }
                Err(e) => {
                    let rest = if e.kind() == io::ErrorKind::WouldBlock {
                        out.len() - i
                    } else {
                        1
                    };
                    sent.dropped += rest;
                    sent.first_error.get_or_insert(e);
                    if rest > 1 {
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
