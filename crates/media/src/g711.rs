//! ITU-T G.711 mu-law (PCMU) and A-law (PCMA) companding between 16-bit linear PCM and one byte per sample.
//!
//! The arithmetic is that of the ITU-T G.191 software tools' reference `g711.c` (one's complement of negative
//! samples, 14-bit mu-law and 13-bit A-law magnitudes), so code bytes match the standard's tables bit for bit. Linear
//! values are 16-bit: mu-law decodes to ±32124 at most, A-law to ±32256.

/// A G.711 companding law, with its RFC 3551 static payload type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Law {
    /// mu-law, PCMU (North America, Japan).
    Mu,
    /// A-law, PCMA (everywhere else).
    A,
}

/// mu-law adds this bias so that every segment's end point is a power of two (in the 16-bit scale).
const MU_BIAS: i32 = 0x84;
/// The largest 14-bit magnitude mu-law can code once the bias is added.
const MU_CLIP: i32 = 8159;

impl Law {
    /// RFC 3551 table 4: PCMU is 0, PCMA is 8.
    pub fn payload_type(self) -> u8 {
        match self {
            Law::Mu => 0,
            Law::A => 8,
        }
    }

    pub fn from_payload_type(pt: u8) -> Option<Law> {
        match pt {
            0 => Some(Law::Mu),
            8 => Some(Law::A),
            _ => None,
        }
    }

    /// The SDP `a=rtpmap` encoding name.
    pub fn encoding_name(self) -> &'static str {
        match self {
            Law::Mu => "PCMU",
            Law::A => "PCMA",
        }
    }

    pub fn encode(self, s: i16) -> u8 {
        match self {
            Law::Mu => mu_encode(s),
            Law::A => a_encode(s),
        }
    }

    pub fn decode(self, b: u8) -> i16 {
        match self {
            Law::Mu => mu_decode(b),
            Law::A => a_decode(b),
        }
    }

    pub fn encode_all(self, samples: &[i16]) -> Vec<u8> {
        samples.iter().map(|&s| self.encode(s)).collect()
    }

    pub fn decode_all(self, bytes: &[u8]) -> Vec<i16> {
        bytes.iter().map(|&b| self.decode(b)).collect()
    }
}

/// The segment (exponent) of `value`: the index of the first end point it does not exceed, 8 when past them all.
fn segment(value: i32, ends: &[i32; 8]) -> u8 {
    let mut seg = 0u8;
    for &end in ends {
        if value <= end {
            return seg;
        }
        seg += 1;
    }
    seg
}

fn mu_encode(s: i16) -> u8 {
    const ENDS: [i32; 8] = [0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff, 0x1fff];
    // G.711 mu-law is defined on 14 bits; the two low bits of a 16-bit sample carry nothing it can code.
    // Negative samples are one's-complemented, as in the ITU-T G.191 reference, so that -1..-4 quantise like
    // 0..3 (to zero) and the scale is symmetric. Code bytes go on the wire inverted (so that silence is not a
    // run of zero bytes), with the sign bit set for positive values.
    let (mut v, mask) = if s < 0 {
        ((!i32::from(s)) >> 2, 0x7f)
    } else {
        (i32::from(s) >> 2, 0xff)
    };
    v = v.min(MU_CLIP) + (MU_BIAS >> 2);
    let seg = segment(v, &ENDS);
    let code = if seg >= 8 {
        0x7f
    } else {
        (seg << 4) | ((v >> (seg + 1)) & 0x0f) as u8
    };
    code ^ mask
}

fn mu_decode(b: u8) -> i16 {
    let u = !b;
    let t = ((i32::from(u & 0x0f) << 3) + MU_BIAS) << ((u & 0x70) >> 4);
    let v = if u & 0x80 != 0 {
        MU_BIAS - t
    } else {
        t - MU_BIAS
    };
    // |v| <= 32124 by construction (mantissa 15, segment 7), so the conversion cannot fail.
    v as i16
}

