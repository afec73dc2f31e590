//! `palisade backup FILE` and `palisade restore FILE`, and the scheduled backups of a running server.
//!
//! A backup is consistent while calls run: the database is copied with `VACUUM INTO` (one read transaction, see
//! `store::snapshot`), then the files are hard-linked (copied when links are impossible) into a staging folder,
//! hashed, and written to the archive. Voicemail files are written under a temporary name and renamed, never
//! changed in place, so a link captures a whole file; a file newer than the snapshot has no row and is swept at
//! the restored server's first start.

pub(crate) mod archive;
pub mod folder;
mod schedule;

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow, bail};
use clap::Args;
use store::Db;

pub use archive::{FORMAT, MANIFEST, Manifest};
pub use schedule::{BackupFile, BackupSchedule, run_scheduled};

use crate::config::DEFAULT_DATA_DIR;

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The archive to write (a tar file; it must not exist yet). Keep it private: it holds password hashes and
    /// the TLS private key.
    pub file: PathBuf,
    /// Data directory (default: $PALISADE_DATA, else ./palisade-data).
    #[arg(long, value_name = "DIR", env = "PALISADE_DATA")]
    pub data: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The archive written by `palisade backup` (or a scheduled backup).
    pub file: PathBuf,
    /// Data directory to restore into: it must not exist or be empty.
    #[arg(long, value_name = "DIR", env = "PALISADE_DATA")]
    pub data: Option<PathBuf>,
}

/// What a backup or restore handled.
#[derive(Debug, Clone)]
pub struct Summary {
    pub manifest: Manifest,
    pub path: PathBuf,
}

impl Summary {
    fn describe(&self) -> String {
        let m = &self.manifest;
        let under = |dir: &str| m.files.iter().filter(|f| f.path.starts_with(dir)).count();
        let config = if m.entry(crate::config::CONFIG_FILE).is_some() {
            ", configuration"
        } else {
            ""
        };
        format!(
            "{} file(s), {:.1} MB: database (schema {}), {} voicemail file(s) and greeting(s), {} TLS file(s){config}",
            m.files.len(),
            m.total_bytes() as f64 / 1_000_000.0,
            m.schema,
            under("voicemail/"),
            under("tls/"),
        )
    }
}

pub fn main_backup(args: BackupArgs) -> ExitCode {
    let data = args.data.unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    run_blocking(async move {
        let s = create(&data, &args.file).await?;
        println!("Backed up {} to {}", s.describe(), s.path.display());
        Ok(())
    })
}

pub fn main_restore(args: RestoreArgs) -> ExitCode {
    let data = args.data.unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    run_blocking(async move {
        let s = restore(&args.file, &data).await?;
        println!(
            "Restored {} into {}. Start the server with --data {}.",
            s.describe(),
            data.display(),
            data.display()
        );
        if data.join(CONFIG_FROM_BACKUP).exists() {
            println!(
                "The configuration link {} was kept; the backup's configuration is in {} (compare and merge \
                 it by hand).",
                data.join(crate::config::CONFIG_FILE).display(),
                data.join(CONFIG_FROM_BACKUP).display()
            );
        }
        Ok(())
    })
}

