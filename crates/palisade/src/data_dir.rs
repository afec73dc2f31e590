//! The data directory: created on first start, private to the server's user.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::Context;

use crate::config::{CONFIG_FILE, DEFAULT_CONFIG_TOML};

/// Creates `dir` (mode 0700) and a commented default palisade.toml if they do not exist yet.
pub fn prepare(dir: &Path) -> anyhow::Result<()> {
    if !dir.is_dir() {
        create_private_dir(dir)?;
        tracing::info!(dir = %dir.display(), "created data directory");
    }
    let meta = fs::metadata(dir)
        .with_context(|| format!("cannot read data directory {}", dir.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(dir = %dir.display(), "data directory is accessible to other users; chmod 700 it");
    }
    let config = dir.join(CONFIG_FILE);
    if !config.exists() {
        write_new_file(&config, DEFAULT_CONFIG_TOML.as_bytes(), 0o600)?;
        tracing::info!(file = %config.display(), "wrote default configuration");
    }
    Ok(())
}

/// Creates a directory and its missing parents with mode 0700.
pub fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create directory {}", dir.display()))?;
    Ok(())
}

/// Writes a file that must not exist yet, with `mode`, durably (written to a temporary name, synced, renamed).
pub fn write_new_file(path: &Path, data: &[u8], mode: u32) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    fs::rename(&tmp, path)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))?;
    Ok(())
}
