//! `recvmmsg`/`sendmmsg` and the conversions between `SocketAddr` and the kernel's socket addresses.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;

use super::{MAX_BATCH, Outgoing, Received, Sent};

fn storage() -> libc::sockaddr_storage {
    // SAFETY: sockaddr_storage is plain old data; all zeroes is a valid (AF_UNSPEC) value.
    unsafe { zeroed() }
}

fn header() -> libc::mmsghdr {
    // SAFETY: mmsghdr is plain old data (pointers may be null, lengths zero).
    unsafe { zeroed() }
}

pub(super) fn recv_batch(
    socket: &UdpSocket,
    bufs: &mut [Vec<u8>],
    meta: &mut [Received],
) -> io::Result<usize> {
    let n = bufs.len().min(MAX_BATCH);
    let mut addrs = [storage(); MAX_BATCH];
    let mut iovecs = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; MAX_BATCH];
    let mut headers = [header(); MAX_BATCH];
    for i in 0..n {
        bufs[i].clear();
        iovecs[i] = libc::iovec {
            iov_base: bufs[i].as_mut_ptr().cast(),
            iov_len: bufs[i].capacity(),
        };
        let h = &mut headers[i].msg_hdr;
        h.msg_name = (&raw mut addrs[i]).cast();
        h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        h.msg_iov = &raw mut iovecs[i];
        h.msg_iovlen = 1;
    }
    // SAFETY: every header points at its own iovec and address slot (arrays on this stack frame) and each iovec at
    // the capacity of a distinct Vec borrowed mutably for this call; the kernel writes at most iov_len bytes and
    // msg_namelen address bytes. `n` ≤ the arrays' length.
    let got = unsafe {
        libc::recvmmsg(
            socket.as_raw_fd(),
            headers.as_mut_ptr(),
            n as libc::c_uint,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    if got < 0 {
        return Err(io::Error::last_os_error());
    }
    let got = (got as usize).min(n);
    for i in 0..got {
        let h = &headers[i];
        let len = (h.msg_len as usize).min(bufs[i].capacity());
        // SAFETY: the kernel wrote `msg_len` bytes (capped by the iovec, i.e. the capacity) into the buffer.
        unsafe { bufs[i].set_len(len) };
        meta[i] = Received {
            source: from_storage(&addrs[i], h.msg_hdr.msg_namelen),
            truncated: h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
        };
    }
    Ok(got)
}

pub(super) fn send_batch(socket: &UdpSocket, out: &[Outgoing<'_>], sent: &mut Sent) {
    let n = out.len().min(MAX_BATCH);
    let mut addrs = [storage(); MAX_BATCH];
    let mut iovecs = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; MAX_BATCH];
    let mut headers = [header(); MAX_BATCH];
    for (i, o) in out.iter().take(n).enumerate() {
        iovecs[i] = libc::iovec {
            // The kernel only reads through a send iovec; the cast to *mut is what the C type wants.
            iov_base: o.data.as_ptr().cast_mut().cast(),
            iov_len: o.data.len(),
        };
        let h = &mut headers[i].msg_hdr;
        h.msg_name = (&raw mut addrs[i]).cast();
        h.msg_namelen = to_storage(o.to, &mut addrs[i]);
        h.msg_iov = &raw mut iovecs[i];
        h.msg_iovlen = 1;
    }
    let mut start = 0;
    // Bounded: every round sends or drops at least one datagram.
    while start < n {
        // SAFETY: headers[start..n] point at iovecs and addresses on this stack frame, the iovecs at the caller's
        // slices, borrowed for this call; the kernel only reads them (and writes msg_len).
        let r = unsafe {
            libc::sendmmsg(
                socket.as_raw_fd(),
                headers[start..].as_mut_ptr(),
                (n - start) as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        if r > 0 {
            let r = r as usize;
            sent.packets += r;
            sent.bytes += headers[start..start + r]
                .iter()
                .map(|h| h.msg_len as usize)
                .sum::<usize>();
            start += r;
            continue;
        }
        let e = io::Error::last_os_error();
        let dropped = if e.kind() == io::ErrorKind::WouldBlock {
            n - start
        } else {
            1
        };
        sent.dropped += dropped;
        sent.first_error.get_or_insert(e);
        start += dropped;
    }
}

/// Writes `addr` as a kernel socket address into `storage`; returns its length.
fn to_storage(addr: SocketAddr, storage: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for every sockaddr type.
            unsafe { (&raw mut *storage).cast::<libc::sockaddr_in>().write(sin) };
            size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo().to_be(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: as above.
            unsafe { (&raw mut *storage).cast::<libc::sockaddr_in6>().write(sin6) };
            size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

/// The address the kernel wrote into `storage` (`len` bytes), if it is IPv4 or IPv6.
fn from_storage(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match storage.ss_family as libc::c_int {
        libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in, and it is at least that long.
            let sin = unsafe { (&raw const *storage).cast::<libc::sockaddr_in>().read() };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddrV4::new(ip, u16::from_be(sin.sin_port)).into())
        }
        libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { (&raw const *storage).cast::<libc::sockaddr_in6>().read() };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(
                SocketAddrV6::new(
                    ip,
                    u16::from_be(sin6.sin6_port),
                    u32::from_be(sin6.sin6_flowinfo),
                    sin6.sin6_scope_id,
                )
                .into(),
            )
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip_through_the_kernel_form() {
        for addr in [
            "127.0.0.1:4000",
            "192.0.2.7:65535",
            "[::1]:5060",
            "[::ffff:10.0.0.1]:1",
            "[fe80::1%3]:9",
        ] {
            let addr: SocketAddr = addr.parse().unwrap();
            let mut s = storage();
            let len = to_storage(addr, &mut s);
            assert_eq!(from_storage(&s, len), Some(addr));
        }
        let s = storage();
        assert_eq!(from_storage(&s, 0), None, "AF_UNSPEC");
    }
}
