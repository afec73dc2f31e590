//! `palisade recording …`: call recording per extension (always, on demand with `*1`, off), the office's settings
//! (announce recordings, retention) and the recordings (list, export, delete), like voicemail messages.

use anyhow::{anyhow, bail};
use clap::{Args, Subcommand};
use serde::Serialize;
use store::StoreError;
use store::recordings::{ANNOUNCE, RETENTION_DAYS, RecordingMode};

use super::time::format_ms;
use super::{CommonArgs, output, store_error};
use crate::voicemail::files;

#[derive(Debug, Args)]
pub struct RecordingArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(subcommand)]
    pub command: RecordingCommand,
}

#[derive(Debug, Subcommand)]
pub enum RecordingCommand {
    /// Record EXTENSION's calls: `always`, `on-demand` (its user keys *1 during a call to start and stop), or
    /// `off`.
    Set { number: String, mode: String },
    /// Show the recorded extensions and the office's settings.
    Show,
    /// Announce recordings ("This call is recorded.") to both parties when recording starts: on or off (where the
    /// law of the office's country requires it, turn it on).
    Announce { value: String },
    /// Delete recordings after DAYS days (0: keep until deleted). Checked hourly by the running server.
    Retention { days: u32 },
    /// List recordings, newest first (only EXTENSION's calls with --extension).
    List {
        #[arg(long)]
        extension: Option<String>,
    },
    /// Copy recording ID (8 kHz 16-bit mono WAV, both parties mixed) to FILE.
    Export { id: i64, file: std::path::PathBuf },
    /// Delete recording ID.
    Delete { id: i64 },
}

#[derive(Debug, Serialize)]
pub struct RecordingView {
    pub id: i64,
    pub caller: String,
    pub callee: String,
    pub started_at: String,
    pub duration_secs: f64,
    pub call_id: String,
}

fn not_found(e: StoreError) -> anyhow::Error {
    match e {
        StoreError::NotFound(what) if what.starts_with("recording ") => {
            anyhow!("{what} does not exist (see `palisade recording list`)")
        }
        e => store_error(e),
    }
}

/// The office's recording settings (`show`, the API and the console).
#[derive(Debug, Serialize)]
pub struct SettingsView {
    pub announce: String,
    pub retention_days: u32,
    /// (extension, always | on-demand)
    pub extensions: Vec<ModeView>,
}

#[derive(Debug, Serialize)]
pub struct ModeView {
    pub extension: String,
    pub mode: String,
}

pub async fn settings(db: &store::Db) -> anyhow::Result<SettingsView> {
    let modes = db.recording_modes().await?;
    let announce = db
        .get_setting(ANNOUNCE)
        .await?
        .unwrap_or_else(|| "off".into());
    let retention_days = db
        .get_setting(RETENTION_DAYS)
        .await?
        .and_then(|d| d.parse().ok())
        .unwrap_or(0);
    Ok(SettingsView {
        announce,
        retention_days,
        extensions: modes
            .into_iter()
            .map(|(n, m)| ModeView {
                extension: n,
                // As typed in the CLI and forms (stored as `on_demand`).
                mode: m.as_str().replace('_', "-"),
            })
            .collect(),
    })
}

/// Records extension `number`'s calls: `always`, `on-demand` or `off`.
pub async fn set_mode(db: &store::Db, number: &str, mode: &str) -> anyhow::Result<()> {
    let parsed = match mode {
        "off" => None,
        m => Some(
            RecordingMode::parse(m)
                .ok_or_else(|| anyhow!("recording mode {m:?}: use always, on-demand or off"))?,
        ),
    };
    db.set_recording_mode(number, parsed)
        .await
        .map_err(store_error)
}

/// Announce recordings: `on` or `off`.
pub async fn set_announce(db: &store::Db, value: &str) -> anyhow::Result<()> {
    if !matches!(value, "on" | "off") {
        bail!("announce takes on or off (got {value:?})");
    }
    db.set_setting(ANNOUNCE, value).await?;
    Ok(())
}

/// Deletes recordings after `days` days (0: keep them until deleted).
pub async fn set_retention(db: &store::Db, days: u32) -> anyhow::Result<()> {
    if days > 36_500 {
        bail!("retention of {days} days: at most 36500 (0 keeps recordings until deleted)");
    }
    db.set_setting(RETENTION_DAYS, &days.to_string()).await?;
    Ok(())
}

