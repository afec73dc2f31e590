//! Where a leg's media may come from and go to, decided from its SDP and from where its signalling came from.
//! Sans-IO and pure: the call layer asks once per received session description, the relay applies the answer.
//!
//! Phones live behind NAT (docs/architecture.md, principle 9): a desk phone without STUN writes its private address into
//! the SDP, while its packets reach Palisade from the NAT's public address. Trusting the SDP gives no audio (the
//! relay would send to an unroutable address and drop the real packets as bleed) and lets any phone aim the
//! relay at a third party, at loopback or at Palisade's own ports (reflection). So:
//!
//! * an SDP address equal to the signalling source is trusted as it is (send there, accept only from there);
//! * for a **phone** any other address — private (RFC 1918, RFC 6598, ULA), loopback, link-local, unspecified,
//!   multicast, Palisade's own, and a public address naming another host too — means "media from the signalling
//!   source's IP, port learnt from its first authentic packet" (symmetric RTP, as Kamailio's nathelper with
//!   rtpengine does); nothing is sent to that leg before it latches;
//! * a **trunk** is trusted by source: its media servers often sit apart from its signalling, on public or
//!   private (interconnect) addresses; only the addresses nothing should ever be sent to (loopback, unspecified,
//!   multicast, link-local, broadcast, Palisade's own) fall back to the signalling source as for a phone.
//!
//! Anti-bleed is unchanged: a leg accepts media only from the one IP decided here.

use std::net::{IpAddr, SocketAddr};

/// How far a leg's SDP is believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// A phone (a registered extension): media only ever with its signalling source's IP.
    Phone,
    /// A trunk: its SDP names its media servers, unless it names an address nothing may be sent to.
    Trunk,
}

/// What the relay does for one stream (RTP or RTCP) of a leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Remote {
    /// Media is accepted only from this IP (anti-bleed).
    pub expect: IpAddr,
    /// The address the SDP named: where media is sent before a latch when `trusted`, and in any case the
    /// identity of this signalling (a new address re-arms the latch, the same one keeps it).
    pub signalled: SocketAddr,
    /// Send to `signalled` until the first packet latches; when false nothing is sent before the latch.
    pub trusted: bool,
}

impl Remote {
    /// The SDP address as it is: expected and sent to (a media application of Palisade's own, tests).
    pub fn exact(addr: SocketAddr) -> Remote {
        let addr = canonical(addr);
        Remote {
            expect: addr.ip(),
            signalled: addr,
            trusted: true,
        }
    }

    /// Media from `source`'s IP only, port learnt from the first authentic packet; nothing sent before.
    pub fn latch(source: IpAddr, signalled: SocketAddr) -> Remote {
        Remote {
            expect: source.to_canonical(),
            signalled: canonical(signalled),
            trusted: false,
        }
    }

    /// Where to send before any latch.
    pub fn send_to(&self) -> Option<SocketAddr> {
        self.trusted.then_some(self.signalled)
    }
}

fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// The decision for one stream: `sdp` is the address a leg's SDP names for it, `source` the IP its signalling
/// came from (the registered flow of a phone, the trunk's address), `own` every address of Palisade itself
/// (SIP listen and advertised addresses, the relay's).
pub fn remote_for(sdp: SocketAddr, source: IpAddr, trust: Trust, own: &[IpAddr]) -> Remote {
    let sdp = canonical(sdp);
    let source = source.to_canonical();
    if sdp.ip() == source {
        return Remote::exact(sdp);
    }
    let ip = sdp.ip();
    let never_send = is_never_a_destination(ip) || own.iter().any(|o| o.to_canonical() == ip);
    match trust {
        Trust::Trunk if !never_send => Remote::exact(sdp),
        _ => Remote::latch(source, sdp),
    }
}

