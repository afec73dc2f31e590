//! Music on hold per extension: which music callers hear while the extension holds them. The audio is a WAV file
//! under `DATA/music/` the binary writes before the row that names it; no row means the default melody.

use super::{Db, Result, StoreError, begin_write, bump_version, now_ms};

/// An extension's music on hold.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", content = "file", rename_all = "lowercase")]
pub enum HoldMusicSetting {
    /// The generated default melody.
    Default,
    /// No music from Palisade: the holding phone's own audio, if any, passes.
    Off,
    /// A WAV file relative to `DATA/music/`.
    File(String),
}

impl Db {
    /// The extensions with a music setting other than the default.
    pub async fn list_hold_music(&self) -> Result<Vec<(String, HoldMusicSetting)>> {
        on_both!(self, pool, {
            let rows: Vec<(String, Option<String>)> =
                sqlx::query_as("SELECT number, file FROM music_on_hold ORDER BY number")
                    .fetch_all(pool)
                    .await?;
            Ok(rows
                .into_iter()
                .map(|(n, f)| (n, f.map_or(HoldMusicSetting::Off, HoldMusicSetting::File)))
                .collect())
        })
    }

    /// The music setting of extension `number` (which must exist).
    pub async fn hold_music(&self, number: &str) -> Result<HoldMusicSetting> {
        self.get_extension(number).await?;
        Ok(self
            .list_hold_music()
            .await?
            .into_iter()
            .find(|(n, _)| n == number)
            .map_or(HoldMusicSetting::Default, |(_, s)| s))
    }

    /// Sets extension `number`'s music; returns the file the previous setting named (for the caller to remove).
    pub async fn set_hold_music(
        &self,
        number: &str,
        setting: &HoldMusicSetting,
    ) -> Result<Option<String>> {
        let old = match self.hold_music(number).await? {
            HoldMusicSetting::File(f) => Some(f),
            _ => None,
        };
        let now = now_ms();
        on_both!(self, pool, {
            let mut tx = begin_write(pool).await?;
            match setting {
                HoldMusicSetting::Default => {
                    sqlx::query("DELETE FROM music_on_hold WHERE number = $1")
                        .bind(number)
                        .execute(&mut *tx)
                        .await?;
                }
                HoldMusicSetting::Off | HoldMusicSetting::File(_) => {
                    let file = match setting {
                        HoldMusicSetting::File(f) => Some(f.clone()),
                        _ => None,
                    };
                    sqlx::query(
                        "INSERT INTO music_on_hold (number, file, updated_at) VALUES ($1, $2, $3) \
                             ON CONFLICT (number) DO UPDATE SET file = $2, updated_at = $3",
                    )
                    .bind(number)
                    .bind(file)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| match e {
                        sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
                            StoreError::NotFound(format!("extension {number}"))
                        }
                        e => e.into(),
                    })?;
                }
            }
            bump_version(&mut tx, now).await?;
            tx.commit().await?;
            Ok(old.filter(|o| *setting != HoldMusicSetting::File(o.clone())))
        })
    }
}
