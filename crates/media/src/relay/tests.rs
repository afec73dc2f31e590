//! Relay decision tests: latching, anti-bleed, SRTP, statistics.

use super::*;

const RTP: [u8; 16] = [
    0x80, 0, 0, 1, 0, 0, 0, 160, 1, 2, 3, 4, 0xff, 0xff, 0xff, 0xff,
];
const RR: [u8; 8] = [0x80, 201, 0, 1, 1, 2, 3, 4];

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Caller at 10.0.0.1:4000/4001, callee at 10.0.0.2:6000/6001.
fn call(t0: Instant) -> Relay {
    let mut r = Relay::new(t0);
    r.update_remote(Leg::A, sa("10.0.0.1:4000"), sa("10.0.0.1:4001"));
    r.update_remote(Leg::B, sa("10.0.0.2:6000"), sa("10.0.0.2:6001"));
    r
}

fn fwd(to: &str, leg: Leg, kind: Kind) -> Decision {
    Decision::Forward {
        to: sa(to),
        via: (leg, kind),
    }
}

#[test]
fn forwards_between_signalled_peers() {
    let t0 = Instant::now();
    let mut r = call(t0);
    assert_eq!(
        r.on_packet(
            Leg::A,
            Kind::Rtp,
            sa("10.0.0.1:4000"),
            &mut RTP.to_vec(),
            t0
        ),
        fwd("10.0.0.2:6000", Leg::B, Kind::Rtp)
    );
    assert_eq!(
        r.on_packet(
            Leg::B,
            Kind::Rtp,
            sa("10.0.0.2:6000"),
            &mut RTP.to_vec(),
            t0
        ),
        fwd("10.0.0.1:4000", Leg::A, Kind::Rtp)
    );
    assert_eq!(
        r.on_packet(
            Leg::A,
            Kind::Rtcp,
            sa("10.0.0.1:4001"),
            &mut RR.to_vec(),
            t0
        ),
        fwd("10.0.0.2:6001", Leg::B, Kind::Rtcp)
    );
    // RTCP multiplexed on the RTP port goes out of the other RTP port.
    assert_eq!(
        r.on_packet(Leg::B, Kind::Rtp, sa("10.0.0.2:6000"), &mut RR.to_vec(), t0),
        fwd("10.0.0.1:4000", Leg::A, Kind::Rtp)
    );
    let a = r.stats(Leg::A);
    assert_eq!(
        (a.packets_in, a.bytes_in, a.packets_out, a.bytes_out),
        (2, 24, 2, 24)
    );
    assert_eq!(a.last_activity, Some(t0));
    assert_eq!(a.drops_total(), 0);
}

#[test]
fn bleed_from_another_ip_is_dropped_and_counted() {
    let t0 = Instant::now();
    let mut r = call(t0);
    // The attacker is first: no latching to whoever sends first.
    for src in ["10.9.9.9:4000", "10.0.0.2:6000", "10.9.9.9:4001"] {
        assert_eq!(
            r.on_packet(Leg::A, Kind::Rtp, sa(src), &mut RTP.to_vec(), t0),
            Decision::Drop(DropReason::UnknownSource)
        );
    }
    assert_eq!(
        r.on_packet(
            Leg::A,
            Kind::Rtcp,
            sa("10.9.9.9:4001"),
            &mut RR.to_vec(),
            t0
        ),
        Decision::Drop(DropReason::UnknownSource)
    );
    assert_eq!(r.stats(Leg::A).drops(DropReason::UnknownSource), 4);
    assert_eq!(r.stats(Leg::A).packets_in, 0);
    assert_eq!(r.stats(Leg::B).packets_out, 0, "nothing reached the callee");
    // The real caller still gets through, and the destination did not move.
    assert_eq!(
        r.on_packet(
            Leg::A,
            Kind::Rtp,
            sa("10.0.0.1:4000"),
            &mut RTP.to_vec(),
            t0
        ),
        fwd("10.0.0.2:6000", Leg::B, Kind::Rtp)
    );
    assert_eq!(r.remote(Leg::A, Kind::Rtp), Some(sa("10.0.0.1:4000")));
    // Mid-call, another IP still cannot take over.
    assert_eq!(
        r.on_packet(
            Leg::A,
            Kind::Rtp,
            sa("10.0.0.66:4000"),
            &mut RTP.to_vec(),
            t0
        ),
        Decision::Drop(DropReason::UnknownSource)
    );
    assert_eq!(r.remote(Leg::A, Kind::Rtp), Some(sa("10.0.0.1:4000")));
}

