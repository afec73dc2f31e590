//! Call recording, sans-IO: both legs' G.711 audio, as the relay sees it in clear (after SRTP), mixed onto one
//! 8 kHz timeline by arrival time (`now` passed in), and the on-demand feature code (`*1` by RFC 4733 from a leg
//! allowed to use it) that starts and stops it.
//!
//! Each leg writes at its own cursor: a packet that arrives after a gap (hold, silence suppression, loss) moves
//! the cursor to where the clock says it belongs; packets in a burst are appended back to back. Both legs are
//! summed into one mono track (the file shape Palisade stores everywhere, [`crate::wav`]), clipped.

use std::time::{Duration, Instant};

use crate::dtmf::DtmfReceiver;
use crate::g711::Law;
use crate::relay::Leg;
use crate::rtp::RtpPacket;
use crate::wav::SAMPLE_RATE;

/// Longest recording kept in memory (one hour: 57.6 MB of samples); later audio is not recorded.
pub const MAX_SAMPLES: usize = 3600 * SAMPLE_RATE as usize;
/// A leg this far behind the clock jumps to it (a gap); less is jitter and is appended.
const GAP: usize = 480;

/// What the recorder was asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordingPlan {
    /// Record from the start.
    pub always: bool,
    /// Which legs may start and stop it with `*1` (the extension's own phone, when its setting is on demand).
    pub on_demand: [bool; 2],
    /// The telephone-event payload type of each leg, if any.
    pub dtmf_payload_type: [Option<u8>; 2],
}

/// A recording's state: on or paused (on demand), the mix so far, each leg's cursor.
#[derive(Debug, Clone)]
pub struct Recorder {
    plan: RecordingPlan,
    recording: bool,
    /// When the timeline's sample 0 was (the first time recording was on).
    origin: Option<Instant>,
    /// Both legs summed (saturating: the sum of two legs is clipped, as a mixer does).
    mix: Vec<i16>,
    cursor: [usize; 2],
    dtmf: [DtmfReceiver; 2],
    /// The last key from each leg (for `*` then `1`).
    last_key: [Option<char>; 2],
    /// The two keys that start and stop an on-demand recording (`*1` unless the office changed the feature code;
    /// `None`: no code).
    toggle: Option<[char; 2]>,
    /// Times it was switched on or off by the feature code.
    pub toggles: u32,
}

fn index(leg: Leg) -> usize {
    match leg {
        Leg::A => 0,
        Leg::B => 1,
    }
}

impl Recorder {
    pub fn new(plan: RecordingPlan) -> Self {
        Recorder {
            plan,
            recording: plan.always,
            origin: None,
            mix: Vec::new(),
            cursor: [0, 0],
            dtmf: [DtmfReceiver::new(), DtmfReceiver::new()],
            last_key: [None, None],
            toggle: Some(['*', '1']),
            toggles: 0,
        }
    }

    /// Uses `keys` (e.g. `#`, `9`) instead of `*1` to start and stop recording on demand; `None` turns the code off.
    pub fn with_toggle(mut self, keys: Option<[char; 2]>) -> Self {
        self.toggle = keys;
        self
    }

    pub fn is_recording(&self) -> bool {
        self.recording
    }

    /// A packet `leg`'s phone sent (plain RTP) at `now`. Returns true when the feature code just switched
    /// recording on (the caller may want to announce it).
    pub fn on_packet(&mut self, leg: Leg, packet: &[u8], now: Instant) -> bool {
        let Ok(rtp) = RtpPacket::parse(packet) else {
            return false;
        };
        let i = index(leg);
        let pt = rtp.payload_type();
        if Some(pt) == self.plan.dtmf_payload_type[i] {
            return self.on_key(i, rtp.timestamp(), rtp.payload(), now);
        }
        if !self.recording {
            return false;
        }
        let Some(law) = Law::from_payload_type(pt) else {
            return false;
        };
        let origin = *self.origin.get_or_insert(now);
        let due = sample_at(now.saturating_duration_since(origin));
        let cursor = &mut self.cursor[i];
        if *cursor + GAP < due {
            *cursor = due;
        }
        let start = *cursor;
        let payload = rtp.payload();
        let end = (start + payload.len()).min(MAX_SAMPLES);
        if end <= start {
            return false;
        }
        if self.mix.len() < end {
            self.mix.resize(end, 0);
        }
        for (slot, &b) in self.mix[start..end].iter_mut().zip(payload) {
            *slot = slot.saturating_add(law.decode(b));
        }
        *cursor = end;
        false
    }

    fn on_key(&mut self, i: usize, timestamp: u32, payload: &[u8], now: Instant) -> bool {
        if !self.plan.on_demand[i] {
            return false;
        }
        let Some(key) = self.dtmf[i].on_packet(timestamp, payload) else {
            return false;
        };
        let previous = self.last_key[i].replace(key);
        if self
            .toggle
            .is_some_and(|[first, second]| previous == Some(first) && key == second)
        {
            self.last_key[i] = None;
            self.recording = !self.recording;
            self.toggles += 1;
            if self.recording {
                // Resume on the clock: what was not recorded stays silent in the file.
                self.origin.get_or_insert(now);
                return true;
            }
        }
        false
    }