fn run_blocking(f: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(f) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Backs up the data directory `data` into the new archive `out` (opening the database itself).
pub async fn create(data: &Path, out: &Path) -> anyhow::Result<Summary> {
    let db_path = data.join(store::DB_FILE);
    let db = match Db::open_existing(&db_path).await {
        Ok(db) => db,
        Err(store::StoreError::Missing(_)) => bail!(
            "no Palisade database in {}: check --data or $PALISADE_DATA",
            data.display()
        ),
        Err(e) => {
            return Err(anyhow!(
                "cannot open the database in {}: {e}",
                data.display()
            ));
        }
    };
    let result = create_with(&db, data, out).await;
    db.close().await;
    result
}

/// Backs up with an open database (the running server's, for scheduled backups).
pub async fn create_with(db: &Db, data: &Path, out: &Path) -> anyhow::Result<Summary> {
    if out.is_dir() {
        bail!(
            "{} is a directory: name the archive file, e.g. {}",
            out.display(),
            out.join("palisade-backup.tar").display()
        );
    }
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty())
        && !parent.is_dir()
    {
        bail!(
            "the directory {} does not exist: create it first (mkdir -p {})",
            parent.display(),
            parent.display()
        );
    }
    if out.exists() {
        bail!(
            "{} already exists: choose another file name (a backup never overwrites a file)",
            out.display()
        );
    }
    let staging = data.join(store::snapshot::BACKUP_DIR).join(format!(
        ".staging-{}-{}",
        std::process::id(),
        unix_nanos()
    ));
    let schema = db.schema_state().await?.applied;
    let result = async {
        db.snapshot_to(&staging.join(store::DB_FILE))
            .await
            .context("cannot copy the database")?;
        let (data, out, staging2) = (data.to_path_buf(), out.to_path_buf(), staging.clone());
        tokio::task::spawn_blocking(move || write_archive(&data, &staging2, &out, schema))
            .await
            .map_err(|e| anyhow!("backup task failed: {e}"))?
    }
    .await;
    let _ = fs::remove_dir_all(&staging);
    result
}

/// Stages the included files beside the snapshot, hashes everything, and writes the tar (temporary name, fsync,
/// rename).
fn write_archive(data: &Path, staging: &Path, out: &Path, schema: i64) -> anyhow::Result<Summary> {
    let mut relative = vec![PathBuf::from(store::DB_FILE)];
    for top in archive::INCLUDED {
        stage(data, staging, Path::new(top), &mut relative)?;
    }
    relative.sort();
    let mut files = Vec::with_capacity(relative.len());
    for rel in &relative {
        let mut hasher = archive::Hasher::default();
        let mut f = fs::File::open(staging.join(rel))
            .with_context(|| format!("cannot read staged {}", rel.display()))?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let size = hasher.size;
        files.push(archive::FileEntry {
            path: path_text(rel)?,
            size,
            sha256: hasher.finish(),
        });
    }
    let manifest = Manifest {
        format: FORMAT,
        palisade: crate::VERSION.to_string(),
        created_at: unix_nanos() / 1_000_000_000,
        schema,
        files,
    };
    let tmp = out.with_extension("tar.partial");
    let _ = fs::remove_file(&tmp);
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    let written = (|| -> anyhow::Result<()> {
        let mut tar = tar::Builder::new(file);
        tar.mode(tar::HeaderMode::Deterministic);
        let json = serde_json::to_vec_pretty(&manifest)?;
        let mut header = file_header(json.len() as u64, manifest.created_at);
        tar.append_data(&mut header, archive::MANIFEST, json.as_slice())?;
        for entry in &manifest.files {
            let f = fs::File::open(staging.join(&entry.path))?;
            let mut header = file_header(entry.size, manifest.created_at);
            tar.append_data(&mut header, &entry.path, f.take(entry.size))?;
        }
        let file = tar.into_inner()?;
        file.sync_all()?;
        Ok(())
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e.context(format!("cannot write {}", tmp.display())));
    }
    fs::rename(&tmp, out)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), out.display()))?;
    Ok(Summary {
        manifest,
        path: out.to_path_buf(),
    })
}

