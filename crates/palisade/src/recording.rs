//! Call recording's edge: which calls are recorded (the extensions' settings, kept in memory and reloaded on each
//! configuration change), the relay's recorder handed to a task when the call ends (WAV under `DATA/recordings/`,
//! then the row), and the retention: recordings older than `recording_retention_days` are deleted hourly.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use media::g711::Law;
use media::moh::Music;
use media::recorder::{Recorder, RecordingPlan};
use pbx::calls::Answered;
use store::Db;
use store::recordings::{ANNOUNCE, RETENTION_DAYS, RecordingMode, RecordingRow};

use crate::voicemail::files;

/// The recordings directory inside the data directory.
pub fn root(data_dir: &Path) -> PathBuf {
    data_dir.join("recordings")
}

struct Settings {
    modes: HashMap<String, RecordingMode>,
    announce: bool,
    /// The in-call code that starts and stops an on-demand recording (feature `record`, `*1` by default).
    toggle: Option<[char; 2]>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            modes: HashMap::new(),
            announce: false,
            toggle: pbx::office::features::record_keys("*1"),
        }
    }
}

/// What is recorded, and where recordings go (nowhere by default: tests).
#[derive(Clone, Default)]
pub struct Recordings {
    settings: Arc<Mutex<Settings>>,
    sink: Option<(Db, PathBuf)>,
}

/// A call being recorded: what its row will say.
#[derive(Debug, Clone)]
pub struct Pending {
    pub call: Answered,
    pub started_at: i64,
}

impl Recordings {
    pub fn new(db: Db, root: PathBuf) -> Self {
        Recordings {
            settings: Arc::default(),
            sink: Some((db, root)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Settings> {
        self.settings.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The recorder and announcements for an answered call, if either party is recorded.
    pub fn plan(&self, call: &Answered) -> Option<(Recorder, [Option<Music>; 2])> {
        let settings = self.lock();
        let mode = |i: usize, number: &str| {
            call.extensions[i]
                .then(|| settings.modes.get(number).copied())
                .flatten()
        };
        let modes = [mode(0, &call.caller), mode(1, &call.callee)];
        if modes.iter().all(Option::is_none) {
            return None;
        }
        let plan = RecordingPlan {
            always: modes.contains(&Some(RecordingMode::Always)),
            on_demand: modes.map(|m| m == Some(RecordingMode::OnDemand)),
            dtmf_payload_type: call.dtmf_payload_type,
        };
        let notices = if settings.announce {
            let samples: Arc<[i16]> = media::prompts::Prompt::RecordingNotice.samples().into();
            call.payload_type.map(|pt| {
                pt.and_then(|pt| {
                    Law::from_payload_type(pt).map(|law| Music {
                        samples: samples.clone(),
                        law,
                        payload_type: pt,
                    })
                })
            })
        } else {
            [None, None]
        };
        Some((Recorder::new(plan).with_toggle(settings.toggle), notices))
    }

    /// Stores what `recorder` holds (nothing when it never recorded), off the caller's path.
    pub fn save(&self, pending: Pending, recorder: Recorder) {
        let Some((db, root)) = self.sink.clone() else {
            return;
        };
        let samples = recorder.into_samples();
        if samples.is_empty() {
            return;
        }
        tokio::spawn(async move {
            let duration_ms =
                i64::try_from(media::wav::duration_ms(samples.len())).unwrap_or(i64::MAX);
            let day = pending.started_at / 86_400_000;
            let file = format!(
                "{day}/{}-{}.wav",
                pending.started_at,
                sanitize(&pending.call.call_id)
            );
            let (r, name) = (root.clone(), file.clone());
            let written =
                tokio::task::spawn_blocking(move || files::write_wav(&r, &name, &samples)).await;
            if !matches!(written, Ok(Ok(()))) {
                tracing::error!(call_id = %pending.call.call_id, "cannot write a call recording; lost");
                return;
            }
            let row = RecordingRow {
                id: 0,
                call_id: pending.call.call_id.clone(),
                caller: pending.call.caller.clone(),
                callee: pending.call.callee.clone(),
                started_at: pending.started_at,
                duration_ms,
                file: file.clone(),
            };
            match db.add_recording(&row).await {
                Ok(id) => {
                    tracing::info!(id, duration_ms, caller = %row.caller, callee = %row.callee, "call recording saved")
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot record a call recording; file removed");
                    let _ = files::remove(&root, &file);
                }
            }
        });
    }

    async fn reload(&self, db: &Db) -> anyhow::Result<()> {
        let modes = db.recording_modes().await?.into_iter().collect();
        let announce = db.get_setting(ANNOUNCE).await?.as_deref() == Some("on");
        let code = db
            .get_setting(&pbx::office::features::setting_key("record"))
            .await?
            .unwrap_or_else(|| "*1".to_string());
        let mut s = self.lock();
        s.modes = modes;
        s.announce = announce;
        s.toggle = pbx::office::features::record_keys(&code);
        Ok(())
    }
}

/// A Call-ID as a file name part.
fn sanitize(call_id: &str) -> String {
    call_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_' || *c == '.')
        .take(64)
        .collect()
}

pub fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Deletes the recordings older than the retention setting (none without one).
pub async fn prune(db: &Db, root: &Path, now_ms: i64) -> anyhow::Result<usize> {
    let days: i64 = match db.get_setting(RETENTION_DAYS).await? {
        Some(v) => v.parse().unwrap_or(0),
        None => 0,
    };
    if days <= 0 {
        return Ok(0);
    }
    let files = db.prune_recordings(now_ms - days * 86_400_000).await?;
    for f in &files {
        let _ = files::remove(root, f);
    }
    Ok(files.len())
}

/// Keeps the settings in step with the store, and prunes old recordings every hour.
pub async fn run(db: Db, recordings: Recordings, root: PathBuf) {
    let mut seen = None;
    let mut pruned_at: Option<std::time::Instant> = None;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Ok(v) = db.current_version().await
            && seen != Some(v)
        {
            match recordings.reload(&db).await {
                Ok(()) => seen = Some(v),
                Err(e) => {
                    tracing::error!(error = %e, "cannot load the recording settings; will retry")
                }
            }
            // A retention change applies at once.
            pruned_at = None;
        }
        if pruned_at.is_none_or(|t| t.elapsed() >= Duration::from_secs(3600)) {
            pruned_at = Some(std::time::Instant::now());
            match prune(&db, &root, unix_ms()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "expired call recordings deleted"),
                Err(e) => tracing::warn!(error = %e, "cannot prune call recordings; will retry"),
            }
        }
    }
}
