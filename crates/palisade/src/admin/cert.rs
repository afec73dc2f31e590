//! `palisade cert …`: the TLS certificate. Reads the files only (no database, no running server needed).

use std::path::{Path, PathBuf};

use anyhow::anyhow;
use clap::{Args, Subcommand};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;
use serde::Serialize;

use super::time::{format_ms, now_ms};
use super::{CommonArgs, output};
use crate::config::{CONFIG_FILE, FileConfig};
use crate::tls::{self, CertInfo};

#[derive(Debug, Args)]
pub struct CertArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(subcommand)]
    pub command: CertCommand,
}

#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Show the TLS certificate the server presents: subject, names, validity, SHA-256 fingerprint.
    ///
    /// That is tls_cert in palisade.toml if set, else the self-signed DATA/tls/cert.pem. (A --tls-cert given to
    /// `palisade serve` is not known here.) The server reads the files again when they change and on SIGHUP.
    Show,
}

/// The certificate as shown.
#[derive(Debug, Serialize)]
struct CertView {
    cert_file: String,
    key_file: String,
    /// "ok", or why the key cannot be used with the certificate.
    key_status: String,
    /// Where the paths come from: "palisade.toml" or "self-signed".
    source: &'static str,
    #[serde(flatten)]
    info: CertInfo,
    not_before_utc: String,
    not_after_utc: String,
    days_left: i64,
    expired: bool,
    /// Further certificates in the file (intermediates), if any.
    chain_length: usize,
}

pub async fn run(args: CertArgs) -> anyhow::Result<()> {
    let common = args.common;
    match args.command {
        CertCommand::Show => show(&common),
    }
}

/// The certificate and key files the server uses with this data directory, and where that comes from.
fn configured_paths(data_dir: &Path) -> anyhow::Result<(PathBuf, PathBuf, &'static str)> {
    let config_path = data_dir.join(CONFIG_FILE);
    let file = FileConfig::load(&config_path)?;
    // As in Config::resolve: paths in the file are relative to the file's directory.
    let base = config_path.parent().unwrap_or(Path::new("."));
    match (file.tls_cert, file.tls_key) {
        (Some(c), Some(k)) => Ok((base.join(c), base.join(k), "palisade.toml")),
        (None, None) => {
            let (c, k) = tls::self_signed_paths(data_dir);
            Ok((c, k, "self-signed"))
        }
        _ => Err(anyhow!(
            "invalid config file {}: tls_cert and tls_key must be given together (or neither, for a self-signed \
             certificate)",
            config_path.display()
        )),
    }
}

fn show(common: &CommonArgs) -> anyhow::Result<()> {
    let data_dir = common.data_dir();
    let (cert_path, key_path, source) = configured_paths(&data_dir)?;
    if source == "self-signed" && !cert_path.exists() {
        return Err(anyhow!(
            "no TLS certificate in {}: `palisade serve` generates a self-signed one at first start (or set \
             tls_cert and tls_key in {})",
            data_dir.display(),
            data_dir.join(CONFIG_FILE).display()
        ));
    }
    let chain = CertificateDer::pem_file_iter(&cert_path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow!("cannot read TLS certificate {}: {e}", cert_path.display()))?;
    let Some(leaf) = chain.first() else {
        return Err(anyhow!(
            "TLS certificate {} holds no CERTIFICATE block",
            cert_path.display()
        ));
    };
    let info =
        tls::describe(leaf).map_err(|e| anyhow!("TLS certificate {}: {e}", cert_path.display()))?;
    let key_status = match tls::load_certified_key(&cert_path, &key_path) {
        Ok(_) => "ok".to_string(),
        Err(e) => format!("{e:#}"),
    };
    let now = now_ms().div_euclid(1000);
    let view = CertView {
        cert_file: cert_path.display().to_string(),
        key_file: key_path.display().to_string(),
        key_status,
        source,
        not_before_utc: format_ms(info.not_before.saturating_mul(1000)),
        not_after_utc: format_ms(info.not_after.saturating_mul(1000)),
        days_left: info.days_left(now),
        expired: info.not_after < now,
        chain_length: chain.len(),
        info,
    };
    if common.json {
        return output::json(&view);
    }
    let validity = if view.expired {
        format!(
            "{} (EXPIRED {} days ago)",
            view.not_after_utc, -view.days_left
        )
    } else if view.info.not_before > now {
        format!("{} (not valid yet)", view.not_after_utc)
    } else {
        format!("{} ({} days left)", view.not_after_utc, view.days_left)
    };
    output::fields(&[
        (
            "Certificate",
            format!("{} ({})", view.cert_file, view.source),
        ),
        ("Key", format!("{} ({})", view.key_file, view.key_status)),
        ("Subject", view.info.subject.clone()),
        ("Issuer", view.info.issuer.clone()),
        (
            "Names (SAN)",
            if view.info.sans.is_empty() {
                "-".into()
            } else {
                view.info.sans.join(", ")
            },
        ),
        ("Not before", view.not_before_utc.clone()),
        ("Not after", validity),
        ("SHA-256", view.info.sha256_fingerprint.clone()),
        ("Serial", view.info.serial.clone()),
        (
            "Self-signed",
            if view.info.self_signed {
                "yes (phones must be told to trust this fingerprint)".into()
            } else {
                format!("no ({} certificates in the file)", view.chain_length)
            },
        ),
    ]);
    Ok(())
}
