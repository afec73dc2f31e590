//! The backup folder as the console and the API see it: the archives in it, a backup made now, and an uploaded
//! archive taken in after [`super::restore`] itself has checked it (into a scratch directory that is removed
//! again). A running server never restores over its own data: the operator runs the printed `palisade restore`
//! command into a new directory.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use anyhow::{Context, bail};
use serde::Serialize;
use store::Db;

use super::{Summary, archive, unix_nanos};

/// The largest archive an upload may be (voicemail makes backups large; a bigger one is copied with scp and
/// restored with `palisade restore`).
pub const MAX_UPLOAD_BYTES: u64 = 4 * 1024 * 1024 * 1024;

/// Name prefixes of the archives the console and API write (never `palisade-`: those are the scheduled ones,
/// which retention prunes).
pub const MANUAL_PREFIX: &str = "manual-";
pub const UPLOADED_PREFIX: &str = "uploaded-";

/// One archive in the backup folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupInfo {
    pub name: String,
    pub bytes: u64,
    /// Unix seconds of the file's last change.
    pub modified_at: u64,
    /// scheduled, manual, uploaded or other (copied in by hand).
    pub kind: &'static str,
}

/// What kind of archive a file name says it is.
pub fn kind_of(name: &str) -> &'static str {
    if name.starts_with(archive::SCHEDULED_PREFIX) {
        "scheduled"
    } else if name.starts_with(MANUAL_PREFIX) {
        "manual"
    } else if name.starts_with(UPLOADED_PREFIX) {
        "uploaded"
    } else {
        "other"
    }
}

/// A name that may be served from the backup folder: a plain file name ending in `.tar`, not hidden (staging and
/// partial files start with a dot), with no path in it.
pub fn is_archive_name(name: &str) -> bool {
    name.len() <= 200
        && name.ends_with(".tar")
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The archive `name` in `dir`, or an error saying it is not there (the message says "does not exist", which the
/// API answers with 404).
pub fn path_of(dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    if !is_archive_name(name) || !path.is_file() {
        bail!(
            "backup {name} does not exist in {} (list them with GET /api/v1/backups or on the console's Backups page)",
            dir.display()
        );
    }
    Ok(path)
}

/// The archives in `dir`, newest first; none when it does not exist yet.
pub fn list(dir: &Path) -> anyhow::Result<Vec<BackupInfo>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
    };
    let mut out: Vec<BackupInfo> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            let meta = e.metadata().ok().filter(|m| m.is_file())?;
            is_archive_name(&name).then(|| BackupInfo {
                kind: kind_of(&name),
                bytes: meta.len(),
                modified_at: meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_secs()),
                name,
            })
        })
        .collect();
    out.sort_by(|a, b| (b.modified_at, &b.name).cmp(&(a.modified_at, &a.name)));
    Ok(out)
}

/// A new file name `PREFIX-YYYYMMDDTHHMMSSZ[-N].tar` that does not exist in `dir` yet.
fn fresh_name(dir: &Path, prefix: &str) -> anyhow::Result<String> {
    let stamp = archive::scheduled_name(unix_nanos() / 1_000_000_000);
    let stamp = stamp
        .trim_start_matches(archive::SCHEDULED_PREFIX)
        .trim_end_matches(".tar");
    for n in 1..100 {
        let name = if n == 1 {
            format!("{prefix}{stamp}.tar")
        } else {
            format!("{prefix}{stamp}-{n}.tar")
        };
        if !dir.join(&name).exists() {
            return Ok(name);
        }
    }
    bail!("too many backups this second: try again")
}

/// Backs up the running server's data now into `dir` (created if needed); the archive's name and summary.
pub async fn create_now(db: &Db, data: &Path, dir: &Path) -> anyhow::Result<(String, Summary)> {
    crate::data_dir::create_private_dir(dir)?;
    let name = fresh_name(dir, MANUAL_PREFIX)?;
    let summary = super::create_with(db, data, &dir.join(&name)).await?;
    Ok((name, summary))
}

/// An upload being written to a hidden file in the backup folder, refused past [`MAX_UPLOAD_BYTES`]. Dropped
/// without [`Upload::accept`], its file is removed.
pub struct Upload {
    dir: PathBuf,
    path: PathBuf,
    file: Option<fs::File>,
    bytes: u64,
}

