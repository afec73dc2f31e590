//! `palisade voicemail …`: the messages of a mailbox: list, export (copy the WAV out), delete.

use anyhow::{anyhow, bail};
use clap::{Args, Subcommand};
use serde::Serialize;

use super::time::format_ms;
use super::{CommonArgs, output, store_error};
use crate::voicemail::files;

#[derive(Debug, Args)]
pub struct VoicemailArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(subcommand)]
    pub command: VoicemailCommand,
}

#[derive(Debug, Subcommand)]
pub enum VoicemailCommand {
    /// List a mailbox's messages, oldest first.
    List {
        /// The extension number.
        number: String,
    },
    /// Copy a message's audio (8 kHz 16-bit mono WAV) to FILE.
    Export {
        number: String,
        /// The message ID (see `palisade voicemail list`).
        id: i64,
        /// Where to write the WAV file (an existing file is not overwritten).
        file: std::path::PathBuf,
    },
    /// Delete a message (its lamp on the phones goes out if it was the last new one).
    Delete { number: String, id: i64 },
}

#[derive(Debug, Serialize)]
pub struct MessageView {
    pub id: i64,
    pub caller: String,
    pub caller_name: Option<String>,
    pub received_at: String,
    pub duration_secs: f64,
    pub new: bool,
}

pub async fn run(args: VoicemailArgs) -> anyhow::Result<()> {
    let common = args.common;
    let root = files::root(&common.data_dir());
    match args.command {
        VoicemailCommand::List { number } => {
            let db = common.open().await?;
            let views = message_views(&db, &number).await;
            db.close().await;
            let views = views?;
            output::list(
                common.json,
                &views,
                &format!("No messages in mailbox {number}."),
                &["ID", "FROM", "NAME", "RECEIVED", "SECONDS", "NEW"],
                |v| {
                    vec![
                        v.id.to_string(),
                        v.caller.clone(),
                        output::opt(&v.caller_name),
                        v.received_at.clone(),
                        format!("{:.1}", v.duration_secs),
                        if v.new { "yes" } else { "no" }.into(),
                    ]
                },
            )
        }
        VoicemailCommand::Export { number, id, file } => {
            let db = common.open().await?;
            let bytes = message_wav(&db, &root, &number, id).await;
            db.close().await;
            let bytes = bytes?;
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
            if common.json {
                output::json(&serde_json::json!({ "id": id, "file": file, "bytes": bytes.len() }))
            } else {
                crate::say!(
                    "Wrote message {id} of mailbox {number} to {}.",
                    file.display()
                );
                Ok(())
            }
        }
        VoicemailCommand::Delete { number, id } => {
            let db = common.open().await?;
            let deleted = delete(&db, &root, &number, id).await;
            db.close().await;
            deleted?;
            if common.json {
                output::json(&serde_json::json!({ "deleted": id }))
            } else {
                crate::say!("Deleted message {id} of mailbox {number}.");
                Ok(())
            }
        }
    }
}

/// The messages of mailbox `number` (`palisade voicemail list`, the API and the console).
pub async fn message_views(db: &store::Db, number: &str) -> anyhow::Result<Vec<MessageView>> {
    db.get_extension(number).await.map_err(store_error)?;
    Ok(db
        .list_voicemail_messages(number)
        .await
        .map_err(store_error)?
        .into_iter()
        .map(|m| MessageView {
            id: m.id,
            caller: m.caller,
            caller_name: m.caller_name,
            received_at: format_ms(m.received_at),
            duration_secs: m.duration_ms as f64 / 1000.0,
            new: m.is_new,
        })
        .collect())
}

/// The WAV file of message `id` of mailbox `number`, checked readable (`palisade voicemail export`, the API).
pub async fn message_wav(
    db: &store::Db,
    root: &std::path::Path,
    number: &str,
    id: i64,
) -> anyhow::Result<Vec<u8>> {
    let message = db
        .voicemail_message(number, id)
        .await
        .map_err(store_error)?;
    // The local file, else (several nodes on PostgreSQL) the database's copy.
    let bytes = crate::voicemail::shared_audio::wav_bytes(db, root, &message.file)
        .await
        .map_err(|e| anyhow!("cannot read message {id}: {e}"))?;
    media::wav::decode(&bytes)
        .map_err(|e| anyhow!("message {id} is not a readable WAV file: {e}"))?;
    Ok(bytes)
}

/// Deletes message `id` of mailbox `number` and its file (`palisade voicemail delete`, the API).
pub async fn delete(
    db: &store::Db,
    root: &std::path::Path,
    number: &str,
    id: i64,
) -> anyhow::Result<()> {
    let file = db
        .delete_voicemail_message(number, id)
        .await
        .map_err(store_error)?;
    crate::voicemail::shared_audio::remove(db, root, &file).await;
    Ok(())
}
