//! SIP over WebSocket (RFC 7118), `ws` and `wss`: accepting (the same per-IP and total connection caps and guard
//! check as TCP/TLS, the TLS handshake for wss), the WebSocket handshake (which must agree on the `sip`
//! subprotocol, within the handshake timeout), and one task per connection that feeds each WebSocket message to
//! the service as one SIP message and writes what is queued for the connection as WebSocket messages.
//!
//! Palisade only accepts WebSocket connections: phones (browsers) connect to it, never the other way round.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::time::{Instant, timeout, timeout_at};
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode, header};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::{ConnSlot, Edge, canonical};
use crate::service::{Inbound, Outbound, Transport};

/// How long one write may take before the peer is considered stuck and the connection closed.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// The WebSocket subprotocol of SIP (RFC 7118 §4.1).
pub const SUBPROTOCOL: &str = "sip";

/// Accepts WebSocket connections until the task is dropped. `tls` makes it a wss listener.
pub async fn accept_loop(edge: Arc<Edge>, listener: TcpListener, tls: Option<TlsAcceptor>) {
    let transport = if tls.is_some() {
        Transport::Wss
    } else {
        Transport::Ws
    };
    let tname = transport.name();
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(transport = %tname, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let peer = canonical(peer);
        // Blacklisted and throttled sources get no connection at all (no answer, no handshake).
        if !edge.allows_connection(peer.ip()) {
            drop(tcp);
            continue;
        }
        let Some(slot) = edge.reserve(peer.ip()) else {
            tracing::debug!(%peer, transport = %tname, "connection limit reached; refused");
            drop(tcp);
            continue;
        };
        let local = tcp.local_addr().map(canonical).unwrap_or(peer);
        let _ = tcp.set_nodelay(true);
        let edge = edge.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            // One deadline for the TLS and the WebSocket handshakes together.
            let deadline = Instant::now() + edge.transport_limits.tls_handshake_timeout;
            match tls {
                None => upgrade(edge, tcp, transport, peer, local, slot, deadline).await,
                Some(acceptor) => {
                    let accepted = tokio::select! {
                        r = timeout_at(deadline, acceptor.accept(tcp)) => r,
                        () = slot.evicted() => {
                            tracing::debug!(%peer, "connection limit reached: handshake abandoned");
                            return;
                        }
                    };
                    match accepted {
                        Ok(Ok(stream)) => {
                            upgrade(edge, stream, transport, peer, local, slot, deadline).await
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
}

/// Whether a `Sec-WebSocket-Protocol` request header offers the `sip` subprotocol.
fn offers_sip(request: &Request) -> bool {
    request
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case(SUBPROTOCOL))
}

/// An origin as compared: `scheme://host[:port]`, lower case, without a trailing slash; only http and https
/// (what browsers send). Used for the `ws_allowed_origins` setting.
pub fn normalize_origin(origin: &str) -> Result<String, String> {
    let o = origin.trim().trim_end_matches('/').to_ascii_lowercase();
    let rest = o
        .strip_prefix("https://")
        .or_else(|| o.strip_prefix("http://"))
        .ok_or_else(|| {
            format!("`{origin}` is not a web origin: expected scheme://host[:port], e.g. https://phone.example.com")
        })?;
    if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
        return Err(format!(
            "`{origin}` is not a web origin: expected scheme://host[:port] without a path, e.g. https://phone.example.com"
        ));
    }
    Ok(o)
}

/// Whether a WebSocket upgrade may go ahead given its `Origin` header. A browser always sends Origin (RFC 6455
/// §4.1), so a page on another site can only reach Palisade from a visitor's browser if its origin is allowed:
/// without this, any web page could make its visitors' browsers open SIP sessions (and run password guesses or
/// floods from their addresses). A request without Origin comes from a non-browser client (baresip, sipp, a
/// desk phone), which could send any Origin it liked anyway: it is allowed, and authenticates like any phone.
fn origin_allowed(request: &Request, allowed: &[String]) -> bool {
    let mut origins = request.headers().get_all(header::ORIGIN).iter();
    let Some(first) = origins.next() else {
        return true;
    };
    if origins.next().is_some() {
        return false;
    }
    first
        .to_str()
        .ok()
        .and_then(|o| normalize_origin(o).ok())
        .is_some_and(|o| allowed.contains(&o))
}

/// The handshake callback: refuses a browser origin that is not allowed with 403, agrees on `sip`, or refuses
/// the upgrade with 400.
#[allow(clippy::result_large_err)] // the signature tungstenite asks for
fn negotiate(
    request: &Request,
    mut response: Response,
    allowed_origins: &[String],
) -> Result<Response, ErrorResponse> {
    if !origin_allowed(request, allowed_origins) {
        let mut refusal = ErrorResponse::new(Some(
            "this web origin may not open SIP over WebSocket (ws_allowed_origins)\n".to_string(),
        ));
        *refusal.status_mut() = StatusCode::FORBIDDEN;
        return Err(refusal);
    }
    if offers_sip(request) {
        response.headers_mut().insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(SUBPROTOCOL),
        );
        Ok(response)
    } else {
        let mut refusal = ErrorResponse::new(Some(
            "SIP over WebSocket requires the \"sip\" subprotocol (Sec-WebSocket-Protocol: sip)\n"
                .to_string(),
        ));
        *refusal.status_mut() = StatusCode::BAD_REQUEST;
        Err(refusal)
    }
}

/// The WebSocket limits: one message is at most one SIP message.
fn ws_config(edge: &Edge) -> WebSocketConfig {
    let max = edge.limits.max_message_size;
    WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
}

/// Runs the WebSocket handshake, then the connection.
async fn upgrade<S>(
    edge: Arc<Edge>,
    stream: S,
    transport: Transport,
    peer: SocketAddr,
    local: SocketAddr,
    slot: ConnSlot,
    deadline: Instant,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let config = ws_config(&edge);
    let allowed = edge.transport_limits.ws_allowed_origins.clone();
    #[allow(clippy::result_large_err)] // the signature tungstenite asks for
    let callback = move |request: &Request, response: Response| {
        let verdict = negotiate(request, response, &allowed);
        if let Err(refusal) = &verdict {
            tracing::debug!(%peer, status = %refusal.status(), origin = ?request.headers().get(header::ORIGIN),
                "WebSocket upgrade refused");
        }
        verdict
    };
    let handshake = tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config));
    let handshake = async {
        tokio::select! {
            r = timeout_at(deadline, handshake) => Some(r),
            () = slot.evicted() => None,
        }
    };
    let Some(handshake) = handshake.await else {
        tracing::debug!(%peer, "connection limit reached: WebSocket handshake abandoned");
        return;
    };
    match handshake {
        Ok(Ok(ws)) => serve(edge, ws, transport, peer, local, slot).await,
        Ok(Err(e)) => {
            tracing::debug!(%peer, transport = %transport.name(), error = %e, "WebSocket handshake failed")
        }
        Err(_) => {
            tracing::debug!(%peer, transport = %transport.name(), "WebSocket handshake timed out")
        }
    }
}

