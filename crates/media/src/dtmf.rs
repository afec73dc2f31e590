//! DTMF digits from the two places a PBX receives them: RFC 4733 telephone-event RTP packets
//! ([`DtmfReceiver`]) and SIP INFO bodies ([`parse_info`]).
//!
//! Digits are `'0'`–`'9'`, `'*'`, `'#'` and `'A'`–`'D'`.

use crate::rtp::TelephoneEvent;

/// How many past events are remembered, so that a late end packet of an earlier key (reordered behind the next
/// key's start) is not taken for a new press. Senders retransmit an end three times within ~60 ms; eight events
/// is far more than can be in flight at once.
const REMEMBERED: usize = 8;

/// The most a segment of a long event can last (RFC 4733 §2.5.1.3): the duration field is 16 bits.
const SEGMENT: u32 = 0xffff;

/// The event being received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Current {
    timestamp: u32,
    event: u8,
    ended: bool,
}

/// Turns a stream of RFC 4733 telephone-event payloads into key presses, each reported once.
///
/// RFC 4733 §2.5.1: every packet of one event carries the event's start timestamp — the first packet (often
/// with the marker bit), the updates every 50 ms or so, and the end packet sent three times. So the timestamp
/// identifies the press: the first packet seen with a new timestamp reports the digit (whichever of those
/// packets it is: start, update or end, since any of them may be the first to arrive), and every later packet
/// with that timestamp is the same press. Two presses of the same key have two timestamps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DtmfReceiver {
    current: Option<Current>,
    /// Timestamps of the last [`REMEMBERED`] reported events; `len` of them are valid, newest at `next - 1`.
    recent: [u32; REMEMBERED],
    len: usize,
    next: usize,
}

impl DtmfReceiver {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed the payload of an RTP packet whose payload type is the negotiated telephone-event one. Returns the
    /// digit when this packet is the first one seen of a press; `None` for the rest of the press, for malformed
    /// payloads and for events that are not DTMF keys (flash, tones: event 16 and up).
    pub fn on_packet(&mut self, timestamp: u32, payload: &[u8]) -> Option<char> {
        let event = TelephoneEvent::parse(payload).ok()?;
        let digit = event.digit()?;
        if let Some(cur) = &mut self.current {
            if cur.timestamp == timestamp {
                cur.ended |= event.end;
                return None;
            }
            // A key held past 0xffff samples (8.2 s at 8 kHz) goes on in a new segment whose timestamp is where
            // the last one stopped; it is the same press.
            if !cur.ended
                && cur.event == event.event
                && timestamp == cur.timestamp.wrapping_add(SEGMENT)
            {
                cur.timestamp = timestamp;
                cur.ended = event.end;
                self.remember(timestamp);
                return None;
            }
        }
        if self.seen(timestamp) {
            return None;
        }
        self.current = Some(Current {
            timestamp,
            event: event.event,
            ended: event.end,
        });
        self.remember(timestamp);
        Some(digit)
    }

    /// Forget everything, as for a new RTP stream (a new SSRC starts its timestamps anywhere).
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    fn seen(&self, timestamp: u32) -> bool {
        self.recent[..self.len].contains(&timestamp)
    }

    fn remember(&mut self, timestamp: u32) {
        self.recent[self.next] = timestamp;
        self.next = (self.next + 1) % REMEMBERED;
        self.len = (self.len + 1).min(REMEMBERED);
    }
}

/// The digit of a SIP INFO request's DTMF body, from its Content-Type and body.
///
/// `application/dtmf-relay` (the de-facto Cisco format) carries `Signal=5` and `Duration=160` lines; the key
/// name is matched without case and spaces around `=` are allowed. `application/dtmf` carries the key alone.
/// Either may give `*` and `#` as the RFC 4733 event numbers 10 and 11. Content-Type parameters are ignored.
pub fn parse_info(content_type: &str, body: &[u8]) -> Option<char> {
    let mime = content_type.split(';').next().unwrap_or("").trim();
    // A stray non-UTF-8 byte in some other line must not hide the Signal line.
    let body = String::from_utf8_lossy(body);
    if mime.eq_ignore_ascii_case("application/dtmf-relay") {
        body.split(['\r', '\n'])
            .filter_map(|line| line.split_once('='))
            .find(|(key, _)| key.trim().eq_ignore_ascii_case("signal"))
            .and_then(|(_, value)| signal(value.trim()))
    } else if mime.eq_ignore_ascii_case("application/dtmf") {
        signal(body.trim())
    } else {
        None
    }
}

