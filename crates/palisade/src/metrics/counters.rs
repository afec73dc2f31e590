//! Hot-path counters: plain atomics bumped by the transport edge (every SIP message) and the media relay (every
//! packet), read when Prometheus scrapes. An atomic add costs a few nanoseconds; a registry lookup per packet
//! would cost more than the relay's own work.
//!
//! Labels come from fixed tables, never from the packet: an unknown method counts as `other`, a status outside
//! 100–699 as nothing, so an attacker cannot grow the number of series.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The methods counted by name; anything else is `other`.
pub const METHODS: [&str; 15] = [
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "REGISTER",
    "OPTIONS",
    "INFO",
    "UPDATE",
    "PRACK",
    "SUBSCRIBE",
    "NOTIFY",
    "REFER",
    "MESSAGE",
    "PUBLISH",
    "other",
];
const OTHER: usize = METHODS.len() - 1;
const CODES: usize = 600; // 100..=699

/// Received or sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    In = 0,
    Out = 1,
}

/// What the first line of a SIP message says: a request's method (index into [`METHODS`]) or a response's
/// status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstLine {
    Request(usize),
    Response(u16),
}

/// Reads just the start of a message; `None` for anything that is not SIP (a keep-alive, garbage).
pub fn classify(data: &[u8]) -> Option<FirstLine> {
    if let Some(rest) = data.strip_prefix(b"SIP/2.0 ") {
        let digits = rest.get(..3)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let code = digits
            .iter()
            .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
        return (100..=699)
            .contains(&code)
            .then_some(FirstLine::Response(code));
    }
    let end = data.iter().take(17).position(|&b| b == b' ')?;
    let method = &data[..end];
    if method.is_empty() {
        return None;
    }
    let index = METHODS[..OTHER]
        .iter()
        .position(|m| m.as_bytes() == method)
        .unwrap_or(OTHER);
    Some(FirstLine::Request(index))
}

/// SIP messages by direction and method, responses by direction and status.
pub struct SipCounters {
    requests: [[AtomicU64; METHODS.len()]; 2],
    responses: [[AtomicU64; CODES]; 2],
}

impl SipCounters {
    const fn new() -> Self {
        SipCounters {
            requests: [const { [const { AtomicU64::new(0) }; METHODS.len()] }; 2],
            responses: [const { [const { AtomicU64::new(0) }; CODES] }; 2],
        }
    }

    pub fn count(&self, direction: Direction, data: &[u8]) {
        match classify(data) {
            Some(FirstLine::Request(m)) => {
                self.requests[direction as usize][m].fetch_add(1, Relaxed);
            }
            Some(FirstLine::Response(code)) => {
                self.responses[direction as usize][usize::from(code - 100)].fetch_add(1, Relaxed);
            }
            None => {}
        }
    }

    /// Non-zero request counts: (direction, method, count).
    pub fn requests(&self) -> Vec<(Direction, &'static str, u64)> {
        let mut out = Vec::new();
        for (d, dir) in [Direction::In, Direction::Out].into_iter().enumerate() {
            for (i, m) in METHODS.iter().enumerate() {
                let v = self.requests[d][i].load(Relaxed);
                if v > 0 {
                    out.push((dir, *m, v));
                }
            }
        }
        out
    }

    /// Non-zero response counts: (direction, status code, count).
    pub fn responses(&self) -> Vec<(Direction, u16, u64)> {
        let mut out = Vec::new();
        for (d, dir) in [Direction::In, Direction::Out].into_iter().enumerate() {
            for i in 0..CODES {
                let v = self.responses[d][i].load(Relaxed);
                if v > 0 {
                    out.push((dir, i as u16 + 100, v));
                }
            }
        }
        out
    }
}

/// Media relay packets and bytes: received on a relay port, and forwarded to the other leg.
#[derive(Default)]
pub struct RelayCounters {
    pub packets_in: AtomicU64,
    pub bytes_in: AtomicU64,
    pub packets_out: AtomicU64,
    pub bytes_out: AtomicU64,
}

impl RelayCounters {
    const fn new() -> Self {
        RelayCounters {
            packets_in: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            packets_out: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
        }
    }

    pub fn received(&self, bytes: usize) {
        self.packets_in.fetch_add(1, Relaxed);
        self.bytes_in.fetch_add(bytes as u64, Relaxed);
    }

    pub fn forwarded(&self, bytes: usize) {
        self.packets_out.fetch_add(1, Relaxed);
        self.bytes_out.fetch_add(bytes as u64, Relaxed);
    }

    /// `packets` datagrams of `bytes` in all received in one batch (one update per batch, not per packet).
    pub fn received_batch(&self, packets: usize, bytes: usize) {
        self.packets_in.fetch_add(packets as u64, Relaxed);
        self.bytes_in.fetch_add(bytes as u64, Relaxed);
    }

    /// `packets` datagrams of `bytes` in all sent in one batch.
    pub fn forwarded_batch(&self, packets: usize, bytes: usize) {
        if packets > 0 {
            self.packets_out.fetch_add(packets as u64, Relaxed);
            self.bytes_out.fetch_add(bytes as u64, Relaxed);
        }
    }
}

/// Every SIP message through the transport edge.
pub static SIP: SipCounters = SipCounters::new();
/// Every packet through the media relay.
pub static RELAY: RelayCounters = RelayCounters::new();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_lines_map_to_fixed_labels() {
        assert_eq!(
            classify(b"INVITE sip:1@x SIP/2.0\r\n"),
            Some(FirstLine::Request(0))
        );
        assert_eq!(
            classify(b"REGISTER sip:x SIP/2.0\r\n"),
            Some(FirstLine::Request(4))
        );
        assert_eq!(
            classify(b"FOOBAR sip:x SIP/2.0\r\n"),
            Some(FirstLine::Request(OTHER)),
            "unknown methods share one label"
        );
        assert_eq!(
            classify(b"SIP/2.0 401 Unauthorized\r\n"),
            Some(FirstLine::Response(401))
        );
        assert_eq!(classify(b"SIP/2.0 999 Nope\r\n"), None);
        assert_eq!(classify(b"SIP/2.0 4x1 Nope\r\n"), None);
        assert_eq!(classify(b"\r\n\r\n"), None);
        assert_eq!(classify(b""), None);
        assert_eq!(classify(b"AVERYLONGMETHODNAMEWITHOUTSPACE"), None);
    }

    #[test]
    fn counts_by_direction() {
        let c = SipCounters::new();
        c.count(Direction::In, b"OPTIONS sip:x SIP/2.0\r\n");
        c.count(Direction::In, b"OPTIONS sip:x SIP/2.0\r\n");
        c.count(Direction::Out, b"SIP/2.0 200 OK\r\n");
        assert_eq!(c.requests(), [(Direction::In, "OPTIONS", 2)]);
        assert_eq!(c.responses(), [(Direction::Out, 200, 1)]);
    }
}
