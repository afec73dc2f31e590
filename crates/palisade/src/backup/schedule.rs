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
    sweep_staging(&data_dir);
    // Counted from the newest scheduled backup, so that restarts do not postpone backups for ever.
    let first = first_delay(interval, newest_age(&schedule.dir));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + first, interval);
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

/// How long until the first scheduled backup: a whole interval after none, else what is left of the interval
/// since the newest one, but never sooner than [`MIN_INTERVAL_SECS`] after start.
pub fn first_delay(interval: Duration, newest_age: Option<Duration>) -> Duration {
    let floor = Duration::from_secs(MIN_INTERVAL_SECS);
    match newest_age {
        None => interval,
        Some(age) => interval.saturating_sub(age).max(floor),
    }
}

/// The age of the newest `palisade-*.tar` in `dir`.
fn newest_age(dir: &Path) -> Option<Duration> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.starts_with(archive::SCHEDULED_PREFIX) && n.ends_with(".tar")
        })
        .filter_map(|e| e.metadata().ok()?.modified().ok()?.elapsed().ok())
        .min()
}

/// Removes staging folders a crashed backup left in DATA/backups (named `.staging-PID-…`; only those whose
/// process is gone).
fn sweep_staging(data_dir: &Path) {
    let dir = data_dir.join(store::snapshot::BACKUP_DIR);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for e in entries.filter_map(Result::ok) {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(".staging-")
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
            tracing::info!(dir = %e.path().display(), "removed a backup staging folder left by a crash");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_backup_follows_the_newest_one() {
        let day = Duration::from_secs(86_400);
        assert_eq!(first_delay(day, None), day);
        assert_eq!(
            first_delay(day, Some(Duration::from_secs(3600))),
            Duration::from_secs(82_800)
        );
        // Overdue (the server was down): soon after start, not at once.
        assert_eq!(
            first_delay(day, Some(2 * day)),
            Duration::from_secs(MIN_INTERVAL_SECS)
        );
    }

    #[test]
    fn settings_are_checked() {
        let dir = Path::new("/data");
        let s = BackupSchedule::resolve(None, dir).unwrap();
        assert_eq!(s.interval, Some(Duration::from_secs(DEFAULT_INTERVAL_SECS)));
        assert_eq!(s.keep, DEFAULT_KEEP);
        assert_eq!(s.dir, Path::new("/data/backups"));
        let off = BackupFile {
            interval_seconds: Some(0),
            ..BackupFile::default()
        };
        assert_eq!(
            BackupSchedule::resolve(Some(&off), dir).unwrap().interval,
            None
        );
        let too_short = BackupFile {
            interval_seconds: Some(5),
            ..BackupFile::default()
        };
        assert!(BackupSchedule::resolve(Some(&too_short), dir).is_err());
        let keep_none = BackupFile {
            keep: Some(0),
            ..BackupFile::default()
        };
        assert!(BackupSchedule::resolve(Some(&keep_none), dir).is_err());
        let elsewhere = BackupFile {
            dir: Some("/srv/backup".into()),
            ..BackupFile::default()
        };
        assert_eq!(
            BackupSchedule::resolve(Some(&elsewhere), dir).unwrap().dir,
            Path::new("/srv/backup")
        );
    }
}
