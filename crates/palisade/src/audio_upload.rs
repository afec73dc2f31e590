//! Audio an administrator uploads (music on hold, attendant greetings): read from a file and brought to the one
//! shape Palisade plays, 8 kHz 16-bit mono ([`media::convert`]).

use std::path::Path;

use anyhow::anyhow;

/// The samples of the WAV file at `path`, converted to 8 kHz mono.
pub fn read(path: &Path) -> anyhow::Result<Vec<i16>> {
    let bytes = std::fs::read(path).map_err(|e| anyhow!("cannot read {}: {e}", path.display()))?;
    convert(&bytes, &path.display().to_string())
}

/// The samples of WAV bytes uploaded through the console or the API (`what` names them in an error).
pub fn convert(bytes: &[u8], what: &str) -> anyhow::Result<Vec<i16>> {
    media::convert::to_telephone(bytes).map_err(|e| {
        anyhow!(
            "{what} is not a WAV file Palisade can convert ({e}): use PCM WAV (8 to 32 bits, mono or stereo, any \
             rate), e.g. `sox input.mp3 -r 8000 -c 1 -b 16 output.wav`"
        )
    })
}
