//! Wire helpers: Via and Contact values, tags and Call-IDs, dialog keys of a message.

use super::*;
use sip::Transport;

/// (Call-ID, To tag, From tag) of a request from the other side of a dialog: its key as Palisade holds it.
pub(super) fn dialog_key(msg: &Message) -> Option<(String, String, String)> {
    let call_id = String::from_utf8_lossy(msg.call_id()?).into_owned();
    let local = msg.to().ok()?.tag()?.to_string();
    let remote = msg.from().ok()?.tag().unwrap_or_default().to_string();
    Some((call_id, local, remote))
}

/// A request without a body in `dialog` (ACK, BYE, …), with Palisade's Via and Contact for `transport` at
/// `via_addr`.
pub(super) fn bodyless(
    dialog: &Dialog,
    method: &str,
    cseq: u32,
    transport: Transport,
    via_addr: SocketAddr,
) -> Result<Message, sip::ParseError> {
    dialog.request(
        method,
        cseq,
        &via(transport, via_addr),
        &contact_uri(via_addr, transport),
        70,
        &[],
        None,
    )
}

pub(super) fn via(transport: Transport, addr: SocketAddr) -> String {
    format!(
        "SIP/2.0/{} {};branch=z9hG4bK{:016x};rport",
        transport.via_token(),
        addr,
        rand::random::<u64>()
    )
}

pub(super) fn contact_uri(addr: SocketAddr, transport: Transport) -> String {
    match transport {
        Transport::Udp => format!("<sip:{addr}>"),
        t => format!("<sip:{addr};transport={}>", t.name()),
    }
}

pub(super) fn contact_header(local: &LocalAddrs, peer: &Peer) -> Option<(HeaderName, String)> {
    local
        .address_for(peer.transport)
        .map(|a| (HeaderName::Contact, contact_uri(a, peer.transport)))
}

pub(super) fn new_tag() -> String {
    format!("{:016x}", rand::random::<u64>())
}

pub(super) fn new_call_id(domain: &str) -> String {
    format!(
        "{:016x}{:016x}@{domain}",
        rand::random::<u64>(),
        rand::random::<u64>()
    )
}

/// A request Palisade built, or `None` (logged) if it wrote something unparsable: a bug, never input-driven, so
/// the request is simply not sent and the call's own timers end what waited for it.
pub(super) fn built(request: Result<Message, sip::ParseError>) -> Option<Message> {
    request
        .map_err(|e| tracing::error!(error = %e, "request built unparsable: not sent"))
        .ok()
}