/// SIP messages go out as text messages; the rare one that is not UTF-8 (a binary body) as a binary message.
fn to_message(data: Bytes) -> Message {
    match Utf8Bytes::try_from(data.clone()) {
        Ok(text) => Message::Text(text),
        Err(_) => Message::Binary(data),
    }
}

/// Runs one WebSocket connection until the peer closes it, it idles out, a message breaks the limits or a write
/// gets stuck.
async fn serve<S>(
    edge: Arc<Edge>,
    mut ws: WebSocketStream<S>,
    transport: Transport,
    peer: SocketAddr,
    local: SocketAddr,
    mut slot: ConnSlot,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (id, mut rx) = edge.register(&mut slot, transport, peer);
    let tname = transport.name();
    tracing::debug!(%peer, transport = %tname, conn = id.0, "WebSocket connection open");
    let idle = edge.transport_limits.idle_timeout;
    let mut deadline = Instant::now() + idle;
    // Until the client sends a valid SIP message the connection also closes at this deadline, pings or not.
    let mut first_deadline = Some(Instant::now() + edge.transport_limits.first_request_timeout);
    let mut authenticated = false;
    let mut to_write: Vec<Bytes> = Vec::new();
    let reason = 'conn: loop {
        for data in to_write.drain(..) {
            match timeout(WRITE_TIMEOUT, ws.send(to_message(data))).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => break 'conn "write error",
                Err(_) => break 'conn "write timed out",
            }
        }
        let wake = first_deadline.map_or(deadline, |f| f.min(deadline));
        tokio::select! {
            () = slot.evicted() => break 'conn "evicted: connection limit reached",
            r = timeout_at(wake, ws.next()) => {
                let data = match r {
                    Err(_) if first_deadline.is_some_and(|f| Instant::now() >= f) => {
                        break 'conn "no valid SIP message in time"
                    }
                    Err(_) if Instant::now() < deadline => continue,
                    Err(_) => break 'conn "idle timeout",
                    Ok(None) => break 'conn "closed by peer",
                    Ok(Some(Err(e))) => {
                        tracing::debug!(%peer, transport = %tname, error = %e, "WebSocket read failed; closing");
                        break 'conn "read error";
                    }
                    Ok(Some(Ok(msg))) => match msg {
                        Message::Text(text) => Bytes::from(text),
                        Message::Binary(data) => data,
                        Message::Ping(_) | Message::Pong(_) => {
                            // Keep-alives count toward the source's packet rate like messages.
                            if !edge.admit_keepalive(peer.ip()) {
                                break 'conn "source blocked by the guard";
                            }
                            // Tungstenite queued the pong; send it now rather than with the next message.
                            deadline = Instant::now() + idle;
                            if timeout(WRITE_TIMEOUT, ws.flush()).await.is_err() {
                                break 'conn "write timed out";
                            }
                            continue;
                        }
                        Message::Close(_) => break 'conn "closed by peer",
                        Message::Frame(_) => continue,
                    },
                };
                deadline = Instant::now() + idle;
                // A message of nothing but line breaks is a keep-alive some clients send; there is nothing to parse,
                // but it counts toward the packet rate.
                if data.iter().all(|b| b.is_ascii_whitespace()) {
                    if !edge.admit_keepalive(peer.ip()) {
                        break 'conn "source blocked by the guard";
                    }
                    continue;
                }
                let inbound = Inbound { transport, source: peer, local, conn: Some(id), data };
                let Some(outcome) = edge.handle_stream(inbound) else {
                    // Banned or throttled: the connection goes too, so the client learns at once.
                    break 'conn "source blocked by the guard";
                };
                if outcome.valid {
                    first_deadline = None;
                }
                if outcome.authenticated && !authenticated {
                    authenticated = true;
                    edge.mark_authenticated(&slot);
                }
                let out = outcome.out;
                // Answers on this connection are written here, in order and with backpressure; the rest is routed.
                let (mine, others): (Vec<Outbound>, Vec<Outbound>) =
                    out.into_iter().partition(|o| o.conn == Some(id) && o.transport == transport);
                to_write.extend(mine.into_iter().map(|o| o.data));
                edge.dispatch(others);
            }
            m = rx.recv() => match m {
                Some(data) => to_write.push(data),
                None => break 'conn "unregistered",
            },
        }
    };
    tracing::debug!(%peer, transport = %tname, conn = id.0, reason, "WebSocket connection closed");
    let _ = timeout(Duration::from_millis(500), ws.close(None)).await;
    drop(slot);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(protocols: &[&str]) -> Request {
        let mut b = Request::builder().uri("/").method("GET");
        for p in protocols {
            b = b.header(header::SEC_WEBSOCKET_PROTOCOL, *p);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn sip_subprotocol_is_required_and_echoed() {
        for offered in [&["sip"][..], &["chat, sip"], &["chat", "SIP"]] {
            let r = negotiate(&request(offered), Response::default(), &[]).unwrap();
            assert_eq!(
                r.headers().get(header::SEC_WEBSOCKET_PROTOCOL).unwrap(),
                "sip",
                "{offered:?}"
            );
        }
        for offered in [&[][..], &["chat"], &["sips, xmpp"]] {
            let e = negotiate(&request(offered), Response::default(), &[]).unwrap_err();
            assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{offered:?}");
        }
    }

    #[test]
    fn browser_origins_must_be_allowed_and_clients_without_origin_pass() {
        let with_origin = |origins: &[&str]| {
            let mut b = Request::builder()
                .uri("/")
                .method("GET")
                .header(header::SEC_WEBSOCKET_PROTOCOL, "sip");
            for o in origins {
                b = b.header(header::ORIGIN, *o);
            }
            b.body(()).unwrap()
        };
        let allowed = vec![normalize_origin("https://Phone.Example.com/").unwrap()];
        assert_eq!(allowed, ["https://phone.example.com"]);
        let ok = |r: &Request, a: &[String]| negotiate(r, Response::default(), a).is_ok();
        assert!(ok(&with_origin(&[]), &[]), "no Origin: not a browser");
        assert!(ok(&with_origin(&["https://PHONE.example.com"]), &allowed));
        for refused in [
            &["https://evil.example"][..],
            &["null"],
            &["https://phone.example.com:8443"],
            &["https://phone.example.com", "https://evil.example"],
        ] {
            let e = negotiate(&with_origin(refused), Response::default(), &allowed).unwrap_err();
            assert_eq!(e.status(), StatusCode::FORBIDDEN, "{refused:?}");
        }
        let e = negotiate(
            &with_origin(&["https://phone.example.com"]),
            Response::default(),
            &[],
        )
        .unwrap_err();
        assert_eq!(
            e.status(),
            StatusCode::FORBIDDEN,
            "default: no browser origin"
        );
        for bad in ["phone.example.com", "ftp://x", "https://", "https://x/path"] {
            assert!(normalize_origin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn text_unless_binary() {
        assert!(matches!(
            to_message(Bytes::from_static(b"OPTIONS sip:a SIP/2.0\r\n\r\n")),
            Message::Text(_)
        ));
        assert!(matches!(
            to_message(Bytes::from_static(b"\xff\xfe")),
            Message::Binary(_)
        ));
    }
}

#[cfg(test)]
mod edge_tests {
    use super::*;
    use crate::config::TransportLimits;
    use crate::service::Service;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    const IO: Duration = Duration::from_secs(5);

    async fn client(
        addr: SocketAddr,
        protocol: Option<&str>,
    ) -> Result<WebSocketStream<tokio::net::TcpStream>, tokio_tungstenite::tungstenite::Error> {
        let mut req = format!("ws://{addr}/").into_client_request().unwrap();
        if let Some(p) = protocol {
            req.headers_mut().insert(
                header::SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_str(p).unwrap(),
            );
        }
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tokio_tungstenite::client_async(req, tcp)
            .await
            .map(|(ws, _)| ws)
    }

    async fn next_text(ws: &mut WebSocketStream<tokio::net::TcpStream>) -> String {
        loop {
            match timeout(IO, ws.next()).await.expect("message in time") {
                Some(Ok(Message::Text(t))) => return t.to_string(),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a text message, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn options_answered_and_requests_routed_to_the_connection() {
        let edge = Edge::new(
            Service::for_tests(),
            Vec::new(),
            sip::Limits::default(),
            TransportLimits::default(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(accept_loop(edge.clone(), listener, None));

        // No subprotocol: refused with 400, no connection kept.
        match client(addr, Some("chat")).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status(), StatusCode::BAD_REQUEST)
            }
            other => panic!("expected 400, got {other:?}"),
        }

        let mut ws = client(addr, Some("sip")).await.expect("handshake");
        // Without Content-Length: the WebSocket message is the whole SIP message.
        let options = format!(
            "OPTIONS sip:{addr} SIP/2.0\r\nVia: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK-ws-1\r\n\
             Max-Forwards: 70\r\nFrom: <sip:probe@pbx.test>;tag=t1\r\nTo: <sip:{addr}>\r\n\
             Call-ID: ws-1@test\r\nCSeq: 1 OPTIONS\r\n\r\n"
        );
        ws.send(Message::text(options)).await.unwrap();
        let resp = next_text(&mut ws).await;
        assert!(resp.starts_with("SIP/2.0 200"), "{resp}");
        assert!(resp.contains("SIP/2.0/WS df7jal23ls0d.invalid"), "{resp}");
        assert_eq!(edge.open_connections(), 1);

        // Ping is answered by a pong.
        ws.send(Message::Ping(Bytes::from_static(b"hi")))
            .await
            .unwrap();
        match timeout(IO, ws.next()).await.unwrap() {
            Some(Ok(Message::Pong(p))) => assert_eq!(&p[..], b"hi"),
            other => panic!("expected a pong, got {other:?}"),
        }

        // A request for the phone (found by transport and address) goes out on its WebSocket as text.
        let me = ws.get_ref().local_addr().unwrap();
        let request =
            Bytes::from_static(b"OPTIONS sip:phone@x SIP/2.0\r\nContent-Length: 0\r\n\r\n");
        edge.send(Outbound {
            transport: Transport::Ws,
            dest: me,
            conn: None,
            data: request.clone(),
        });
        assert_eq!(next_text(&mut ws).await.as_bytes(), &request[..]);

        // Closing releases the slot.
        ws.close(None).await.unwrap();
        let deadline = Instant::now() + IO;
        while edge.open_connections() != 0 {
            assert!(Instant::now() < deadline, "connection slot not released");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn oversized_message_closes_the_connection() {
        let limits = sip::Limits {
            max_message_size: 1024,
            ..sip::Limits::default()
        };
        let edge = Edge::new(
            Service::for_tests(),
            Vec::new(),
            limits,
            TransportLimits::default(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(accept_loop(edge.clone(), listener, None));
        let mut ws = client(addr, Some("sip")).await.expect("handshake");
        let _ = ws.send(Message::text("x".repeat(4096))).await;
        match timeout(IO, ws.next()).await.expect("closed in time") {
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => {}
            Some(Ok(m)) => panic!("unexpected {m:?}"),
        }
    }
}
