//! TLS server configuration: rustls with ring, TLS 1.2 and 1.3 only. The certificate is either loaded from PEM
//! files or generated on first start (self-signed, for the domain, localhost and the loopback addresses) into
//! DATA/tls/cert.pem and DATA/tls/key.pem.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, anyhow};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsSource;
use crate::data_dir;

/// Builds the TLS server configuration, generating the self-signed certificate first if needed.
pub fn server_config(
    source: &TlsSource,
    data_dir: &Path,
    domain: &str,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let (cert_path, key_path) = match source {
        TlsSource::Files { cert, key } => (cert.clone(), key.clone()),
        TlsSource::SelfSigned => ensure_self_signed(data_dir, domain)?,
    };
    let (certs, key) = load_pem(&cert_path, &key_path)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .with_context(|| {
            format!(
                "TLS certificate {} does not match key {}",
                cert_path.display(),
                key_path.display()
            )
        })?;
    Ok(Arc::new(config))
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
    fn missing_files_name_the_path() {
        let e = load_pem(
            Path::new("/nonexistent/c.pem"),
            Path::new("/nonexistent/k.pem"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/c.pem"), "{e}");
    }
}
