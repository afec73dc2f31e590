//! Scheduled backups of a running server: every `interval`, an archive `palisade-YYYYMMDDTHHMMSSZ.tar` in the
//! backup folder, keeping the newest `keep` of them (`[backup]` in palisade.toml).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::bail;
use serde::Deserialize;
use store::Db;

use super::archive;

/// Default: one backup a day.
pub const DEFAULT_INTERVAL_SECS: u64 = 86_400;
/// Default: a week of daily backups.
pub const DEFAULT_KEEP: usize = 7;
/// Shortest interval accepted (a backup copies the whole database).
pub const MIN_INTERVAL_SECS: u64 = 10;

/// `[backup]` in palisade.toml.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupFile {
    /// Seconds between scheduled backups; 0 turns them off. Default 86400 (daily).
    pub interval_seconds: Option<u64>,
    /// How many scheduled backups to keep (the oldest are deleted). Default 7.
    pub keep: Option<usize>,
    /// Where they are written. Default DATA/backups. Another disk is better: see docs/operations.md.
    pub dir: Option<PathBuf>,
}

/// Resolved schedule; `None` interval means off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSchedule {
    pub interval: Option<Duration>,
    pub keep: usize,
    pub dir: PathBuf,
}

impl BackupSchedule {
    pub fn resolve(file: Option<&BackupFile>, data_dir: &Path) -> anyhow::Result<BackupSchedule> {
        let file = file.cloned().unwrap_or_default();
        let secs = file.interval_seconds.unwrap_or(DEFAULT_INTERVAL_SECS);
        if secs != 0 && secs < MIN_INTERVAL_SECS {
            bail!(
                "[backup] interval_seconds = {secs} is too short: use 0 (off) or at least {MIN_INTERVAL_SECS} \
                 (86400 is daily)"
            );
        }
        let keep = file.keep.unwrap_or(DEFAULT_KEEP);
        if keep == 0 {
            bail!(
                "[backup] keep = 0 would delete every backup: use at least 1, or interval_seconds = 0 to turn scheduled backups off"
            );
        }
        Ok(BackupSchedule {
            interval: (secs != 0).then(|| Duration::from_secs(secs)),
            keep,
            dir: data_dir.join(
                file.dir
                    .unwrap_or_else(|| PathBuf::from(store::snapshot::BACKUP_DIR)),
            ),
        })
    }
}

/// Runs the schedule until the task is aborted. Failures are logged and retried at the next interval.
pub async fn run_scheduled(db: Db, data_dir: PathBuf, schedule: BackupSchedule) {
    let Some(interval) = schedule.interval else {
        return;
    };
    tracing::info!(every_secs = interval.as_secs(), keep = schedule.keep, dir = %schedule.dir.display(),
        "scheduled backups on");
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if let Err(e) = crate::data_dir::create_private_dir(&schedule.dir) {
            tracing::error!(error = %format!("{e:#}"), "scheduled backup failed");
            continue;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let out = schedule.dir.join(archive::scheduled_name(now));
        match super::create_with(&db, &data_dir, &out).await {
            Ok(s) => {
                tracing::info!(file = %out.display(), files = s.manifest.files.len(),
                    bytes = s.manifest.total_bytes(), "scheduled backup written");
                prune(&schedule.dir, schedule.keep);
            }
            Err(e) => tracing::error!(error = %format!("{e:#}"), "scheduled backup failed"),
        }
    }
}

fn prune(dir: &Path, keep: usize) {
    let names = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .collect(),
        Err(_) => return,
    };
    for name in archive::to_prune(names, keep) {
        match std::fs::remove_file(dir.join(&name)) {
            Ok(()) => tracing::info!(file = %name, "removed an old scheduled backup"),
            Err(e) => {
                tracing::warn!(file = %name, error = %e, "cannot remove an old scheduled backup")
            }
        }
    }
}
