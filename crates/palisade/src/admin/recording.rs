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

pub async fn run(args: RecordingArgs) -> anyhow::Result<()> {
    let common = args.common;
    let json = common.json;
    let root = crate::recording::root(&common.data_dir());
    let db = common.open().await?;
    let result = async {
        match args.command {
            RecordingCommand::Set { number, mode } => {
                let parsed = match mode.as_str() {
                    "off" => None,
                    m => Some(RecordingMode::parse(m).ok_or_else(|| {
                        anyhow!("recording mode {m:?}: use always, on-demand or off")
                    })?),
                };
                db.set_recording_mode(&number, parsed).await.map_err(store_error)?;
                if json {
                    return output::json(&serde_json::json!({ "extension": number, "mode": mode }));
                }
                crate::say!("Extension {number}'s calls: recording {mode}.");
                Ok(())
            }
            RecordingCommand::Show => {
                let modes = db.recording_modes().await?;
                let announce = db.get_setting(ANNOUNCE).await?.unwrap_or_else(|| "off".into());
                let retention = db.get_setting(RETENTION_DAYS).await?.unwrap_or_else(|| "0".into());
                if json {
                    return output::json(&serde_json::json!({
                        "extensions": modes.iter().map(|(n, m)| serde_json::json!({"extension": n, "mode": m})).collect::<Vec<_>>(),
                        "announce": announce, "retention_days": retention,
                    }));
                }
                crate::say!("announce        {announce}");
                crate::say!("retention days  {retention} (0: kept until deleted)");
                if modes.is_empty() {
                    crate::say!("No extension is recorded.");
                }
                for (n, m) in modes {
                    crate::say!("extension {n}  {}", m.as_str());
                }
                Ok(())
            }
            RecordingCommand::Announce { value } => {
                if !matches!(value.as_str(), "on" | "off") {
                    bail!("announce takes on or off (got {value:?})");
                }
                db.set_setting(ANNOUNCE, &value).await?;
                crate::say!("Recording announcement: {value}.");
                Ok(())
            }
            RecordingCommand::Retention { days } => {
                if days > 36_500 {
                    bail!("retention of {days} days: at most 36500 (0 keeps recordings until deleted)");
                }
                db.set_setting(RETENTION_DAYS, &days.to_string()).await?;
                crate::say!("Recordings are kept {}.", if days == 0 { "until deleted".to_string() } else { format!("{days} days") });
                Ok(())
            }
            RecordingCommand::List { extension } => {
                let rows = db.list_recordings(extension.as_deref()).await?;
                let views: Vec<RecordingView> = rows
                    .into_iter()
                    .map(|r| RecordingView {
                        id: r.id,
                        caller: r.caller,
                        callee: r.callee,
                        started_at: format_ms(r.started_at),
                        duration_secs: r.duration_ms as f64 / 1000.0,
                        call_id: r.call_id,
                    })
                    .collect();
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
                let row = db.recording(id).await.map_err(not_found)?;
                let source = files::resolve(&root, &row.file)
                    .ok_or_else(|| anyhow!("recording {id} names an invalid file"))?;
                let bytes = std::fs::read(&source)
                    .map_err(|e| anyhow!("cannot read recording {id} ({}): {e}", source.display()))?;
                let mut out = match std::fs::OpenOptions::new().write(true).create_new(true).open(&file) {
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
                    return output::json(&serde_json::json!({ "id": id, "file": file, "bytes": bytes.len() }));
                }
                crate::say!("Wrote recording {id} to {}.", file.display());
                Ok(())
            }
            RecordingCommand::Delete { id } => {
                let file = db.delete_recording(id).await.map_err(not_found)?;
                let _ = files::remove(&root, &file);
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