    /// The recorded audio, mixed and clipped; empty when nothing was recorded.
    pub fn samples(&self) -> &[i16] {
        &self.mix
    }

    /// The recorded audio, taking it out (no copy of up to an hour of samples).
    pub fn into_samples(self) -> Vec<i16> {
        self.mix
    }
}

fn sample_at(elapsed: Duration) -> usize {
    usize::try_from(elapsed.as_millis() * u128::from(SAMPLE_RATE) / 1000).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packetizer::{FRAME_SAMPLES, RtpSender, frames};
    use crate::tone::{goertzel_power, sine};

    const FRAME: Duration = Duration::from_millis(20);

    fn plan(always: bool) -> RecordingPlan {
        RecordingPlan {
            always,
            on_demand: [false, true],
            dtmf_payload_type: [Some(101), Some(101)],
        }
    }

    fn stream(hz: f32, law: Law, ssrc: u32) -> Vec<Vec<u8>> {
        let mut s = RtpSender::new(law.payload_type(), ssrc, 1, 0);
        frames(&sine(hz, 2000, 6000), law)
            .map(|f| s.packet(&f, FRAME_SAMPLES as u32, false))
            .collect()
    }

    /// A telephone-event (RFC 4733) end packet for `event` at `timestamp`.
    fn key(event: u8, timestamp: u32) -> Vec<u8> {
        let mut p = vec![0x80, 101, 0, 1];
        p.extend_from_slice(&timestamp.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 9, event, 0x80 | 10, 3, 0x20]);
        p
    }

    #[test]
    fn both_legs_are_mixed_on_one_timeline() {
        let t0 = Instant::now();
        let mut r = Recorder::new(plan(true));
        let (a, b) = (stream(440.0, Law::Mu, 1), stream(880.0, Law::A, 2));
        for (i, (pa, pb)) in a.iter().zip(&b).enumerate() {
            let now = t0 + FRAME * i as u32;
            r.on_packet(Leg::A, pa, now);
            r.on_packet(Leg::B, pb, now);
        }
        let s = r.samples();
        assert!((15_900..=16_100).contains(&s.len()), "{}", s.len());
        assert!(goertzel_power(s, 440.0) > 5e6);
        assert!(goertzel_power(s, 880.0) > 5e6);
    }

    #[test]
    fn a_gap_leaves_silence_and_bursts_are_appended() {
        let t0 = Instant::now();
        let mut r = Recorder::new(plan(true));
        let a = stream(440.0, Law::Mu, 1);
        r.on_packet(Leg::A, &a[0], t0);
        // One second without packets, then a burst of three at once.
        let later = t0 + Duration::from_secs(1);
        for p in &a[1..4] {
            r.on_packet(Leg::A, p, later);
        }
        let s = r.samples();
        assert_eq!(s.len(), 8000 + 3 * 160);
        assert!(s[160..8000].iter().all(|&x| x == 0));
    }

    #[test]
    fn star_one_toggles_only_from_an_allowed_leg() {
        let t0 = Instant::now();
        let mut r = Recorder::new(plan(false));
        let a = stream(440.0, Law::Mu, 1);
        assert!(!r.on_packet(Leg::A, &a[0], t0));
        assert!(r.samples().is_empty(), "not recording yet");
        // Leg A may not use the code.
        r.on_packet(Leg::A, &key(10, 100), t0);
        r.on_packet(Leg::A, &key(1, 200), t0);
        assert!(!r.is_recording());
        // Leg B: * then 1 switches it on (and says so), again switches it off.
        assert!(!r.on_packet(Leg::B, &key(10, 100), t0));
        assert!(r.on_packet(Leg::B, &key(1, 200), t0));
        assert!(r.is_recording());
        r.on_packet(Leg::A, &a[1], t0 + FRAME);
        assert_eq!(r.samples().len(), 160);
        r.on_packet(Leg::B, &key(10, 300), t0);
        r.on_packet(Leg::B, &key(1, 400), t0);
        assert!(!r.is_recording());
        assert_eq!(r.toggles, 2);
        // Garbage is ignored.
        assert!(!r.on_packet(Leg::A, b"junk", t0));
    }

    #[test]
    fn the_office_may_choose_another_code_or_none() {
        let t0 = Instant::now();
        let mut r = Recorder::new(plan(false)).with_toggle(Some(['#', '9']));
        // *1 is an ordinary pair of keys now; #9 switches recording on.
        r.on_packet(Leg::B, &key(10, 100), t0);
        r.on_packet(Leg::B, &key(1, 200), t0);
        assert!(!r.is_recording());
        r.on_packet(Leg::B, &key(11, 300), t0);
        assert!(r.on_packet(Leg::B, &key(9, 400), t0));
        assert!(r.is_recording());
        // No code at all: keys never switch it.
        let mut off = Recorder::new(plan(false)).with_toggle(None);
        off.on_packet(Leg::B, &key(10, 100), t0);
        off.on_packet(Leg::B, &key(1, 200), t0);
        assert!(!off.is_recording() && off.toggles == 0);
    }
}