#[test]
fn nat_port_latches_once_at_the_start() {
    let t0 = Instant::now();
    let mut r = call(t0);
    // The callee sits behind NAT: its packets come from the signalled IP but a mapped port.
    assert_eq!(
        r.on_packet(
            Leg::B,
            Kind::Rtp,
            sa("10.0.0.2:31000"),
            &mut RTP.to_vec(),
            t0
        ),
        fwd("10.0.0.1:4000", Leg::A, Kind::Rtp)
    );
    assert_eq!(r.remote(Leg::B, Kind::Rtp), Some(sa("10.0.0.2:31000")));
    // Media to the callee now goes to the mapped port.
    assert_eq!(
        r.on_packet(
            Leg::A,
            Kind::Rtp,
            sa("10.0.0.1:4000"),
            &mut RTP.to_vec(),
            t0
        ),
        fwd("10.0.0.2:31000", Leg::B, Kind::Rtp)
    );
    // No second latch: neither to another port nor back to the signalled one.
    let later = t0 + Duration::from_millis(20);
    for src in ["10.0.0.2:31002", "10.0.0.2:6000"] {
        assert_eq!(
            r.on_packet(Leg::B, Kind::Rtp, sa(src), &mut RTP.to_vec(), later),
            Decision::Drop(DropReason::WrongPort)
        );
    }
    assert_eq!(r.remote(Leg::B, Kind::Rtp), Some(sa("10.0.0.2:31000")));
    // RTCP latches on its own (NAT maps it to an unrelated port).
    assert_eq!(
        r.on_packet(
            Leg::B,
            Kind::Rtcp,
            sa("10.0.0.2:31555"),
            &mut RR.to_vec(),
            later
        ),
        fwd("10.0.0.1:4001", Leg::A, Kind::Rtcp)
    );
    assert_eq!(r.stats(Leg::B).drops(DropReason::WrongPort), 2);
}

#[test]
fn no_latch_after_media_flowed_from_the_signalled_port() {
    let t0 = Instant::now();
    let mut r = call(t0);
    r.on_packet(
        Leg::A,
        Kind::Rtp,
        sa("10.0.0.1:4000"),
        &mut RTP.to_vec(),
        t0,
    );
    assert_eq!(
        r.on_packet(
            Leg::A,
            Kind::Rtp,
            sa("10.0.0.1:5555"),
            &mut RTP.to_vec(),
            t0
        ),
        Decision::Drop(DropReason::WrongPort)
    );
    assert_eq!(r.remote(Leg::A, Kind::Rtp), Some(sa("10.0.0.1:4000")));
}

