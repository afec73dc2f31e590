//! What a running server reports about itself: the same snapshot answers `GET /status`, is written to
//! `DATA/status.json` every few seconds (so `palisade status` works without any network listener), and feeds
//! the gauges of `/metrics`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::transport::Edge;

/// The status file's name inside the data directory.
pub const STATUS_FILE: &str = "status.json";
/// How often the server rewrites it.
pub const WRITE_INTERVAL: Duration = Duration::from_secs(5);
/// A status file older than this means the server is not running (or is stuck).
pub const STALE_AFTER: Duration = Duration::from_secs(20);

/// Facts fixed at start.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ServerInfo {
    pub pid: u32,
    pub version: String,
    /// Unix seconds.
    pub started_at: u64,
    pub domain: String,
    pub realm: String,
    pub data_dir: String,
    /// As TRANSPORT:IP:PORT.
    pub listeners: Vec<String>,
    pub metrics_listen: Option<String>,
    /// The certificate file presented on TLS/WSS listeners, if any.
    pub tls_cert: Option<PathBuf>,
}

/// The live counts.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Counts {
    pub registrations: usize,
    pub calls_active: usize,
    pub connections: usize,
    pub server_transactions: usize,
    pub client_transactions: usize,
    pub bans_auto: usize,
    pub ip_rules: usize,
    pub relay_ports_in_use: usize,
    pub relay_ports_total: usize,
}

/// The certificate's expiry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CertExpiry {
    pub file: String,
    /// Unix seconds.
    pub not_after: i64,
    pub days_left: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Snapshot {
    #[serde(flatten)]
    pub info: ServerInfo,
    /// Unix seconds.
    pub updated_at: u64,
    pub counts: Counts,
    pub certificate: Option<CertExpiry>,
}

/// Where a snapshot's live parts come from.
#[derive(Clone)]
pub struct Sources {
    pub edge: Arc<Edge>,
    pub relay: crate::media::MediaRelay,
    pub info: ServerInfo,
}

impl Sources {
    pub fn counts(&self) -> Counts {
        let (registrations, calls_active, sizes, ip_rules) = self.edge.with_service(|s| {
            let sizes = s.state_sizes();
            let ip_rules = s.guard_mut().lists().len();
            (
                s.core_mut().registration_count(),
                s.active_calls().len(),
                sizes,
                ip_rules,
            )
        });
        let total = self.relay.capacity();
        Counts {
            registrations,
            calls_active,
            connections: self.edge.open_connections(),
            server_transactions: sizes.server_transactions,
            client_transactions: sizes.client_transactions,
            bans_auto: sizes.blacklist_auto,
            ip_rules,
            relay_ports_in_use: total.saturating_sub(self.relay.available()) * 2,
            relay_ports_total: total * 2,
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        let now = unix_secs(SystemTime::now());
        Snapshot {
            info: self.info.clone(),
            updated_at: now,
            counts: self.counts(),
            certificate: self
                .info
                .tls_cert
                .as_deref()
                .and_then(|p| cert_expiry(p, now as i64)),
        }
    }
}

/// The leaf certificate's expiry; `None` when the file cannot be read.
pub fn cert_expiry(path: &Path, now: i64) -> Option<CertExpiry> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;
    let leaf = CertificateDer::pem_file_iter(path).ok()?.next()?.ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(&leaf).ok()?;
    let not_after = cert.validity().not_after.timestamp();
    Some(CertExpiry {
        file: path.display().to_string(),
        not_after,
        days_left: (not_after - now).div_euclid(86_400),
    })
}

pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Writes DATA/status.json now and every [`WRITE_INTERVAL`] until aborted; removes it when the server stops
/// (see [`remove`]).
pub async fn run_writer(sources: Sources, data_dir: PathBuf) {
    let path = data_dir.join(STATUS_FILE);
    let mut tick = tokio::time::interval(WRITE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let snapshot = sources.snapshot();
        if let Err(e) = write(&path, &snapshot) {
            tracing::warn!(file = %path.display(), error = %e, "cannot write the status file");
        }
    }
}

fn write(path: &Path, snapshot: &Snapshot) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(&serde_json::to_vec_pretty(snapshot).map_err(std::io::Error::other)?)?;
    drop(f);
    std::fs::rename(&tmp, path)
}

/// Removes the status file (at a clean stop), so `palisade status` says "stopped" at once.
pub fn remove(data_dir: &Path) {
    let _ = std::fs::remove_file(data_dir.join(STATUS_FILE));
}

/// Reads the status file, if any.
pub fn read(data_dir: &Path) -> Option<Snapshot> {
    let text = std::fs::read_to_string(data_dir.join(STATUS_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Whether the server that wrote `snapshot` still runs: its process exists and the file is fresh.
pub fn is_live(snapshot: &Snapshot, now: SystemTime) -> bool {
    let fresh = unix_secs(now).saturating_sub(snapshot.updated_at) <= STALE_AFTER.as_secs();
    fresh && Path::new(&format!("/proc/{}", snapshot.info.pid)).exists()
}
