//! Binding listeners. Explicit listeners must bind; the default set binds the IPv6 wildcard dual-stack where the
//! host allows it, falls back to separate IPv4 and IPv6 sockets, and only warns when the host has no IPv6.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, UdpSocket};

use super::UdpEndpoint;
use crate::config::ListenSpec;
use crate::service::Transport;

/// A bound listener.
pub enum Listener {
    Udp(UdpEndpoint),
    Stream {
        transport: Transport,
        listener: TcpListener,
        local: SocketAddr,
    },
}

impl Listener {
    pub fn transport(&self) -> Transport {
        match self {
            Listener::Udp(_) => Transport::Udp,
            Listener::Stream { transport, .. } => *transport,
        }
    }

    pub fn local(&self) -> SocketAddr {
        match self {
            Listener::Udp(ep) => ep.local,
            Listener::Stream { local, .. } => *local,
        }
    }
}

/// Binds the given listeners; any failure is an error.
pub fn bind_explicit(specs: &[ListenSpec]) -> anyhow::Result<Vec<Listener>> {
    specs
        .iter()
        .map(|spec| {
            // An explicit IPv6 address means IPv6 only, so that it can sit beside an explicit IPv4 one.
            let v6only = spec.addr.is_ipv6().then_some(true);
            bind(spec, v6only).with_context(|| format!("cannot listen on {spec}"))
        })
        .collect()
}

/// Binds the default listeners (`specs` as from [`crate::config::default_listeners`]: for each transport the
/// IPv6 wildcard, then the IPv4 one).
pub fn bind_defaults(specs: &[ListenSpec]) -> anyhow::Result<Vec<Listener>> {
    let mut out: Vec<Listener> = Vec::new();
    let mut dual_stack_ports: Vec<(Transport, u16)> = Vec::new();
    for spec in specs {
        if spec.addr.is_ipv6() {
            match bind(spec, Some(false)) {
                Ok(l) => {
                    dual_stack_ports.push((spec.transport, spec.addr.port()));
                    out.push(l);
                }
                Err(_) => match bind(spec, Some(true)) {
                    Ok(l) => out.push(l),
                    Err(e) => tracing::warn!(
                        transport = %spec.transport.name(),
                        addr = %spec.addr,
                        error = %e,
                        "cannot listen on IPv6 (does this host have IPv6?); continuing with IPv4"
                    ),
                },
            }
        } else if !dual_stack_ports.contains(&(spec.transport, spec.addr.port())) {
            out.push(bind(spec, None).with_context(|| format!("cannot listen on {spec}"))?);
        }
    }
    Ok(out)
}

fn bind(spec: &ListenSpec, v6only: Option<bool>) -> io::Result<Listener> {
    let addr = spec.addr;
    let udp = spec.transport == Transport::Udp;
    let (ty, proto) = if udp {
        (Type::DGRAM, Protocol::UDP)
    } else {
        (Type::STREAM, Protocol::TCP)
    };
    let socket = Socket::new(Domain::for_address(addr), ty, Some(proto))?;
    if addr.is_ipv6()
        && let Some(only) = v6only
    {
        socket.set_only_v6(only)?;
    }
    socket.set_nonblocking(true)?;
    if udp {
        // Best effort: a larger receive buffer absorbs bursts.
        let _ = socket.set_recv_buffer_size(4 << 20);
    } else {
        socket.set_reuse_address(true)?;
    }
    socket.bind(&addr.into())?;
    let dual_stack = addr.is_ipv6() && v6only == Some(false);
    if udp {
        let socket = UdpSocket::from_std(socket.into())?;
        let local = socket.local_addr()?;
        Ok(Listener::Udp(UdpEndpoint {
            socket: Arc::new(socket),
            local,
            dual_stack,
        }))
    } else {
        socket.listen(1024)?;
        let listener = TcpListener::from_std(socket.into())?;
        let local = listener.local_addr()?;
        Ok(Listener::Stream {
            transport: spec.transport,
            listener,
            local,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::default_listeners;

    fn port0(specs: Vec<ListenSpec>) -> Vec<ListenSpec> {
        specs
            .into_iter()
            .map(|s| ListenSpec::new(s.transport, SocketAddr::new(s.addr.ip(), 0)))
            .collect()
    }

    #[tokio::test]
    async fn defaults_cover_ipv4_whether_or_not_dual_stack() {
        let listeners = bind_defaults(&port0(default_listeners())).unwrap();
        for t in [Transport::Udp, Transport::Tcp, Transport::Tls] {
            let mine: Vec<&Listener> = listeners.iter().filter(|l| l.transport() == t).collect();
            let dual = mine
                .iter()
                .any(|l| matches!(l, Listener::Udp(ep) if ep.dual_stack))
                || (mine.len() == 1 && mine[0].local().is_ipv6());
            assert!(
                dual || mine.iter().any(|l| l.local().is_ipv4()),
                "{t:?}: no IPv4 listener"
            );
        }
        // IPv4 reaches the UDP listener, whichever it is.
        let udp = listeners.iter().find_map(|l| match l {
            Listener::Udp(ep) if ep.dual_stack || ep.local.is_ipv4() => Some(ep.clone()),
            _ => None,
        });
        let ep = udp.unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = SocketAddr::new("127.0.0.1".parse().unwrap(), ep.local.port());
        client.send_to(b"ping", to).await.unwrap();
        let mut buf = [0u8; 16];
        let (n, from) = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            ep.socket.recv_from(&mut buf),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(&buf[..n], b"ping");
        // And the answer goes back to an IPv4 address even from an IPv6 socket.
        super::super::send_datagram(&ep, super::super::canonical(from), b"pong");
        let (n, _) = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            client.recv_from(&mut buf),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(&buf[..n], b"pong");
    }

    #[tokio::test]
    async fn explicit_bind_failure_names_the_listener() {
        let first = bind_explicit(&["tcp:127.0.0.1:0".parse().unwrap()]).unwrap();
        let spec: ListenSpec = format!("tcp:{}", first[0].local()).parse().unwrap();
        // SO_REUSEADDR does not allow two listeners on one port.
        let err = bind_explicit(&[spec])
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default();
        assert!(err.contains(&spec.to_string()), "{err}");
    }
}