/// The recordings, newest first (only `extension`'s calls when given).
pub async fn views(db: &store::Db, extension: Option<&str>) -> anyhow::Result<Vec<RecordingView>> {
    Ok(db
        .list_recordings(extension)
        .await?
        .into_iter()
        .map(|r| RecordingView {
            id: r.id,
            caller: r.caller,
            callee: r.callee,
            started_at: format_ms(r.started_at),
            duration_secs: r.duration_ms as f64 / 1000.0,
            call_id: r.call_id,
        })
        .collect())
}

/// Recording `id` as WAV bytes (`root`: DATA/recordings).
pub async fn wav(db: &store::Db, root: &std::path::Path, id: i64) -> anyhow::Result<Vec<u8>> {
    let row = db.recording(id).await.map_err(not_found)?;
    let source = files::resolve(root, &row.file)
        .ok_or_else(|| anyhow!("recording {id} names an invalid file"))?;
    std::fs::read(&source)
        .map_err(|e| anyhow!("cannot read recording {id} ({}): {e}", source.display()))
}

/// Deletes recording `id` and its file.
pub async fn delete(db: &store::Db, root: &std::path::Path, id: i64) -> anyhow::Result<()> {
    let file = db.delete_recording(id).await.map_err(not_found)?;
    let _ = files::remove(root, &file);
    Ok(())
}

pub async fn run(args: RecordingArgs) -> anyhow::Result<()> {
    let common = args.common;
    let json = common.json;
    let root = crate::recording::root(&common.data_dir());
    let db = common.open().await?;
    let result = async {
        match args.command {
            RecordingCommand::Set { number, mode } => {
                set_mode(&db, &number, &mode).await?;
                if json {
                    return output::json(&serde_json::json!({ "extension": number, "mode": mode }));
                }
                crate::say!("Extension {number}'s calls: recording {mode}.");
                Ok(())
            }
            RecordingCommand::Show => {
                let view = settings(&db).await?;
                if json {
                    return output::json(&view);
                }
                crate::say!("announce        {}", view.announce);
                crate::say!(
                    "retention days  {} (0: kept until deleted)",
                    view.retention_days
                );
                if view.extensions.is_empty() {
                    crate::say!("No extension is recorded.");
                }
                for m in view.extensions {
                    crate::say!("extension {}  {}", m.extension, m.mode);
                }
                Ok(())
            }
            RecordingCommand::Announce { value } => {
                set_announce(&db, &value).await?;
                crate::say!("Recording announcement: {value}.");
                Ok(())
            }
            RecordingCommand::Retention { days } => {
                set_retention(&db, days).await?;
                crate::say!(
                    "Recordings are kept {}.",
                    if days == 0 {
                        "until deleted".to_string()
                    } else {
                        format!("{days} days")
                    }
                );
                Ok(())
            }
            RecordingCommand::List { extension } => {
                let views = views(&db, extension.as_deref()).await?;
                output::list(
                    json,
                    &views,
                    "No recordings.",
                    &["ID", "FROM", "TO", "STARTED", "SECONDS"],
                    |v| {
                        vec![
                            v.id.to_string(),
                            v.caller.clone(),
                            v.callee.clone(),
                            v.started_at.clone(),
                            format!("{:.1}", v.duration_secs),
                        ]
                    },
                )
            }
            RecordingCommand::Export { id, file } => {
                let bytes = wav(&db, &root, id).await?;
                let mut out = match std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&file)
                {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => bail!(
                        "{} exists already: choose another file name (nothing was overwritten)",
                        file.display()
                    ),
                    Err(e) => bail!("cannot create {}: {e}", file.display()),
                };
                std::io::Write::write_all(&mut out, &bytes)
                    .and_then(|()| out.sync_all())
                    .map_err(|e| anyhow!("cannot write {}: {e}", file.display()))?;
                if json {
                    return output::json(
                        &serde_json::json!({ "id": id, "file": file, "bytes": bytes.len() }),
                    );
                }
                crate::say!("Wrote recording {id} to {}.", file.display());
                Ok(())
            }
            RecordingCommand::Delete { id } => {
                delete(&db, &root, id).await?;
                if json {
                    return output::json(&serde_json::json!({ "deleted": id }));
                }
                crate::say!("Deleted recording {id}.");
                Ok(())
            }
        }
    }
    .await;
    db.close().await;
    result
}
