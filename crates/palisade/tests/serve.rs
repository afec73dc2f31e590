//! End to end: starts the real `palisade serve` on 127.0.0.1 (ports 15060–15099) with a fresh data directory and
//! talks SIP to it over UDP, TCP and TLS.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_palisade");
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// A running server, killed when dropped.
struct Server {
    child: Child,
    stderr: Arc<std::sync::Mutex<String>>,
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
        let log = Arc::new(std::sync::Mutex::new(String::new()));
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

    fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "palisade did not exit after SIGTERM\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn options(transport: &str, local: SocketAddr, target: SocketAddr) -> String {
    format!(
        "OPTIONS sip:{target} SIP/2.0\r\n\
         Via: SIP/2.0/{transport} {local};branch=z9hG4bK-{transport}-1;rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@pbx.test>;tag=t1\r\n\
         To: <sip:{target}>\r\n\
         Call-ID: call-{transport}@test\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

fn assert_200(resp: &str, what: &str) {
    assert!(
        resp.starts_with("SIP/2.0 200"),
        "{what}: expected 200, got:\n{resp}"
    );
}

/// Reads one response (headers + Content-Length body) from a stream.
fn read_response(r: &mut impl Read) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = r.read(&mut byte).expect("read response");
        assert!(
            n == 1,
            "connection closed after {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let len = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            let name = name.trim();
            (name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("l"))
                .then(|| value.trim().parse::<usize>().ok())
                .flatten()
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).expect("read body");
    head + &String::from_utf8_lossy(&body)
}

#[test]
fn serves_options_over_udp_tcp_and_tls_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (udp_port, tcp_port, tls_port) = (15060, 15061, 15062);
    let mut server = Server::start(
        &data,
        &[
            format!("udp:127.0.0.1:{udp_port}"),
            format!("tcp:127.0.0.1:{tcp_port}"),
            format!("tls:127.0.0.1:{tls_port}"),
        ],
    );
    for want in [
        format!("transport=udp addr=127.0.0.1:{udp_port}"),
        format!("transport=tcp addr=127.0.0.1:{tcp_port}"),
        format!("transport=tls addr=127.0.0.1:{tls_port}"),
    ] {
        server.wait_log(&want);
    }

    // Data directory, private, with a generated certificate and a private key file.
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&data).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert!(data.join("palisade.toml").is_file());
    let cert_pem = std::fs::read(data.join("tls/cert.pem")).unwrap();
    assert_eq!(
        std::fs::metadata(data.join("tls/key.pem"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    // UDP
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let target: SocketAddr = format!("127.0.0.1:{udp_port}").parse().unwrap();
    udp.send_to(
        options("UDP", udp.local_addr().unwrap(), target).as_bytes(),
        target,
    )
    .unwrap();
    let mut buf = [0u8; 65535];
    let (n, from) = udp.recv_from(&mut buf).expect("UDP response");
    assert_eq!(from, target);
    let resp = String::from_utf8_lossy(&buf[..n]).to_string();
    assert_200(&resp, "UDP");
    assert!(resp.contains("Server: Palisade\r\n"), "{resp}");

    // TCP: a keep-alive ping is answered with CRLF, then OPTIONS gets its 200 on the same connection.
    let target: SocketAddr = format!("127.0.0.1:{tcp_port}").parse().unwrap();
    let mut tcp = TcpStream::connect_timeout(&target, IO_TIMEOUT).unwrap();
    tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    tcp.write_all(b"\r\n\r\n").unwrap();
    let mut pong = [0u8; 2];
    tcp.read_exact(&mut pong).expect("keep-alive pong");
    assert_eq!(&pong, b"\r\n");
    let msg = options("TCP", tcp.local_addr().unwrap(), target);
    // Sent in two pieces, to exercise framing across reads.
    tcp.write_all(&msg.as_bytes()[..40]).unwrap();
    tcp.flush().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    tcp.write_all(&msg.as_bytes()[40..]).unwrap();
    assert_200(&read_response(&mut tcp), "TCP");
    // Two pipelined requests in one write.
    let two = msg.replace("CSeq: 1", "CSeq: 2") + &msg.replace("CSeq: 1", "CSeq: 3");
    tcp.write_all(two.as_bytes()).unwrap();
    let r2 = read_response(&mut tcp);
    let r3 = read_response(&mut tcp);
    assert!(
        r2.contains("CSeq: 2 OPTIONS") && r3.contains("CSeq: 3 OPTIONS"),
        "{r2}\n{r3}"
    );

    // A message without Content-Length cannot be framed on a stream: the connection is closed.
    tcp.write_all(b"OPTIONS sip:x SIP/2.0\r\nCall-ID: y\r\n\r\n")
        .unwrap();
    let mut rest = Vec::new();
    let closed = tcp.read_to_end(&mut rest);
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?} {rest:?}");

    // TLS, verifying the generated certificate for 127.0.0.1.
    let target: SocketAddr = format!("127.0.0.1:{tls_port}").parse().unwrap();
    let resp = tls_options(target, &cert_pem);
    assert_200(&resp, "TLS");

    // SIGTERM: clean exit, promptly.
    let started = Instant::now();
    let status = server.terminate();
    assert!(status.success(), "exit status {status:?}\n{}", server.log());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
}

fn tls_options(target: SocketAddr, cert_pem: &[u8]) -> String {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, ServerName};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let io = async {
            let tcp = tokio::net::TcpStream::connect(target).await.unwrap();
            let local = tcp.local_addr().unwrap();
            let name = ServerName::IpAddress(target.ip().into());
            let mut tls = connector.connect(name, tcp).await.expect("TLS handshake");
            tls.write_all(options("TLS", local, target).as_bytes())
                .await
                .unwrap();
            tls.flush().await.unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while !String::from_utf8_lossy(&got).contains("\r\n\r\n") {
                let n = tls.read(&mut buf).await.unwrap();
                assert!(
                    n > 0,
                    "TLS connection closed: {:?}",
                    String::from_utf8_lossy(&got)
                );
                got.extend_from_slice(&buf[..n]);
            }
            String::from_utf8_lossy(&got).to_string()
        };
        tokio::time::timeout(IO_TIMEOUT, io)
            .await
            .expect("TLS exchange timed out")
    })
}

