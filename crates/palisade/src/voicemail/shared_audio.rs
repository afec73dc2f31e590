//! Voicemail audio (messages and greetings) that every node of a cluster can play (issue 17, docs/cluster.md).
//! The file under `DATA/voicemail/` stays as it always was; with the store on PostgreSQL the same WAV is also
//! written into the database (`voicemail_audio`, BYTEA) before the row that names it, and a node that lacks the
//! file (the message was left through another node) reads it from there and keeps a local copy. On SQLite (one
//! node) this is the file alone, exactly as before.

use std::path::{Path, PathBuf};

use store::Db;

use super::files;

/// Writes `samples` as the voicemail file `name`: the local file, and with PostgreSQL the database copy. On an
/// error nothing is left behind under that name.
pub async fn save(db: &Db, root: &Path, name: &str, samples: Vec<i16>) -> anyhow::Result<()> {
    let bytes = media::wav::encode(&samples);
    let (r, n) = (root.to_path_buf(), name.to_string());
    tokio::task::spawn_blocking(move || files::write_wav(&r, &n, &samples)).await??;
    if db.is_postgres()
        && let Err(e) = db.put_voicemail_audio(name, &bytes).await
    {
        let _ = files::remove(root, name);
        return Err(e.into());
    }
    Ok(())
}

/// The samples of voicemail file `name`: the local file, else (PostgreSQL) the database copy, which is then kept
/// as a local file for the next time.
pub async fn load(db: &Db, root: &Path, name: &str) -> anyhow::Result<Vec<i16>> {
    let (r, n) = (root.to_path_buf(), name.to_string());
    match tokio::task::spawn_blocking(move || files::read_wav(&r, &n)).await? {
        Ok(samples) => Ok(samples),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && db.is_postgres() => {
            let bytes = db.voicemail_audio(name).await?.ok_or_else(|| {
                anyhow::anyhow!("voicemail audio {name} is neither here nor in the database")
            })?;
            let samples = media::wav::decode(&bytes)?;
            let (r, n, s) = (root.to_path_buf(), name.to_string(), samples.clone());
            // A cache: failing to keep it only means reading the database again next time.
            if let Ok(Err(e)) =
                tokio::task::spawn_blocking(move || files::write_wav(&r, &n, &s)).await
            {
                tracing::warn!(file = name, error = %e, "cannot keep a local copy of voicemail audio");
            }
            Ok(samples)
        }
        Err(e) => Err(e.into()),
    }
}

/// The WAV bytes of voicemail file `name` (for export): the local file, else the database copy.
pub async fn wav_bytes(db: &Db, root: &Path, name: &str) -> anyhow::Result<Vec<u8>> {
    let path: PathBuf = files::resolve(root, name)
        .ok_or_else(|| anyhow::anyhow!("invalid voicemail file name {name}"))?;
    match std::fs::read(&path) {
        Ok(bytes) => Ok(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && db.is_postgres() => {
            db.voicemail_audio(name).await?.ok_or_else(|| {
                anyhow::anyhow!(
                    "voicemail audio {name} is neither in {} nor in the database",
                    path.display()
                )
            })
        }
        Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
    }
}

/// Removes voicemail file `name`: the local file and the database copy (other nodes' local copies are removed by
/// their start-up sweep, as they no longer have a row).
pub async fn remove(db: &Db, root: &Path, name: &str) {
    if let Err(e) = files::remove(root, name) {
        tracing::warn!(file = name, error = %e, "cannot remove a voicemail file");
    }
    if db.is_postgres()
        && let Err(e) = db.delete_voicemail_audio(name).await
    {
        tracing::warn!(file = name, error = %e, "cannot remove voicemail audio from the database");
    }
}