#[test]
fn junk_is_dropped_and_cannot_latch() {
    let t0 = Instant::now();
    let mut r = call(t0);
    let stun = [
        0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let junk: [&[u8]; 5] = [&[], &[0x80], &RTP[..11], &stun, &[0x40; 20]];
    for p in junk {
        assert_eq!(
            r.on_packet(Leg::B, Kind::Rtp, sa("10.0.0.2:31000"), &mut p.to_vec(), t0),
            Decision::Drop(DropReason::Malformed)
        );
    }
    // RTP on the RTCP port, a truncated RTCP length.
    assert_eq!(
        r.on_packet(
            Leg::B,
            Kind::Rtcp,
            sa("10.0.0.2:6001"),
            &mut RTP.to_vec(),
            t0
        ),
        Decision::Drop(DropReason::Malformed)
    );
    assert_eq!(
        r.on_packet(
            Leg::B,
            Kind::Rtcp,
            sa("10.0.0.2:6001"),
            &mut vec![0x80, 201, 0, 9, 0, 0, 0, 0],
            t0
        ),
        Decision::Drop(DropReason::Malformed)
    );
    assert_eq!(r.stats(Leg::B).drops(DropReason::Malformed), 7);
    assert_eq!(
        r.remote(Leg::B, Kind::Rtp),
        Some(sa("10.0.0.2:6000")),
        "junk did not latch"
    );
    assert_eq!(r.stats(Leg::B).last_activity, None);
}

#[test]
fn reinvite_moves_the_leg_and_resets_the_latch() {
    let t0 = Instant::now();
    let mut r = call(t0);
    r.on_packet(
        Leg::B,
        Kind::Rtp,
        sa("10.0.0.2:31000"),
        &mut RTP.to_vec(),
        t0,
    );
    // Same SDP again (hold/resume): the latch survives.
    r.update_remote(Leg::B, sa("10.0.0.2:6000"), sa("10.0.0.2:6001"));
    assert_eq!(r.remote(Leg::B, Kind::Rtp), Some(sa("10.0.0.2:31000")));
    // The callee moves to another address (e.g. a transfer or a network change).
    r.update_remote(Leg::B, sa("10.0.0.3:7000"), sa("10.0.0.3:7001"));
    assert_eq!(r.remote(Leg::B, Kind::Rtp), Some(sa("10.0.0.3:7000")));
    assert_eq!(
        r.on_packet(
            Leg::B,
            Kind::Rtp,
            sa("10.0.0.2:31000"),
            &mut RTP.to_vec(),
            t0
        ),
        Decision::Drop(DropReason::UnknownSource)
    );
    assert_eq!(
        r.on_packet(
            Leg::A,
            Kind::Rtp,
            sa("10.0.0.1:4000"),
            &mut RTP.to_vec(),
            t0
        ),
        fwd("10.0.0.3:7000", Leg::B, Kind::Rtp)
    );
    // The new address may latch once again.
    assert_eq!(
        r.on_packet(
            Leg::B,
            Kind::Rtp,
            sa("10.0.0.3:40000"),
            &mut RTP.to_vec(),
            t0
        ),
        fwd("10.0.0.1:4000", Leg::A, Kind::Rtp)
    );
    assert_eq!(r.remote(Leg::B, Kind::Rtp), Some(sa("10.0.0.3:40000")));
}

#[test]
fn the_old_peer_cannot_take_the_latch_from_the_new_one_on_the_same_address() {
    // A transfer on one host (or behind one NAT): the transferor at 10.0.0.2:6000 is replaced by the target at
    // 10.0.0.2:7000; the transferor's last packets arrive before the target's first.
    let t0 = Instant::now();
    let mut r = call(t0);
    r.on_packet(
        Leg::B,
        Kind::Rtp,
        sa("10.0.0.2:6000"),
        &mut RTP.to_vec(),
        t0,
    );
    r.update_remote(Leg::B, sa("10.0.0.2:7000"), sa("10.0.0.2:7001"));
    assert_eq!(
        r.on_packet(
            Leg::B,
            Kind::Rtp,
            sa("10.0.0.2:6000"),
            &mut RTP.to_vec(),
            t0
        ),
        Decision::Drop(DropReason::WrongPort)
    );
    assert_eq!(r.remote(Leg::B, Kind::Rtp), Some(sa("10.0.0.2:7000")));
    assert_eq!(
        r.on_packet(
            Leg::B,
            Kind::Rtp,
            sa("10.0.0.2:7000"),
            &mut RTP.to_vec(),
            t0
        ),
        fwd("10.0.0.1:4000", Leg::A, Kind::Rtp)
    );
    assert_eq!(
        r.on_packet(
            Leg::A,
            Kind::Rtp,
            sa("10.0.0.1:4000"),
            &mut RTP.to_vec(),
            t0
        ),
        fwd("10.0.0.2:7000", Leg::B, Kind::Rtp)
    );
    // A NAT-mapped port of the new peer still latches.
    r.update_remote(Leg::B, sa("10.0.0.2:8000"), sa("10.0.0.2:8001"));
    assert_eq!(
        r.on_packet(
            Leg::B,
            Kind::Rtp,
            sa("10.0.0.2:41000"),
            &mut RTP.to_vec(),
            t0
        ),
        fwd("10.0.0.1:4000", Leg::A, Kind::Rtp)
    );
    assert_eq!(r.remote(Leg::B, Kind::Rtp), Some(sa("10.0.0.2:41000")));
}

/// Leg B is a phone behind NAT: its SDP says 10.1.2.3, its signalling came from 198.51.100.7.
fn nat_call(t0: Instant) -> Relay {
    let mut r = Relay::new(t0);
    r.update_remote(Leg::A, sa("10.0.0.1:4000"), sa("10.0.0.1:4001"));
    let source: std::net::IpAddr = "198.51.100.7".parse().unwrap();
    r.set_remote(
        Leg::B,
        Remote::latch(source, sa("10.1.2.3:6000")),
        Remote::latch(source, sa("10.1.2.3:6001")),
    );
    r
}

#[test]
fn an_untrusted_leg_gets_nothing_until_it_latches() {
    let t0 = Instant::now();
    let mut r = nat_call(t0);
    assert_eq!(r.remote(Leg::B, Kind::Rtp), None);
    // The caller talks first: nothing goes to the private address the callee wrote.
    assert_eq!(
        r.on_packet(
            Leg::A,
            Kind::Rtp,
            sa("10.0.0.1:4000"),
            &mut RTP.to_vec(),
            t0
        ),
        Decision::Drop(DropReason::NoDestination)
    );
    // Neither the private address nor a stranger can latch; the NAT's public address can, on any port.
    for src in ["10.1.2.3:6000", "192.0.2.66:31000"] {
        assert_eq!(
            r.on_packet(Leg::B, Kind::Rtp, sa(src), &mut RTP.to_vec(), t0),
            Decision::Drop(DropReason::UnknownSource),
            "{src}"
        );
    }
    assert_eq!(
        r.on_packet(
            Leg::B,
            Kind::Rtp,
            sa("198.51.100.7:31000"),
            &mut RTP.to_vec(),
            t0
        ),
        fwd("10.0.0.1:4000", Leg::A, Kind::Rtp)
    );
    assert_eq!(r.remote(Leg::B, Kind::Rtp), Some(sa("198.51.100.7:31000")));
    assert_eq!(
        r.on_packet(
            Leg::A,
            Kind::Rtp,
            sa("10.0.0.1:4000"),
            &mut RTP.to_vec(),
            t0
        ),
        fwd("198.51.100.7:31000", Leg::B, Kind::Rtp)
    );
    // Latched once: another port of the same public address is refused.
    assert_eq!(
        r.on_packet(
            Leg::B,
            Kind::Rtp,
            sa("198.51.100.7:31002"),
            &mut RTP.to_vec(),
            t0
        ),
        Decision::Drop(DropReason::WrongPort)
    );
    // RTCP latches on its own.
    assert_eq!(r.remote(Leg::B, Kind::Rtcp), None);
    assert_eq!(
        r.on_packet(
            Leg::B,
            Kind::Rtcp,
            sa("198.51.100.7:31001"),
            &mut RR.to_vec(),
            t0
        ),
        fwd("10.0.0.1:4001", Leg::A, Kind::Rtcp)
    );
    assert_eq!(r.remote(Leg::B, Kind::Rtcp), Some(sa("198.51.100.7:31001")));
}

#[test]
fn the_same_untrusted_sdp_again_keeps_the_latch_a_new_one_rearms_it() {
    let t0 = Instant::now();
    let mut r = nat_call(t0);
    r.on_packet(
        Leg::B,
        Kind::Rtp,
        sa("198.51.100.7:31000"),
        &mut RTP.to_vec(),
        t0,
    );
    let source: std::net::IpAddr = "198.51.100.7".parse().unwrap();
    // Hold (a=sendonly, same address): the latch stays.
    r.set_remote(
        Leg::B,
        Remote::latch(source, sa("10.1.2.3:6000")),
        Remote::latch(source, sa("10.1.2.3:6001")),
    );
    assert_eq!(r.remote(Leg::B, Kind::Rtp), Some(sa("198.51.100.7:31000")));
    // A new local port: the next packet decides again, but not the old mapping.
    r.set_remote(
        Leg::B,
        Remote::latch(source, sa("10.1.2.3:6010")),
        Remote::latch(source, sa("10.1.2.3:6011")),
    );
    assert_eq!(r.remote(Leg::B, Kind::Rtp), None);
    assert_eq!(
        r.on_packet(
            Leg::B,
            Kind::Rtp,
            sa("198.51.100.7:31000"),
            &mut RTP.to_vec(),
            t0
        ),
        Decision::Drop(DropReason::WrongPort)
    );
    assert_eq!(
        r.on_packet(
            Leg::B,
            Kind::Rtp,
            sa("198.51.100.7:31010"),
            &mut RTP.to_vec(),
            t0
        ),
        fwd("10.0.0.1:4000", Leg::A, Kind::Rtp)
    );
}

#[test]
fn unknown_peers() {
    let t0 = Instant::now();
    let mut r = Relay::new(t0);
    assert_eq!(
        r.on_packet(
            Leg::A,
            Kind::Rtp,
            sa("10.0.0.1:4000"),
            &mut RTP.to_vec(),
            t0
        ),
        Decision::Drop(DropReason::NoRemote)
    );
    r.update_remote(Leg::A, sa("10.0.0.1:4000"), sa("10.0.0.1:4001"));
    // Early media from the caller before the callee's answer has nowhere to go.
    assert_eq!(
        r.on_packet(
            Leg::A,
            Kind::Rtp,
            sa("10.0.0.1:4000"),
            &mut RTP.to_vec(),
            t0
        ),
        Decision::Drop(DropReason::NoDestination)
    );
    assert_eq!(r.stats(Leg::A).packets_in, 1);
    assert_eq!(r.stats(Leg::A).drops(DropReason::NoDestination), 1);
    assert_eq!(r.stats(Leg::A).drops(DropReason::NoRemote), 1);
}

#[test]
fn ipv4_mapped_sources_match() {
    let t0 = Instant::now();
    let mut r = call(t0);
    assert_eq!(
        r.on_packet(
            Leg::A,
            Kind::Rtp,
            sa("[::ffff:10.0.0.1]:4000"),
            &mut RTP.to_vec(),
            t0
        ),
        fwd("10.0.0.2:6000", Leg::B, Kind::Rtp)
    );
}

#[test]
fn idle_time_is_the_quieter_legs() {
    let t0 = Instant::now();
    let mut r = call(t0);
    let s = Duration::from_secs(1);
    assert_eq!(r.idle_for(t0 + s), s);
    r.on_packet(
        Leg::A,
        Kind::Rtp,
        sa("10.0.0.1:4000"),
        &mut RTP.to_vec(),
        t0 + 10 * s,
    );
    r.on_packet(
        Leg::B,
        Kind::Rtcp,
        sa("10.0.0.2:6001"),
        &mut RR.to_vec(),
        t0 + 12 * s,
    );
    assert_eq!(r.leg_idle_for(Leg::A, t0 + 15 * s), 5 * s);
    assert_eq!(r.leg_idle_for(Leg::B, t0 + 15 * s), 3 * s);
    assert_eq!(r.idle_for(t0 + 15 * s), 5 * s);
    // Dropped packets are not activity.
    r.on_packet(
        Leg::A,
        Kind::Rtp,
        sa("10.6.6.6:4000"),
        &mut RTP.to_vec(),
        t0 + 15 * s,
    );
    assert_eq!(r.idle_for(t0 + 16 * s), 6 * s);
    assert_eq!(
        r.idle_for(t0),
        Duration::ZERO,
        "a clock that goes backwards does not panic"
    );
}

mod srtp {
    use super::*;
    use crate::srtp::{MAX_TRAILER, MasterKey, SrtpContext, Suite};

    /// A 172-byte G.711 packet with room for a tag.
    fn g711(seq: u16) -> Vec<u8> {
        let mut p = Vec::with_capacity(172 + MAX_TRAILER);
        p.extend_from_slice(&[0x80, 0]);
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 160, 0xca, 0xfe, 0xba, 0xbe]);
        p.resize(172, 0xd5);
        p
    }

    fn sr() -> Vec<u8> {
        let mut p = vec![0x80, 200, 0, 6, 0xca, 0xfe, 0xba, 0xbe];
        p.resize(28, 7);
        p
    }

    /// The phone on an SRTP leg: what it sends and what it can read.
    struct Phone {
        send: SrtpContext,
        recv: SrtpContext,
    }

    /// Leg B speaks SRTP; returns its phone.
    fn secure_leg(r: &mut Relay, leg: Leg, suite: Suite) -> Phone {
        let phone_key = MasterKey::generate(suite);
        let relay_key = MasterKey::generate(suite);
        r.set_crypto(
            leg,
            Some(LegCrypto::new(suite, phone_key.clone(), relay_key.clone()).unwrap()),
        );
        Phone {
            send: SrtpContext::from_master(suite, &phone_key).unwrap(),
            recv: SrtpContext::from_master(suite, &relay_key).unwrap(),
        }
    }

    #[test]
    fn plain_leg_and_srtp_leg_bridge_both_ways() {
        for suite in Suite::ALL {
            let t0 = Instant::now();
            let mut r = call(t0);
            let mut b = secure_leg(&mut r, Leg::B, suite);
            assert_eq!(r.crypto(Leg::B), Some(suite));
            assert_eq!(r.crypto(Leg::A), None);

            // Plain A -> SRTP B: the relay protects, B's phone can read it.
            let mut p = g711(1);
            let cap = p.capacity();
            assert_eq!(
                r.on_packet(Leg::A, Kind::Rtp, sa("10.0.0.1:4000"), &mut p, t0),
                fwd("10.0.0.2:6000", Leg::B, Kind::Rtp)
            );
            assert_eq!(p.len(), 172 + suite.rtp_tag_len(), "{suite}");
            assert_ne!(p[12..172], g711(1)[12..], "{suite}: no audio in clear");
            assert_eq!(p.capacity(), cap, "{suite}: no reallocation");
            b.recv.unprotect_rtp(&mut p).unwrap();
            assert_eq!(p, g711(1));

            // SRTP B -> plain A: the relay unprotects, A gets plain RTP.
            let mut p = g711(7);
            b.send.protect_rtp(&mut p).unwrap();
            let wire_len = p.len() as u64;
            assert_eq!(
                r.on_packet(Leg::B, Kind::Rtp, sa("10.0.0.2:6000"), &mut p, t0),
                fwd("10.0.0.1:4000", Leg::A, Kind::Rtp)
            );
            assert_eq!(p, g711(7), "{suite}");

            // SRTCP both ways, on the RTCP port and multiplexed on the RTP port.
            let mut c = sr();
            assert_eq!(
                r.on_packet(Leg::A, Kind::Rtcp, sa("10.0.0.1:4001"), &mut c, t0),
                fwd("10.0.0.2:6001", Leg::B, Kind::Rtcp)
            );
            b.recv.unprotect_rtcp(&mut c).unwrap();
            assert_eq!(c, sr());
            for kind in [Kind::Rtcp, Kind::Rtp] {
                let mut c = sr();
                b.send.protect_rtcp(&mut c).unwrap();
                let from = if kind == Kind::Rtp {
                    "10.0.0.2:6000"
                } else {
                    "10.0.0.2:6001"
                };
                let to = if kind == Kind::Rtp {
                    "10.0.0.1:4000"
                } else {
                    "10.0.0.1:4001"
                };
                assert_eq!(
                    r.on_packet(Leg::B, kind, sa(from), &mut c, t0),
                    fwd(to, Leg::A, kind)
                );
                assert_eq!(c, sr(), "{suite} {kind:?}");
            }

            let bs = r.stats(Leg::B);
            assert_eq!(bs.packets_in, 3);
            assert_eq!(bs.packets_out, 2);
            assert_eq!(
                bs.bytes_out,
                (172 + suite.rtp_tag_len() + 28 + 4 + suite.rtcp_tag_len()) as u64
            );
            assert!(bs.bytes_in >= wire_len);
            assert_eq!(bs.drops_total(), 0);
        }
    }

    #[test]
    fn tampered_replayed_and_plain_packets_are_dropped_on_an_srtp_leg() {
        for suite in Suite::ALL {
            let t0 = Instant::now();
            let mut r = call(t0);
            let mut b = secure_leg(&mut r, Leg::B, suite);
            let from = sa("10.0.0.2:6000");

            let mut genuine = g711(10);
            b.send.protect_rtp(&mut genuine).unwrap();
            let mut tampered = genuine.clone();
            tampered[40] ^= 0x01;
            assert_eq!(
                r.on_packet(Leg::B, Kind::Rtp, from, &mut tampered, t0),
                Decision::Drop(DropReason::AuthFailed)
            );
            // Plain RTP on the secure leg is refused too: nothing unauthenticated reaches the other phone.
            assert_eq!(
                r.on_packet(Leg::B, Kind::Rtp, from, &mut g711(11), t0),
                Decision::Drop(DropReason::AuthFailed)
            );
            let mut p = genuine.clone();
            assert_eq!(
                r.on_packet(Leg::B, Kind::Rtp, from, &mut p, t0),
                fwd("10.0.0.1:4000", Leg::A, Kind::Rtp)
            );
            let mut replay = genuine.clone();
            assert_eq!(
                r.on_packet(Leg::B, Kind::Rtp, from, &mut replay, t0),
                Decision::Drop(DropReason::Replay)
            );
            let mut c = sr();
            b.send.protect_rtcp(&mut c).unwrap();
            let rtcp_from = sa("10.0.0.2:6001");
            assert!(matches!(
                r.on_packet(Leg::B, Kind::Rtcp, rtcp_from, &mut c.clone(), t0),
                Decision::Forward { .. }
            ));
            assert_eq!(
                r.on_packet(Leg::B, Kind::Rtcp, rtcp_from, &mut c, t0),
                Decision::Drop(DropReason::Replay)
            );
            let s = r.stats(Leg::B);
            assert_eq!(s.drops(DropReason::AuthFailed), 2, "{suite}");
            assert_eq!(s.drops(DropReason::Replay), 2, "{suite}");
            assert_eq!(s.packets_in, 2);
            assert_eq!(r.stats(Leg::A).packets_out, 2);
        }
    }

    #[test]
    fn a_forged_packet_cannot_latch_a_nat_port() {
        let t0 = Instant::now();
        let mut r = call(t0);
        let mut b = secure_leg(&mut r, Leg::B, Suite::AesCm128HmacSha1_80);
        // From the signalled IP but another port: would latch if it were accepted.
        assert_eq!(
            r.on_packet(Leg::B, Kind::Rtp, sa("10.0.0.2:31000"), &mut g711(1), t0),
            Decision::Drop(DropReason::AuthFailed)
        );
        assert_eq!(r.remote(Leg::B, Kind::Rtp), Some(sa("10.0.0.2:6000")));
        let mut p = g711(2);
        b.send.protect_rtp(&mut p).unwrap();
        assert_eq!(
            r.on_packet(Leg::B, Kind::Rtp, sa("10.0.0.2:32000"), &mut p, t0),
            fwd("10.0.0.1:4000", Leg::A, Kind::Rtp)
        );
        assert_eq!(r.remote(Leg::B, Kind::Rtp), Some(sa("10.0.0.2:32000")));
    }

    #[test]
    fn srtp_on_both_legs_with_different_keys() {
        let t0 = Instant::now();
        let mut r = call(t0);
        let mut a = secure_leg(&mut r, Leg::A, Suite::AeadAes128Gcm);
        let mut b = secure_leg(&mut r, Leg::B, Suite::AesCm128HmacSha1_32);
        let mut p = g711(3);
        a.send.protect_rtp(&mut p).unwrap();
        assert_eq!(
            r.on_packet(Leg::A, Kind::Rtp, sa("10.0.0.1:4000"), &mut p, t0),
            fwd("10.0.0.2:6000", Leg::B, Kind::Rtp)
        );
        assert_eq!(p.len(), 172 + 4);
        b.recv.unprotect_rtp(&mut p).unwrap();
        assert_eq!(p, g711(3));
        let mut p = g711(4);
        b.send.protect_rtp(&mut p).unwrap();
        assert_eq!(
            r.on_packet(Leg::B, Kind::Rtp, sa("10.0.0.2:6000"), &mut p, t0),
            fwd("10.0.0.1:4000", Leg::A, Kind::Rtp)
        );
        assert_eq!(p.len(), 172 + 16);
        a.recv.unprotect_rtp(&mut p).unwrap();
        assert_eq!(p, g711(4));
    }

    #[test]
    fn rekeying_replaces_only_what_changed_and_none_turns_srtp_off() {
        let t0 = Instant::now();
        let mut r = call(t0);
        let suite = Suite::AesCm128HmacSha1_80;
        let phone = MasterKey::generate(suite);
        let relay = MasterKey::generate(suite);
        r.set_crypto(
            Leg::B,
            Some(LegCrypto::new(suite, phone.clone(), relay.clone()).unwrap()),
        );
        let mut send = SrtpContext::from_master(suite, &phone).unwrap();
        let mut p = g711(5);
        send.protect_rtp(&mut p).unwrap();
        let from = sa("10.0.0.2:6000");
        assert!(matches!(
            r.on_packet(Leg::B, Kind::Rtp, from, &mut p.clone(), t0),
            Decision::Forward { .. }
        ));
        // A re-INVITE with the same phone key keeps the replay window.
        r.set_crypto(
            Leg::B,
            Some(LegCrypto::new(suite, phone.clone(), MasterKey::generate(suite)).unwrap()),
        );
        assert_eq!(
            r.on_packet(Leg::B, Kind::Rtp, from, &mut p.clone(), t0),
            Decision::Drop(DropReason::Replay)
        );
        // A new phone key: the old key's packets no longer authenticate; the new key's do.
        let phone2 = MasterKey::generate(suite);
        r.set_crypto(
            Leg::B,
            Some(LegCrypto::new(suite, phone2.clone(), relay).unwrap()),
        );
        let mut old = g711(6);
        send.protect_rtp(&mut old).unwrap();
        assert_eq!(
            r.on_packet(Leg::B, Kind::Rtp, from, &mut old, t0),
            Decision::Drop(DropReason::AuthFailed)
        );
        let mut new = g711(6);
        SrtpContext::from_master(suite, &phone2)
            .unwrap()
            .protect_rtp(&mut new)
            .unwrap();
        assert!(matches!(
            r.on_packet(Leg::B, Kind::Rtp, from, &mut new, t0),
            Decision::Forward { .. }
        ));
        // Off: plain RTP again.
        r.set_crypto(Leg::B, None);
        assert_eq!(r.crypto(Leg::B), None);
        let mut p = g711(7);
        assert!(matches!(
            r.on_packet(Leg::B, Kind::Rtp, from, &mut p, t0),
            Decision::Forward { .. }
        ));
        assert_eq!(p, g711(7));
        assert!(LegCrypto::new(Suite::AeadAes128Gcm, phone2, MasterKey::generate(suite)).is_err());
    }
}

