//! Uploaded audio brought to the telephone shape [`crate::wav`] stores: any PCM WAV (8, 16, 24 or 32-bit integer,
//! one or two channels, 8 to 192 kHz) to 8 kHz 16-bit mono. Channels are averaged; the rate is lowered with a
//! moving-average low-pass (so music above 4 kHz does not fold back as noise) and linear interpolation — plenty for
//! what G.711 carries. Untrusted input: every length is checked, nothing panics.

use crate::wav::{SAMPLE_RATE, WavError};

const PCM: u16 = 1;
const EXTENSIBLE: u16 = 0xfffe;
/// Largest input accepted (about 10 minutes of 48 kHz stereo 16-bit): more is not a greeting or hold music.
pub const MAX_INPUT_BYTES: usize = 128 * 1024 * 1024;

/// Why bytes cannot be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    #[error(transparent)]
    Wav(#[from] WavError),
    #[error("the file is larger than {MAX_INPUT_BYTES} bytes")]
    TooLarge,
    #[error("{0} Hz is outside 8000-192000 Hz")]
    Rate(u32),
}

struct Format {
    channels: u16,
    rate: u32,
    bits: u16,
}

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(i..i + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(i..i + 4)?.try_into().ok()?))
}

fn format(body: &[u8]) -> Result<Format, ConvertError> {
    let short = || WavError::BadFmt(u32::try_from(body.len()).unwrap_or(u32::MAX));
    let mut tag = u16_at(body, 0).ok_or_else(short)?;
    let channels = u16_at(body, 2).ok_or_else(short)?;
    let rate = u32_at(body, 4).ok_or_else(short)?;
    let bits = u16_at(body, 14).ok_or_else(short)?;
    if tag == EXTENSIBLE {
        // The sub-format GUID starts at 24; its first two bytes are the real format tag.
        tag = u16_at(body, 24).ok_or_else(short)?;
    }
    if tag != PCM {
        return Err(WavError::UnsupportedFormat(tag).into());
    }
    if !(1..=2).contains(&channels) {
        return Err(WavError::UnsupportedChannels(channels).into());
    }
    if !matches!(bits, 8 | 16 | 24 | 32) {
        return Err(WavError::UnsupportedBits(bits).into());
    }
    if !(8000..=192_000).contains(&rate) {
        return Err(ConvertError::Rate(rate));
    }
    Ok(Format {
        channels,
        rate,
        bits,
    })
}

/// The `fmt ` and `data` chunk bodies of a RIFF/WAVE file.
fn chunks(bytes: &[u8]) -> Result<(&[u8], &[u8]), WavError> {
    if bytes.get(0..4) != Some(b"RIFF") {
        return Err(WavError::NotRiff);
    }
    if bytes.get(8..12) != Some(b"WAVE") {
        return Err(WavError::NotWave);
    }
    let (mut fmt, mut data) = (None, None);
    let mut at = 12usize;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let declared = u32_at(bytes, at + 4).unwrap_or(0);
        let start = at + 8;
        let available = bytes.len() - start;
        // A streaming writer's data size (0 or 0xffffffff) means "to the end".
        let len = match usize::try_from(declared) {
            Ok(n) if n <= available => n,
            _ if id == b"data" => available,
            _ => {
                return Err(WavError::Truncated {
                    chunk: String::from_utf8_lossy(id).into_owned(),
                    declared,
                    available,
                });
            }
        };
        let body = &bytes[start..start + len];
        match id {
            b"fmt " => fmt = Some(body),
            b"data" if data.is_none() => data = Some(body),
            _ => {}
        }
        at = start + len + len % 2;
    }
    Ok((fmt.ok_or(WavError::NoFmt)?, data.ok_or(WavError::NoData)?))
}

/// One sample of `bits` little-endian at the start of `b`, as 16-bit.
fn sample(b: &[u8], bits: u16) -> i16 {
    match bits {
        8 => (i16::from(b[0]) - 128) << 8,
        16 => i16::from_le_bytes([b[0], b[1]]),
        24 => i16::from_le_bytes([b[1], b[2]]),
        _ => i16::from_le_bytes([b[2], b[3]]),
    }
}

/// The samples of a PCM WAV file as 8 kHz mono.
pub fn to_telephone(bytes: &[u8]) -> Result<Vec<i16>, ConvertError> {
    if bytes.len() > MAX_INPUT_BYTES {
        return Err(ConvertError::TooLarge);
    }
    let (fmt, data) = chunks(bytes)?;
    let f = format(fmt)?;
    let width = usize::from(f.bits / 8) * usize::from(f.channels);
    let mono: Vec<i16> = data
        .chunks_exact(width)
        .map(|frame| {
            let step = usize::from(f.bits / 8);
            let sum: i32 = frame
                .chunks_exact(step)
                .map(|s| i32::from(sample(s, f.bits)))
                .sum();
            (sum / i32::from(f.channels)) as i16
        })
        .collect();
    Ok(resample(&mono, f.rate, SAMPLE_RATE))
}

