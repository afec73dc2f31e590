//! Outgoing RTP for media the PBX itself plays (prompts, tones, voicemail playback): 20 ms G.711 frames and the
//! RTP header sequence around them.

use crate::g711::Law;
use crate::rtp::RTP_HEADER_LEN;

/// Samples in one 20 ms frame at 8 kHz: the RFC 3551 default packetisation for PCMU/PCMA, which every phone
/// accepts without an `a=ptime`.
pub const FRAME_SAMPLES: usize = 160;

/// Numbers the packets of one outgoing RTP stream (one SSRC): the sequence number goes up by one per packet
/// and the timestamp by the samples each one carries, both wrapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpSender {
    payload_type: u8,
    ssrc: u32,
    sequence: u16,
    timestamp: u32,
}

impl RtpSender {
    /// RFC 3550 §5.1 wants a random first sequence number and timestamp (and SSRC); the caller draws them, so
    /// that this type stays deterministic. Only the low 7 bits of `payload_type` fit in the header.
    pub fn new(payload_type: u8, ssrc: u32, first_seq: u16, first_timestamp: u32) -> Self {
        RtpSender {
            payload_type: payload_type & 0x7f,
            ssrc,
            sequence: first_seq,
            timestamp: first_timestamp,
        }
    }

    /// The next packet: a 12-byte RTP version 2 header (no padding, extension or CSRCs) and `payload`.
    /// `samples` is how many sampling periods the payload covers; the next packet's timestamp is that much
    /// later. `marker` is for the first packet after a silence (RFC 3551 §4.1) or of a telephone event.
    pub fn packet(&mut self, payload: &[u8], samples: u32, marker: bool) -> Vec<u8> {
        let mut p = Vec::with_capacity(RTP_HEADER_LEN + payload.len());
        p.push(0x80);
        p.push(if marker { 0x80 } else { 0 } | self.payload_type);
        p.extend_from_slice(&self.sequence.to_be_bytes());
        p.extend_from_slice(&self.timestamp.to_be_bytes());
        p.extend_from_slice(&self.ssrc.to_be_bytes());
        p.extend_from_slice(payload);
        self.sequence = self.sequence.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(samples);
        p
    }

