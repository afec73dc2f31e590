//! Music on hold's edge: which samples a held caller hears, by the holding extension's setting (the store's
//! `music_on_hold`, files under `DATA/music/`), kept in memory so the relay never reads a file when a call is
//! held. A small task reloads it when the configuration version changes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use store::{Db, HoldMusicSetting};

/// Longest music file accepted (10 minutes at 8 kHz): it is held in memory.
pub const MAX_SAMPLES: usize = 10 * 60 * 8000;

/// The music directory inside the data directory.
pub fn root(data_dir: &Path) -> PathBuf {
    data_dir.join("music")
}

/// The loaded music: the default melody, and per extension with another setting its samples (`None`: off).
#[derive(Clone)]
pub struct MusicLibrary {
    inner: Arc<Mutex<Library>>,
}

struct Library {
    default: Arc<[i16]>,
    by_extension: HashMap<String, Option<Arc<[i16]>>>,
    /// Loaded files by name, so a reload reads only new ones.
    files: HashMap<String, Arc<[i16]>>,
}

impl Default for MusicLibrary {
    fn default() -> Self {
        MusicLibrary {
            inner: Arc::new(Mutex::new(Library {
                default: media::moh::default_melody().into(),
                by_extension: HashMap::new(),
                files: HashMap::new(),
            })),
        }
    }
}

impl MusicLibrary {
    fn lock(&self) -> MutexGuard<'_, Library> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What callers held by `holder` hear (`None`: a trunk's caller holding, the default); `None` when the
    /// holder turned music off.
    pub fn resolve(&self, holder: Option<&str>) -> Option<Arc<[i16]>> {
        let library = self.lock();
        match holder.and_then(|h| library.by_extension.get(h)) {
            Some(choice) => choice.clone(),
            None => Some(library.default.clone()),
        }
    }

    /// Reads the settings and any file not loaded yet. A file that cannot be read falls back to the default
    /// melody (logged): a held caller should hear something.
    pub async fn reload(&self, db: &Db, root: &Path) -> anyhow::Result<()> {
        let settings = db.list_hold_music().await?;
        let mut by_extension = HashMap::new();
        let mut files = HashMap::new();
        for (number, setting) in settings {
            let samples = match setting {
                HoldMusicSetting::Default => continue,
                HoldMusicSetting::Off => None,
                HoldMusicSetting::File(name) => {
                    let cached = self.lock().files.get(&name).cloned();
                    let samples = match cached {
                        Some(s) => Some(s),
                        None => load(root, &name).await,
                    };
                    if let Some(s) = &samples {
                        files.insert(name, s.clone());
                    }
                    match samples {
                        Some(s) => Some(s),
                        None => continue,
                    }
                }
            };
            by_extension.insert(number, samples);
        }
        let mut library = self.lock();
        library.by_extension = by_extension;
        library.files = files;
        Ok(())
    }
}

async fn load(root: &Path, name: &str) -> Option<Arc<[i16]>> {
    let (root, owned) = (root.to_path_buf(), name.to_string());
    match tokio::task::spawn_blocking(move || crate::voicemail::files::read_wav(&root, &owned))
        .await
    {
        Ok(Ok(mut samples)) => {
            samples.truncate(MAX_SAMPLES);
            Some(samples.into())
        }
        Ok(Err(e)) => {
            tracing::error!(file = name, error = %e, "cannot read a music-on-hold file; the default plays");
            None
        }
        Err(_) => None,
    }
}

/// Keeps `library` in step with the store: at start, then whenever the configuration version changes.
pub async fn run(db: Db, library: MusicLibrary, root: PathBuf) {
    let mut seen = None;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let version = match db.current_version().await {
            Ok(v) => v,
            Err(e) => {
                tracing::debug!(error = %e, "music on hold: cannot read the configuration version");
                continue;
            }
        };
        if seen == Some(version) {
            continue;
        }
        match library.reload(&db, &root).await {
            Ok(()) => seen = Some(version),
            Err(e) => {
                tracing::error!(error = %e, "cannot load the music-on-hold settings; will retry")
            }
        }
    }
}