mod music {
    use super::*;
    use crate::g711::Law;
    use crate::moh::{FRAME, Music, MusicPlayer, default_melody};
    use crate::rtp::RtpPacket;
    use crate::srtp::{MasterKey, SrtpContext, Suite};

    fn player(now: Instant) -> MusicPlayer {
        let music = Music {
            samples: default_melody().into(),
            law: Law::Mu,
            payload_type: 0,
        };
        MusicPlayer::new(music, 0x5eed, 10, 0, now)
    }

    #[test]
    fn held_leg_hears_music_not_the_holder_until_resumed() {
        let t0 = Instant::now();
        let mut r = call(t0);
        assert_eq!(r.next_music_at(), None);
        let mut buf = Vec::new();
        assert_eq!(r.poll_music(t0, &mut buf), None);

        // B holds A: A hears music, B's packets toward A are dropped, A's RTP and both RTCP still flow.
        r.set_music(Leg::A, Some(player(t0)));
        assert!(r.music(Leg::A) && !r.music(Leg::B));
        assert_eq!(r.next_music_at(), Some(t0));
        assert_eq!(
            r.poll_music(t0, &mut buf),
            Some((Leg::A, sa("10.0.0.1:4000")))
        );
        let pkt = RtpPacket::parse(&buf).expect("rtp");
        assert_eq!((pkt.ssrc(), pkt.payload_type()), (0x5eed, 0));
        assert_eq!(r.poll_music(t0, &mut buf), None);
        assert_eq!(r.next_music_at(), Some(t0 + FRAME));
        assert_eq!(
            r.on_packet(
                Leg::B,
                Kind::Rtp,
                sa("10.0.0.2:6000"),
                &mut RTP.to_vec(),
                t0
            ),
            Decision::Drop(DropReason::Held)
        );
        assert_eq!(r.stats(Leg::B).drops(DropReason::Held), 1);
        assert_eq!(
            r.on_packet(
                Leg::B,
                Kind::Rtcp,
                sa("10.0.0.2:6001"),
                &mut RR.to_vec(),
                t0
            ),
            fwd("10.0.0.1:4001", Leg::A, Kind::Rtcp)
        );
        assert_eq!(
            r.on_packet(
                Leg::A,
                Kind::Rtp,
                sa("10.0.0.1:4000"),
                &mut RTP.to_vec(),
                t0
            ),
            fwd("10.0.0.2:6000", Leg::B, Kind::Rtp)
        );
        // Resumed: the holder is heard again, no more music.
        r.set_music(Leg::A, None);
        assert_eq!(r.poll_music(t0 + FRAME * 5, &mut buf), None);
        assert_eq!(
            r.on_packet(
                Leg::B,
                Kind::Rtp,
                sa("10.0.0.2:6000"),
                &mut RTP.to_vec(),
                t0
            ),
            fwd("10.0.0.1:4000", Leg::A, Kind::Rtp)
        );
    }

