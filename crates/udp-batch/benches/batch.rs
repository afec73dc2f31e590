//! The relay worker's socket hot path: moving 32 waiting 172-byte RTP datagrams from one socket out of another,
//! with one `recvmmsg` + one `sendmmsg` (this crate) against 32 `recv_from` + 32 `send_to` (the relay before
//! issue 16). Each iteration relays 32 datagrams A → relay-in, relay-out → B, and drains B. Per-packet cost =
//! time / 32; the drain of B is the same in both.
use std::net::UdpSocket;

use criterion::{Criterion, criterion_group, criterion_main};
use udp_batch::{MAX_BATCH, Outgoing, Received, recv_batch, send_batch};

fn socket() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_nonblocking(true).unwrap();
    s
}

fn bench(c: &mut Criterion) {
    let (phone_a, relay_in, relay_out, phone_b) = (socket(), socket(), socket(), socket());
    let in_addr = relay_in.local_addr().unwrap();
    let b_addr = phone_b.local_addr().unwrap();
    let packet = [0x80u8; 172];
    let mut bufs: Vec<Vec<u8>> = (0..MAX_BATCH).map(|_| Vec::with_capacity(2048)).collect();
    let mut meta = [Received::default(); MAX_BATCH];
    let mut sink: Vec<Vec<u8>> = (0..MAX_BATCH).map(|_| Vec::with_capacity(2048)).collect();
    let mut sink_meta = [Received::default(); MAX_BATCH];
    let load = |phone: &UdpSocket| {
        let out = [Outgoing {
            data: &packet,
            to: in_addr,
        }; MAX_BATCH];
        assert_eq!(send_batch(phone, &out).packets, MAX_BATCH);
    };
    let mut g = c.benchmark_group("relay_32_datagrams");
    g.bench_function("recvmmsg_sendmmsg", |bench| {
        bench.iter(|| {
            load(&phone_a);
            let n = recv_batch(&relay_in, &mut bufs, &mut meta).unwrap();
            let mut out = [Outgoing {
                data: &[],
                to: b_addr,
            }; MAX_BATCH];
            for (o, b) in out.iter_mut().zip(&bufs[..n]) {
                o.data = b;
            }
            assert_eq!(send_batch(&relay_out, &out[..n]).packets, n);
            recv_batch(&phone_b, &mut sink, &mut sink_meta).unwrap()
        })
    });
    let mut one = vec![0u8; 2048];
    g.bench_function("recv_from_send_to", |bench| {
        bench.iter(|| {
            load(&phone_a);
            let mut n = 0;
            while let Ok((len, _)) = relay_in.recv_from(&mut one) {
                relay_out.send_to(&one[..len], b_addr).unwrap();
                n += 1;
            }
            assert_eq!(n, MAX_BATCH);
            recv_batch(&phone_b, &mut sink, &mut sink_meta).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