/// Addresses the relay never sends to on a phone's or trunk's word: they are this host, nobody, everybody, or
/// only reachable on a link Palisade is not on.
pub fn is_never_a_destination(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_link_local()
                || v4.octets()[0] == 0
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || v6.is_unicast_link_local()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const OWN: [IpAddr; 2] = [
        IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1)),
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)),
    ];

    #[test]
    fn the_sdp_naming_the_signalling_source_is_trusted() {
        let r = remote_for(
            sa("198.51.100.7:4000"),
            ip("198.51.100.7"),
            Trust::Phone,
            &OWN,
        );
        assert_eq!(r, Remote::exact(sa("198.51.100.7:4000")));
        assert_eq!(r.send_to(), Some(sa("198.51.100.7:4000")));
        // Also on loopback, where the e2e phones live, and on Palisade's own address (a phone on the server).
        for a in ["127.0.0.14", "127.0.0.1"] {
            let r = remote_for(SocketAddr::new(ip(a), 4000), ip(a), Trust::Phone, &OWN);
            assert!(r.trusted, "{a}");
            assert_eq!(r.expect, ip(a));
        }
    }

    #[test]
    fn a_phone_behind_nat_latches_on_its_signalling_source() {
        for private in [
            "10.1.2.3",
            "172.16.0.9",
            "192.168.1.20",
            "100.64.0.7",
            "100.127.255.1",
        ] {
            let r = remote_for(
                SocketAddr::new(ip(private), 4000),
                ip("198.51.100.7"),
                Trust::Phone,
                &OWN,
            );
            assert_eq!(r.expect, ip("198.51.100.7"), "{private}");
            assert_eq!(
                r.send_to(),
                None,
                "{private}: nothing sent before the latch"
            );
            assert_eq!(r.signalled, SocketAddr::new(ip(private), 4000));
        }
        let r = remote_for(sa("[fd00::5]:4000"), ip("2001:db8::7"), Trust::Phone, &OWN);
        assert_eq!((r.expect, r.trusted), (ip("2001:db8::7"), false));
    }

    #[test]
    fn a_phone_cannot_aim_the_relay_anywhere_but_itself() {
        // The server, another phone on loopback, this host, nobody, everybody, a link, a third party.
        for target in [
            "127.0.0.1",
            "127.0.0.15",
            "203.0.113.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "169.254.1.1",
            "192.0.2.99",
        ] {
            let r = remote_for(
                SocketAddr::new(ip(target), 4000),
                ip("127.0.0.14"),
                Trust::Phone,
                &OWN,
            );
            assert_eq!(
                (r.expect, r.send_to()),
                (ip("127.0.0.14"), None),
                "{target}"
            );
        }
        for target in [
            "[::1]:4000",
            "[fe80::1]:4000",
            "[ff02::1]:4000",
            "[::]:4000",
        ] {
            let r = remote_for(sa(target), ip("2001:db8::7"), Trust::Phone, &OWN);
            assert_eq!(
                (r.expect, r.trusted),
                (ip("2001:db8::7"), false),
                "{target}"
            );
        }
    }

    #[test]
    fn a_trunk_is_trusted_except_toward_forbidden_addresses() {
        for media in ["192.0.2.50:20000", "10.20.0.6:20000", "100.64.1.1:20000"] {
            let r = remote_for(sa(media), ip("198.51.100.1"), Trust::Trunk, &OWN);
            assert_eq!(r, Remote::exact(sa(media)), "{media}");
        }
        for media in ["127.0.0.1:20000", "203.0.113.1:20000", "169.254.0.1:20000"] {
            let r = remote_for(sa(media), ip("198.51.100.1"), Trust::Trunk, &OWN);
            assert_eq!(
                (r.expect, r.trusted),
                (ip("198.51.100.1"), false),
                "{media}"
            );
        }
    }

    #[test]
    fn ipv4_mapped_addresses_are_compared_as_ipv4() {
        let r = remote_for(
            sa("127.0.0.14:4000"),
            ip("::ffff:127.0.0.14"),
            Trust::Phone,
            &OWN,
        );
        assert_eq!(r, Remote::exact(sa("127.0.0.14:4000")));
        assert!(is_never_a_destination(ip("::ffff:127.0.0.1")));
    }
}