    #[test]
    fn music_to_an_srtp_leg_is_protected_with_its_key() {
        let t0 = Instant::now();
        let mut r = call(t0);
        let suite = Suite::AesCm128HmacSha1_80;
        let (phone, relay) = (MasterKey::generate(suite), MasterKey::generate(suite));
        r.set_crypto(
            Leg::B,
            Some(LegCrypto::new(suite, phone, relay.clone()).unwrap()),
        );
        let mut reader = SrtpContext::from_master(suite, &relay).unwrap();
        r.set_music(Leg::B, Some(player(t0)));
        let mut buf = Vec::new();
        for i in 0..3 {
            assert_eq!(
                r.poll_music(t0 + FRAME * i, &mut buf),
                Some((Leg::B, sa("10.0.0.2:6000")))
            );
            assert_eq!(buf.len(), 12 + 160 + suite.rtp_tag_len());
            reader.unprotect_rtp(&mut buf).expect("the phone reads it");
            assert_eq!(
                RtpPacket::parse(&buf).expect("rtp").sequence(),
                10 + i as u16
            );
        }
    }

    #[test]
    fn no_destination_yet_skips_the_packet() {
        let t0 = Instant::now();
        let mut r = Relay::new(t0);
        r.set_music(Leg::A, Some(player(t0)));
        let mut buf = Vec::new();
        assert_eq!(r.poll_music(t0 + FRAME * 3, &mut buf), None);
        assert!(r.next_music_at().is_some_and(|d| d > t0 + FRAME * 3));
    }
}