fn file_header(size: u64, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(0o600);
    h.set_mtime(mtime);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

/// Links (or copies) `data/rel` and everything under it into `staging/rel`, recording the files staged.
fn stage(data: &Path, staging: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let src = data.join(rel);
    // Followed: the packaged palisade.toml is a link to /etc/palisade/palisade.toml, whose content is wanted.
    let linked = fs::symlink_metadata(&src).is_ok_and(|m| m.file_type().is_symlink());
    let meta = match fs::metadata(&src) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", src.display())),
    };
    if meta.is_dir() {
        let mut entries: Vec<_> = fs::read_dir(&src)
            .with_context(|| format!("cannot list {}", src.display()))?
            .filter_map(Result::ok)
            .map(|e| rel.join(e.file_name()))
            .collect();
        entries.sort();
        for e in entries {
            stage(data, staging, &e, out)?;
        }
    } else if meta.is_file() && archive::is_backed_up(rel) {
        let dst = staging.join(rel);
        if let Some(parent) = dst.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)?;
        }
        // A hard link of a symlink would link the symlink itself: copy what it points to.
        let linked_ok = if linked {
            Err(std::io::Error::other("a symlink is copied"))
        } else {
            fs::hard_link(&src, &dst)
        };
        match linked_ok {
            Ok(()) => {}
            // A file removed since it was listed (a voicemail deleted meanwhile) is simply not in the backup.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(_) => match fs::copy(&src, &dst) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e).with_context(|| format!("cannot copy {}", src.display())),
            },
        }
        out.push(rel.to_path_buf());
    }
    Ok(())
}

fn path_text(p: &Path) -> anyhow::Result<String> {
    p.to_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("{} is not a UTF-8 path", p.display()))
}

fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Restores `archive` into `data`, which must not exist or be empty: a restore never mixes with, or overwrites,
/// a data directory in use. Every file is checked against the manifest; on any failure what was written is
/// removed again.
pub async fn restore(archive_path: &Path, data: &Path) -> anyhow::Result<Summary> {
    refuse_non_empty(data)?;
    let created = !data.exists();
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data)
        .with_context(|| format!("cannot create {}", data.display()))?;
    let (a, d) = (archive_path.to_path_buf(), data.to_path_buf());
    let extracted = tokio::task::spawn_blocking(move || extract(&a, &d))
        .await
        .map_err(|e| anyhow!("restore task failed: {e}"))
        .and_then(|r| r);
    let checked = match extracted {
        Ok(manifest) => check_database(data).await.map(|()| manifest),
        Err(e) => Err(e),
    };
    match checked {
        Ok(manifest) => Ok(Summary {
            manifest,
            path: data.to_path_buf(),
        }),
        Err(e) => {
            clear_dir(data, created);
            Err(e)
        }
    }
}

/// Refuses a data directory that holds anything (a live server's, or another installation's).
/// The packaged data directory's one entry before any data: `palisade.toml`, a link to
/// /etc/palisade/palisade.toml. A restore keeps it (and writes the backup's copy beside it).
fn is_config_link(data: &Path, name: &std::ffi::OsStr) -> bool {
    name == std::ffi::OsStr::new(crate::config::CONFIG_FILE)
        && fs::symlink_metadata(data.join(name)).is_ok_and(|m| m.file_type().is_symlink())
}

/// Where the backup's palisade.toml goes when the data directory links its configuration elsewhere.
pub const CONFIG_FROM_BACKUP: &str = "palisade.toml.from-backup";

