//! The one WAV shape Palisade reads and writes: RIFF/WAVE, PCM, 16-bit little-endian, mono, 8000 Hz, the
//! narrowband telephone rate G.711 carries. Prompts and voicemail recordings are stored this way so that any
//! player opens them and playback needs no resampling.
//!
//! Decoding reads untrusted files (uploaded greetings, hand-edited prompts): every length is checked before it
//! is used, unknown chunks (LIST, fact, cue ...) are skipped, and anything that is not exactly this shape is an
//! error rather than a guess.

/// Samples per second of every file this module reads or writes.
pub const SAMPLE_RATE: u32 = 8000;

const PCM: u16 = 1;
/// WAVE_FORMAT_EXTENSIBLE: the same PCM samples, with the real format in a sub-format GUID.
const EXTENSIBLE: u16 = 0xfffe;
const CHANNELS: u16 = 1;
const BITS: u16 = 16;
const BLOCK_ALIGN: u16 = CHANNELS * BITS / 8;
/// The RIFF, fmt and data headers of the files [`encode`] writes.
const HEADER_LEN: usize = 44;

/// Why bytes are not an 8 kHz 16-bit mono PCM WAV file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WavError {
    #[error("not a RIFF file")]
    NotRiff,
    #[error("RIFF file is not WAVE")]
    NotWave,
    #[error("no fmt chunk")]
    NoFmt,
    #[error("no data chunk")]
    NoData,
    #[error("fmt chunk of {0} bytes is too short")]
    BadFmt(u32),
    #[error("format {0:#06x} is not PCM")]
    UnsupportedFormat(u16),
    #[error("{0} channels, not mono")]
    UnsupportedChannels(u16),
    #[error("{0} Hz, not {SAMPLE_RATE} Hz")]
    UnsupportedRate(u32),
    #[error("{0} bits per sample, not 16")]
    UnsupportedBits(u16),
    #[error("block align {0}, not 2")]
    BadBlockAlign(u16),
    #[error("{chunk} chunk says {declared} bytes but only {available} are left")]
    Truncated {
        chunk: String,
        declared: u32,
        available: usize,
    },
    #[error("data chunk of {0} bytes ends in half a sample")]
    OddData(u32),
}