/// `samples` at `from` Hz as `to` Hz (`to` ≤ `from`: a moving average over the ratio first, then linear
/// interpolation).
pub fn resample(samples: &[i16], from: u32, to: u32) -> Vec<i16> {
    if from == to || samples.is_empty() || to == 0 {
        return samples.to_vec();
    }
    let ratio = f64::from(from) / f64::from(to);
    let window = (ratio.floor() as usize).max(1);
    let smoothed: Vec<f64> = if window > 1 {
        let mut acc = 0f64;
        let mut out = Vec::with_capacity(samples.len());
        for (i, &s) in samples.iter().enumerate() {
            acc += f64::from(s);
            if i >= window {
                acc -= f64::from(samples[i - window]);
            }
            out.push(acc / (i + 1).min(window) as f64);
        }
        out
    } else {
        samples.iter().map(|&s| f64::from(s)).collect()
    };
    let n_out = ((samples.len() as f64) / ratio).floor() as usize;
    (0..n_out)
        .map(|i| {
            let pos = i as f64 * ratio;
            let j = pos.floor() as usize;
            let frac = pos - j as f64;
            let a = smoothed[j.min(smoothed.len() - 1)];
            let b = smoothed[(j + 1).min(smoothed.len() - 1)];
            (a + (b - a) * frac).round().clamp(-32768.0, 32767.0) as i16
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tone::{dominant_frequency, goertzel_power};

    /// A PCM WAV of `channels` × `bits` at `rate` holding `frames` (one value per channel per frame).
    fn wav(rate: u32, channels: u16, bits: u16, frames: &[Vec<i16>]) -> Vec<u8> {
        let mut data = Vec::new();
        for frame in frames {
            for &s in frame {
                match bits {
                    8 => data.push(((s >> 8) + 128) as u8),
                    16 => data.extend_from_slice(&s.to_le_bytes()),
                    24 => {
                        data.push(0);
                        data.extend_from_slice(&s.to_le_bytes());
                    }
                    _ => {
                        data.extend_from_slice(&[0, 0]);
                        data.extend_from_slice(&s.to_le_bytes());
                    }
                }
            }
        }
        let align = channels * bits / 8;
        let mut out = b"RIFF".to_vec();
        out.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
        out.extend_from_slice(b"WAVEfmt ");
        out.extend_from_slice(&16u32.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&channels.to_le_bytes());
        out.extend_from_slice(&rate.to_le_bytes());
        out.extend_from_slice(&(rate * u32::from(align)).to_le_bytes());
        out.extend_from_slice(&align.to_le_bytes());
        out.extend_from_slice(&bits.to_le_bytes());
        out.extend_from_slice(b"data");
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&data);
        out
    }

    fn sine_at(rate: u32, hz: f64, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| {
                (8000.0 * (2.0 * std::f64::consts::PI * hz * i as f64 / f64::from(rate)).sin())
                    as i16
            })
            .collect()
    }

    #[test]
    fn converts_cd_stereo_and_other_shapes_keeping_the_tone() {
        for (rate, channels, bits) in [
            (44_100, 2, 16),
            (48_000, 1, 24),
            (16_000, 1, 8),
            (8000, 1, 32),
            (22_050, 2, 32),
        ] {
            let tone = sine_at(rate, 440.0, rate as usize / 2);
            let frames: Vec<Vec<i16>> = tone.iter().map(|&s| vec![s; channels as usize]).collect();
            let out = to_telephone(&wav(rate, channels, bits, &frames)).expect("converts");
            assert!((3990..=4000).contains(&out.len()), "{rate}: {}", out.len());
            assert_eq!(
                dominant_frequency(&out, &[350.0, 440.0, 880.0]),
                Some(440.0),
                "{rate} Hz {channels} ch {bits} bit"
            );
        }
    }

    #[test]
    fn high_frequencies_do_not_fold_back_loudly() {
        // 7 kHz at 48 kHz would alias to 1 kHz at 8 kHz without the low-pass.
        let tone = sine_at(48_000, 7000.0, 24_000);
        let out = resample(&tone, 48_000, 8000);
        assert!(goertzel_power(&out, 1000.0) < (8000.0f64 * 8000.0 / 4.0) * 0.05);
    }

    #[test]
    fn refuses_what_it_cannot_convert() {
        let frames = vec![vec![0i16; 3]; 10];
        assert_eq!(
            to_telephone(&wav(8000, 3, 16, &frames)),
            Err(ConvertError::Wav(WavError::UnsupportedChannels(3)))
        );
        assert_eq!(
            to_telephone(&wav(4000, 1, 16, &[vec![0]])),
            Err(ConvertError::Rate(4000))
        );
        assert_eq!(
            to_telephone(b"RIFF"),
            Err(ConvertError::Wav(WavError::NotWave))
        );
        assert_eq!(
            to_telephone(b"ID3..."),
            Err(ConvertError::Wav(WavError::NotRiff))
        );
        let mut float = wav(8000, 1, 32, &[vec![0]]);
        float[20] = 3; // IEEE float
        assert_eq!(
            to_telephone(&float),
            Err(ConvertError::Wav(WavError::UnsupportedFormat(3)))
        );
        // Truncated junk never panics.
        let good = wav(44_100, 2, 16, &vec![vec![1, 2]; 100]);
        for cut in 0..good.len() {
            let _ = to_telephone(&good[..cut]);
        }
    }
}
