//! Voicemail audio files under `DATA/voicemail/<mailbox>/`, written so that a crash never leaves a half-written
//! file under a name a database row points to: temporary file, fsync, rename, fsync of the directory, and only then
//! the row.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The voicemail directory inside the data directory.
pub fn root(data_dir: &Path) -> PathBuf {
    data_dir.join("voicemail")
}

/// The absolute path of a stored file name (`<mailbox>/<name>.wav`). `None` for names that could leave the
/// voicemail directory.
pub fn resolve(root: &Path, name: &str) -> Option<PathBuf> {
    let ok = !name.is_empty()
        && name.split('/').count() == 2
        && name
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != ".." && !part.contains('\\'));
    ok.then(|| root.join(name))
}

/// Writes `samples` as WAV to `root/name` durably.
pub fn write_wav(root: &Path, name: &str, samples: &[i16]) -> std::io::Result<()> {
    let path =
        resolve(root, name).ok_or_else(|| std::io::Error::other("invalid voicemail file name"))?;
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("voicemail file without a directory"))?;
    create_private_dir(dir)?;
    let tmp = path.with_extension("wav.tmp");
    let bytes = media::wav::encode(samples);
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode_private()
            .open(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// Reads a stored WAV file's samples.
pub fn read_wav(root: &Path, name: &str) -> std::io::Result<Vec<i16>> {
    let path =
        resolve(root, name).ok_or_else(|| std::io::Error::other("invalid voicemail file name"))?;
    let bytes = std::fs::read(path)?;
    media::wav::decode(&bytes).map_err(std::io::Error::other)
}

/// Removes a stored file (a missing file is not an error: the row was the truth).
pub fn remove(root: &Path, name: &str) -> std::io::Result<()> {
    let Some(path) = resolve(root, name) else {
        return Ok(());
    };
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}

/// Messages are private: files readable by the owner only.
trait PrivateMode {
    fn mode_private(&mut self) -> &mut Self;
}

impl PrivateMode for std::fs::OpenOptions {
    fn mode_private(&mut self) -> &mut Self {
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            self.mode(0o600)
        }
        #[cfg(not(unix))]
        {
            self
        }
    }
}

/// Removes files under `root` that no row names (left by a crash between the file and its row) and temporary
/// files. Returns how many were removed.
pub fn sweep(root: &Path, known: &std::collections::HashSet<String>) -> usize {
    let Ok(boxes) = std::fs::read_dir(root) else {
        return 0;
    };
    let mut removed = 0;
    for entry in boxes.flatten() {
        let Ok(files) = std::fs::read_dir(entry.path()) else {
            continue;
        };
        let mailbox = entry.file_name().to_string_lossy().into_owned();
        for f in files.flatten() {
            let name = format!("{mailbox}/{}", f.file_name().to_string_lossy());
            if !known.contains(&name) && std::fs::remove_file(f.path()).is_ok() {
                removed += 1;
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_escape_the_directory() {
        let root = Path::new("/data/voicemail");
        assert_eq!(
            resolve(root, "1001/1.wav"),
            Some(PathBuf::from("/data/voicemail/1001/1.wav"))
        );
        for bad in [
            "",
            "../x.wav",
            "1001/../../x",
            "/etc/passwd",
            "1001/./x",
            "a/b/c",
            "1001/",
        ] {
            assert_eq!(resolve(root, bad), None, "{bad}");
        }
    }

    #[test]
    fn write_read_remove_and_sweep() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        let samples: Vec<i16> = (0..800).map(|i| (i * 37 % 2000) as i16).collect();
        write_wav(root, "1001/a.wav", &samples).expect("write");
        assert_eq!(read_wav(root, "1001/a.wav").expect("read"), samples);
        write_wav(root, "1001/b.wav", &samples).expect("write");
        std::fs::write(root.join("1001/c.wav.tmp"), b"partial").expect("tmp");
        let known = std::collections::HashSet::from(["1001/a.wav".to_string()]);
        assert_eq!(sweep(root, &known), 2);
        assert!(root.join("1001/a.wav").exists());
        remove(root, "1001/a.wav").expect("remove");
        remove(root, "1001/a.wav").expect("missing is fine");
        assert!(!root.join("1001/a.wav").exists());
    }
}
