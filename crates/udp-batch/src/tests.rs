use std::net::{SocketAddr, UdpSocket};

use super::*;

fn pair() -> (UdpSocket, UdpSocket) {
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    (a, b)
}

fn buffers(n: usize, cap: usize) -> Vec<Vec<u8>> {
    (0..n).map(|_| Vec::with_capacity(cap)).collect()
}

/// Polls until `want` datagrams came in (loopback delivery is synchronous, but be patient anyway).
fn recv_all(socket: &UdpSocket, bufs: &mut [Vec<u8>], meta: &mut [Received], want: usize) -> usize {
    for _ in 0..200 {
        match recv_batch(socket, bufs, meta) {
            Ok(n) if n >= want => return n,
            Ok(_) | Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
        }
    }
    0
}

#[test]
fn nothing_waiting_is_would_block() {
    let (a, _) = pair();
    let mut bufs = buffers(4, 64);
    let mut meta = [Received::default(); 4];
    let e = recv_batch(&a, &mut bufs, &mut meta).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
}

#[test]
fn a_batch_goes_out_and_comes_back_in_order_with_sources() {
    let (a, b) = pair();
    let to = b.local_addr().unwrap();
    let payloads: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 10 + usize::from(i)]).collect();
    let out: Vec<Outgoing> = payloads.iter().map(|p| Outgoing { data: p, to }).collect();
    let sent = send_batch(&a, &out);
    assert_eq!(
        (sent.packets, sent.dropped),
        (5, 0),
        "{:?}",
        sent.first_error
    );
    assert_eq!(sent.bytes, payloads.iter().map(Vec::len).sum::<usize>());
    let mut bufs = buffers(8, 64);
    let mut meta = [Received::default(); 8];
    let n = recv_all(&b, &mut bufs, &mut meta, 5);
    assert_eq!(n, 5);
    for i in 0..5 {
        assert_eq!(bufs[i], payloads[i]);
        assert_eq!(meta[i].source, Some(a.local_addr().unwrap()));
        assert!(!meta[i].truncated);
    }
}

#[test]
fn a_datagram_longer_than_its_buffer_is_marked_truncated() {
    let (a, b) = pair();
    let to = b.local_addr().unwrap();
    let long = [7u8; 100];
    send_batch(
        &a,
        &[
            Outgoing { data: &long, to },
            Outgoing {
                data: &long[..8],
                to,
            },
        ],
    );
    let mut bufs = buffers(2, 16);
    let mut meta = [Received::default(); 2];
    assert_eq!(recv_all(&b, &mut bufs, &mut meta, 2), 2);
    assert!(meta[0].truncated);
    assert_eq!(bufs[0].len(), 16);
    assert!(!meta[1].truncated);
    assert_eq!(bufs[1], &long[..8]);
}

#[test]
fn more_than_a_batch_is_sent_in_several_calls_and_received_in_batches() {
    let (a, b) = pair();
    let to = b.local_addr().unwrap();
    let data = [1u8; 20];
    let out = vec![Outgoing { data: &data, to }; MAX_BATCH + 3];
    assert_eq!(send_batch(&a, &out).packets, MAX_BATCH + 3);
    let mut bufs = buffers(MAX_BATCH + 8, 32);
    let mut meta = vec![Received::default(); MAX_BATCH + 8];
    assert_eq!(
        recv_all(&b, &mut bufs, &mut meta, MAX_BATCH),
        MAX_BATCH,
        "one call takes at most MAX_BATCH"
    );
    assert_eq!(recv_all(&b, &mut bufs, &mut meta, 3), 3);
}

#[test]
fn a_refused_datagram_is_dropped_and_the_rest_still_go() {
    let (a, b) = pair();
    let to = b.local_addr().unwrap();
    let data = [1u8; 20];
    // An IPv6 destination from an IPv4 socket is refused by the kernel (EAFNOSUPPORT / EINVAL).
    let bad: SocketAddr = "[::1]:9".parse().unwrap();
    let out = [
        Outgoing { data: &data, to },
        Outgoing {
            data: &data,
            to: bad,
        },
        Outgoing { data: &data, to },
    ];
    let sent = send_batch(&a, &out);
    assert_eq!((sent.packets, sent.dropped), (2, 1));
    assert!(sent.first_error.is_some());
    let mut bufs = buffers(4, 32);
    let mut meta = [Received::default(); 4];
    assert_eq!(recv_all(&b, &mut bufs, &mut meta, 2), 2);
}

#[test]
fn ipv4_sources_on_a_dual_stack_socket_come_back_mapped() {
    let Ok(v6) = UdpSocket::bind("[::]:0") else {
        return; // no IPv6 on this machine
    };
    v6.set_nonblocking(true).unwrap();
    let (a, _) = pair();
    let port = v6.local_addr().unwrap().port();
    a.send_to(b"x", ("127.0.0.1", port)).unwrap();
    let mut bufs = buffers(1, 8);
    let mut meta = [Received::default(); 1];
    assert_eq!(recv_all(&v6, &mut bufs, &mut meta, 1), 1);
    let SocketAddr::V6(from) = meta[0].source.unwrap() else {
        panic!("expected a mapped address");
    };
    assert_eq!(
        from.ip().to_ipv4_mapped(),
        Some(std::net::Ipv4Addr::LOCALHOST)
    );
}