fn a_encode(s: i16) -> u8 {
    const ENDS: [i32; 8] = [0x1f, 0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff];
    // G.711 A-law is defined on 13 bits.
    let mut v = i32::from(s) >> 3;
    // Even bits are inverted on the wire (0x55), the sign bit set for positive values; negative values are
    // one's-complemented, as in the G.191 reference, so that the scale is symmetric around -1/0.
    let mask = if v >= 0 {
        0xd5
    } else {
        v = !v;
        0x55
    };
    let seg = segment(v, &ENDS);
    let code = if seg >= 8 {
        0x7f
    } else if seg < 2 {
        (seg << 4) | ((v >> 1) & 0x0f) as u8
    } else {
        (seg << 4) | ((v >> seg) & 0x0f) as u8
    };
    code ^ mask
}

fn a_decode(b: u8) -> i16 {
    let a = b ^ 0x55;
    let mut t = i32::from(a & 0x0f) << 4;
    let seg = (a & 0x70) >> 4;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => t = (t + 0x108) << (seg - 1),
    }
    let v = if a & 0x80 != 0 { t } else { -t };
    // |v| <= 32256 by construction.
    v as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_types_and_names() {
        for law in [Law::Mu, Law::A] {
            assert_eq!(Law::from_payload_type(law.payload_type()), Some(law));
        }
        assert_eq!((Law::Mu.payload_type(), Law::A.payload_type()), (0, 8));
        assert_eq!(
            (Law::Mu.encoding_name(), Law::A.encoding_name()),
            ("PCMU", "PCMA")
        );
        for pt in [1u8, 3, 9, 18, 96, 101, 127, 255] {
            assert_eq!(Law::from_payload_type(pt), None, "{pt}");
        }
    }

    #[test]
    fn known_mu_law_code_points() {
        // The ends of the scale and both zeros.
        assert_eq!(Law::Mu.decode(0xff), 0);
        assert_eq!(Law::Mu.decode(0x7f), 0);
        assert_eq!(Law::Mu.decode(0x00), -32124);
        assert_eq!(Law::Mu.decode(0x80), 32124);
        // Segment 0's first steps and a mid-scale value (G.711 table 2a, in the 16-bit scale).
        assert_eq!(Law::Mu.decode(0xfe), 8);
        assert_eq!(Law::Mu.decode(0x7e), -8);
        assert_eq!(Law::Mu.decode(0xef), 132);
        assert_eq!(Law::Mu.decode(0xdf), 396);
        assert_eq!(Law::Mu.decode(0xa0), 7932);
        assert_eq!(Law::Mu.encode(0), 0xff);
        assert_eq!(Law::Mu.encode(i16::MAX), 0x80);
        assert_eq!(Law::Mu.encode(i16::MIN), 0x00);
        assert_eq!(
            Law::Mu.encode(-1),
            0x7f,
            "-1 is below the first step: negative zero"
        );
        assert_eq!(Law::Mu.encode(1000), 0xce);
        assert_eq!(Law::Mu.encode(-1000), 0x4e);
    }

    #[test]
    fn known_a_law_code_points() {
        assert_eq!(Law::A.decode(0xd5), 8);
        assert_eq!(Law::A.decode(0x55), -8);
        assert_eq!(Law::A.decode(0xaa), 32256);
        assert_eq!(Law::A.decode(0x2a), -32256);
        assert_eq!(Law::A.decode(0xd4), 24);
        assert_eq!(Law::A.decode(0xc5), 264);
        assert_eq!(Law::A.encode(0), 0xd5);
        assert_eq!(Law::A.encode(-1), 0x55);
        assert_eq!(Law::A.encode(i16::MAX), 0xaa);
        assert_eq!(Law::A.encode(i16::MIN), 0x2a);
        assert_eq!(Law::A.encode(1000), 0xfa);
        assert_eq!(Law::A.encode(-1000), 0x7a);
    }

    #[test]
    fn every_code_byte_survives_decode_then_encode() {
        for b in 0..=255u8 {
            let mu = Law::Mu.encode(Law::Mu.decode(b));
            // mu-law has two zeros; the encoder always picks the positive one.
            let want = if b == 0x7f { 0xff } else { b };
            assert_eq!(mu, want, "mu-law {b:#04x}");
            assert_eq!(Law::A.encode(Law::A.decode(b)), b, "A-law {b:#04x}");
        }
    }

    #[test]
    fn decoded_levels_are_symmetric_and_ordered() {
        for law in [Law::Mu, Law::A] {
            let mut levels: Vec<i16> = (0..=255u8).map(|b| law.decode(b)).collect();
            // Flipping the sign bit mirrors the value.
            for b in 0..=127u8 {
                assert_eq!(law.decode(b), -law.decode(b | 0x80), "{law:?} {b:#04x}");
            }
            levels.sort_unstable();
            levels.dedup();
            assert_eq!(levels.len(), if law == Law::Mu { 255 } else { 256 });
        }
    }

    #[test]
    fn every_sample_maps_to_a_nearby_level() {
        // The quantisation error is at most one step of the segment the sample falls in (16-bit scale: mu-law's
        // largest step is 1024, A-law's 1024); checked for all 65536 inputs, with the clipping region apart.
        for law in [Law::Mu, Law::A] {
            for s in i16::MIN..=i16::MAX {
                let back = i32::from(law.decode(law.encode(s)));
                let err = (back - i32::from(s)).abs();
                let top = i32::from(law.decode(if law == Law::Mu { 0x80 } else { 0xaa }));
                let step = if i32::from(s).abs() > top {
                    // Past the last level everything clips to it.
                    i32::from(s).abs() - top + 1
                } else {
                    (i32::from(s).abs() / 16).max(16)
                };
                assert!(err <= step, "{law:?}: {s} -> {back}");
                // The sign survives except around zero.
                if i32::from(s).abs() > 16 {
                    assert_eq!(back.signum(), i32::from(s).signum(), "{law:?}: {s}");
                }
            }
        }
    }

    fn snr_db(original: &[i16], decoded: &[i16]) -> f64 {
        let signal: f64 = original.iter().map(|&s| f64::from(s).powi(2)).sum();
        let noise: f64 = original
            .iter()
            .zip(decoded)
            .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
            .sum();
        10.0 * (signal / noise).log10()
    }

    #[test]
    fn a_sine_keeps_its_signal_to_noise_ratio() {
        // 1010 Hz (not a submultiple of 8 kHz, so every phase is visited) at -10 dBFS and -30 dBFS: companding
        // keeps the SNR near 38 dB over the whole range, where 8-bit linear would lose 20 dB at the lower level.
        for amplitude in [10_000.0f64, 1_000.0] {
            let sine: Vec<i16> = (0..8000)
                .map(|i| {
                    (amplitude
                        * (2.0 * std::f64::consts::PI * 1010.0 * f64::from(i) / 8000.0).sin())
                    .round() as i16
                })
                .collect();
            for law in [Law::Mu, Law::A] {
                let decoded = law.decode_all(&law.encode_all(&sine));
                assert_eq!(decoded.len(), sine.len());
                let snr = snr_db(&sine, &decoded);
                assert!(snr > 30.0, "{law:?} at {amplitude}: {snr:.1} dB");
            }
        }
    }

    #[test]
    fn all_helpers_match_single_sample_calls() {
        let samples = [0i16, 1, -1, 100, -100, 20_000, -20_000, i16::MAX, i16::MIN];
        for law in [Law::Mu, Law::A] {
            let bytes = law.encode_all(&samples);
            assert_eq!(
                bytes,
                samples.iter().map(|&s| law.encode(s)).collect::<Vec<_>>()
            );
            assert_eq!(
                law.decode_all(&bytes),
                bytes.iter().map(|&b| law.decode(b)).collect::<Vec<_>>()
            );
            assert!(law.encode_all(&[]).is_empty());
            assert!(law.decode_all(&[]).is_empty());
        }
    }
}
