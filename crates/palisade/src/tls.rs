//! TLS server configuration: rustls with ring, TLS 1.2 and 1.3 only. The certificate is either loaded from PEM
//! files or generated on first start (self-signed, for the domain, localhost and the loopback addresses) into
//! DATA/tls/cert.pem and DATA/tls/key.pem. The server presents it through a
//! [`ReloadingResolver`](crate::tls_reload::ReloadingResolver), so a renewed certificate is used for new
//! connections without a restart. [`describe`] reads a certificate for `palisade cert show`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, anyhow};
use rustls::crypto::CryptoProvider;
use rustls::server::ResolvesServerCert;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::TlsSource;
use crate::data_dir;
use crate::tls_reload::ReloadingResolver;

/// Builds the TLS server configuration, generating the self-signed certificate first if needed. The certificate
/// is not reloaded; the server uses [`reloading_server_config`].
pub fn server_config(
    source: &TlsSource,
    data_dir: &Path,
    domain: &str,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    Ok(reloading_server_config(source, data_dir, domain)?.0)
}

/// Builds the TLS server configuration around a [`ReloadingResolver`] (generating the self-signed certificate
/// first if needed) and returns both: give the resolver to [`crate::tls_reload::spawn_reloader`] and call
/// [`ReloadingResolver::reload`] on SIGHUP.
pub fn reloading_server_config(
    source: &TlsSource,
    data_dir: &Path,
    domain: &str,
) -> anyhow::Result<(Arc<rustls::ServerConfig>, Arc<ReloadingResolver>)> {
    let (cert_path, key_path) = cert_paths(source, data_dir, domain)?;
    let resolver = Arc::new(ReloadingResolver::load(cert_path, key_path)?);
    let config = config_with_resolver(resolver.clone())?;
    Ok((config, resolver))
}

/// The certificate and key files for `source`: the configured ones, else DATA/tls/{cert,key}.pem, generated if
/// missing.
pub fn cert_paths(
    source: &TlsSource,
    data_dir: &Path,
    domain: &str,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    match source {
        TlsSource::Files { cert, key } => Ok((cert.clone(), key.clone())),
        TlsSource::SelfSigned => ensure_self_signed(data_dir, domain),
    }
}

/// The cryptography of every TLS connection: ring.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server configuration (TLS 1.2 and 1.3 only, no client certificates) presenting what `resolver` chooses.
pub fn config_with_resolver(
    resolver: Arc<dyn ResolvesServerCert>,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    Ok(Arc::new(config))
}

/// Loads a certificate chain and its private key for serving: the PEM files must be readable, the first
/// certificate must be a well-formed X.509 certificate, and the key must be one ring can sign with and must
/// belong to that certificate.
pub fn load_certified_key(cert_path: &Path, key_path: &Path) -> anyhow::Result<Arc<CertifiedKey>> {
    let (certs, key) = load_pem(cert_path, key_path)?;
    if let Err(e) = x509_parser::parse_x509_certificate(&certs[0]) {
        return Err(anyhow!(
            "TLS certificate {} is not a valid X.509 certificate: {e}",
            cert_path.display()
        ));
    }
    let certified = CertifiedKey::from_der(certs, key, &provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => anyhow!(
            "TLS certificate {} does not match key {}",
            cert_path.display(),
            key_path.display()
        ),
        e => anyhow!(
            "TLS private key {} cannot be used with certificate {}: {e}",
            key_path.display(),
            cert_path.display()
        ),
    })?;
    Ok(Arc::new(certified))
}

/// Paths of the generated certificate and key.
pub fn self_signed_paths(data_dir: &Path) -> (PathBuf, PathBuf) {
    let dir = data_dir.join("tls");
    (dir.join("cert.pem"), dir.join("key.pem"))
}

/// Generates DATA/tls/{cert,key}.pem unless both exist.
pub fn ensure_self_signed(data_dir: &Path, domain: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
    let (cert_path, key_path) = self_signed_paths(data_dir);
    if cert_path.exists() && key_path.exists() {
        return Ok((cert_path, key_path));
    }
    if let Some(dir) = cert_path.parent() {
        data_dir::create_private_dir(dir)?;
    }
    let (cert_pem, key_pem) = generate(domain)?;
    let _ = std::fs::remove_file(&cert_path);
    let _ = std::fs::remove_file(&key_path);
    data_dir::write_new_file(&key_path, key_pem.as_bytes(), 0o600)?;
    data_dir::write_new_file(&cert_path, cert_pem.as_bytes(), 0o644)?;
    tracing::info!(cert = %cert_path.display(), domain, "generated self-signed TLS certificate");
    Ok((cert_path, key_path))
}

/// A self-signed certificate for `domain`, localhost, 127.0.0.1 and ::1: (certificate PEM, private key PEM).
pub fn generate(domain: &str) -> anyhow::Result<(String, String)> {
    let mut names = vec![domain.to_string()];
    if domain != "localhost" {
        names.push("localhost".to_string());
    }
    let mut params = rcgen::CertificateParams::new(names)
        .map_err(|e| anyhow!("cannot make a certificate for domain `{domain}`: {e}"))?;
    for ip in [
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ] {
        params.subject_alt_names.push(rcgen::SanType::IpAddress(ip));
    }
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, domain);
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "Palisade self-signed");
    let key = rcgen::KeyPair::generate().context("cannot generate a TLS key")?;
    let cert = params
        .self_signed(&key)
        .context("cannot sign the TLS certificate")?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Loads a PEM certificate chain and private key.