mod recording {
    use super::*;
    use crate::g711::Law;
    use crate::moh::{FRAME, Music};
    use crate::recorder::{Recorder, RecordingPlan};
    use crate::rtp::RtpPacket;

    #[test]
    fn recording_from_the_start_announces_to_both_legs_then_records_them() {
        let t0 = Instant::now();
        let mut r = call(t0);
        let notice = Music {
            samples: crate::tone::sine(1000.0, 100, 4000).into(),
            law: Law::Mu,
            payload_type: 0,
        };
        let plan = RecordingPlan {
            always: true,
            on_demand: [false, false],
            dtmf_payload_type: [None, None],
        };
        r.set_recording(
            Recorder::new(plan),
            [Some(notice.clone()), Some(notice)],
            t0,
        );
        let mut buf = Vec::new();
        let mut sent = Vec::new();
        for i in 0..6 {
            while let Some((leg, to)) = r.poll_music(t0 + FRAME * i, &mut buf) {
                sent.push((leg, to, RtpPacket::parse(&buf).unwrap().ssrc()));
            }
        }
        // 100 ms of notice: five packets to each leg, each leg on its own SSRC; then nothing.
        assert_eq!(sent.iter().filter(|s| s.0 == Leg::A).count(), 5, "{sent:?}");
        assert_eq!(sent.iter().filter(|s| s.0 == Leg::B).count(), 5, "{sent:?}");
        assert!(!r.music(Leg::A) && !r.music(Leg::B));
        assert_eq!(
            r.on_packet(
                Leg::A,
                Kind::Rtp,
                sa("10.0.0.1:4000"),
                &mut RTP.to_vec(),
                t0
            ),
            fwd("10.0.0.2:6000", Leg::B, Kind::Rtp)
        );
        assert!(r.take_recording().is_some());
    }
}
