//! Outgoing TLS (to trunks): the provider's certificate is verified against a per-trunk CA file or, without one,
//! the system's trusted roots, for the name the trunk is configured with (which is also sent as SNI). TLS 1.2
//! and 1.3 only, ring, like the server side ([`crate::tls`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, anyhow};
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

pub use pbx::endpoint::TlsPeer;

/// Reads the CA certificates in a PEM file: at least one, each a well-formed X.509 certificate.
pub fn load_ca_file(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read CA file {}", path.display()))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow!("CA file {} is not valid PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(anyhow!(
            "CA file {} holds no certificate (expected PEM \"-----BEGIN CERTIFICATE-----\" blocks)",
            path.display()
        ));
    }
    for c in &certs {
        if let Err(e) = x509_parser::parse_x509_certificate(c) {
            return Err(anyhow!(
                "CA file {} holds a certificate that is not valid X.509: {e}",
                path.display()
            ));
        }
    }
    Ok(certs)
}

/// The trust anchors for `ca_file`, or the system's roots.
fn roots(ca_file: Option<&Path>) -> anyhow::Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for cert in load_ca_file(path)? {
                store
                    .add(cert)
                    .map_err(|e| anyhow!("CA file {}: {e}", path.display()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::debug!(error = %e, "system root certificate not loaded");
            }
            let (added, _ignored) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(anyhow!(
                    "no trusted root certificates found on this system (install ca-certificates, or give the \
                     trunk a CA file with `palisade trunk set NAME --ca-file PATH`)"
                ));
            }
        }
    }
    Ok(store)
}

/// Client configurations, one per CA file (and one for the system roots), built on first use and rebuilt when
/// the build failed (a CA file fixed later is picked up at the next connection).
#[derive(Default)]
pub struct TlsClients {
    configs: Mutex<HashMap<Option<PathBuf>, Arc<rustls::ClientConfig>>>,
}

impl TlsClients {
    /// The configuration and server name to connect to `peer` with.
    pub fn for_peer(
        &self,
        peer: &TlsPeer,
    ) -> anyhow::Result<(Arc<rustls::ClientConfig>, ServerName<'static>)> {
        let name = ServerName::try_from(peer.server_name.clone())
            .map_err(|e| anyhow!("invalid TLS server name '{}': {e}", peer.server_name))?;
        let mut configs = self.configs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = configs.get(&peer.ca_file) {
            return Ok((c.clone(), name));
        }
        let config = Arc::new(
            rustls::ClientConfig::builder_with_provider(crate::tls::provider())
                .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
                .context("TLS protocol versions")?
                .with_root_certificates(roots(peer.ca_file.as_deref())?)
                .with_no_client_auth(),
        );
        configs.insert(peer.ca_file.clone(), config.clone());
        Ok((config, name))
    }

    /// Forgets the built configurations (a CA file may have changed).
    pub fn clear(&self) {
        self.configs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_file_errors_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = load_ca_file(&missing).unwrap_err().to_string();
        assert!(e.contains("cannot read CA file"), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = load_ca_file(&empty).unwrap_err().to_string();
        assert!(e.contains("holds no certificate"), "{e}");
    }

    #[test]
    fn a_generated_certificate_is_a_usable_ca_file() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, _key) = crate::tls::generate("provider.test").unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, cert).unwrap();
        assert_eq!(load_ca_file(&path).unwrap().len(), 1);
        let clients = TlsClients::default();
        let peer = TlsPeer {
            server_name: "127.0.0.1".into(),
            ca_file: Some(path),
        };
        let (_config, name) = clients.for_peer(&peer).unwrap();
        assert!(matches!(name, ServerName::IpAddress(_)));
    }
}
