//! Who may act inside a call's dialog. Call-ID and tags travel in clear over UDP and TCP, so anyone who saw them
//! (or guessed them) could otherwise hang up, re-INVITE (move the media) or transfer someone else's call by
//! sending a request from anywhere. An in-dialog request is accepted only from where that leg's signalling is:
//! the same transport and source address as the leg's peer, or — for a phone — one of that extension's
//! registered flows (a phone whose NAT mapping changed re-registers from the new one); for a trunk, any address
//! of that same trunk (providers answer from several proxies). Pure: the service supplies the flows and trunk.

use std::net::SocketAddr;

use sip::transaction::{Peer, Transport};

/// The signalling side of the leg an in-dialog request belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialogLeg {
    /// Palisade's Call-ID toward that leg (for the event).
    pub call_id: String,
    /// Where the leg's signalling goes (the caller's INVITE source, the callee's registered flow, the trunk).
    pub peer: Peer,
    /// The extension on the leg, when it is one (else a trunk, or one of Palisade's own applications).
    pub extension: Option<String>,
}

/// Why an in-dialog request was accepted (or not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceCheck {
    /// Same transport and address as the leg.
    SameFlow,
    /// A registered flow of the leg's extension.
    RegisteredFlow,
    /// Another address of the leg's trunk.
    SameTrunk,
    /// From anywhere else: refused.
    Foreign,
}

impl SourceCheck {
    pub fn accepted(self) -> bool {
        self != SourceCheck::Foreign
    }
}

fn same_addr(a: SocketAddr, b: SocketAddr) -> bool {
    a.ip().to_canonical() == b.ip().to_canonical() && a.port() == b.port()
}

/// Whether `source` may act in the dialog of `leg`. `flows` are the (source, transport) of the extension's
/// registered bindings; `same_trunk` says whether `source` and the leg's peer are addresses of one trunk.
pub fn check_source(
    leg: &DialogLeg,
    source: &Peer,
    flows: &[(SocketAddr, Transport)],
    same_trunk: bool,
) -> SourceCheck {
    if leg.peer.transport == source.transport && same_addr(leg.peer.addr, source.addr) {
        return SourceCheck::SameFlow;
    }
    if leg.extension.is_some()
        && flows
            .iter()
            .any(|(addr, t)| *t == source.transport && same_addr(*addr, source.addr))
    {
        return SourceCheck::RegisteredFlow;
    }
    if leg.extension.is_none() && same_trunk {
        return SourceCheck::SameTrunk;
    }
    SourceCheck::Foreign
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(s: &str, t: Transport) -> Peer {
        Peer::new(s.parse().unwrap(), t)
    }

    fn phone_leg() -> DialogLeg {
        DialogLeg {
            call_id: "c".into(),
            peer: peer("198.51.100.7:5070", Transport::Udp),
            extension: Some("101".into()),
        }
    }

    #[test]
    fn the_legs_own_flow_is_accepted() {
        let leg = phone_leg();
        assert_eq!(
            check_source(&leg, &peer("198.51.100.7:5070", Transport::Udp), &[], false),
            SourceCheck::SameFlow
        );
        assert_eq!(
            check_source(
                &leg,
                &peer("[::ffff:198.51.100.7]:5070", Transport::Udp),
                &[],
                false
            ),
            SourceCheck::SameFlow
        );
    }

    #[test]
    fn another_address_port_or_transport_is_refused() {
        let leg = phone_leg();
        for (src, t) in [
            ("127.0.0.66:5070", Transport::Udp),
            ("198.51.100.7:5071", Transport::Udp),
            ("198.51.100.7:5070", Transport::Tcp),
        ] {
            assert_eq!(
                check_source(&leg, &peer(src, t), &[], true),
                SourceCheck::Foreign,
                "{src} {t:?}: a trunk flag does not help a phone leg"
            );
        }
    }

    #[test]
    fn a_registered_flow_of_the_extension_is_accepted() {
        let leg = phone_leg();
        let flows = [("198.51.100.7:6000".parse().unwrap(), Transport::Udp)];
        assert_eq!(
            check_source(
                &leg,
                &peer("198.51.100.7:6000", Transport::Udp),
                &flows,
                false
            ),
            SourceCheck::RegisteredFlow
        );
        assert_eq!(
            check_source(
                &leg,
                &peer("198.51.100.7:6000", Transport::Tcp),
                &flows,
                false
            ),
            SourceCheck::Foreign
        );
    }

    #[test]
    fn a_trunk_leg_accepts_its_other_addresses() {
        let leg = DialogLeg {
            extension: None,
            ..phone_leg()
        };
        assert_eq!(
            check_source(&leg, &peer("198.51.100.9:5060", Transport::Udp), &[], true),
            SourceCheck::SameTrunk
        );
        assert_eq!(
            check_source(&leg, &peer("198.51.100.9:5060", Transport::Udp), &[], false),
            SourceCheck::Foreign
        );
    }
}
