//! The conference bridge's audio core, sans-IO: per participant a small jitter queue of decoded 20 ms frames, and
//! a mix every 20 ms (the caller's clock) in which each participant hears the sum of everyone else — never itself.
//!
//! One pass computes the sum of all speaking participants once and subtracts each one's own frame, so a mix costs
//! O(participants × 160) whatever the room's size. Sums saturate at the 16-bit range (hard clip: rooms are small
//! and phones talk at moderate levels; a compressor is not worth its cost here).

use std::collections::VecDeque;

use crate::packetizer::FRAME_SAMPLES;

/// One 20 ms frame at 8 kHz.
pub type Frame = [i16; FRAME_SAMPLES];

/// Frames kept per participant: 100 ms. A phone sending faster than the bridge mixes (clock drift, a burst after
/// a network stall) loses its oldest frames instead of falling ever further behind.
pub const MAX_QUEUED: usize = 5;
/// Frames a new or starved participant collects before it is mixed again, absorbing jitter.
const PREFILL: usize = 2;

/// A participant's incoming audio.
#[derive(Debug, Clone, Default)]
pub struct Inbound {
    queue: VecDeque<Frame>,
    /// Collecting [`PREFILL`] frames before playing out.
    filling: bool,
    /// Muted by an administrator: its audio is discarded.
    pub muted: bool,
}

impl Inbound {
    pub fn new() -> Self {
        Inbound {
            queue: VecDeque::new(),
            filling: true,
            muted: false,
        }
    }

    /// Decoded samples from one packet (any length: 10, 20, 30 ms packets are re-cut into 20 ms frames; a partial
    /// tail waits for the next packet).
    pub fn push(&mut self, samples: &[i16], carry: &mut Vec<i16>) {
        carry.extend_from_slice(samples);
        while carry.len() >= FRAME_SAMPLES {
            let mut frame = [0i16; FRAME_SAMPLES];
            frame.copy_from_slice(&carry[..FRAME_SAMPLES]);
            carry.drain(..FRAME_SAMPLES);
            if self.queue.len() == MAX_QUEUED {
                self.queue.pop_front();
            }
            self.queue.push_back(frame);
        }
    }

    /// The frame to mix now, if the participant is speaking (`None`: silence, muted, or refilling).
    pub fn pop(&mut self) -> Option<Frame> {
        if self.filling {
            if self.queue.len() < PREFILL {
                return None;
            }
            self.filling = false;
        }
        match self.queue.pop_front() {
            Some(f) if !self.muted => Some(f),
            Some(_) => None,
            None => {
                self.filling = true;
                None
            }
        }
    }

    pub fn queued(&self) -> usize {
        self.queue.len()
    }
}

/// Mixes one tick: `inputs[i]` is what participant `i` said (or `None`), `outputs[i]` receives what it hears: the
/// sum of every other participant's frame, clipped. `outputs` is resized to `inputs.len()`.
pub fn mix(inputs: &[Option<Frame>], outputs: &mut Vec<Frame>) {
    let mut total = [0i32; FRAME_SAMPLES];
    for frame in inputs.iter().flatten() {
        for (t, &s) in total.iter_mut().zip(frame.iter()) {
            *t += i32::from(s);
        }
    }
    outputs.resize(inputs.len(), [0; FRAME_SAMPLES]);
    for (out, own) in outputs.iter_mut().zip(inputs) {
        match own {
            Some(own) => {
                for ((o, &t), &s) in out.iter_mut().zip(total.iter()).zip(own.iter()) {
                    *o = clip(t - i32::from(s));
                }
            }
            None => {
                for (o, &t) in out.iter_mut().zip(total.iter()) {
                    *o = clip(t);
                }
            }
        }
    }
}

fn clip(v: i32) -> i16 {
    v.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tone::{dominant_frequency, goertzel_power, sine};

    fn frames(hz: f32, count: usize) -> Vec<Frame> {
        sine(hz, 20 * count as u32, 4000)
            .chunks_exact(FRAME_SAMPLES)
            .map(|c| c.try_into().unwrap())
            .collect()
    }

    #[test]
    fn each_hears_the_others_and_not_itself() {
        let tones = [440.0f32, 660.0, 880.0];
        let streams: Vec<Vec<Frame>> = tones.iter().map(|&f| frames(f, 10)).collect();
        let mut heard = vec![Vec::<i16>::new(); 3];
        let mut out = Vec::new();
        for tick in 0..10 {
            let inputs: Vec<Option<Frame>> = streams.iter().map(|s| Some(s[tick])).collect();
            mix(&inputs, &mut out);
            for (h, o) in heard.iter_mut().zip(&out) {
                h.extend_from_slice(o);
            }
        }
        for (i, h) in heard.iter().enumerate() {
            let own = goertzel_power(h, tones[i]);
            for (j, &f) in tones.iter().enumerate() {
                if i != j {
                    let p = goertzel_power(h, f);
                    assert!(p > 3.0e6, "participant {i} hears {f} Hz at {p}");
                }
            }
            assert!(own < 1.0, "participant {i} hears itself at {own}");
        }
    }

    #[test]
    fn silent_participants_hear_everyone_and_sums_clip() {
        let loud = [i16::MAX; FRAME_SAMPLES];
        let mut out = Vec::new();
        mix(&[Some(loud), Some(loud), None], &mut out);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0], loud);
        assert_eq!(out[2], [i16::MAX; FRAME_SAMPLES], "clipped, not wrapped");
        mix(&[], &mut out);
        assert!(out.is_empty());
        mix(&[None], &mut out);
        assert_eq!(out[0], [0; FRAME_SAMPLES]);
    }

    #[test]
    fn jitter_queue_prefills_drops_the_oldest_and_recuts_packets() {
        let mut inbound = Inbound::new();
        let mut carry = Vec::new();
        let tone = sine(440.0, 200, 4000);
        // 30 ms packets: re-cut into 20 ms frames, the tail carried.
        inbound.push(&tone[..240], &mut carry);
        assert_eq!((inbound.queued(), carry.len()), (1, 80));
        assert_eq!(inbound.pop(), None, "prefilling");
        inbound.push(&tone[240..480], &mut carry);
        assert_eq!(inbound.queued(), 3);
        let first = inbound.pop().expect("prefilled");
        assert_eq!(first[..], tone[..160]);
        // A burst beyond the queue keeps the newest frames.
        for _ in 0..4 {
            inbound.push(&tone[480..800], &mut carry);
        }
        assert_eq!(inbound.queued(), MAX_QUEUED);
        while inbound.pop().is_some() {}
        assert_eq!(inbound.pop(), None, "starved: refilling");
        // Muted: frames are consumed and never mixed.
        inbound.muted = true;
        inbound.push(&tone[..480], &mut carry);
        assert_eq!(inbound.pop(), None);
        assert_eq!(
            dominant_frequency(&tone, &[440.0, 880.0]),
            Some(440.0),
            "sanity"
        );
    }
}
