//! Zero-copy views of RTP (RFC 3550 §5.1) and RTCP (§6.4) headers, RTP/RTCP demultiplexing (RFC 5761 §4) and
//! RFC 4733 telephone-event payloads. Views borrow the datagram; parsing checks every length before reading and
//! never panics on input.

/// The fixed RTP header: V, P, X, CC, M, PT, sequence number, timestamp, SSRC.
pub const RTP_HEADER_LEN: usize = 12;
/// The smallest RTCP packet: the 4-byte header and the sender's SSRC.
pub const RTCP_MIN_LEN: usize = 8;

/// Why a datagram is not a well-formed RTP or RTCP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    #[error("{len} bytes is shorter than the {need}-byte header")]
    TooShort { len: usize, need: usize },
    #[error("version {0}, not 2")]
    BadVersion(u8),
    #[error("CSRC list runs past the end of the packet")]
    CsrcOverrun,
    #[error("header extension runs past the end of the packet")]
    ExtensionOverrun,
    #[error("padding length {0} is zero or longer than the payload")]
    BadPadding(u8),
    #[error("RTCP length field runs past the end of the packet")]
    LengthOverrun,
    #[error("payload type {0} is RTCP, not RTP")]
    NotRtp(u8),
    #[error("packet type {0} is not RTCP")]
    NotRtcp(u8),
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([b[i], b[i + 1]])
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

fn version(first: u8) -> u8 {
    first >> 6
}

/// RFC 5761 §4: with RTP and RTCP on one port, a second byte of 192–223 (payload type 64–95 with the marker bit
/// set) is RTCP (SR 200, RR 201, SDES 202, BYE 203, APP 204, RTPFB 205, PSFB 206, XR 207, ...); RTP never uses
/// those payload types. Only looks at the version and the second byte.
pub fn is_rtcp(packet: &[u8]) -> bool {
    packet.len() >= 2 && version(packet[0]) == 2 && (192..=223).contains(&packet[1])
}

/// A validated RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    buf: &'a [u8],
    header_len: usize,
    payload_end: usize,
}

impl<'a> RtpPacket<'a> {
    /// Check version 2, the CSRC list, the header extension and the padding against the datagram's length.
    pub fn parse(buf: &'a [u8]) -> Result<Self, RtpError> {
        if buf.len() < RTP_HEADER_LEN {
            return Err(RtpError::TooShort {
                len: buf.len(),
                need: RTP_HEADER_LEN,
            });
        }
        if version(buf[0]) != 2 {
            return Err(RtpError::BadVersion(version(buf[0])));
        }
        if (192..=223).contains(&buf[1]) {
            return Err(RtpError::NotRtp(buf[1] & 0x7f));
        }
        let csrc_count = usize::from(buf[0] & 0x0f);
        let mut header_len = RTP_HEADER_LEN + 4 * csrc_count;
        if header_len > buf.len() {
            return Err(RtpError::CsrcOverrun);
        }
        if buf[0] & 0x10 != 0 {
            if header_len + 4 > buf.len() {
                return Err(RtpError::ExtensionOverrun);
            }
            let words = usize::from(u16_at(buf, header_len + 2));
            header_len += 4 + 4 * words;
            if header_len > buf.len() {
                return Err(RtpError::ExtensionOverrun);
            }
        }
        let mut payload_end = buf.len();
        if buf[0] & 0x20 != 0 {
            let pad = buf[buf.len() - 1];
            if pad == 0 || usize::from(pad) > buf.len() - header_len {
                return Err(RtpError::BadPadding(pad));
            }
            payload_end -= usize::from(pad);
        }
        Ok(RtpPacket {
            buf,
            header_len,
            payload_end,
        })
    }

    pub fn padding(&self) -> bool {
        self.buf[0] & 0x20 != 0
    }

    pub fn extension(&self) -> bool {
        self.buf[0] & 0x10 != 0
    }

    pub fn csrc_count(&self) -> u8 {
        self.buf[0] & 0x0f
    }

