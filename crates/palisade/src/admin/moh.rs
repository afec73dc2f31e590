//! `palisade moh …`: music on hold per extension — what callers hear while the extension holds them: the default
//! melody, none, or an uploaded WAV file (converted to 8 kHz mono and kept under `DATA/music/`).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail};
use clap::{Args, Subcommand};
use serde::Serialize;
use store::HoldMusicSetting;

use super::{CommonArgs, output, store_error};
use crate::voicemail::files;

#[derive(Debug, Args)]
pub struct MohArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(subcommand)]
    pub command: MohCommand,
}

#[derive(Debug, Subcommand)]
pub enum MohCommand {
    /// Set what callers hear while EXTENSION holds them: `default` (a generated melody), `off` (nothing from
    /// Palisade; the phone's own music, if any, is heard) or a WAV file (converted to 8 kHz mono; at most 10
    /// minutes, looped).
    Set {
        /// The extension number.
        number: String,
        /// `default`, `off`, or the path of a WAV file.
        music: String,
    },
    /// Show an extension's music on hold.
    Show { number: String },
    /// List the extensions whose music on hold is not the default.
    List,
}

#[derive(Debug, Serialize)]
pub struct MohView {
    pub number: String,
    pub music: String,
}

fn describe(setting: &HoldMusicSetting) -> String {
    match setting {
        HoldMusicSetting::Default => "default".into(),
        HoldMusicSetting::Off => "off".into(),
        HoldMusicSetting::File(f) => format!("file {f}"),
    }
}

pub async fn run(args: MohArgs) -> anyhow::Result<()> {
    let common = args.common;
    let root = crate::music::root(&common.data_dir());
    match args.command {
        MohCommand::Set { number, music } => {
            let db = common.open().await?;
            let result = set(&db, &root, &number, &music).await;
            db.close().await;
            let setting = result?;
            if common.json {
                output::json(&MohView {
                    number,
                    music: describe(&setting),
                })
            } else {
                crate::say!(
                    "Extension {number}'s callers on hold hear: {}.",
                    describe(&setting)
                );
                Ok(())
            }
        }
        MohCommand::Show { number } => {
            let db = common.open().await?;
            let setting = db.hold_music(&number).await.map_err(store_error);
            db.close().await;
            let view = MohView {
                music: describe(&setting?),
                number,
            };
            if common.json {
                output::json(&view)
            } else {
                crate::say!("{} {}", view.number, view.music);
                Ok(())
            }
        }
        MohCommand::List => {
            let db = common.open().await?;
            let rows = db.list_hold_music().await.map_err(store_error);
            db.close().await;
            let views: Vec<MohView> = rows?
                .into_iter()
                .map(|(number, s)| MohView {
                    number,
                    music: describe(&s),
                })
                .collect();
            output::list(
                common.json,
                &views,
                "Every extension's callers hear the default music on hold.",
                &["EXTENSION", "MUSIC"],
                |v| vec![v.number.clone(), v.music.clone()],
            )
        }
    }
}

/// Sets `number`'s music from `music` (`default`, `off` or a WAV path), copying a file into `root` first
/// (`palisade moh set`, the API).
pub async fn set(
    db: &store::Db,
    root: &Path,
    number: &str,
    music: &str,
) -> anyhow::Result<HoldMusicSetting> {
    db.get_extension(number).await.map_err(store_error)?;
    match music {
        "default" => store(db, root, number, HoldMusicSetting::Default).await,
        "off" | "none" => store(db, root, number, HoldMusicSetting::Off).await,
        path => {
            let samples = crate::audio_upload::read(&PathBuf::from(path))?;
            set_samples(db, root, number, path, samples).await
        }
    }
}

/// Sets `number`'s music to an uploaded WAV (the console, the API), converted like a file.
pub async fn set_upload(
    db: &store::Db,
    root: &Path,
    number: &str,
    wav: &[u8],
) -> anyhow::Result<HoldMusicSetting> {
    db.get_extension(number).await.map_err(store_error)?;
    let samples = crate::audio_upload::convert(wav, "the uploaded file")?;
    set_samples(db, root, number, "the uploaded file", samples).await
}

async fn set_samples(
    db: &store::Db,
    root: &Path,
    number: &str,
    what: &str,
    samples: Vec<i16>,
) -> anyhow::Result<HoldMusicSetting> {
    if samples.is_empty() {
        bail!("{what} holds no audio");
    }
    if samples.len() > crate::music::MAX_SAMPLES {
        bail!(
            "{what} is {} seconds long; music on hold may be at most {} seconds (it loops)",
            samples.len() / 8000,
            crate::music::MAX_SAMPLES / 8000
        );
    }
    let name = format!("{number}/music-{}.wav", super::time::now_ms());
    files::write_wav(root, &name, &samples)
        .map_err(|e| anyhow!("cannot store the music under {}: {e}", root.display()))?;
    store(db, root, number, HoldMusicSetting::File(name)).await
}

/// Stores `setting`, removing the file it replaces (or the new file when the store refuses).
async fn store(
    db: &store::Db,
    root: &Path,
    number: &str,
    setting: HoldMusicSetting,
) -> anyhow::Result<HoldMusicSetting> {
    let old = db.set_hold_music(number, &setting).await;
    match old {
        Ok(Some(old)) => {
            let _ = files::remove(root, &old);
        }
        Ok(None) => {}
        Err(e) => {
            if let HoldMusicSetting::File(name) = &setting {
                let _ = files::remove(root, name);
            }
            return Err(store_error(e));
        }
    }
    Ok(setting)
}

/// The extensions whose music on hold is not the default (`list`, the API, the console).
pub async fn views(db: &store::Db) -> anyhow::Result<Vec<MohView>> {
    Ok(db
        .list_hold_music()
        .await
        .map_err(store_error)?
        .into_iter()
        .map(|(number, s)| MohView {
            number,
            music: describe(&s),
        })
        .collect())
}

/// What `number`'s callers hear on hold, described.
pub async fn view(db: &store::Db, number: &str) -> anyhow::Result<MohView> {
    let setting = db.hold_music(number).await.map_err(store_error)?;
    Ok(MohView {
        number: number.to_string(),
        music: describe(&setting),
    })
}
