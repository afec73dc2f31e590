//! Call recording: which extensions are recorded (always, or on demand with the feature code), the office-wide
//! settings (announce recordings, keep them N days), and the recordings themselves (WAV files under
//! `DATA/recordings/`, written by the binary before the row that names them).

use super::{Db, Result, StoreError, begin_write, bump_version, now_ms};

/// Setting: "on" plays "this call is recorded" to both parties when recording starts.
pub const ANNOUNCE: &str = "recording_announce";
/// Setting: recordings older than this many days are deleted (0 or absent: kept until deleted).
pub const RETENTION_DAYS: &str = "recording_retention_days";

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordingMode {
    Always,
    OnDemand,
}

impl RecordingMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingMode::Always => "always",
            RecordingMode::OnDemand => "on_demand",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "always" => Some(RecordingMode::Always),
            "on_demand" | "on-demand" => Some(RecordingMode::OnDemand),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct RecordingRow {
    pub id: i64,
    pub call_id: String,
    pub caller: String,
    pub callee: String,
    pub started_at: i64,
    pub duration_ms: i64,
    pub file: String,
}

impl Db {
    /// Sets (or with `None` clears) extension `number`'s recording.
    pub async fn set_recording_mode(
        &self,
        number: &str,
        mode: Option<RecordingMode>,
    ) -> Result<()> {
        self.get_extension(number).await?;
        let now = now_ms();
        on_both!(self, pool, {
            let mut tx = begin_write(pool).await?;
            match mode {
                None => {
                    sqlx::query("DELETE FROM recording_settings WHERE number = $1")
                        .bind(number)
                        .execute(&mut *tx)
                        .await?;
                }
                Some(m) => {
                    sqlx::query(
                        "INSERT INTO recording_settings (number, mode) VALUES ($1, $2) \
                             ON CONFLICT (number) DO UPDATE SET mode = $2",
                    )
                    .bind(number)
                    .bind(m.as_str())
                    .execute(&mut *tx)
                    .await?;
                }
            }
            bump_version(&mut tx, now).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Every extension that is recorded, with how.
    pub async fn recording_modes(&self) -> Result<Vec<(String, RecordingMode)>> {
        on_both!(self, pool, {
            let rows: Vec<(String, String)> =
                sqlx::query_as("SELECT number, mode FROM recording_settings ORDER BY number")
                    .fetch_all(pool)
                    .await?;
            Ok(rows
                .into_iter()
                .filter_map(|(n, m)| RecordingMode::parse(&m).map(|m| (n, m)))
                .collect())
        })
    }

    /// Records a recording whose file is on disk; returns its id.
    pub async fn add_recording(&self, r: &RecordingRow) -> Result<i64> {
        on_both!(
            self,
            pool,
            Ok(sqlx::query_scalar(
                "INSERT INTO recordings (call_id, caller, callee, started_at, duration_ms, file) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .bind(&r.call_id)
            .bind(&r.caller)
            .bind(&r.callee)
            .bind(r.started_at)
            .bind(r.duration_ms)
            .bind(&r.file)
            .fetch_one(pool)
            .await?)
        )
    }

    /// Recordings, newest first; only those with `number` as a party when given.
    pub async fn list_recordings(&self, number: Option<&str>) -> Result<Vec<RecordingRow>> {
        on_both!(
            self,
            pool,
            Ok(sqlx::query_as(
                "SELECT id, call_id, caller, callee, started_at, duration_ms, file FROM recordings \
                 WHERE $1 IS NULL OR caller = $1 OR callee = $1 ORDER BY started_at DESC, id DESC",
            )
            .bind(number)
            .fetch_all(pool)
            .await?)
        )
    }

    pub async fn recording(&self, id: i64) -> Result<RecordingRow> {
        on_both!(self, pool, sqlx::query_as(
                "SELECT id, call_id, caller, callee, started_at, duration_ms, file FROM recordings WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("recording {id}"))))
    }

    /// Deletes recording `id`; returns its file for the caller to remove.
    pub async fn delete_recording(&self, id: i64) -> Result<String> {
        let file = self.recording(id).await?.file;
        on_both!(self, pool, {
            sqlx::query("DELETE FROM recordings WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await?;
            Ok(file)
        })
    }

    /// Deletes the recordings started before `before` (unix ms); returns their files for the caller to remove.
    pub async fn prune_recordings(&self, before: i64) -> Result<Vec<String>> {
        on_both!(self, pool, {
            let mut tx = begin_write(pool).await?;
            let files: Vec<String> =
                sqlx::query_scalar("SELECT file FROM recordings WHERE started_at < $1")
                    .bind(before)
                    .fetch_all(&mut *tx)
                    .await?;
            sqlx::query("DELETE FROM recordings WHERE started_at < $1")
                .bind(before)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(files)
        })
    }
}
