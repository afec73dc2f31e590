//! Music on hold, sans-IO: the default melody (generated, so nobody's copyright is played to callers) and the
//! player that turns looping 8 kHz samples into paced G.711 RTP packets, one every 20 ms of the `now` it is given.
//!
//! The relay owns one [`MusicPlayer`] per held leg ([`crate::relay::Relay::set_music`]): the held phone hears
//! these packets, protected with that leg's own SRTP key, instead of what the holding phone sends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::g711::Law;
use crate::packetizer::{FRAME_SAMPLES, RtpSender};

/// One packet's worth of audio.
pub const FRAME: Duration = Duration::from_millis(20);
/// A player this far behind (a stalled task, a suspended machine) skips ahead instead of sending a burst.
const MAX_LAG: Duration = Duration::from_millis(200);

/// The default melody's notes (Hz): a C major arpeggio up and down, so a test can tell it from any test tone.
pub const MELODY_NOTES: [f32; 4] = [523.25, 659.25, 783.99, 1046.5];
const NOTE_MS: u32 = 300;
const GAP_MS: u32 = 50;
/// Peak amplitude of the melody: clearly audible, well below clipping.
const AMPLITUDE: i16 = 6000;

/// The default music: [`MELODY_NOTES`] up and down, each note 300 ms with a soft start and end (no clicks), and
/// 50 ms between notes. About 2.1 seconds, looped.
pub fn default_melody() -> Vec<i16> {
    let order = [0, 1, 2, 3, 2, 1];
    let mut out = Vec::new();
    for &i in &order {
        let mut note = crate::tone::sine(MELODY_NOTES[i], NOTE_MS, AMPLITUDE);
        fade(&mut note, 80);
        out.extend(note);
        out.extend(crate::tone::silence(GAP_MS));
    }
    out
}

/// Ramps the first and last `ramp` samples linearly.
fn fade(samples: &mut [i16], ramp: usize) {
    let n = samples.len();
    let ramp = ramp.min(n / 2);
    for i in 0..ramp {
        let gain = i as f32 / ramp as f32;
        samples[i] = (f32::from(samples[i]) * gain) as i16;
        samples[n - 1 - i] = (f32::from(samples[n - 1 - i]) * gain) as i16;
    }
}

/// What a held leg hears: looping samples, sent as G.711 with the payload type the leg negotiated.
#[derive(Debug, Clone)]
pub struct Music {
    pub samples: Arc<[i16]>,
    pub law: Law,
    /// The payload type on the leg (PCMU 0, PCMA 8: the static ones).
    pub payload_type: u8,
}

/// Plays [`Music`] as RTP: a fresh SSRC (never the forwarded stream's, so an SRTP context keeps one key stream
/// per source) and numbering drawn by the caller.
#[derive(Debug, Clone)]
pub struct MusicPlayer {
    music: Music,
    position: usize,
    sender: RtpSender,
    next_due: Instant,
    /// The first packet carries the marker bit (the start of a talk spurt, RFC 3551 §4.1).
    started: bool,
    /// Music loops; an announcement ([`MusicPlayer::once`]) plays once and is then finished.
    looping: bool,
}

impl MusicPlayer {
    /// `ssrc`, `first_seq` and `first_timestamp` should be random (RFC 3550 §5.1); the first packet is due at
    /// `now`.
    pub fn new(
        music: Music,
        ssrc: u32,
        first_seq: u16,
        first_timestamp: u32,
        now: Instant,
    ) -> Self {
        let sender = RtpSender::new(music.payload_type, ssrc, first_seq, first_timestamp);
        MusicPlayer {
            music,
            position: 0,
            sender,
            next_due: now,
            started: false,
            looping: true,
        }
    }

    /// Plays `music` once (an announcement such as "this call is recorded"), then [`MusicPlayer::finished`].
    pub fn once(
        music: Music,
        ssrc: u32,
        first_seq: u16,
        first_timestamp: u32,
        now: Instant,
    ) -> Self {
        MusicPlayer {
            looping: false,
            ..MusicPlayer::new(music, ssrc, first_seq, first_timestamp, now)
        }
    }

    /// A played-once announcement has played out.
    pub fn finished(&self) -> bool {
        !self.looping && self.position >= self.music.samples.len()
    }

    /// When the next packet is due.
    pub fn next_due(&self) -> Instant {
        self.next_due
    }

    pub fn ssrc(&self) -> u32 {
        self.sender.ssrc()
    }