pub fn load_pem(
    cert: &Path,
    key: &Path,
) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow!("cannot read TLS certificate {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(anyhow!(
            "TLS certificate {} holds no CERTIFICATE block",
            cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| anyhow!("cannot read TLS private key {}: {e}", key.display()))?;
    Ok((certs, key))
}

/// What `palisade cert show` and the reload log say about a certificate. Times are unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    /// Subject alternative names as `DNS:name`, `IP:addr`, `email:…` or `URI:…`.
    pub sans: Vec<String>,
    pub not_before: i64,
    pub not_after: i64,
    /// Serial number, colon-separated hex.
    pub serial: String,
    /// SHA-256 of the DER certificate, upper-case colon-separated hex (as browsers and `openssl x509
    /// -fingerprint -sha256` show it).
    pub sha256_fingerprint: String,
    /// Issuer equals subject and the certificate's own key verifies its signature.
    pub self_signed: bool,
}

impl CertInfo {
    /// Whole days from `now` (unix seconds) to the end of validity; negative once expired.
    pub fn days_left(&self, now: i64) -> i64 {
        (self.not_after - now).div_euclid(86_400)
    }
}

/// Reads a DER certificate.
pub fn describe(der: &[u8]) -> anyhow::Result<CertInfo> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| anyhow!("not a valid X.509 certificate: {e}"))?;
    let mut sans = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        use x509_parser::extensions::GeneralName;
        for name in &ext.value.general_names {
            sans.push(match name {
                GeneralName::DNSName(n) => format!("DNS:{n}"),
                GeneralName::IPAddress(b) => match b.len() {
                    4 => format!("IP:{}", std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*b)?)),
                    16 => format!("IP:{}", std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*b)?)),
                    _ => format!("IP:{}", colon_hex(b)),
                },
                GeneralName::RFC822Name(n) => format!("email:{n}"),
                GeneralName::URI(n) => format!("URI:{n}"),
                other => format!("{other:?}"),
            });
        }
    }
    let self_signed =
        cert.subject().as_raw() == cert.issuer().as_raw() && cert.verify_signature(None).is_ok();
    Ok(CertInfo {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        sans,
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        serial: cert.raw_serial_as_string(),
        sha256_fingerprint: fingerprint_sha256(der),
        self_signed,
    })
}

/// SHA-256 of `der` as upper-case colon-separated hex.
pub fn fingerprint_sha256(der: &[u8]) -> String {
    colon_hex(&Sha256::digest(der))
}

fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_once_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        let config = server_config(&TlsSource::SelfSigned, dir.path(), "pbx.example.com").unwrap();
        assert!(!config.alpn_protocols.contains(&b"h2".to_vec()));
        let (cert, key) = self_signed_paths(dir.path());
        let first = std::fs::read(&cert).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        server_config(&TlsSource::SelfSigned, dir.path(), "pbx.example.com").unwrap();
        assert_eq!(
            std::fs::read(&cert).unwrap(),
            first,
            "reused, not regenerated"
        );
        server_config(
            &TlsSource::Files { cert, key },
            Path::new("/nonexistent"),
            "x",
        )
        .unwrap();
    }

    #[test]
    fn describes_the_generated_certificate() {
        let (cert_pem, _) = generate("pbx.example.com").unwrap();
        let der = CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap();
        let info = describe(&der).unwrap();
        assert!(info.subject.contains("CN=pbx.example.com"), "{info:?}");
        assert_eq!(info.subject, info.issuer);
        assert!(info.self_signed);
        assert_eq!(
            info.sans,
            [
                "DNS:pbx.example.com",
                "DNS:localhost",
                "IP:127.0.0.1",
                "IP:::1"
            ]
        );
        assert!(info.not_before < info.not_after);
        assert_eq!(info.sha256_fingerprint.len(), 32 * 3 - 1);
        assert_eq!(info.sha256_fingerprint, fingerprint_sha256(&der));
        assert!(
            info.sha256_fingerprint
                .bytes()
                .all(|b| b == b':' || b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
        );
        assert_eq!(info.days_left(info.not_after - 86_400 * 3 - 5), 3);
        assert_eq!(info.days_left(info.not_after + 1), -1);
        assert!(describe(b"not a certificate").is_err());
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (c1, k1) = generate("one.test").unwrap();
        let (_, k2) = generate("two.test").unwrap();
        let p = |n: &str| dir.path().join(n);
        std::fs::write(p("c1"), c1).unwrap();
        std::fs::write(p("k1"), k1).unwrap();
        std::fs::write(p("k2"), k2).unwrap();
        load_certified_key(&p("c1"), &p("k1")).unwrap();
        let e = load_certified_key(&p("c1"), &p("k2")).unwrap_err();
        assert!(e.to_string().contains("does not match"), "{e}");
        std::fs::write(
            p("bad"),
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let e = load_certified_key(&p("bad"), &p("k1")).unwrap_err();
        assert!(e.to_string().contains("not a valid X.509"), "{e}");
    }

    #[test]
    fn missing_files_name_the_path() {
        let e = load_pem(
            Path::new("/nonexistent/c.pem"),
            Path::new("/nonexistent/k.pem"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/c.pem"), "{e}");
    }
}
