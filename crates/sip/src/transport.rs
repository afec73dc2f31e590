//! The transport a SIP message travels on: one type for the transaction layer, the endpoint, the registrar and
//! the socket edge, so no layer spells it as a string or converts between enums of its own.

use std::net::{IpAddr, SocketAddr};

/// The transport a message came in on or must leave by. Everything except UDP is reliable (RFC 3261 §17.1.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
    /// SIP over WebSocket (RFC 7118), plain.
    Ws,
    /// SIP over WebSocket over TLS.
    Wss,
}

impl Transport {
    /// Every transport, in the order listeners are described.
    pub const ALL: [Transport; 5] = [
        Transport::Udp,
        Transport::Tcp,
        Transport::Tls,
        Transport::Ws,
        Transport::Wss,
    ];

    /// Retransmissions are the transport's job, not the transaction layer's.
    pub fn is_reliable(self) -> bool {
        !matches!(self, Transport::Udp)
    }

    /// The Via transport token (upper case, RFC 3261 §20.42, RFC 7118).
    pub fn via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
            Transport::Ws => "WS",
            Transport::Wss => "WSS",
        }
    }

    /// The lower-case name used in configuration, logs and the store.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
            Transport::Ws => "ws",
            Transport::Wss => "wss",
        }
    }

    /// Parses a Via token or a configured name, in any case.
    pub fn parse(s: &str) -> Option<Transport> {
        Transport::ALL
            .into_iter()
            .find(|t| t.via_token().eq_ignore_ascii_case(s))
    }

    /// SIP over WebSocket: one WebSocket message is one SIP message.
    pub fn is_websocket(self) -> bool {
        matches!(self, Transport::Ws | Transport::Wss)
    }

    /// A byte stream or message stream (anything but UDP).
    pub fn is_stream(self) -> bool {
        !matches!(self, Transport::Udp)
    }

    /// Carried over TLS (SIP over TLS, or WebSocket over TLS).
    pub fn is_secure(self) -> bool {
        matches!(self, Transport::Tls | Transport::Wss)
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.via_token())
    }
}

/// An IPv4-mapped IPv6 address (a dual-stack socket's view of an IPv4 peer) as the plain IPv4 address, so the
/// same peer compares equal however the socket reported it.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => addr,
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_in_any_case() {
        for t in Transport::ALL {
            assert_eq!(Transport::parse(t.via_token()), Some(t));
            assert_eq!(Transport::parse(t.name()), Some(t));
        }
        assert_eq!(Transport::parse("sctp"), None);
        assert!(Transport::Tls.is_secure() && Transport::Wss.is_secure());
        assert!(!Transport::Udp.is_reliable() && Transport::Ws.is_reliable());
    }

    #[test]
    fn mapped_addresses_become_ipv4() {
        let mapped: SocketAddr = "[::ffff:192.0.2.1]:5060".parse().unwrap();
        assert_eq!(canonical(mapped), "192.0.2.1:5060".parse().unwrap());
        let v6: SocketAddr = "[2001:db8::1]:5060".parse().unwrap();
        assert_eq!(canonical(v6), v6);
    }
}
