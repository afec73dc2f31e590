//! Tones to play (the voicemail beep, test signals) and the Goertzel filter to find them again in received audio.
//! All at [`SAMPLE_RATE`] (8 kHz).

use crate::wav::SAMPLE_RATE;

/// Below this normalised power (a sine of amplitude 8, about -72 dBFS) a signal counts as silence: G.711's
/// smallest steps and dither noise stay under it, any audible tone is far above.
const SILENCE_POWER: f64 = 16.0;

fn sample_count(millis: u32) -> usize {
    // u64: 8 * u32::MAX does not fit in u32.
    usize::try_from(u64::from(millis) * u64::from(SAMPLE_RATE) / 1000).unwrap_or(usize::MAX)
}

/// `millis` of a sine at `freq_hz` with peak `amplitude`, starting at phase 0.
pub fn sine(freq_hz: f32, millis: u32, amplitude: i16) -> Vec<i16> {
    // f64 phase: f32 loses a visible fraction of a cycle after a few seconds of samples.
    let step = 2.0 * std::f64::consts::PI * f64::from(freq_hz) / f64::from(SAMPLE_RATE);
    let amplitude = f64::from(amplitude);
    // Float-to-int `as` saturates (and maps NaN to 0), which is what a peak of i16::MIN needs at the top.
    (0..sample_count(millis))
        .map(|n| (amplitude * (step * n as f64).sin()).round() as i16)
        .collect()
}

pub fn silence(millis: u32) -> Vec<i16> {
    vec![0; sample_count(millis)]
}

/// The power of `samples` at `freq_hz` (one Goertzel filter, any frequency, not only DFT bins), normalised by
/// the square of the length so that it does not grow with it: a sine of amplitude A at that frequency gives
/// about A²/4. Zero for no samples.
pub fn goertzel_power(samples: &[i16], freq_hz: f32) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let w = 2.0 * std::f64::consts::PI * f64::from(freq_hz) / f64::from(SAMPLE_RATE);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    let n = samples.len() as f64;
    // Rounding can leave a hair below zero for a frequency with no energy.
    (power / (n * n)).max(0.0)
}

/// Which of `candidates` is strongest in `samples`; `None` when there are none, or when even the strongest is
/// at silence level.
pub fn dominant_frequency(samples: &[i16], candidates: &[f32]) -> Option<f32> {
    candidates
        .iter()
        .map(|&f| (f, goertzel_power(samples, f)))
        .filter(|(_, p)| p.is_finite() && *p >= SILENCE_POWER)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(f, _)| f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths() {
        assert_eq!(sine(440.0, 20, 1000).len(), 160);
        assert_eq!(sine(440.0, 0, 1000).len(), 0);
        assert_eq!(silence(1000).len(), 8000);
        assert_eq!(silence(1).len(), 8);
        assert!(silence(250).iter().all(|&s| s == 0));
    }

    #[test]
    fn sine_samples() {
        // 2 kHz is a quarter of the rate: 0, A, 0, -A.
        assert_eq!(
            sine(2000.0, 1, 1000),
            [0, 1000, 0, -1000, 0, 1000, 0, -1000]
        );
        // 1 kHz: every eighth of a cycle.
        let s = sine(1000.0, 1, 10_000);
        assert_eq!(s, [0, 7071, 10_000, 7071, 0, -7071, -10_000, -7071]);
        // Full scale either way does not overflow.
        assert!(sine(2000.0, 1, i16::MIN).contains(&i16::MAX));
        assert_eq!(sine(f32::NAN, 1, 1000), [0; 8]);
    }

    #[test]
    fn goertzel_measures_a_sine() {
        let s = sine(1000.0, 100, 8000);
        let p = goertzel_power(&s, 1000.0);
        let want = 8000.0f64.powi(2) / 4.0;
        assert!((p - want).abs() / want < 0.01, "{p}");
        // An octave away it sees next to nothing (800 samples: the bins are 10 Hz wide and 2 kHz sits on one).
        assert!(goertzel_power(&s, 2000.0) < want * 1e-6);
        assert_eq!(goertzel_power(&[], 1000.0), 0.0);
        assert_eq!(goertzel_power(&silence(20), 1000.0), 0.0);
    }

    #[test]
    fn finds_440_among_others() {
        let candidates = [350.0, 440.0, 880.0, 1000.0];
        assert_eq!(
            dominant_frequency(&sine(440.0, 200, 4000), &candidates),
            Some(440.0)
        );
        // Short and quiet still works; so does a tone that is not on a bin.
        assert_eq!(
            dominant_frequency(&sine(350.0, 40, 300), &candidates),
            Some(350.0)
        );
        assert_eq!(
            dominant_frequency(&sine(1003.0, 60, 3000), &candidates),
            Some(1000.0)
        );
    }

    #[test]
    fn a_mix_is_won_by_its_louder_tone() {
        let a = sine(440.0, 200, 2000);
        let b = sine(880.0, 200, 6000);
        let mix: Vec<i16> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
        assert_eq!(
            dominant_frequency(&mix, &[350.0, 440.0, 880.0]),
            Some(880.0)
        );
    }

    #[test]
    fn silence_and_nothing_have_no_dominant_frequency() {
        let candidates = [350.0, 440.0];
        assert_eq!(dominant_frequency(&silence(200), &candidates), None);
        assert_eq!(dominant_frequency(&[], &candidates), None);
        assert_eq!(dominant_frequency(&sine(440.0, 200, 4000), &[]), None);
        // G.711-level noise: ±1 LSB.
        let hiss: Vec<i16> = (0..1600).map(|i| [1, -1, 0][i % 3]).collect();
        assert_eq!(dominant_frequency(&hiss, &candidates), None);
        assert_eq!(
            dominant_frequency(&sine(440.0, 200, 4000), &[f32::NAN]),
            None
        );
    }
}
