//! The media application of a caller waiting in a call queue: the queue's music in a loop (a WAV file, or
//! Palisade's own melody), interrupted by its position in the line as beeps (one short beep per place, a low
//! tone first), every 20 ms as G.711 RTP to the call's relay. It runs until the endpoint stops it (an agent
//! answered, the caller hung up, the wait ran out).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use media::g711::Law;
use media::packetizer::{FRAME_SAMPLES, RtpSender};
use media::tone;
use pbx::calls::AppStart;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::{Input, Shared};

/// Most position beeps played (a longer line is announced as this many).
const MAX_BEEPS: usize = 9;

/// Palisade's default hold music: a short, original tone melody (C major arpeggios), about 6 s, looped.
pub fn default_melody() -> Vec<i16> {
    const NOTES: [(f32, u32); 16] = [
        (523.25, 300),
        (659.25, 300),
        (783.99, 300),
        (1046.5, 450),
        (783.99, 300),
        (659.25, 450),
        (587.33, 300),
        (698.46, 300),
        (880.0, 300),
        (1174.66, 450),
        (880.0, 300),
        (698.46, 450),
        (523.25, 300),
        (659.25, 300),
        (783.99, 600),
        (0.0, 400),
    ];
    let mut out = Vec::new();
    for (hz, ms) in NOTES {
        if hz == 0.0 {
            out.extend(tone::silence(ms));
        } else {
            let mut note = tone::sine(hz, ms, 6000);
            // Soft edges: no clicks between notes.
            let fade = 80.min(note.len() / 2);
            for i in 0..fade {
                let k = i as f32 / fade as f32;
                note[i] = (f32::from(note[i]) * k) as i16;
                let j = note.len() - 1 - i;
                note[j] = (f32::from(note[j]) * k) as i16;
            }
            out.extend(note);
        }
    }
    out
}

/// The music for `music`: `default`, or a WAV file (8 kHz 16-bit mono); an unreadable file falls back to the
/// default melody with a warning (the caller still hears something).
async fn load_music(music: &str) -> Vec<i16> {
    if music == "default" {
        return default_melody();
    }
    match tokio::fs::read(Path::new(music)).await {
        Ok(bytes) => match media::wav::decode(&bytes) {
            Ok(samples) if !samples.is_empty() => return samples,
            Ok(_) => {
                tracing::warn!(%music, "queue music file is empty; playing the default melody")
            }
            Err(e) => {
                tracing::warn!(%music, error = %e, "queue music file is not 8 kHz 16-bit mono WAV; playing the default melody")
            }
        },
        Err(e) => {
            tracing::warn!(%music, error = %e, "cannot read the queue music; playing the default melody")
        }
    }
    default_melody()
}

/// The position announcement: a low tone, then one short beep per place.
fn position_tones(position: usize) -> Vec<i16> {
    let mut out = tone::sine(440.0, 300, 7000);
    out.extend(tone::silence(200));
    for _ in 0..position.clamp(1, MAX_BEEPS) {
        out.extend(tone::sine(1400.0, 120, 7000));
        out.extend(tone::silence(150));
    }
    out.extend(tone::silence(300));
    out
}

pub(super) async fn run(
    _shared: Arc<Shared>,
    start: AppStart,
    music: String,
    socket: UdpSocket,
    relay: SocketAddr,
    mut inputs: mpsc::UnboundedReceiver<Input>,
) {
    let law = Law::from_payload_type(start.codec.payload_type).unwrap_or(Law::Mu);
    let mut sender = RtpSender::new(
        start.codec.payload_type,
        rand::random(),
        rand::random(),
        rand::random(),
    );
    let music = load_music(&music).await;
    let mut at = 0usize;
    let mut announcement: VecDeque<i16> = VecDeque::new();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut buf = vec![0u8; 2048];
    tracing::debug!(call = start.call, "queue music started");
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let mut frame = [0i16; FRAME_SAMPLES];
                for s in frame.iter_mut() {
                    *s = match announcement.pop_front() {
                        Some(v) => v,
                        None if music.is_empty() => 0,
                        None => {
                            let v = music[at % music.len()];
                            at = (at + 1) % music.len();
                            v
                        }
                    };
                }
                let packet = sender.packet(&law.encode_all(&frame), FRAME_SAMPLES as u32, false);
                if let Err(e) = socket.send_to(&packet, relay).await {
                    tracing::debug!(error = %e, "queue music RTP not sent");
                }
            }
            // What the caller sends is not used (keys do nothing while waiting).
            _ = socket.recv_from(&mut buf) => {}
            input = inputs.recv() => match input {
                Some(Input::Position(p)) => announcement = position_tones(p).into(),
                Some(Input::Digit(_)) | Some(Input::Refused) => {}
                Some(Input::Stop) | None => return,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_melody_is_audible_and_a_few_seconds_long() {
        let m = default_melody();
        let secs = m.len() as f64 / 8000.0;
        assert!((5.0..8.0).contains(&secs), "{secs}");
        assert!(m.iter().any(|s| s.unsigned_abs() > 4000));
        // Its first note is C5.
        assert_eq!(
            tone::dominant_frequency(&m[400..2000], &[440.0, 523.25, 659.25]),
            Some(523.25)
        );
    }

    #[test]
    fn positions_are_beeps() {
        let one = position_tones(1).len();
        assert!(position_tones(3).len() > one);
        assert_eq!(position_tones(50).len(), position_tones(MAX_BEEPS).len());
    }
}