/// A whole file: the 44-byte header and the samples, little-endian.
pub fn encode(samples: &[i16]) -> Vec<u8> {
    // Sizes are u32 in RIFF; a file that large (over 37 hours) is not something a PBX records, so saturate the
    // header fields rather than fail.
    let data_len = u32::try_from(samples.len() * 2).unwrap_or(u32::MAX - 36);
    let mut out = Vec::with_capacity(HEADER_LEN + samples.len() * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&data_len.saturating_add(36).to_le_bytes());
    out.extend_from_slice(b"WAVE");
    out.extend_from_slice(b"fmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&PCM.to_le_bytes());
    out.extend_from_slice(&CHANNELS.to_le_bytes());
    out.extend_from_slice(&SAMPLE_RATE.to_le_bytes());
    out.extend_from_slice(&(SAMPLE_RATE * u32::from(BLOCK_ALIGN)).to_le_bytes());
    out.extend_from_slice(&BLOCK_ALIGN.to_le_bytes());
    out.extend_from_slice(&BITS.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(i..i + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(i..i + 4)?.try_into().ok()?))
}

/// Check that a fmt chunk describes exactly 8 kHz 16-bit mono PCM.
fn check_fmt(fmt: &[u8]) -> Result<(), WavError> {
    let short = || WavError::BadFmt(u32::try_from(fmt.len()).unwrap_or(u32::MAX));
    let tag = u16_at(fmt, 0).ok_or_else(short)?;
    let channels = u16_at(fmt, 2).ok_or_else(short)?;
    let rate = u32_at(fmt, 4).ok_or_else(short)?;
    let align = u16_at(fmt, 12).ok_or_else(short)?;
    let bits = u16_at(fmt, 14).ok_or_else(short)?;
    let tag = if tag == EXTENSIBLE {
        // cbSize, valid bits, channel mask, then the GUID whose first two bytes are the real format tag.
        u16_at(fmt, 24).ok_or_else(short)?
    } else {
        tag
    };
    if tag != PCM {
        return Err(WavError::UnsupportedFormat(tag));
    }
    if channels != CHANNELS {
        return Err(WavError::UnsupportedChannels(channels));
    }
    if rate != SAMPLE_RATE {
        return Err(WavError::UnsupportedRate(rate));
    }
    if bits != BITS {
        return Err(WavError::UnsupportedBits(bits));
    }
    if align != BLOCK_ALIGN {
        return Err(WavError::BadBlockAlign(align));
    }
    Ok(())
}

/// The samples of an 8 kHz 16-bit mono PCM WAV file.
pub fn decode(bytes: &[u8]) -> Result<Vec<i16>, WavError> {
    if bytes.get(0..4) != Some(b"RIFF") {
        return Err(WavError::NotRiff);
    }
    if bytes.get(8..12) != Some(b"WAVE") {
        return Err(WavError::NotWave);
    }
    // The RIFF size bounds the chunks. Writers that never patched it (streaming: 0 or 0xffffffff) are common,
    // so a size too small to hold even "WAVE", or past the end of the bytes, just means "to the end".
    let riff_end = u32_at(bytes, 4)
        .and_then(|n| usize::try_from(n).ok())
        .filter(|&n| n >= 4)
        .and_then(|n| n.checked_add(8))
        .map_or(bytes.len(), |end| end.min(bytes.len()));
    let mut fmt_seen = false;
    let mut data = None;
    let mut at = 12;
    // A chunk header is 8 bytes; fewer trailing bytes are padding or junk, not a chunk.
    while at + 8 <= riff_end {
        let id = &bytes[at..at + 4];
        let declared = u32_at(bytes, at + 4).unwrap_or(0);
        let body_start = at + 8;
        let available = riff_end - body_start;
        let len = match usize::try_from(declared) {
            Ok(n) if n <= available => n,
            _ => {
                return Err(WavError::Truncated {
                    chunk: String::from_utf8_lossy(id).into_owned(),
                    declared,
                    available,
                });
            }
        };
        let body = &bytes[body_start..body_start + len];
        match id {
            b"fmt " => {
                check_fmt(body)?;
                fmt_seen = true;
            }
            // The first data chunk is the audio; a well-formed file has no other.
            b"data" if data.is_none() => {
                if len % 2 != 0 {
                    return Err(WavError::OddData(declared));
                }
                data = Some(body);
            }
            _ => {}
        }
        // Chunks start on even offsets: an odd-sized body is followed by one pad byte (which a careless writer
        // may leave off at the very end, so it is not required).
        at = body_start + len + len % 2;
    }
    if !fmt_seen {
        return Err(WavError::NoFmt);
    }
    let data = data.ok_or(WavError::NoData)?;
    Ok(data
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect())
}

/// How long `sample_count` samples play at [`SAMPLE_RATE`], rounded down to the millisecond.
pub fn duration_ms(sample_count: usize) -> u64 {
    // usize is at most 64 bits, so the widening cannot fail; u128 keeps the multiplication from overflowing.
    let ms = (sample_count as u128) * 1000 / u128::from(SAMPLE_RATE);
    u64::try_from(ms).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn chunk(id: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut c = id.to_vec();
        c.extend_from_slice(&(body.len() as u32).to_le_bytes());
        c.extend_from_slice(body);
        if body.len() % 2 == 1 {
            c.push(0);
        }
        c
    }

    fn fmt_body(tag: u16, channels: u16, rate: u32, bits: u16) -> Vec<u8> {
        let align = channels * bits / 8;
        let mut f = Vec::new();
        f.extend_from_slice(&tag.to_le_bytes());
        f.extend_from_slice(&channels.to_le_bytes());
        f.extend_from_slice(&rate.to_le_bytes());
        f.extend_from_slice(&(rate * u32::from(align)).to_le_bytes());
        f.extend_from_slice(&align.to_le_bytes());
        f.extend_from_slice(&bits.to_le_bytes());
        f
    }

    fn riff(chunks: &[Vec<u8>]) -> Vec<u8> {
        let body: Vec<u8> = chunks.concat();
        let mut f = b"RIFF".to_vec();
        f.extend_from_slice(&(body.len() as u32 + 4).to_le_bytes());
        f.extend_from_slice(b"WAVE");
        f.extend_from_slice(&body);
        f
    }

    fn pcm(samples: &[i16]) -> Vec<u8> {
        samples.iter().flat_map(|s| s.to_le_bytes()).collect()
    }

    #[test]
    fn encode_writes_the_canonical_header() {
        let f = encode(&[1, -2, 0x1234]);
        assert_eq!(f.len(), 44 + 6);
        let want: &[u8] = &[
            b'R', b'I', b'F', b'F', 42, 0, 0, 0, b'W', b'A', b'V', b'E', b'f', b'm', b't', b' ',
            16, 0, 0, 0, 1, 0, 1, 0, 0x40, 0x1f, 0, 0, 0x80, 0x3e, 0, 0, 2, 0, 16, 0, b'd', b'a',
            b't', b'a', 6, 0, 0, 0, 1, 0, 0xfe, 0xff, 0x34, 0x12,
        ];
        assert_eq!(f, want);
    }

    #[test]
    fn round_trips() {
        for samples in [
            vec![],
            vec![0],
            vec![i16::MIN, i16::MAX, -1, 1, 0],
            (0..8000).map(|i| (i * 7) as i16).collect(),
        ] {
            assert_eq!(decode(&encode(&samples)), Ok(samples));
        }
    }

    #[test]
    fn skips_unknown_chunks_and_odd_padding() {
        let samples = [5i16, -5, 300];
        let f = riff(&[
            chunk(b"LIST", b"INFOISFT\x05\x00\x00\x00Lavf\x00"),
            chunk(b"fmt ", &fmt_body(PCM, 1, 8000, 16)),
            chunk(b"junk", b"odd"),
            chunk(b"data", &pcm(&samples)),
            chunk(b"id3 ", b"x"),
        ]);
        assert_eq!(decode(&f), Ok(samples.to_vec()));
        // The odd chunk's pad byte is what puts "data" on the right offset: without it, the walk goes astray.
        let unpadded = riff(&[
            chunk(b"fmt ", &fmt_body(PCM, 1, 8000, 16)),
            b"junk\x03\x00\x00\x00odd".to_vec(),
            chunk(b"data", &pcm(&samples)),
        ]);
        assert!(decode(&unpadded).is_err());
    }

    #[test]
    fn accepts_a_missing_final_pad_byte_and_a_wrong_riff_size() {
        let f = riff(&[
            chunk(b"fmt ", &fmt_body(PCM, 1, 8000, 16)),
            chunk(b"data", &pcm(&[7])),
            b"note\x01\x00\x00\x00!".to_vec(),
        ]);
        assert_eq!(decode(&f), Ok(vec![7]));
        // Streaming writers leave the RIFF size at 0 or at its maximum; a size that stops short of the bytes is
        // believed, and what lies past it is not read.
        for size in [0u32, 3, 0xffff_ffff] {
            let mut f = encode(&[1, 2]);
            f[4..8].copy_from_slice(&size.to_le_bytes());
            assert_eq!(decode(&f), Ok(vec![1, 2]), "{size}");
        }
        let mut f = encode(&[1, 2]);
        f.extend_from_slice(b"data\x02\x00\x00\x00\x09\x00");
        assert_eq!(
            decode(&f),
            Ok(vec![1, 2]),
            "the second data chunk is ignored"
        );
        f[4..8].copy_from_slice(&38u32.to_le_bytes());
        assert_eq!(
            decode(&f),
            Err(WavError::Truncated {
                chunk: "data".into(),
                declared: 4,
                available: 2
            })
        );
    }

    #[test]
    fn extensible_pcm_is_pcm() {
        let mut fmt = fmt_body(EXTENSIBLE, 1, 8000, 16);
        fmt.extend_from_slice(&22u16.to_le_bytes());
        fmt.extend_from_slice(&16u16.to_le_bytes());
        fmt.extend_from_slice(&4u32.to_le_bytes());
        fmt.extend_from_slice(&[
            1, 0, 0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xaa, 0, 0x38, 0x9b, 0x71,
        ]);
        let f = riff(&[chunk(b"fmt ", &fmt), chunk(b"data", &pcm(&[9, 8]))]);
        assert_eq!(decode(&f), Ok(vec![9, 8]));
        // Extensible IEEE float is not.
        let mut float = fmt.clone();
        float[24] = 3;
        let f = riff(&[chunk(b"fmt ", &float), chunk(b"data", &pcm(&[9, 8]))]);
        assert_eq!(decode(&f), Err(WavError::UnsupportedFormat(3)));
        // Too short to hold the GUID.
        let f = riff(&[chunk(b"fmt ", &fmt[..20]), chunk(b"data", &[])]);
        assert_eq!(decode(&f), Err(WavError::BadFmt(20)));
    }

    #[test]
    fn rejects_what_it_cannot_play() {
        let data = chunk(b"data", &pcm(&[1, 2]));
        let with_fmt = |fmt: Vec<u8>| decode(&riff(&[chunk(b"fmt ", &fmt), data.clone()]));
        assert_eq!(
            with_fmt(fmt_body(3, 1, 8000, 32)),
            Err(WavError::UnsupportedFormat(3))
        );
        assert_eq!(
            with_fmt(fmt_body(7, 1, 8000, 8)),
            Err(WavError::UnsupportedFormat(7)),
            "mu-law WAV"
        );
        assert_eq!(
            with_fmt(fmt_body(PCM, 2, 8000, 16)),
            Err(WavError::UnsupportedChannels(2))
        );
        assert_eq!(
            with_fmt(fmt_body(PCM, 1, 16000, 16)),
            Err(WavError::UnsupportedRate(16000))
        );
        assert_eq!(
            with_fmt(fmt_body(PCM, 1, 8000, 8)),
            Err(WavError::UnsupportedBits(8))
        );
        let mut bad_align = fmt_body(PCM, 1, 8000, 16);
        bad_align[12] = 4;
        assert_eq!(with_fmt(bad_align), Err(WavError::BadBlockAlign(4)));
        assert_eq!(
            with_fmt(fmt_body(PCM, 1, 8000, 16)[..14].to_vec()),
            Err(WavError::BadFmt(14))
        );
    }

    #[test]
    fn rejects_broken_containers() {
        let good = encode(&[1, 2, 3]);
        assert_eq!(decode(&[]), Err(WavError::NotRiff));
        assert_eq!(decode(b"RIF"), Err(WavError::NotRiff));
        assert_eq!(decode(b"RIFX\x24\x00\x00\x00WAVE"), Err(WavError::NotRiff));
        assert_eq!(decode(b"RIFF\x04\x00\x00\x00"), Err(WavError::NotWave));
        assert_eq!(decode(b"RIFF\x04\x00\x00\x00AVI "), Err(WavError::NotWave));
        assert_eq!(decode(b"RIFF\x04\x00\x00\x00WAVE"), Err(WavError::NoFmt));
        assert_eq!(
            decode(&riff(&[chunk(b"data", &pcm(&[1]))])),
            Err(WavError::NoFmt)
        );
        assert_eq!(
            decode(&riff(&[chunk(b"fmt ", &fmt_body(PCM, 1, 8000, 16))])),
            Err(WavError::NoData)
        );
        // Cut in the middle of the samples, of the data header, of the fmt chunk.
        assert_eq!(
            decode(&good[..good.len() - 2]),
            Err(WavError::Truncated {
                chunk: "data".into(),
                declared: 6,
                available: 4
            })
        );
        assert_eq!(decode(&good[..40]), Err(WavError::NoData));
        assert_eq!(
            decode(&good[..30]),
            Err(WavError::Truncated {
                chunk: "fmt ".into(),
                declared: 16,
                available: 10
            })
        );
        // A chunk size near u32::MAX must not wrap an offset.
        let mut huge = good.clone();
        huge[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode(&huge),
            Err(WavError::Truncated { declared, .. }) if declared == u32::MAX
        ));
        let odd = riff(&[
            chunk(b"fmt ", &fmt_body(PCM, 1, 8000, 16)),
            chunk(b"data", &[1, 2, 3]),
        ]);
        assert_eq!(decode(&odd), Err(WavError::OddData(3)));
    }

    #[test]
    fn errors_read_well() {
        assert_eq!(
            WavError::UnsupportedRate(44100).to_string(),
            "44100 Hz, not 8000 Hz"
        );
        assert_eq!(
            WavError::Truncated {
                chunk: "data".into(),
                declared: 10,
                available: 2
            }
            .to_string(),
            "data chunk says 10 bytes but only 2 are left"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(duration_ms(0), 0);
        assert_eq!(duration_ms(8), 1);
        assert_eq!(duration_ms(7), 0);
        assert_eq!(duration_ms(160), 20);
        assert_eq!(duration_ms(8000 * 60), 60_000);
        assert_eq!(duration_ms(usize::MAX), (usize::MAX as u128 / 8) as u64);
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn decode_never_panics_on_damaged_files(
            samples in proptest::collection::vec(any::<i16>(), 0..64),
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
            cut in any::<usize>(),
        ) {
            // Random bytes rarely get past "RIFF"; damaging a real file reaches the chunk walk.
            let mut f = encode(&samples);
            for (at, x) in flips {
                let i = at % f.len();
                f[i] ^= x;
            }
            f.truncate(cut % (f.len() + 1));
            let _ = decode(&f);
        }

        #[test]
        fn encode_then_decode_is_identity(samples in proptest::collection::vec(any::<i16>(), 0..512)) {
            prop_assert_eq!(decode(&encode(&samples)), Ok(samples));
        }
    }
}