    pub fn marker(&self) -> bool {
        self.buf[1] & 0x80 != 0
    }

    pub fn payload_type(&self) -> u8 {
        self.buf[1] & 0x7f
    }

    pub fn sequence(&self) -> u16 {
        u16_at(self.buf, 2)
    }

    pub fn timestamp(&self) -> u32 {
        u32_at(self.buf, 4)
    }

    pub fn ssrc(&self) -> u32 {
        u32_at(self.buf, 8)
    }

    pub fn csrcs(&self) -> impl Iterator<Item = u32> + 'a {
        let buf = self.buf;
        (0..usize::from(self.csrc_count())).map(move |i| u32_at(buf, RTP_HEADER_LEN + 4 * i))
    }

    /// The extension's profile-defined identifier and its data, when the X bit is set.
    pub fn extension_data(&self) -> Option<(u16, &'a [u8])> {
        if !self.extension() {
            return None;
        }
        let at = RTP_HEADER_LEN + 4 * usize::from(self.csrc_count());
        Some((u16_at(self.buf, at), &self.buf[at + 4..self.header_len]))
    }

    /// Header length including CSRCs and the extension.
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// The payload without padding.
    pub fn payload(&self) -> &'a [u8] {
        &self.buf[self.header_len..self.payload_end]
    }

    pub fn as_bytes(&self) -> &'a [u8] {
        self.buf
    }
}

/// The first packet of an RTCP (compound) datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtcpPacket<'a> {
    buf: &'a [u8],
}

impl<'a> RtcpPacket<'a> {
    /// Check version 2, an RTCP packet type (192–223) and that the first packet's length field fits.
    pub fn parse(buf: &'a [u8]) -> Result<Self, RtpError> {
        if buf.len() < RTCP_MIN_LEN {
            return Err(RtpError::TooShort {
                len: buf.len(),
                need: RTCP_MIN_LEN,
            });
        }
        if version(buf[0]) != 2 {
            return Err(RtpError::BadVersion(version(buf[0])));
        }
        if !(192..=223).contains(&buf[1]) {
            return Err(RtpError::NotRtcp(buf[1]));
        }
        let len = (usize::from(u16_at(buf, 2)) + 1) * 4;
        if len > buf.len() {
            return Err(RtpError::LengthOverrun);
        }
        Ok(RtcpPacket { buf })
    }

    pub fn padding(&self) -> bool {
        self.buf[0] & 0x20 != 0
    }

    /// Reception report count (SR/RR), source count (SDES/BYE) or subtype (APP, feedback).
    pub fn count(&self) -> u8 {
        self.buf[0] & 0x1f
    }

    /// 200 SR, 201 RR, 202 SDES, 203 BYE, 204 APP, 205 RTPFB, 206 PSFB, 207 XR.
    pub fn packet_type(&self) -> u8 {
        self.buf[1]
    }

    /// Length of the first packet in bytes (from its length field).
    pub fn len(&self) -> usize {
        (usize::from(u16_at(self.buf, 2)) + 1) * 4
    }

    /// Never true: a parsed packet has at least its header.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The SSRC of the sender (or the first source, for SDES/BYE).
    pub fn ssrc(&self) -> u32 {
        u32_at(self.buf, 4)
    }

    pub fn as_bytes(&self) -> &'a [u8] {
        self.buf
    }
}

/// An RFC 4733 §2.3 named-event payload (DTMF digits, flash).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// 0–9 digits, 10 `*`, 11 `#`, 12–15 A–D, 16 flash; others are named events this module does not name.
    pub event: u8,
    /// The E bit: the last packets of an event.
    pub end: bool,
    /// Power level in -dBm0, 0–63.
    pub volume: u8,
    /// In timestamp units.
    pub duration: u16,
}

impl TelephoneEvent {
    pub const LEN: usize = 4;

