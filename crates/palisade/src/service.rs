//! The SIP service: the sans-IO heart of the server. Transports hand it what they received (with the
//! transport source address and the current time) and send what it returns. It owns the transaction layer and
//! answers what Palisade serves so far (OPTIONS) or refuses the rest with the right status.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;

/// Which transport a message came in on or must leave by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
}

impl Transport {
    /// The Via transport token.
    pub fn via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }

    pub fn is_stream(self) -> bool {
        !matches!(self, Transport::Udp)
    }
}

/// Identifies one accepted TCP or TLS connection for as long as it is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// One message received: a whole datagram, or one message cut from a stream by the framer.
#[derive(Debug, Clone)]
pub struct Inbound {
    pub transport: Transport,
    /// The transport source address: the only address security decisions may key on.
    pub source: SocketAddr,
    /// The local address it arrived on.
    pub local: SocketAddr,
    /// The stream connection it arrived on (None for UDP).
    pub conn: Option<ConnId>,
    pub data: Bytes,
}

/// One message to send. For stream transports, `conn` names the connection to use when it is still open;
/// otherwise the transport layer opens (or reuses) a connection to `dest`.
#[derive(Debug, Clone)]
pub struct Outbound {
    pub transport: Transport,
    pub dest: SocketAddr,
    pub conn: Option<ConnId>,
    pub data: Bytes,
}
