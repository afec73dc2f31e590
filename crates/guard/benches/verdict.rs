//! Guard micro-benchmarks: the verdict for one packet before it is parsed (issue 5: goal under 1 µs for a
//! banned source).
//!
//! Run with `cargo bench -p palisade-guard --bench verdict`.
//!
//! `Guard::check_packet` with 10 and 10,000 list entries. The lists mix prefix lengths the way real ones do
//! (mostly /32 bans, a few /24 and /16 blocks, one /8 allow), so a lookup probes one hash per prefix length in
//! use (4 here):
//! * `banned_32/N` — a source on the list as a /32 block (the drop path of a flood from a banned address);
//! * `unknown/N` — a source on no list: the lookup misses at every prefix length, then the source's flood
//!   counter is updated (256 sources in rotation, the clock advancing 1 ms a packet, so none reaches amber);
//! * `unknown_new_source/N` — a new address every packet (a spoofed-source flood) with the per-source table at
//!   its cap (`max_sources` 10,000 here), so every packet also evicts the longest-tracked source.
//!
//! Each case asserts its verdict once outside the timed loop.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use guard::{Action, Guard, GuardConfig, Origin, Rule, Verdict, parse_net};

const NOW: u64 = 1_800_000_000_000;

fn rule(net: &str, action: Action) -> Rule {
    Rule {
        net: parse_net(net).expect("literal prefix"),
        action,
        expires_at: None,
        note: None,
        origin: Origin::Manual,
        created_at: NOW,
    }
}

/// Number of /24 blocks in a list of `n` entries.
fn n24(n: usize) -> usize {
    if n < 100 { 2 } else { 10 }
}

/// A guard with `n` entries: a /8 allow (10.0.0.0/8), a /16 block, `n24(n)` /24 blocks, and the rest /32 bans
/// inside the allowed /8 (the more specific entry wins).
fn guard(n: usize, max_sources: usize) -> Guard {
    assert!(n > 2 + n24(n));
    let mut g = Guard::new(GuardConfig {
        max_sources,
        ..GuardConfig::default()
    });
    g.insert_rule(rule("10.0.0.0/8", Action::Allow));
    g.insert_rule(rule("172.16.0.0/16", Action::Block));
    for i in 0..n24(n) {
        g.insert_rule(rule(&format!("192.168.{i}.0/24"), Action::Block));
    }
    for i in 0..(n - 2 - n24(n)) as u32 {
        let ip = Ipv4Addr::from(0x0A00_0000 | (i + 1));
        g.insert_rule(rule(&format!("{ip}/32"), Action::Block));
    }
    assert_eq!(g.lists().len(), n);
    g
}

fn bench(c: &mut Criterion) {
    let mut grp = c.benchmark_group("guard/check_packet");
    grp.throughput(Throughput::Elements(1));
    for n in [10usize, 10_000] {
        // a banned /32: the last one inserted
        let mut g = guard(n, 100_000);
        let banned = IpAddr::V4(Ipv4Addr::from(0x0A00_0000 | (n - 2 - n24(n)) as u32));
        assert_eq!(g.check_packet(banned, NOW), Verdict::Drop);
        grp.bench_function(format!("banned_32/{n}"), |b| {
            b.iter(|| g.check_packet(black_box(banned), NOW))
        });

        // unknown sources, already tracked, well below amber
        let mut g = guard(n, 100_000);
        let sources: Vec<IpAddr> = (0..256u32)
            .map(|i| IpAddr::V4(Ipv4Addr::from(0xCB00_7100 | i)))
            .collect();
        assert_eq!(g.check_packet(sources[0], NOW), Verdict::Pass);
        let (mut k, mut now) = (0usize, NOW);
        grp.bench_function(format!("unknown/{n}"), |b| {
            b.iter(|| {
                k = (k + 1) & 255;
                now += 1;
                g.check_packet(black_box(sources[k]), now)
            })
        });
        assert!(
            g.take_events().is_empty(),
            "unknown/{n}: no source may reach amber"
        );

        // a new source every packet, table at its cap
        let mut g = guard(n, 10_000);
        let mut next = 0x6400_0000u32; // 100.0.0.0 upwards
        for _ in 0..10_000 {
            next += 1;
            assert_eq!(
                g.check_packet(IpAddr::V4(Ipv4Addr::from(next)), NOW),
                Verdict::Pass
            );
        }
        assert_eq!(g.tracked_sources(), 10_000);
        grp.bench_function(format!("unknown_new_source/{n}"), |b| {
            b.iter(|| {
                next += 1;
                g.check_packet(black_box(IpAddr::V4(Ipv4Addr::from(next))), NOW)
            })
        });
        assert_eq!(g.tracked_sources(), 10_000);
    }
    grp.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