    pub fn payload_type(&self) -> u8 {
        self.payload_type
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The sequence number the next packet gets.
    pub fn next_sequence(&self) -> u16 {
        self.sequence
    }

    /// The timestamp the next packet gets.
    pub fn next_timestamp(&self) -> u32 {
        self.timestamp
    }
}

/// `samples` cut into 20 ms frames and encoded with `law`, one RTP payload each. The last frame is filled up
/// with silence, so every frame is [`FRAME_SAMPLES`] bytes and the stream's timing stays regular; no samples,
/// no frames.
pub fn frames(samples: &[i16], law: Law) -> impl Iterator<Item = Vec<u8>> + '_ {
    let quiet = law.encode(0);
    samples.chunks(FRAME_SAMPLES).map(move |chunk| {
        let mut frame = law.encode_all(chunk);
        frame.resize(FRAME_SAMPLES, quiet);
        frame
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::RtpPacket;

    #[test]
    fn header_fields_read_back() {
        let mut tx = RtpSender::new(8, 0xdead_beef, 1000, 160_000);
        let first = tx.packet(&[1, 2, 3], 160, true);
        assert_eq!(
            first[..12],
            [
                0x80, 0x88, 0x03, 0xe8, 0, 2, 0x71, 0, 0xde, 0xad, 0xbe, 0xef
            ]
        );
        let second = tx.packet(&[4; 160], 160, false);
        for (bytes, seq, ts, marker, payload) in [
            (&first, 1000u16, 160_000u32, true, &[1u8, 2, 3][..]),
            (&second, 1001, 160_160, false, &[4; 160][..]),
        ] {
            let p = RtpPacket::parse(bytes).unwrap();
            assert_eq!(p.payload_type(), 8);
            assert_eq!(p.sequence(), seq);
            assert_eq!(p.timestamp(), ts);
            assert_eq!(p.ssrc(), 0xdead_beef);
            assert_eq!(p.marker(), marker);
            assert_eq!(p.payload(), payload);
            assert_eq!(
                (p.padding(), p.extension(), p.csrc_count()),
                (false, false, 0)
            );
        }
        assert_eq!((tx.next_sequence(), tx.next_timestamp()), (1002, 160_320));
    }

    #[test]
    fn sequence_and_timestamp_wrap() {
        let mut tx = RtpSender::new(0, 1, u16::MAX, u32::MAX - 100);
        let seqs_and_timestamps: Vec<(u16, u32)> = (0..3)
            .map(|_| {
                let bytes = tx.packet(&[0xff; 160], 160, false);
                let p = RtpPacket::parse(&bytes).unwrap();
                (p.sequence(), p.timestamp())
            })
            .collect();
        assert_eq!(
            seqs_and_timestamps,
            [(u16::MAX, u32::MAX - 100), (0, 59), (1, 219)]
        );
    }

    #[test]
    fn payload_type_is_seven_bits() {
        let mut tx = RtpSender::new(101 | 0x80, 1, 0, 0);
        assert_eq!(tx.payload_type(), 101);
        let bytes = tx.packet(&[], 0, false);
        let p = RtpPacket::parse(&bytes).unwrap();
        assert_eq!((p.payload_type(), p.marker()), (101, false));
        assert!(p.payload().is_empty());
        assert_eq!(tx.next_timestamp(), 0, "zero samples leave the clock alone");
    }

    #[test]
    fn frames_are_20_ms_padded_with_silence() {
        let samples: Vec<i16> = (0..400).map(|i| (i * 50) as i16).collect();
        for law in [Law::Mu, Law::A] {
            let f: Vec<Vec<u8>> = frames(&samples, law).collect();
            assert_eq!(f.len(), 3);
            assert!(f.iter().all(|frame| frame.len() == FRAME_SAMPLES));
            assert_eq!(f[0], law.encode_all(&samples[..160]));
            assert_eq!(f[1], law.encode_all(&samples[160..320]));
            assert_eq!(f[2][..80], law.encode_all(&samples[320..])[..]);
            // A-law has no zero: its silence is the smallest step, ±8.
            assert!(f[2][80..].iter().all(|&b| b == law.encode(0)));
            assert!(law.decode(law.encode(0)).abs() <= 8);
            assert_eq!(frames(&samples[..320], law).count(), 2);
            assert_eq!(frames(&[], law).count(), 0);
            assert_eq!(frames(&[1], law).count(), 1);
        }
    }

    #[test]
    fn a_prompt_becomes_a_packet_stream() {
        let samples = crate::tone::sine(440.0, 70, 5000);
        let mut tx = RtpSender::new(Law::Mu.payload_type(), 42, 7, 0);
        let packets: Vec<Vec<u8>> = frames(&samples, Law::Mu)
            .enumerate()
            .map(|(i, frame)| tx.packet(&frame, FRAME_SAMPLES as u32, i == 0))
            .collect();
        assert_eq!(packets.len(), 4);
        let mut decoded = Vec::new();
        for (i, bytes) in packets.iter().enumerate() {
            let p = RtpPacket::parse(bytes).unwrap();
            assert_eq!(p.sequence(), 7 + i as u16);
            assert_eq!(p.timestamp(), 160 * i as u32);
            assert_eq!(p.marker(), i == 0);
            decoded.extend(
                Law::from_payload_type(p.payload_type())
                    .unwrap()
                    .decode_all(p.payload()),
            );
        }
        assert_eq!(decoded.len(), 640);
        assert_eq!(
            crate::tone::dominant_frequency(&decoded[..560], &[350.0, 440.0, 480.0]),
            Some(440.0)
        );
    }
}
