//! The backup archive: a plain tar file, `MANIFEST.json` first (format, Palisade version, schema, and the size and
//! SHA-256 of every file), then the database snapshot and the data directory's files under their relative paths.
//! Pure helpers here (what to include, which paths are safe to restore, the manifest); I/O in [`super`].

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The manifest's name: the archive's first entry.
pub const MANIFEST: &str = "MANIFEST.json";
/// This archive layout's version; restore refuses others.
pub const FORMAT: u32 = 1;

/// Top-level entries of the data directory that a backup carries (besides the database snapshot, which is
/// written as `palisade.db`): configuration, certificates, voicemail messages and greetings, music on hold,
/// attendant greetings and call recordings.
pub const INCLUDED: [&str; 6] = [
    crate::config::CONFIG_FILE,
    "tls",
    "voicemail",
    "music",
    "attendant",
    "recordings",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// `palisade --version` of the binary that wrote it.
    pub palisade: String,
    /// Unix seconds.
    pub created_at: u64,
    /// The database schema (newest migration) of the snapshot.
    pub schema: i64,
    pub files: Vec<FileEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Relative path with `/` separators.
    pub path: String,
    pub size: u64,
    /// Lower-case hex SHA-256.
    pub sha256: String,
}

impl Manifest {
    pub fn entry(&self, path: &str) -> Option<&FileEntry> {
        self.files.iter().find(|f| f.path == path)
    }

    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// Whether a path found in the data directory belongs in a backup: `name` relative to the data directory. Skips
/// temporary files (a write in progress is not data yet).
pub fn is_backed_up(relative: &Path) -> bool {
    let Some(first) = relative.components().next() else {
        return false;
    };
    let first_ok = INCLUDED
        .iter()
        .any(|i| first.as_os_str() == std::ffi::OsStr::new(i));
    let temporary = relative
        .extension()
        .is_some_and(|e| e == "tmp" || e == "partial");
    first_ok && !temporary
}

/// The path an archive entry may be restored to: relative, made of plain names only (no `..`, no root, no
/// prefix), so an archive can never write outside the target directory. `None` for anything else.
pub fn safe_relative(name: &str) -> Option<PathBuf> {
    let path = Path::new(name);
    if name.is_empty() || name.contains('\\') {
        return None;
    }
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

/// Lower-case hex of a SHA-256 digest.
pub fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A running SHA-256 with the byte count, for hashing while copying.
#[derive(Default)]
pub struct Hasher {
    sha: Sha256,
    pub size: u64,
}

impl Hasher {
    pub fn update(&mut self, data: &[u8]) {
        self.sha.update(data);
        self.size += data.len() as u64;
    }

    pub fn finish(self) -> String {
        hex(&self.sha.finalize())
    }
}

/// Which of the scheduled backups `names` (file names `palisade-*.tar`) to delete so that the newest `keep`
/// remain. The names carry a UTC timestamp that sorts in time order.
pub fn to_prune(mut names: Vec<String>, keep: usize) -> Vec<String> {
    names.retain(|n| n.starts_with(SCHEDULED_PREFIX) && n.ends_with(".tar"));
    names.sort();
    let excess = names.len().saturating_sub(keep);
    names.truncate(excess);
    names
}

/// File-name prefix of scheduled backups (only these are pruned).
pub const SCHEDULED_PREFIX: &str = "palisade-";

/// A scheduled backup's file name for `unix_secs`: `palisade-YYYYMMDDTHHMMSSZ.tar` (UTC).
pub fn scheduled_name(unix_secs: u64) -> String {
    let days = (unix_secs / 86_400) as i64;
    let rem = unix_secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{SCHEDULED_PREFIX}{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z.tar",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day); Howard Hinnant's algorithm.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_data_and_no_temporary_files_are_backed_up() {
        assert!(is_backed_up(Path::new("voicemail/100/msg-1.wav")));
        assert!(is_backed_up(Path::new("tls/cert.pem")));
        assert!(is_backed_up(Path::new("palisade.toml")));
        assert!(!is_backed_up(Path::new("voicemail/100/msg-1.wav.tmp")));
        assert!(!is_backed_up(Path::new("backups/palisade-1.tar")));
        assert!(!is_backed_up(Path::new("palisade.db-wal")));
        assert!(
            !is_backed_up(Path::new("palisade.db")),
            "the database comes from a snapshot"
        );
    }

    #[test]
    fn restore_paths_never_leave_the_target() {
        assert_eq!(
            safe_relative("voicemail/100/a.wav"),
            Some(PathBuf::from("voicemail/100/a.wav"))
        );
        assert_eq!(
            safe_relative("./tls/key.pem"),
            Some(PathBuf::from("tls/key.pem"))
        );
        for bad in ["", "/etc/passwd", "../x", "voicemail/../../x", "a\\b", "."] {
            assert_eq!(safe_relative(bad), None, "{bad}");
        }
    }

    #[test]
    fn pruning_keeps_the_newest_scheduled_backups_only() {
        let names = vec![
            "palisade-20261203T000000Z.tar".to_string(),
            "palisade-20261201T000000Z.tar".to_string(),
            "mine.tar".to_string(),
            "palisade-20261202T000000Z.tar".to_string(),
            "pre-upgrade-schema0012-to-0015-1.db".to_string(),
        ];
        assert_eq!(
            to_prune(names.clone(), 2),
            ["palisade-20261201T000000Z.tar"]
        );
        assert!(to_prune(names.clone(), 3).is_empty());
        assert_eq!(to_prune(names, 0).len(), 3);
    }

    #[test]
    fn scheduled_names_are_utc_timestamps() {
        assert_eq!(scheduled_name(0), "palisade-19700101T000000Z.tar");
        // 2026-12-07 19:24:21 UTC
        assert_eq!(
            scheduled_name(1_796_671_461),
            "palisade-20261207T192421Z.tar"
        );
        // 2024-02-29 23:59:59 UTC (leap day)
        assert_eq!(
            scheduled_name(1_709_251_199),
            "palisade-20240229T235959Z.tar"
        );
    }
}
