//! Certificate hot reload: the TLS server presents whatever [`ReloadingResolver`] holds, and the resolver swaps in
//! a new certificate when its PEM files change ([`spawn_reloader`] polls them every two seconds) or when asked
//! ([`ReloadingResolver::reload`], which the server calls on SIGHUP). A new certificate serves new handshakes;
//! established connections keep theirs. Files that cannot be used (unreadable, not PEM, not X.509, a key that
//! does not belong to the certificate) are refused with a logged error, and the previous certificate stays in use.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::task::JoinHandle;

use crate::tls;

/// How often [`spawn_reloader`] looks at the files.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// What identifies one version of a file: modification time, size and inode (a renamed-in or re-linked file has a
/// new inode even when the time and size repeat). `None`: the file cannot be looked at.
type FileStamp = Option<(SystemTime, u64, u64)>;

fn stamp(path: &Path) -> FileStamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino()))
}

/// A [`ResolvesServerCert`] that presents the current certificate of a pair of PEM files and can be told to
/// re-read them.
#[derive(Debug)]
pub struct ReloadingResolver {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    /// The files' stamps when last looked at by [`ReloadingResolver::reload_if_changed`] or a reload.
    seen: Mutex<(FileStamp, FileStamp)>,
    /// Serialises reloads (a SIGHUP during a poll).
    reloading: Mutex<()>,
}

impl ReloadingResolver {
    /// Loads the certificate and key; fails if they cannot be used (at start, there is no previous certificate).
    pub fn load(cert_path: PathBuf, key_path: PathBuf) -> anyhow::Result<ReloadingResolver> {
        let seen = (stamp(&cert_path), stamp(&key_path));
        let key = tls::load_certified_key(&cert_path, &key_path)?;
        log_certificate(&key, &cert_path, "TLS certificate loaded");
        Ok(ReloadingResolver {
            cert_path,
            key_path,
            current: RwLock::new(key),
            seen: Mutex::new(seen),
            reloading: Mutex::new(()),
        })
    }

    /// The certificate file.
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    /// The private key file.
    pub fn key_path(&self) -> &Path {
        &self.key_path
    }

    /// The certificate (chain and key) new handshakes get.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Re-reads the certificate and key files now (for SIGHUP). On success new handshakes present the new
    /// certificate (logged at info with its subject, expiry and fingerprint); on failure the error is logged and
    /// returned and the previous certificate stays in use. Blocking file reads of a few kilobytes.
    pub fn reload(&self) -> anyhow::Result<()> {
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|e| e.into_inner());
        // Stamps first: a change while reading is seen by the next poll.
        let seen = (stamp(&self.cert_path), stamp(&self.key_path));
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = seen;
        match tls::load_certified_key(&self.cert_path, &self.key_path) {
            Ok(key) => {
                log_certificate(&key, &self.cert_path, "TLS certificate reloaded");
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = key;
                Ok(())
            }
            Err(e) => {
                tracing::error!(
                    error = %format!("{e:#}"),
                    cert = %self.cert_path.display(),
                    key = %self.key_path.display(),
                    "TLS certificate not reloaded: the previous certificate stays in use (fix the files; they are \
                     read again when they change, or on SIGHUP)"
                );
                Err(e)
            }
        }
    }

    /// Reloads if either file changed since last looked at (or appeared or disappeared). `None`: no change.
    pub fn reload_if_changed(&self) -> Option<anyhow::Result<()>> {
        let now = (stamp(&self.cert_path), stamp(&self.key_path));
        if *self.seen.lock().unwrap_or_else(|e| e.into_inner()) == now {
            return None;
        }
        Some(self.reload())
    }
}

impl ResolvesServerCert for ReloadingResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

fn log_certificate(key: &CertifiedKey, path: &Path, what: &str) {
    let Some(info) = key.cert.first().and_then(|c| tls::describe(c).ok()) else {
        return;
    };
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let days_left = info.days_left(now);
    tracing::info!(
        cert = %path.display(),
        subject = %info.subject,
        sha256 = %info.sha256_fingerprint,
        days_left,
        self_signed = info.self_signed,
        "{what}"
    );
    if days_left < 0 {
        tracing::warn!(cert = %path.display(), "the TLS certificate has expired: phones that check it will refuse it");
    } else if info.not_before > now {
        tracing::warn!(cert = %path.display(), "the TLS certificate is not valid yet");
    }
}

/// Polls the resolver's files every [`POLL_INTERVAL`] and reloads when they change. Runs until aborted (or the
/// runtime ends); needs a Tokio runtime with time enabled.
pub fn spawn_reloader(resolver: Arc<ReloadingResolver>) -> JoinHandle<()> {
    spawn_reloader_every(resolver, POLL_INTERVAL)
}