fn signal(value: &str) -> Option<char> {
    match value {
        "10" => return Some('*'),
        "11" => return Some('#'),
        _ => {}
    }
    let mut chars = value.chars();
    let c = chars.next()?;
    if chars.next().is_some() {
        return None;
    }
    match c {
        '0'..='9' | '*' | '#' => Some(c),
        'A'..='D' | 'a'..='d' => Some(c.to_ascii_uppercase()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A telephone-event payload: event, E bit, volume 10, duration.
    fn ev(event: u8, end: bool, duration: u16) -> [u8; 4] {
        let d = duration.to_be_bytes();
        [event, if end { 0x80 } else { 0 } | 10, d[0], d[1]]
    }

    /// The packets a typical sender emits for one press: start, two updates, three ends.
    fn press(rx: &mut DtmfReceiver, timestamp: u32, event: u8) -> Vec<char> {
        let packets = [
            ev(event, false, 160),
            ev(event, false, 320),
            ev(event, false, 480),
            ev(event, true, 640),
            ev(event, true, 640),
            ev(event, true, 640),
        ];
        packets
            .iter()
            .filter_map(|p| rx.on_packet(timestamp, p))
            .collect()
    }

    #[test]
    fn each_press_is_reported_once() {
        let mut rx = DtmfReceiver::new();
        assert_eq!(press(&mut rx, 1000, 1), ['1']);
        assert_eq!(press(&mut rx, 5000, 10), ['*']);
        assert_eq!(press(&mut rx, 9000, 11), ['#']);
        assert_eq!(press(&mut rx, 13000, 15), ['D']);
        assert_eq!(press(&mut rx, 17000, 0), ['0']);
    }

    #[test]
    fn the_same_key_twice_is_two_presses() {
        let mut rx = DtmfReceiver::new();
        assert_eq!(press(&mut rx, 1000, 5), ['5']);
        assert_eq!(press(&mut rx, 2600, 5), ['5']);
        // Even with only end packets (the rest lost).
        assert_eq!(rx.on_packet(4200, &ev(5, true, 800)), Some('5'));
        assert_eq!(rx.on_packet(4200, &ev(5, true, 800)), None);
    }

    #[test]
    fn a_press_seen_first_by_its_end_packet() {
        let mut rx = DtmfReceiver::new();
        assert_eq!(rx.on_packet(7, &ev(9, true, 800)), Some('9'));
        assert_eq!(rx.on_packet(7, &ev(9, true, 800)), None);
        assert_eq!(rx.on_packet(7, &ev(9, true, 800)), None);
        // A start packet of the same event arriving late changes nothing.
        assert_eq!(rx.on_packet(7, &ev(9, false, 160)), None);
    }

    #[test]
    fn a_late_end_of_the_previous_press_is_not_a_new_one() {
        let mut rx = DtmfReceiver::new();
        assert_eq!(rx.on_packet(1000, &ev(1, false, 160)), Some('1'));
        assert_eq!(rx.on_packet(2000, &ev(2, false, 160)), Some('2'));
        assert_eq!(rx.on_packet(1000, &ev(1, true, 640)), None);
        assert_eq!(rx.on_packet(2000, &ev(2, true, 640)), None);
    }

    #[test]
    fn timestamps_wrap() {
        let mut rx = DtmfReceiver::new();
        assert_eq!(press(&mut rx, u32::MAX - 100, 3), ['3']);
        assert_eq!(press(&mut rx, 1500, 3), ['3']);
    }

    #[test]
    fn a_long_press_in_segments_is_one_press() {
        let mut rx = DtmfReceiver::new();
        let start = u32::MAX - 10;
        assert_eq!(rx.on_packet(start, &ev(4, false, 160)), Some('4'));
        assert_eq!(rx.on_packet(start, &ev(4, false, 0xffff)), None);
        let second = start.wrapping_add(0xffff);
        assert_eq!(rx.on_packet(second, &ev(4, false, 400)), None);
        assert_eq!(rx.on_packet(second, &ev(4, true, 800)), None);
        // Once ended, a press at that spacing is new.
        let third = second.wrapping_add(0xffff);
        assert_eq!(rx.on_packet(third, &ev(4, false, 160)), Some('4'));
        // A different key at a segment's spacing is new too.
        assert_eq!(
            rx.on_packet(third.wrapping_add(0xffff), &ev(6, false, 160)),
            Some('6')
        );
    }

    #[test]
    fn ignores_malformed_and_non_dtmf_events() {
        let mut rx = DtmfReceiver::new();
        assert_eq!(rx.on_packet(1, &[]), None);
        assert_eq!(rx.on_packet(1, &[5, 0x80, 0]), None);
        for event in [16u8, 17, 32, 70, 255] {
            assert_eq!(rx.on_packet(1, &ev(event, false, 160)), None, "{event}");
        }
        // None of that got in the way of a real key with the same timestamp.
        assert_eq!(rx.on_packet(1, &ev(8, false, 160)), Some('8'));
        // Redundant blocks after the first (RFC 4733 §2.5.1.5) are allowed.
        let mut two = ev(7, false, 160).to_vec();
        two.extend_from_slice(&ev(6, true, 800));
        assert_eq!(rx.on_packet(2, &two), Some('7'));
    }

    #[test]
    fn remembers_a_bounded_number_of_presses() {
        let mut rx = DtmfReceiver::new();
        for i in 0..20u32 {
            assert_eq!(press(&mut rx, i * 1000, (i % 10) as u8).len(), 1, "{i}");
        }
        assert_eq!(rx.recent.len(), REMEMBERED);
        // The oldest are forgotten, the newest still known.
        assert_eq!(rx.on_packet(0, &ev(0, true, 640)), Some('0'));
        assert_eq!(rx.on_packet(19_000, &ev(9, true, 640)), None);
        assert_eq!(rx.on_packet(13_000, &ev(3, true, 640)), None);
        rx.reset();
        assert_eq!(rx.on_packet(19_000, &ev(9, true, 640)), Some('9'));
    }

    #[test]
    fn dtmf_relay_bodies() {
        let ct = "application/dtmf-relay";
        assert_eq!(parse_info(ct, b"Signal=5\r\nDuration=160\r\n"), Some('5'));
        assert_eq!(parse_info(ct, b"Signal=5\nDuration=160"), Some('5'));
        assert_eq!(parse_info(ct, b"Duration=160\r\nSignal=#\r\n"), Some('#'));
        assert_eq!(parse_info(ct, b"signal = * \r\n"), Some('*'));
        assert_eq!(parse_info(ct, b"  SIGNAL\t=\t0"), Some('0'));
        assert_eq!(parse_info(ct, b"Signal=10\r\nDuration=100"), Some('*'));
        assert_eq!(parse_info(ct, b"Signal=11\r\n"), Some('#'));
        assert_eq!(parse_info(ct, b"Signal=a\r\n"), Some('A'));
        assert_eq!(parse_info(ct, b"Signal=D\r\n"), Some('D'));
        assert_eq!(
            parse_info("Application/DTMF-Relay; charset=utf-8", b"Signal=3\r\n"),
            Some('3')
        );
        assert_eq!(parse_info(ct, b"Junk=\xff\xfe\r\nSignal=2\r\n"), Some('2'));
    }

    #[test]
    fn dtmf_bodies() {
        assert_eq!(parse_info("application/dtmf", b"5"), Some('5'));
        assert_eq!(parse_info("application/dtmf", b"#\r\n"), Some('#'));
        assert_eq!(parse_info("APPLICATION/DTMF ;x=y", b" 11 "), Some('#'));
        assert_eq!(parse_info("application/dtmf", b"c"), Some('C'));
    }

    #[test]
    fn rejects_what_is_not_one_key() {
        let ct = "application/dtmf-relay";
        for body in [
            &b""[..],
            b"Duration=160\r\n",
            b"Signal=\r\n",
            b"Signal=55\r\n",
            b"Signal=12\r\n",
            b"Signal=E\r\n",
            b"Signal=!\r\n",
            b"Signal 5\r\n",
            b"Signals=5\r\n",
            b"\xff\xff\xff",
        ] {
            assert_eq!(parse_info(ct, body), None, "{body:?}");
        }
        for body in [&b""[..], b"55", b"x", b"Signal=5", b"-1"] {
            assert_eq!(parse_info("application/dtmf", body), None, "{body:?}");
        }
        for ct in [
            "",
            "text/plain",
            "application/sdp",
            "application/dtmf-relayx",
            "application/dtmfx",
            "application",
        ] {
            assert_eq!(parse_info(ct, b"Signal=5\r\n"), None, "{ct}");
            assert_eq!(parse_info(ct, b"5"), None, "{ct}");
        }
    }

    #[test]
    fn arbitrary_payloads_and_bodies_are_safe() {
        let mut seed = 0x2545_f491u32;
        let mut rx = DtmfReceiver::new();
        for i in 0..20_000u32 {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let len = (seed % 9) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|k| seed.rotate_left(k as u32 * 5) as u8)
                .collect();
            if let Some(d) = rx.on_packet(seed % 64 + i / 8, &bytes) {
                assert!("0123456789*#ABCD".contains(d));
            }
            for ct in ["application/dtmf-relay", "application/dtmf"] {
                if let Some(d) = parse_info(ct, &bytes) {
                    assert!("0123456789*#ABCD".contains(d));
                }
            }
        }
    }
}
