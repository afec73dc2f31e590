//! End to end: starts the real `palisade serve` with `ws` and `wss` listeners on 127.0.0.1 (ports 32000–32099)
//! and talks SIP over WebSocket (RFC 7118) to it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode, header};
use tokio_tungstenite::tungstenite::{Error, Message};

const BIN: &str = env!("CARGO_BIN_EXE_palisade");
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// A running server, killed when dropped.
struct Server {
    child: Child,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `palisade serve` and waits for "palisade ready" on stdout.
    fn start(data: &Path, listen: &[String]) -> Server {
        let mut cmd = Command::new(BIN);
        // These tests run side by side and are about SIP: no web console (it would want port 8443 in each).
        cmd.arg("serve")
            .arg("--data")
            .arg(data)
            .arg("--domain")
            .arg("pbx.test")
            .arg("--admin-listen")
            .arg("off");
        for l in listen {
            cmd.arg("--listen").arg(l);
        }
        cmd.env("PALISADE_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null());
        let mut child = cmd.spawn().expect("start palisade");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                log2.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut server = Server { child, stderr: log };
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) if line == "palisade ready" => server,
            other => {
                let _ = server.child.kill();
                panic!("no ready line: {other:?}\nstderr:\n{}", server.log());
            }
        }
    }

    /// Waits (up to 5 s) until the log contains `want`.
    fn wait_log(&self, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.log().contains(want) {
            assert!(
                Instant::now() < deadline,
                "missing `{want}` in log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn options(transport: &str, target: SocketAddr, cseq: u32) -> String {
    format!(
        "OPTIONS sip:{target} SIP/2.0\r\n\
         Via: SIP/2.0/{transport} df7jal23ls0d.invalid;branch=z9hG4bK-{transport}-{cseq};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@pbx.test>;tag=t1\r\n\
         To: <sip:{target}>\r\n\
         Call-ID: call-{transport}@test\r\n\
         CSeq: {cseq} OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// The WebSocket handshake over `io` (plain TCP or TLS), offering `protocol`.
async fn handshake<S>(url: &str, io: S, protocol: Option<&str>) -> Result<WebSocketStream<S>, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut req = url.into_client_request().unwrap();
    if let Some(p) = protocol {
        req.headers_mut().insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_str(p).unwrap(),
        );
    }
    let (ws, resp) = tokio_tungstenite::client_async(req, io).await?;
    assert_eq!(
        resp.headers().get(header::SEC_WEBSOCKET_PROTOCOL),
        Some(&HeaderValue::from_static("sip")),
        "the server must agree on the sip subprotocol"
    );
    Ok(ws)
}

/// Sends one OPTIONS and returns the first text message that comes back.
async fn exchange<S>(ws: &mut WebSocketStream<S>, request: String) -> String
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    ws.send(Message::text(request)).await.expect("send");
    loop {
        match tokio::time::timeout(IO_TIMEOUT, ws.next())
            .await
            .expect("answer in time")
        {
            Some(Ok(Message::Text(t))) => return t.to_string(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a text message, got {other:?}"),
        }
    }
}

fn assert_200(resp: &str, what: &str) {
    assert!(
        resp.starts_with("SIP/2.0 200"),
        "{what}: expected 200, got:\n{resp}"
    );
}

fn tls_connector(cert_pem: &[u8]) -> tokio_rustls::TlsConnector {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(cert_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

#[tokio::test]
async fn options_over_ws_and_wss() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (ws_port, wss_port) = (32000, 32001);
    let server = Server::start(
        &data,
        &[
            format!("ws:127.0.0.1:{ws_port}"),
            format!("wss:127.0.0.1:{wss_port}"),
        ],
    );
    server.wait_log(&format!("transport=ws addr=127.0.0.1:{ws_port}"));
    server.wait_log(&format!("transport=wss addr=127.0.0.1:{wss_port}"));

    // ws: OPTIONS → 200 on the same WebSocket, twice on one connection.
    let target: SocketAddr = format!("127.0.0.1:{ws_port}").parse().unwrap();
    let url = format!("ws://{target}/");
    let tcp = tokio::net::TcpStream::connect(target).await.unwrap();
    let mut ws = handshake(&url, tcp, Some("sip"))
        .await
        .expect("ws handshake");
    for cseq in 1..=2 {
        let resp = exchange(&mut ws, options("WS", target, cseq)).await;
        assert_200(&resp, "WS");
        assert!(resp.contains(&format!("CSeq: {cseq} OPTIONS")), "{resp}");
        assert!(resp.contains("SIP/2.0/WS df7jal23ls0d.invalid"), "{resp}");
    }
    ws.close(None).await.unwrap();

    // Without the sip subprotocol the upgrade is refused with 400.
    for offered in [None, Some("chat")] {
        let tcp = tokio::net::TcpStream::connect(target).await.unwrap();
        match handshake(&url, tcp, offered).await {
            Err(Error::Http(resp)) => {
                assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{offered:?}")
            }
            other => panic!("{offered:?}: expected a refusal, got {other:?}"),
        }
    }

    // wss: TLS with the generated certificate (the one SIP over TLS uses), then OPTIONS → 200.
    let cert_pem = std::fs::read(data.join("tls/cert.pem")).unwrap();
    let target: SocketAddr = format!("127.0.0.1:{wss_port}").parse().unwrap();
    let tcp = tokio::net::TcpStream::connect(target).await.unwrap();
    let name = rustls_pki_types::ServerName::IpAddress(target.ip().into());
    let tls = tls_connector(&cert_pem)
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    let mut wss = handshake(&format!("wss://{target}/"), tls, Some("sip"))
        .await
        .expect("wss handshake");
    let resp = exchange(&mut wss, options("WSS", target, 1)).await;
    assert_200(&resp, "WSS");
    assert!(resp.contains("SIP/2.0/WSS df7jal23ls0d.invalid"), "{resp}");
    wss.close(None).await.unwrap();
}

#[tokio::test]
async fn ws_handshake_timeout_and_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("palisade.toml"),
        "[limits]\nidle_timeout_secs = 1\ntls_handshake_timeout_secs = 1\n",
    )
    .unwrap();
    let port = 32002;
    let _server = Server::start(&data, &[format!("ws:127.0.0.1:{port}")]);
    let target: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();

    // A connection that never sends its upgrade request is closed after the handshake timeout.
    let started = Instant::now();
    let mut silent = tokio::net::TcpStream::connect(target).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(
        IO_TIMEOUT,
        tokio::io::AsyncReadExt::read(&mut silent, &mut buf),
    )
    .await
    .expect("closed before the test timeout");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    assert!(started.elapsed() >= Duration::from_millis(900));

    // An upgraded but idle connection is closed after the idle timeout.
    let tcp = tokio::net::TcpStream::connect(target).await.unwrap();
    let mut ws = handshake(&format!("ws://{target}/"), tcp, Some("sip"))
        .await
        .expect("ws handshake");
    let started = Instant::now();
    loop {
        match tokio::time::timeout(IO_TIMEOUT, ws.next())
            .await
            .expect("closed before the test timeout")
        {
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
            Some(Ok(_)) => continue,
        }
    }
    assert!(started.elapsed() >= Duration::from_millis(900));
}
