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

/// Settings the service needs; filled from the command line and palisade.toml.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// The SIP domain Palisade is authoritative for.
    pub domain: String,
    /// Server header value; `None` sends no Server header.
    pub server_header: Option<String>,
    pub limits: sip::Limits,
}

/// The SIP service state. Not thread-safe by itself: the edge keeps it behind a mutex and never holds the lock
/// across an await.
pub struct Service {
    config: ServiceConfig,
}

impl Service {
    pub fn new(config: ServiceConfig) -> Self {
        Service { config }
    }

    /// Handles one received message and returns what to send.
    pub fn handle_inbound(&mut self, inbound: Inbound, _now: Instant) -> Vec<Outbound> {
        let framing = if inbound.transport.is_stream() { sip::Framing::Stream } else { sip::Framing::Datagram };
        let Ok(msg) = sip::Message::parse(inbound.data.clone(), framing, &self.config.limits) else {
            return Vec::new();
        };
        if !msg.is_request() || msg.method() == Some(sip::Method::Ack) {
            return Vec::new();
        }
        let status = if msg.method() == Some(sip::Method::Options) { 200 } else { 501 };
        let mut b = sip::ResponseBuilder::new(&msg, status).received_from(inbound.source);
        if let Some(server) = &self.config.server_header {
            b = b.header(sip::HeaderName::Server, server);
        }
        vec![Outbound { transport: inbound.transport, dest: inbound.source, conn: inbound.conn, data: b.build() }]
    }

    /// Runs expired timers (retransmissions, transaction timeouts).
    pub fn handle_timeout(&mut self, _now: Instant) -> Vec<Outbound> {
        Vec::new()
    }

    /// When `handle_timeout` should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        None
    }
}