    /// The next packet if it is due at `now` (call again until `None`: a late caller catches up, up to
    /// [`MAX_LAG`]).
    pub fn poll(&mut self, now: Instant) -> Option<Vec<u8>> {
        if now < self.next_due || self.finished() {
            return None;
        }
        if now.duration_since(self.next_due) > MAX_LAG {
            self.next_due = now;
        }
        let mut frame = [0i16; FRAME_SAMPLES];
        let samples = &self.music.samples;
        if !samples.is_empty() {
            for s in frame.iter_mut() {
                if !self.looping && self.position >= samples.len() {
                    break;
                }
                *s = samples[self.position % samples.len()];
                self.position += 1;
                if self.looping {
                    self.position %= samples.len();
                }
            }
        }
        let payload = self.music.law.encode_all(&frame);
        let marker = !self.started;
        self.started = true;
        self.next_due += FRAME;
        Some(self.sender.packet(&payload, FRAME_SAMPLES as u32, marker))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::RtpPacket;
    use crate::tone::{dominant_frequency, goertzel_power};

    fn music(samples: Vec<i16>, law: Law) -> Music {
        Music {
            samples: samples.into(),
            law,
            payload_type: law.payload_type(),
        }
    }

    #[test]
    fn melody_plays_its_notes_and_loops_without_clicks() {
        let m = default_melody();
        assert_eq!(m.len(), 6 * (300 + 50) * 8);
        let candidates = [350.0, 440.0, 523.25, 659.25, 783.99, 1046.5];
        // Each note is the strongest in its slot.
        for (slot, &note) in [0usize, 1, 2, 3, 2, 1].iter().enumerate() {
            let start = slot * 350 * 8;
            let tone = &m[start + 400..start + 2000];
            assert_eq!(
                dominant_frequency(tone, &candidates),
                Some(MELODY_NOTES[note])
            );
        }
        // Starts and ends near silence: looping does not click.
        assert!(m[0].abs() < 100 && m[m.len() - 1] == 0);
    }

    #[test]
    fn paced_one_packet_per_20_ms_and_catches_up_within_limits() {
        let t0 = Instant::now();
        let mut p = MusicPlayer::new(music(default_melody(), Law::Mu), 7, 100, 1000, t0);
        let first = p.poll(t0).expect("due at once");
        assert!(p.poll(t0).is_none(), "the next one is 20 ms away");
        assert_eq!(p.next_due(), t0 + FRAME);
        let first = RtpPacket::parse(&first).expect("rtp");
        assert_eq!(
            (first.payload_type(), first.ssrc(), first.sequence()),
            (0, 7, 100)
        );
        assert!(first.marker());
        assert_eq!(first.payload().len(), FRAME_SAMPLES);
        // 60 ms late: three packets at once, numbered on.
        let mut later = Vec::new();
        while let Some(pkt) = p.poll(t0 + Duration::from_millis(80)) {
            later.push(pkt);
        }
        assert_eq!(later.len(), 4);
        let second = RtpPacket::parse(&later[0]).expect("rtp");
        assert_eq!((second.sequence(), second.timestamp()), (101, 1160));
        assert!(!second.marker());
        // Ten seconds late: skips ahead rather than bursting 500 packets.
        let mut burst = 0;
        while p.poll(t0 + Duration::from_secs(10)).is_some() {
            burst += 1;
        }
        assert_eq!(burst, 1);
    }

    #[test]
    fn the_packets_carry_the_music_and_loop_it() {
        let t0 = Instant::now();
        let tone = crate::tone::sine(400.0, 25, 8000);
        let mut p = MusicPlayer::new(music(tone, Law::A), 1, 0, 0, t0);
        let mut decoded = Vec::new();
        for i in 0..10 {
            let pkt = p.poll(t0 + FRAME * i).expect("due");
            let pkt = RtpPacket::parse(&pkt).expect("rtp");
            assert_eq!(pkt.payload_type(), 8);
            decoded.extend(Law::A.decode_all(pkt.payload()));
        }
        // 200 ms of a 25 ms loop of 400 Hz (ten whole cycles): still 400 Hz throughout.
        assert!(goertzel_power(&decoded, 400.0) > 1e7);
        // Once: plays its 25 ms (two packets) and is finished.
        let once = music(crate::tone::sine(400.0, 25, 8000), Law::Mu);
        let mut p = MusicPlayer::once(once, 2, 0, 0, t0);
        assert!(p.poll(t0).is_some() && !p.finished());
        assert!(p.poll(t0 + FRAME).is_some() && p.finished());
        assert!(p.poll(t0 + FRAME * 2).is_none());
        // Empty music is silence, not a panic.
        let mut quiet = MusicPlayer::new(music(Vec::new(), Law::Mu), 1, 0, 0, t0);
        let pkt = quiet.poll(t0).expect("due");
        let pkt = RtpPacket::parse(&pkt).expect("rtp");
        assert!(Law::Mu.decode_all(pkt.payload()).iter().all(|&s| s == 0));
    }
}
