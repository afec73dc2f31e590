//! UDP: one receive loop per socket. Each datagram goes to the service; what comes back leaves without waiting
//! (answers from the socket the request arrived on), so a flood from one source cannot hold up the others.

use std::sync::Arc;

use super::{Edge, UdpEndpoint, canonical, send_datagram};
use crate::service::Transport;

/// Largest datagram we read.
const MAX_DATAGRAM: usize = 65_535;

pub async fn recv_loop(edge: Arc<Edge>, ep: UdpEndpoint) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (n, source) = match ep.socket.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                // ICMP errors surface here (e.g. connection refused after a send); they concern one peer only.
                tracing::trace!(local = %ep.local, error = %e, "UDP receive error");
                continue;
            }
        };
        if n == 0 {
            continue;
        }
        let source = canonical(source);
        for o in edge.handle_datagram(&buf[..n], source, ep.local) {
            if o.transport == Transport::Udp {
                send_datagram(&ep, o.dest, &o.data);
            } else {
                edge.send(o);
            }
        }
    }
}