impl Upload {
    pub fn start(dir: &Path) -> anyhow::Result<Upload> {
        crate::data_dir::create_private_dir(dir)?;
        let path = dir.join(format!(
            ".upload-{}-{}.partial",
            std::process::id(),
            unix_nanos()
        ));
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Upload {
            dir: dir.to_path_buf(),
            path,
            file: Some(file),
            bytes: 0,
        })
    }

    pub fn write(&mut self, chunk: &[u8]) -> anyhow::Result<()> {
        self.bytes += chunk.len() as u64;
        if self.bytes > MAX_UPLOAD_BYTES {
            bail!(
                "the upload is larger than {} GB: copy the archive to the server and run `palisade restore FILE \
                 --data NEW_DIR` there",
                MAX_UPLOAD_BYTES / 1_000_000_000
            );
        }
        match self.file.as_mut() {
            Some(f) => f.write_all(chunk).context("cannot write the upload"),
            None => bail!("the upload is already closed"),
        }
    }

    /// Checks the archive with restore's own code (manifest, every checksum, the database opens and passes
    /// SQLite's check) in a scratch directory, then keeps it as `uploaded-….tar`; its name and summary.
    pub async fn accept(mut self) -> anyhow::Result<(String, Summary)> {
        if self.bytes == 0 {
            bail!(
                "the upload is empty: choose a backup archive (.tar written by `palisade backup`)"
            );
        }
        if let Some(f) = self.file.take() {
            f.sync_all().context("cannot write the upload")?;
        }
        let scratch = self
            .dir
            .join(format!(".verify-{}-{}", std::process::id(), unix_nanos()));
        let checked = super::restore(&self.path, &scratch).await;
        let _ = fs::remove_dir_all(&scratch);
        let mut summary = checked.map_err(|e| {
            anyhow::anyhow!(
                "the uploaded file was refused: {}",
                format!("{e:#}").replace(&format!("{} ", self.path.display()), "it ")
            )
        })?;
        let name = fresh_name(&self.dir, UPLOADED_PREFIX)?;
        let kept = self.dir.join(&name);
        fs::rename(&self.path, &kept)
            .with_context(|| format!("cannot keep the upload as {}", kept.display()))?;
        summary.path = kept;
        Ok((name, summary))
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        // After accept() the file was renamed and this finds nothing.
        let _ = fs::remove_file(&self.path);
    }
}

/// The command that restores `archive` into a new data directory beside `data`.
pub fn restore_command(archive: &Path, data: &Path) -> String {
    let new_dir = match data.file_name() {
        Some(n) => data.with_file_name(format!("{}-restored", n.to_string_lossy())),
        None => PathBuf::from("palisade-data-restored"),
    };
    format!(
        "palisade restore {} --data {}",
        archive.display(),
        new_dir.display()
    )
}

/// What a backup holds, in one line for the console and the API.
pub fn describe(summary: &Summary) -> String {
    summary.describe()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_tar_names_are_served() {
        for good in [
            "palisade-20261207T192421Z.tar",
            "manual-20261207T192421Z-2.tar",
            "mine.tar",
        ] {
            assert!(is_archive_name(good), "{good}");
        }
        for bad in [
            "../palisade.db",
            "a/b.tar",
            ".upload-1-2.partial",
            ".staging.tar",
            "x.tar.partial",
            "palisade.db",
            "a b.tar",
            "",
        ] {
            assert!(!is_archive_name(bad), "{bad}");
        }
    }

    #[test]
    fn kinds_follow_the_name() {
        assert_eq!(kind_of("palisade-20261207T192421Z.tar"), "scheduled");
        assert_eq!(kind_of("manual-20261207T192421Z.tar"), "manual");
        assert_eq!(kind_of("uploaded-20261207T192421Z.tar"), "uploaded");
        assert_eq!(kind_of("mine.tar"), "other");
        // Retention prunes only the scheduled ones: a manual backup is never pruned.
        assert!(
            archive::to_prune(vec!["manual-20261207T192421Z.tar".into()], 0).is_empty(),
            "manual backups are kept"
        );
    }

    #[test]
    fn the_restore_command_names_a_new_directory() {
        assert_eq!(
            restore_command(
                Path::new("/var/lib/palisade/backups/manual-1.tar"),
                Path::new("/var/lib/palisade")
            ),
            "palisade restore /var/lib/palisade/backups/manual-1.tar --data /var/lib/palisade-restored"
        );
    }

    #[test]
    fn listing_skips_partial_and_hidden_files() {
        let dir = std::env::temp_dir().join(format!("palisade-folder-test-{}", unix_nanos()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("manual-1.tar"), b"x").unwrap();
        fs::write(dir.join(".upload-1.partial"), b"x").unwrap();
        fs::write(dir.join("notes.txt"), b"x").unwrap();
        let names: Vec<String> = list(&dir).unwrap().into_iter().map(|b| b.name).collect();
        let _ = fs::remove_dir_all(&dir);
        assert_eq!(names, ["manual-1.tar"]);
        assert!(
            list(Path::new("/nonexistent/palisade/backups"))
                .unwrap()
                .is_empty()
        );
    }
}