/// [`spawn_reloader`] with another interval.
pub fn spawn_reloader_every(
    resolver: Arc<ReloadingResolver>,
    interval: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let r = resolver.clone();
            // File reads off the async workers; an error is logged by reload().
            let _ = tokio::task::spawn_blocking(move || r.reload_if_changed()).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::{CertificateDer, ServerName};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    struct Files {
        _dir: tempfile::TempDir,
        cert: PathBuf,
        key: PathBuf,
    }

    /// Writes a new self-signed certificate for `domain` (and localhost) into the files; returns its DER.
    fn write_cert(files: &Files, domain: &str) -> CertificateDer<'static> {
        let (cert, key) = tls::generate(domain).unwrap();
        // Replace by rename, as certificate tools do (and so the new files have new inodes).
        let tmp_cert = files.cert.with_extension("new");
        let tmp_key = files.key.with_extension("new");
        std::fs::write(&tmp_cert, &cert).unwrap();
        std::fs::write(&tmp_key, &key).unwrap();
        std::fs::rename(&tmp_key, &files.key).unwrap();
        std::fs::rename(&tmp_cert, &files.cert).unwrap();
        CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()
    }

    fn files() -> Files {
        let dir = tempfile::tempdir().unwrap();
        Files {
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
            _dir: dir,
        }
    }

    /// A TLS server on loopback that answers each connection's first byte with "ok"; returns its address.
    async fn serve(config: Arc<rustls::ServerConfig>) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(mut tls) = acceptor.accept(tcp).await {
                        let mut b = [0u8; 1];
                        if tls.read_exact(&mut b).await.is_ok() {
                            let _ = tls.write_all(b"ok").await;
                            let _ = tls.flush().await;
                        }
                    }
                });
            }
        });
        addr
    }

    /// Connects trusting `roots`, checks the protocol version and returns the certificate the server presented.
    async fn presented(
        addr: std::net::SocketAddr,
        roots: &[CertificateDer<'static>],
    ) -> CertificateDer<'static> {
        let mut store = rustls::RootCertStore::empty();
        for r in roots {
            store.add(r.clone()).unwrap();
        }
        let config = rustls::ClientConfig::builder_with_provider(tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(store)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut tls = connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        tls.write_all(b"?").await.unwrap();
        let mut reply = [0u8; 2];
        tls.read_exact(&mut reply).await.unwrap();
        assert_eq!(&reply, b"ok");
        let (_, conn) = tls.get_ref();
        assert!(matches!(
            conn.protocol_version(),
            Some(rustls::ProtocolVersion::TLSv1_3 | rustls::ProtocolVersion::TLSv1_2)
        ));
        conn.peer_certificates().unwrap()[0].clone()
    }

    #[tokio::test]
    async fn new_handshakes_get_the_new_certificate_and_a_broken_file_keeps_the_old() {
        let f = files();
        let old = write_cert(&f, "old.test");
        let resolver = Arc::new(ReloadingResolver::load(f.cert.clone(), f.key.clone()).unwrap());
        let addr = serve(tls::config_with_resolver(resolver.clone()).unwrap()).await;
        let both = |new: &CertificateDer<'static>| vec![old.clone(), new.clone()];
        assert_eq!(presented(addr, &both(&old)).await, old);
        assert!(resolver.reload_if_changed().is_none(), "nothing changed");

        // Replaced files: served after reload(), without a new server configuration.
        let new = write_cert(&f, "new.test");
        assert_eq!(presented(addr, &both(&new)).await, old, "not before reload");
        assert!(matches!(resolver.reload_if_changed(), Some(Ok(()))));
        assert_eq!(presented(addr, &both(&new)).await, new);

        // A broken certificate file is refused; the previous certificate stays.
        std::fs::write(
            &f.cert,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        assert!(resolver.reload().is_err());
        assert_eq!(presented(addr, &both(&new)).await, new);
        // Not PEM at all.
        std::fs::write(&f.cert, "garbage").unwrap();
        assert!(resolver.reload().is_err());
        // A key of another certificate.
        let other_key = tls::generate("x.test").unwrap().1;
        let good_cert = tls::generate("y.test").unwrap().0;
        std::fs::write(&f.cert, &good_cert).unwrap();
        std::fs::write(&f.key, other_key).unwrap();
        let e = resolver.reload().unwrap_err();
        assert!(e.to_string().contains("does not match"), "{e}");
        // Missing files.
        std::fs::remove_file(&f.key).unwrap();
        assert!(resolver.reload().is_err());
        assert_eq!(presented(addr, &both(&new)).await, new);
        assert_eq!(resolver.current().cert[0], new);

        // Fixed files are picked up again.
        let newer = write_cert(&f, "newer.test");
        assert!(matches!(resolver.reload_if_changed(), Some(Ok(()))));
        assert_eq!(presented(addr, &both(&newer)).await, newer);
    }

    #[tokio::test]
    async fn the_reloader_notices_changed_files() {
        let f = files();
        let old = write_cert(&f, "old.test");
        let resolver = Arc::new(ReloadingResolver::load(f.cert.clone(), f.key.clone()).unwrap());
        let addr = serve(tls::config_with_resolver(resolver.clone()).unwrap()).await;
        let task = spawn_reloader_every(resolver.clone(), Duration::from_millis(20));
        let new = write_cert(&f, "new.test");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while resolver.current().cert[0] != new {
            assert!(tokio::time::Instant::now() < deadline, "not reloaded");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(presented(addr, &[old.clone(), new.clone()]).await, new);

        // A broken file written in place is refused by the poller too.
        std::fs::write(&f.cert, "garbage").unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(resolver.current().cert[0], new);
        assert_eq!(presented(addr, &[old, new.clone()]).await, new);
        task.abort();
    }

    #[test]
    fn load_refuses_unusable_files() {
        let f = files();
        assert!(ReloadingResolver::load(f.cert.clone(), f.key.clone()).is_err());
        write_cert(&f, "a.test");
        std::fs::write(&f.key, "not a key").unwrap();
        assert!(ReloadingResolver::load(f.cert.clone(), f.key.clone()).is_err());
    }
}