    /// Parse the first event block of a payload (further blocks, RFC 4733 §2.5.1.5 redundancy, are ignored).
    pub fn parse(payload: &[u8]) -> Result<Self, RtpError> {
        if payload.len() < Self::LEN {
            return Err(RtpError::TooShort {
                len: payload.len(),
                need: Self::LEN,
            });
        }
        Ok(TelephoneEvent {
            event: payload[0],
            end: payload[1] & 0x80 != 0,
            volume: payload[1] & 0x3f,
            duration: u16_at(payload, 2),
        })
    }

    /// The DTMF key this event stands for, if it is one.
    pub fn digit(&self) -> Option<char> {
        Some(match self.event {
            0..=9 => char::from(b'0' + self.event),
            10 => '*',
            11 => '#',
            12..=15 => char::from(b'A' + self.event - 12),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(first: u8, second: u8, rest: &[u8]) -> Vec<u8> {
        let mut p = vec![
            first, second, 0x12, 0x34, 0, 0, 0x0f, 0xa0, 0xde, 0xad, 0xbe, 0xef,
        ];
        p.extend_from_slice(rest);
        p
    }

    #[test]
    fn plain_packet() {
        let p = rtp(0x80, 0x80 | 8, &[1, 2, 3]);
        let r = RtpPacket::parse(&p).unwrap();
        assert!(r.marker());
        assert_eq!(r.payload_type(), 8);
        assert_eq!(r.sequence(), 0x1234);
        assert_eq!(r.timestamp(), 4000);
        assert_eq!(r.ssrc(), 0xdead_beef);
        assert_eq!(r.payload(), [1, 2, 3]);
        assert_eq!(r.csrcs().count(), 0);
        assert_eq!(r.extension_data(), None);
        assert!(!r.padding());
    }

    #[test]
    fn csrcs_extension_and_padding() {
        // CC=2, X=1, P=1; extension id 0xbede with one word; payload [9, 9]; padding 3 (the last byte says 3).
        let mut rest = vec![
            0, 0, 0, 1, 0, 0, 0, 2, 0xbe, 0xde, 0, 1, 1, 2, 3, 4, 9, 9, 0, 0, 3,
        ];
        let p = rtp(0x80 | 0x20 | 0x10 | 2, 0, &rest);
        let r = RtpPacket::parse(&p).unwrap();
        assert_eq!(r.csrcs().collect::<Vec<_>>(), [1, 2]);
        assert_eq!(r.extension_data(), Some((0xbede, &[1, 2, 3, 4][..])));
        assert_eq!(r.header_len(), 12 + 8 + 8);
        assert_eq!(r.payload(), [9, 9]);

        rest.truncate(rest.len() - 1);
        rest.push(20);
        let p = rtp(0x80 | 0x20 | 0x10 | 2, 0, &rest);
        assert_eq!(RtpPacket::parse(&p), Err(RtpError::BadPadding(20)));
    }

    #[test]
    fn malformed_packets_are_errors() {
        assert_eq!(
            RtpPacket::parse(&[]),
            Err(RtpError::TooShort { len: 0, need: 12 })
        );
        assert_eq!(
            RtpPacket::parse(&[0x80; 11]),
            Err(RtpError::TooShort { len: 11, need: 12 })
        );
        assert_eq!(
            RtpPacket::parse(&rtp(0x40, 0, &[])),
            Err(RtpError::BadVersion(1))
        );
        assert_eq!(
            RtpPacket::parse(&rtp(0x00, 1, &[])),
            Err(RtpError::BadVersion(0)),
            "STUN-like"
        );
        assert_eq!(
            RtpPacket::parse(&rtp(0x8f, 0, &[0; 8])),
            Err(RtpError::CsrcOverrun)
        );
        assert_eq!(
            RtpPacket::parse(&rtp(0x90, 0, &[0, 0])),
            Err(RtpError::ExtensionOverrun)
        );
        assert_eq!(
            RtpPacket::parse(&rtp(0x90, 0, &[0, 0, 0, 2, 0, 0, 0, 0])),
            Err(RtpError::ExtensionOverrun)
        );
        assert_eq!(
            RtpPacket::parse(&rtp(0xa0, 0, &[])),
            Err(RtpError::BadPadding(0xef))
        );
        assert_eq!(
            RtpPacket::parse(&rtp(0xa0, 0, &[0])),
            Err(RtpError::BadPadding(0))
        );
        assert_eq!(
            RtpPacket::parse(&rtp(0x80, 200, &[])),
            Err(RtpError::NotRtp(72))
        );
    }

    #[test]
    fn every_prefix_of_every_header_shape_is_safe() {
        let mut seed = 7u32;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let len = (seed % 48) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|i| (seed.rotate_left(i as u32 * 3) as u8) | 0x80)
                .collect();
            if let Ok(r) = RtpPacket::parse(&bytes) {
                let _ = (r.payload(), r.extension_data(), r.csrcs().count());
            }
            if let Ok(r) = RtcpPacket::parse(&bytes) {
                assert!(r.len() <= bytes.len());
            }
            let _ = (is_rtcp(&bytes), TelephoneEvent::parse(&bytes));
        }
    }

    #[test]
    fn rtcp_demultiplexing_and_header() {
        // An empty RR: length 1 word past the header.
        let rr = [0x80, 201, 0, 1, 1, 2, 3, 4];
        assert!(is_rtcp(&rr));
        let r = RtcpPacket::parse(&rr).unwrap();
        assert_eq!(
            (r.packet_type(), r.count(), r.len(), r.ssrc()),
            (201, 0, 8, 0x0102_0304)
        );
        for pt in [200u8, 202, 203, 204, 205, 206, 207] {
            assert!(is_rtcp(&[0x81, pt, 0, 1, 0, 0, 0, 0]), "{pt}");
        }
        // RTP with the marker bit and PT 0..63 or 96..127 is not RTCP.
        assert!(!is_rtcp(&[0x80, 0x80, 0, 1]));
        assert!(!is_rtcp(&[0x80, 0x80 | 101, 0, 1]));
        assert!(!is_rtcp(&[0x80, 0]));
        assert!(!is_rtcp(&[0x40, 200, 0, 1]), "version 1");
        assert!(!is_rtcp(&[0x80]));
        assert_eq!(
            RtcpPacket::parse(&[0x80, 201, 0, 5, 0, 0, 0, 0]),
            Err(RtpError::LengthOverrun)
        );
        assert_eq!(
            RtcpPacket::parse(&[0x80, 8, 0, 1, 0, 0, 0, 0]),
            Err(RtpError::NotRtcp(8))
        );
        assert_eq!(
            RtcpPacket::parse(&[0x80, 201, 0]),
            Err(RtpError::TooShort { len: 3, need: 8 })
        );
    }

    #[test]
    fn telephone_events() {
        // '#' with the end bit, volume 10, duration 1600.
        let e = TelephoneEvent::parse(&[11, 0x80 | 10, 0x06, 0x40]).unwrap();
        assert_eq!(
            e,
            TelephoneEvent {
                event: 11,
                end: true,
                volume: 10,
                duration: 1600
            }
        );
        assert_eq!(e.digit(), Some('#'));
        // The reserved bit does not leak into the volume.
        let e = TelephoneEvent::parse(&[5, 0x40 | 63, 0, 160]).unwrap();
        assert_eq!((e.end, e.volume, e.digit()), (false, 63, Some('5')));
        assert_eq!(
            TelephoneEvent::parse(&[15, 0, 0, 0]).unwrap().digit(),
            Some('D')
        );
        assert_eq!(TelephoneEvent::parse(&[16, 0, 0, 0]).unwrap().digit(), None);
        assert_eq!(
            TelephoneEvent::parse(&[1, 2, 3]),
            Err(RtpError::TooShort { len: 3, need: 4 })
        );
        // Through an RTP packet.
        let p = rtp(0x80, 101, &[10, 0x80, 0, 80]);
        let r = RtpPacket::parse(&p).unwrap();
        assert_eq!(
            TelephoneEvent::parse(r.payload()).unwrap().digit(),
            Some('*')
        );
    }
}
