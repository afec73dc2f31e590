//! The admin listener: network and ban checks on the transport source before anything is read, then TLS (the
//! SIP certificate, reloaded with it) or, for a client that speaks plain HTTP, a redirect to HTTPS.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use super::{AdminAccess, ClientCert, Peer, State};
use crate::tls_reload::ReloadingResolver;

/// Connections served at once on one listener; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 256;
/// Time allowed for the first byte and for the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(15);

/// An IPv4-mapped IPv6 address (from a dual-stack socket) as the IPv4 address it is.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether `ip` may reach the console at all.
pub fn allowed(networks: &[ipnet::IpNet], ip: IpAddr) -> bool {
    let ip = canonical_ip(ip);
    networks.iter().any(|n| n.contains(&ip))
}

/// Binds one admin address; an IPv6 wildcard takes IPv6 only, so 0.0.0.0 and [::] can both be bound.
pub fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let domain = if addr.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let what = || {
        format!(
            "cannot listen for the web console on {addr} (choose another with --admin-listen IP:PORT, or \
             --admin-listen off)"
        )
    };
    let socket = Socket::new(domain, Type::STREAM, Some(Protocol::TCP)).with_context(what)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true).with_context(what)?;
    }
    socket.set_reuse_address(true).with_context(what)?;
    socket.set_nonblocking(true).with_context(what)?;
    socket.bind(&addr.into()).with_context(what)?;
    socket.listen(128).with_context(what)?;
    TcpListener::from_std(socket.into()).with_context(what)
}

/// The TLS configuration of the console: the SIP certificate (same resolver, so reloads apply), HTTP/1.1; with
/// `client_certs`, an optional client certificate is requested (see [`AnyClientCert`]).
pub fn acceptor(cert: Arc<ReloadingResolver>, client_certs: bool) -> anyhow::Result<TlsAcceptor> {
    let mut config = if client_certs {
        rustls::ServerConfig::builder_with_provider(crate::tls::provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .context("TLS protocol versions")?
            .with_client_cert_verifier(Arc::new(AnyClientCert::new()))
            .with_cert_resolver(cert)
    } else {
        (*crate::tls::config_with_resolver(cert)?).clone()
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Accepts any client certificate, or none: phones present factory certificates from vendor CAs Palisade does
/// not know, so no chain is checked. What counts is that the client proves it holds the certificate's key (the
/// handshake signature is verified): the certificate's fingerprint then identifies the device, and a provisioned
/// phone bound to it cannot be impersonated by a device without that key.
#[derive(Debug)]
pub struct AnyClientCert {
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl AnyClientCert {
    pub fn new() -> AnyClientCert {
        AnyClientCert {
            algorithms: crate::tls::provider().signature_verification_algorithms,
        }
    }
}

impl Default for AnyClientCert {
    fn default() -> Self {
        Self::new()
    }
}

impl rustls::server::danger::ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        Ok(rustls::server::danger::ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

pub async fn accept_loop(
    listener: TcpListener,
    tls: TlsAcceptor,
    app: Router,
    state: State,
    networks: Arc<Vec<ipnet::IpNet>>,
    prov_networks: Arc<Vec<ipnet::IpNet>>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "web console accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Refused before a byte is read: no TLS handshake, nothing to fingerprint.
        let admin = allowed(&networks, peer.ip());
        if !admin && !allowed(&prov_networks, peer.ip()) {
            tracing::debug!(%peer, "web console: source outside admin_networks and provisioning_networks refused");
            continue;
        }
        if state.guard.is_banned(canonical_ip(peer.ip())) {
            tracing::debug!(%peer, "web console: banned source refused");
            continue;
        }
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let tls = tls.clone();
        let app = app.clone();
        tokio::spawn(async move {
            serve(stream, peer, tls, app, admin).await;
            drop(slot);
        });
    }
}

/// One connection: TLS if the first byte is a TLS handshake record, else plain HTTP answered by a redirect.
async fn serve(stream: TcpStream, peer: SocketAddr, tls: TlsAcceptor, app: Router, admin: bool) {
    let _ = stream.set_nodelay(true);
    let mut first = [0u8; 1];
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.peek(&mut first)).await {
        Ok(Ok(1)) => {}
        _ => return,
    }
    let local = stream.local_addr().ok();
    if first[0] == 0x16 {
        let Ok(Ok(tls_stream)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream)).await
        else {
            return;
        };
        let client_cert = ClientCert(
            tls_stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| crate::admin::accounts::token_hash_bytes(c.as_ref())),
        );
        let app = app
            .layer(axum::Extension(Peer(peer)))
            .layer(axum::Extension(client_cert))
            .layer(axum::Extension(AdminAccess(admin)));
        let service = TowerToHyperService::new(app);
        let _ = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .serve_connection(TokioIo::new(tls_stream), service)
            .await;
    } else {
        let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
            let res = redirect_to_https(&req, local);
            async move { Ok::<_, std::convert::Infallible>(res) }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .keep_alive(false)
            .serve_connection(TokioIo::new(stream), service)
            .await;
    }
}

/// 308 to the same host and path over HTTPS (the port is the same: HTTPS and the redirect share it).
fn redirect_to_https<B>(req: &Request<B>, local: Option<SocketAddr>) -> Response<Body> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| valid_host(h))
        .map(str::to_string)
        .or_else(|| local.map(|a| a.to_string()))
        .unwrap_or_else(|| "localhost".into());
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .filter(|p| p.starts_with('/') && !p.starts_with("//"))
        .unwrap_or("/");
    let location = format!("https://{host}{path}");
    Response::builder()
        .status(StatusCode::PERMANENT_REDIRECT)
        .header(header::LOCATION, location)
        .header(header::CONNECTION, "close")
        .body(Body::from("This console is served over HTTPS only.\n"))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

/// A Host header worth echoing into a Location: host name or address characters and an optional port.
fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 255
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_check_the_canonical_address() {
        let nets: Vec<ipnet::IpNet> =
            vec!["127.0.0.0/8".parse().unwrap(), "fc00::/7".parse().unwrap()];
        assert!(allowed(&nets, "127.0.0.1".parse().unwrap()));
        assert!(allowed(&nets, "::ffff:127.0.0.2".parse().unwrap()));
        assert!(allowed(&nets, "fd00::1".parse().unwrap()));
        assert!(!allowed(&nets, "192.0.2.1".parse().unwrap()));
        assert!(!allowed(&nets, "::ffff:192.0.2.1".parse().unwrap()));
        assert!(!allowed(&nets, "2001:db8::1".parse().unwrap()));
    }

    #[test]
    fn redirects_keep_host_and_path_and_refuse_odd_hosts() {
        let req = Request::builder()
            .uri("/calls?x=1")
            .header(header::HOST, "pbx.lan:8443")
            .body(())
            .unwrap();
        let res = redirect_to_https(&req, None);
        assert_eq!(res.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(
            res.headers()[header::LOCATION],
            "https://pbx.lan:8443/calls?x=1"
        );
        let req = Request::builder()
            .uri("/")
            .header(header::HOST, "evil.example/x")
            .body(())
            .unwrap();
        let res = redirect_to_https(&req, Some("127.0.0.1:8443".parse().unwrap()));
        assert_eq!(res.headers()[header::LOCATION], "https://127.0.0.1:8443/");
    }
}