fn refuse_non_empty(data: &Path) -> anyhow::Result<()> {
    match fs::read_dir(data) {
        Ok(entries) => {
            let mut entries = entries.filter(|e| {
                e.as_ref()
                    .map_or(true, |e| !is_config_link(data, &e.file_name()))
            });
            if let Some(first) = entries.next() {
                let name = first
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .unwrap_or_default();
                bail!(
                    "{} is not empty (it holds {name}{}): restore only into an empty or new directory. Stop the \
                     server, move the directory aside (e.g. mv {0} {0}.old), then run the restore again",
                    data.display(),
                    if data.join(store::DB_FILE).exists() {
                        ", a Palisade database"
                    } else {
                        ""
                    }
                );
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", data.display())),
    }
}

fn clear_dir(data: &Path, remove_itself: bool) {
    if remove_itself {
        let _ = fs::remove_dir_all(data);
    } else if let Ok(entries) = fs::read_dir(data) {
        for e in entries.flatten() {
            if is_config_link(data, &e.file_name()) {
                continue;
            }
            let p = e.path();
            let _ = if p.is_dir() {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
        }
    }
}

fn extract(archive_path: &Path, data: &Path) -> anyhow::Result<Manifest> {
    let file = fs::File::open(archive_path)
        .with_context(|| format!("cannot open {}", archive_path.display()))?;
    let not_ours = || {
        anyhow!(
            "{} is not a Palisade backup (it does not start with {MANIFEST})",
            archive_path.display()
        )
    };
    let mut tar = tar::Archive::new(file);
    let mut entries = tar.entries().map_err(|_| not_ours())?;
    let manifest: Manifest = {
        let mut first = entries
            .next()
            .ok_or_else(not_ours)?
            .map_err(|_| not_ours())?;
        if first.path().map_err(|_| not_ours())?.as_os_str() != MANIFEST {
            return Err(not_ours());
        }
        let mut text = String::new();
        first
            .by_ref()
            .take(1024 * 1024 * 16)
            .read_to_string(&mut text)
            .map_err(|_| not_ours())?;
        serde_json::from_str(&text)
            .with_context(|| format!("{MANIFEST} in {} is damaged", archive_path.display()))?
    };
    if manifest.format != FORMAT {
        bail!(
            "{} is a backup format {} archive; this Palisade reads format {FORMAT}: restore it with the Palisade \
             version that wrote it ({})",
            archive_path.display(),
            manifest.format,
            manifest.palisade
        );
    }
    let mut restored = std::collections::BTreeSet::new();
    for entry in entries {
        let mut entry = entry.with_context(|| format!("{} is damaged", archive_path.display()))?;
        let name = entry
            .path()
            .ok()
            .and_then(|p| p.to_str().map(str::to_string))
            .unwrap_or_default();
        if entry.header().entry_type() != tar::EntryType::Regular {
            bail!(
                "{} holds `{name}`, which is not a plain file: refused",
                archive_path.display()
            );
        }
        let (Some(rel), Some(expected)) = (archive::safe_relative(&name), manifest.entry(&name))
        else {
            bail!(
                "{} holds `{name}`, which its manifest does not list or which would land outside the data \
                 directory: refused",
                archive_path.display()
            );
        };
        // A packaged installation keeps editing /etc/palisade/palisade.toml: keep the link, put the backup's
        // copy beside it for the administrator to compare.
        let dst = if rel.as_os_str() == crate::config::CONFIG_FILE
            && is_config_link(data, rel.as_os_str())
        {
            data.join(CONFIG_FROM_BACKUP)
        } else {
            data.join(&rel)
        };
        if let Some(parent) = dst.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)?;
        }
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&dst)
            .with_context(|| format!("cannot create {}", dst.display()))?;
        let mut hasher = archive::Hasher::default();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = entry.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])?;
        }
        out.sync_all()?;
        let size = hasher.size;
        if size != expected.size || hasher.finish() != expected.sha256 {
            bail!(
                "{name} in {} does not match its checksum: the archive is damaged",
                archive_path.display()
            );
        }
        restored.insert(name);
    }
    if let Some(missing) = manifest.files.iter().find(|f| !restored.contains(&f.path)) {
        bail!(
            "{} is incomplete: {} is missing (a truncated copy?)",
            archive_path.display(),
            missing.path
        );
    }
    Ok(manifest)
}

/// Opens the restored database (which applies the migrations a backup from an older Palisade needs) and runs
/// SQLite's consistency check.
async fn check_database(data: &Path) -> anyhow::Result<()> {
    let db = Db::open_existing(&data.join(store::DB_FILE))
        .await
        .map_err(|e| anyhow!("the restored database does not open: {e}"))?;
    let check = db.quick_check().await;
    db.close().await;
    let check = check?;
    if check != "ok" {
        bail!("the restored database fails SQLite's check: {check}");
    }
    Ok(())
}
