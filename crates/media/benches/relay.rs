//! Relay micro-benchmarks: the sans-IO decision cost of one datagram.
//!
//! Run with `cargo bench -p palisade-media --bench relay`.
//!
//! This measures only [`media::Relay::on_packet`] (source check, RTP/RTCP validation, latching, counters): the
//! part of the per-packet budget (DESIGN.md: < 2 µs CPU per relayed RTP packet) that Palisade's own code decides.
//! The whole path — `recvfrom`, the mutex, the decision, `sendto`, tokio's wake-ups — will be measured later
//! end to end: sipp (or a small RTP blaster) streams G.711 at 50 packets/s per direction through N concurrent
//! relay sessions over loopback while `perf stat -e task-clock` (or `/proc/<pid>/stat` utime+stime) samples the
//! `palisade` process; CPU seconds divided by relayed packets (from the session stats) gives µs per packet,
//! beside rtpengine/Kamailio relaying the same streams in the same run. Figures go to docs/benchmarks.md.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use media::{Kind, Leg, Relay};

/// A 20 ms G.711 packet: 12-byte header + 160 bytes of payload.
fn g711_packet() -> Vec<u8> {
    let mut p = vec![
        0x80, 0, 0x12, 0x34, 0, 0, 0x0f, 0xa0, 0xde, 0xad, 0xbe, 0xef,
    ];
    p.resize(12 + 160, 0xd5);
    p
}

fn relay(now: Instant) -> Relay {
    let mut r = Relay::new(now);
    r.update_remote(Leg::A, addr("192.0.2.10:4000"), addr("192.0.2.10:4001"));
    r.update_remote(
        Leg::B,
        addr("198.51.100.20:6000"),
        addr("198.51.100.20:6001"),
    );
    r
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("literal address")
}

fn bench(c: &mut Criterion) {
    let now = Instant::now();
    let packet = g711_packet();
    let rr = [0x80u8, 201, 0, 1, 1, 2, 3, 4];
    let mut g = c.benchmark_group("relay");
    g.throughput(Throughput::Elements(1));

    let mut r = relay(now);
    let from = addr("192.0.2.10:4000");
    g.bench_function("on_packet/rtp_forward", |b| {
        b.iter(|| r.on_packet(Leg::A, Kind::Rtp, black_box(from), black_box(&packet), now))
    });

    let mut r = relay(now);
    let from = addr("192.0.2.10:4001");
    g.bench_function("on_packet/rtcp_forward", |b| {
        b.iter(|| r.on_packet(Leg::A, Kind::Rtcp, black_box(from), black_box(&rr), now))
    });

    let mut r = relay(now);
    let attacker = addr("203.0.113.66:4000");
    g.bench_function("on_packet/bleed_drop", |b| {
        b.iter(|| {
            r.on_packet(
                Leg::A,
                Kind::Rtp,
                black_box(attacker),
                black_box(&packet),
                now,
            )
        })
    });

    let mut r = relay(now);
    let from = addr("192.0.2.10:4000");
    let junk = [0u8; 20];
    g.bench_function("on_packet/malformed_drop", |b| {
        b.iter(|| r.on_packet(Leg::A, Kind::Rtp, black_box(from), black_box(&junk), now))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
