//! Relay micro-benchmarks: the sans-IO decision cost of one datagram.
//!
//! Run with `cargo bench -p palisade-media --bench relay`.
//!
//! The `srtp_one_leg/*` cases put SRTP on one leg (issue 6: goal under 3 µs per relayed packet): either the
//! packet arrives on the SRTP leg (authenticate + decrypt, then the decision) or it leaves toward it (the
//! decision, then encrypt + tag), for AES_CM_128_HMAC_SHA1_80 and AEAD_AES_128_GCM.
//!
//! This measures only [`media::Relay::on_packet`] (source check, RTP/RTCP validation, latching, counters): the
//! part of the per-packet budget (docs/architecture.md, "Performance budgets": < 2 µs CPU per relayed RTP packet) that Palisade's own code decides.
//! The whole path — `recvfrom`, the mutex, the decision, `sendto`, tokio's wake-ups — will be measured later
//! end to end: sipp (or a small RTP blaster) streams G.711 at 50 packets/s per direction through N concurrent
//! relay sessions over loopback while `perf stat -e task-clock` (or `/proc/<pid>/stat` utime+stime) samples the
//! `palisade` process; CPU seconds divided by relayed packets (from the session stats) gives µs per packet,
//! beside rtpengine/Kamailio relaying the same streams in the same run. Figures go to docs/benchmarks.md.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Instant;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use media::srtp::{MAX_TRAILER, MasterKey, SrtpContext, Suite};
use media::{Decision, Kind, Leg, LegCrypto, Relay};

/// A 20 ms G.711 packet: 12-byte header + 160 bytes of payload.
fn g711_packet() -> Vec<u8> {
    let mut p = Vec::with_capacity(12 + 160 + MAX_TRAILER);
    p.extend_from_slice(&[
        0x80, 0, 0x12, 0x34, 0, 0, 0x0f, 0xa0, 0xde, 0xad, 0xbe, 0xef,
    ]);
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
    let mut packet = g711_packet();
    let mut rr = vec![0x80u8, 201, 0, 1, 1, 2, 3, 4];
    let mut g = c.benchmark_group("relay");
    g.throughput(Throughput::Elements(1));

    let mut r = relay(now);
    let from = addr("192.0.2.10:4000");
    g.bench_function("on_packet/rtp_forward", |b| {
        b.iter(|| {
            r.on_packet(
                Leg::A,
                Kind::Rtp,
                black_box(from),
                black_box(&mut packet),
                now,
            )
        })
    });

    let mut r = relay(now);
    let from = addr("192.0.2.10:4001");
    g.bench_function("on_packet/rtcp_forward", |b| {
        b.iter(|| r.on_packet(Leg::A, Kind::Rtcp, black_box(from), black_box(&mut rr), now))
    });

    let mut r = relay(now);
    let attacker = addr("203.0.113.66:4000");
    g.bench_function("on_packet/bleed_drop", |b| {
        b.iter(|| {
            r.on_packet(
                Leg::A,
                Kind::Rtp,
                black_box(attacker),
                black_box(&mut packet),
                now,
            )
        })
    });

    let mut r = relay(now);
    let from = addr("192.0.2.10:4000");
    let mut junk = vec![0u8; 20];
    g.bench_function("on_packet/malformed_drop", |b| {
        b.iter(|| {
            r.on_packet(
                Leg::A,
                Kind::Rtp,
                black_box(from),
                black_box(&mut junk),
                now,
            )
        })
    });

    for suite in [Suite::AesCm128HmacSha1_80, Suite::AeadAes128Gcm] {
        let tag = match suite {
            Suite::AeadAes128Gcm => "gcm",
            _ => "cm80",
        };
        // Arriving on SRTP leg A from its phone, forwarded plain to B.
        let phone_key = MasterKey::generate(suite);
        let mut r = relay(now);
        r.set_crypto(Leg::A, Some(leg_crypto(suite, &phone_key)));
        let mut phone = SrtpContext::from_master(suite, &phone_key).expect("key");
        let from = addr("192.0.2.10:4000");
        let mut seq = 0u16;
        g.bench_function(format!("srtp_one_leg/{tag}/unprotect_forward"), |b| {
            b.iter_batched_ref(
                || {
                    seq = seq.wrapping_add(1);
                    let mut p = g711_packet();
                    p[2..4].copy_from_slice(&seq.to_be_bytes());
                    phone.protect_rtp(&mut p).expect("protect");
                    p
                },
                |p| {
                    let d = r.on_packet(Leg::A, Kind::Rtp, from, black_box(p), now);
                    debug_assert!(matches!(d, Decision::Forward { .. }));
                    d
                },
                BatchSize::SmallInput,
            )
        });

        // Arriving plain on B, protected toward SRTP leg A.
        let mut r = relay(now);
        r.set_crypto(Leg::A, Some(leg_crypto(suite, &MasterKey::generate(suite))));
        let from = addr("198.51.100.20:6000");
        let mut buf = g711_packet();
        let mut seq = 0u16;
        g.bench_function(format!("srtp_one_leg/{tag}/forward_protect"), |b| {
            b.iter(|| {
                seq = seq.wrapping_add(1);
                buf.truncate(12 + 160);
                buf[2..4].copy_from_slice(&seq.to_be_bytes());
                r.on_packet(Leg::B, Kind::Rtp, from, black_box(&mut buf), now)
            })
        });
    }
    g.finish();
}

/// SRTP on a leg: the phone encrypts with `phone_key`; the relay's key toward it is fresh.
fn leg_crypto(suite: Suite, phone_key: &MasterKey) -> LegCrypto {
    LegCrypto::new(suite, phone_key.clone(), MasterKey::generate(suite)).expect("key lengths")
}

criterion_group!(benches, bench);
criterion_main!(benches);