#[test]
fn unknown_config_key_is_an_error_naming_key_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("palisade.toml");
    std::fs::write(
        &file,
        "domain = \"pbx.test\"\nlisten_address = \"udp:127.0.0.1:15070\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("serve")
        .arg("--data")
        .arg(dir.path())
        .arg("--listen")
        .arg("udp:127.0.0.1:15070")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains("listen_address"), "{err}");
    assert!(err.contains(&file.display().to_string()), "{err}");
}

#[test]
fn invalid_listen_flag_says_the_expected_form() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--listen", "udp:localhost"])
        .arg("--data")
        .arg(dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("TRANSPORT:IP:PORT"), "{err}");
}

#[test]
fn connection_cap_per_ip_and_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(
        data.join("palisade.toml"),
        "[limits]\nmax_connections_per_ip = 2\nidle_timeout_secs = 1\ntls_handshake_timeout_secs = 1\n",
    )
    .unwrap();
    let (port, tls_port) = (15063, 15064);
    let mut server = Server::start(
        &data,
        &[
            format!("tcp:127.0.0.1:{port}"),
            format!("tls:127.0.0.1:{tls_port}"),
        ],
    );
    // A TLS client that never says hello is dropped after the handshake timeout.
    let tls_target: SocketAddr = format!("127.0.0.1:{tls_port}").parse().unwrap();
    let mut silent = TcpStream::connect_timeout(&tls_target, IO_TIMEOUT).unwrap();
    silent.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let started = Instant::now();
    let mut b = [0u8; 1];
    let r = silent.read(&mut b);
    assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    drop(silent);
    let target: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut conns: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect_timeout(&target, IO_TIMEOUT).unwrap())
        .collect();
    for c in &conns {
        c.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    }
    // The third is closed at once: reading gives end of stream (or a reset).
    let third = conns[2].read(&mut b);
    assert!(matches!(third, Ok(0) | Err(_)), "{third:?}");
    // The first two are served.
    conns[0].write_all(b"\r\n\r\n").unwrap();
    let mut pong = [0u8; 2];
    conns[0].read_exact(&mut pong).unwrap();
    assert_eq!(&pong, b"\r\n");
    // ... until they idle out (1 s).
    let started = Instant::now();
    let idle = conns[1].read(&mut b);
    assert!(matches!(idle, Ok(0) | Err(_)), "{idle:?}");
    assert!(started.elapsed() < Duration::from_secs(4));
    drop(conns);
    assert!(server.terminate().success());
}
