//! Cutting SIP messages out of a byte stream (TCP, TLS): RFC 3261 §18.3 framing by Content-Length, plus the
//! RFC 5626 §4.4.1 CRLF keep-alives.
//!
//! Sans-IO: the transport pushes whatever it read and then calls [`StreamFramer::next`] until it returns
//! `Ok(None)`. Because the framer reports an error as soon as the buffered data can no longer become a message
//! within [`Limits`], the buffer never holds more than the largest allowed message plus one read. Any error means
//! the stream can no longer be framed: close the connection.

use bytes::{Bytes, BytesMut};

use crate::limits::Limits;

/// One unit cut from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// One complete message: start line, headers, blank line and exactly Content-Length octets of body.
    Message(Bytes),
    /// A keep-alive ping (CRLFCRLF): answer it with a single CRLF.
    KeepAlivePing,
    /// A keep-alive pong (a lone CRLF between messages).
    KeepAlivePong,
}

/// Why the stream cannot be framed. Every variant means: close the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("header section exceeds {limit} bytes without an empty line")]
    HeaderSectionTooLarge { limit: usize },
    #[error("header line exceeds {limit} bytes")]
    LineTooLong { limit: usize },
    #[error("message has no Content-Length, which stream transports require (RFC 3261 §18.3)")]
    MissingContentLength,
    #[error("Content-Length is not a non-negative number")]
    InvalidContentLength,
    #[error("Content-Length appears more than once with different values")]
    ConflictingContentLength,
    #[error("body of {len} bytes exceeds the limit of {limit}")]
    BodyTooLarge { len: usize, limit: usize },
    #[error("message of {len} bytes exceeds the limit of {limit}")]
    MessageTooLarge { len: usize, limit: usize },
}

/// Where the framer stands in the current message.
#[derive(Debug, Clone, Copy)]
enum State {
    /// Looking for the end of the header section; `scan` is where to resume, `line_start` where the current
    /// physical line began.
    Headers { scan: usize, line_start: usize },
    /// Headers done: the message is `total` bytes long.
    Body { total: usize },
}

/// Sans-IO framer for one stream connection.
#[derive(Debug)]
pub struct StreamFramer {
    buf: BytesMut,
    limits: Limits,
    state: State,
}

const START: State = State::Headers {
    scan: 0,
    line_start: 0,
};

impl StreamFramer {
    pub fn new(limits: Limits) -> Self {
        StreamFramer {
            buf: BytesMut::new(),
            limits,
            state: START,
        }
    }

    /// Appends bytes read from the stream. Call [`next`](Self::next) until it returns `Ok(None)` afterwards.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes buffered and not yet returned as a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Returns the next complete frame, `Ok(None)` when more data is needed, or an error when the stream cannot
    /// be framed (close the connection).
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Frame>, FramingError> {
        if let State::Headers { scan: 0, .. } = self.state
            && let Some(frame) = self.keep_alive()
        {
            return Ok(frame);
        }
        if let State::Headers { .. } = self.state {
            let Some(header_len) = self.find_header_end()? else {
                return Ok(None);
            };
            let body_len = content_length(&self.buf[..header_len])?;
            if body_len > self.limits.max_body_size {
                return Err(FramingError::BodyTooLarge {
                    len: body_len,
                    limit: self.limits.max_body_size,
                });
            }
            let total = header_len.saturating_add(body_len);
            if total > self.limits.max_message_size {
                return Err(FramingError::MessageTooLarge {
                    len: total,
                    limit: self.limits.max_message_size,
                });
            }
            self.state = State::Body { total };
        }
        let State::Body { total } = self.state else {
            return Ok(None);
        };
        if self.buf.len() < total {
            return Ok(None);
        }
        self.state = START;
        Ok(Some(Frame::Message(self.buf.split_to(total).freeze())))
    }

    /// At a message boundary: recognises CRLFCRLF (ping) and a lone CRLF (pong). `Some(None)` means a CRLF is
    /// buffered but it is not yet known which of the two it starts.
    fn keep_alive(&mut self) -> Option<Option<Frame>> {
        let b = &self.buf[..];
        if !b.starts_with(b"\r\n") {
            // A lone CR could still become CRLF.
            return if b == b"\r" { Some(None) } else { None };
        }
        match &b[2..] {
            [] | [b'\r'] => Some(None),
            [b'\r', b'\n', ..] => {
                let _ = self.buf.split_to(4);
                Some(Some(Frame::KeepAlivePing))
            }
            _ => {
                let _ = self.buf.split_to(2);
                Some(Some(Frame::KeepAlivePong))
            }
        }
    }

    /// Scans for the empty line ending the header section; returns the header section's length including it.
    fn find_header_end(&mut self) -> Result<Option<usize>, FramingError> {
        let State::Headers {
            mut scan,
            mut line_start,
        } = self.state
        else {
            return Ok(None);
        };
        let b = &self.buf[..];
        let max_line = self.limits.max_header_line;
        while let Some(off) = b[scan..].iter().position(|&c| c == b'\r') {
            let cr = scan + off;
            match b.get(cr + 1) {
                None => {
                    scan = cr;
                    break;
                }
                Some(b'\n') => {
                    if cr == line_start {
                        self.state = START;
                        return Ok(Some(cr + 2));
                    }
                    if cr - line_start > max_line {
                        return Err(FramingError::LineTooLong { limit: max_line });
                    }
                    line_start = cr + 2;
                    scan = cr + 2;
                }
                Some(_) => scan = cr + 1,
            }
        }
        if !b[scan..].contains(&b'\r') {
            scan = b.len();
        }
        self.state = State::Headers { scan, line_start };
        if b.len() - line_start > max_line + 1 {
            return Err(FramingError::LineTooLong { limit: max_line });
        }
        if b.len() > self.limits.max_message_size {
            return Err(FramingError::HeaderSectionTooLarge {
                limit: self.limits.max_message_size,
            });
        }
        Ok(None)
    }
}

/// Finds Content-Length (long or compact form `l`, any case, folded values allowed) in a header section ending
/// with CRLFCRLF. Repeated equal values are left for the parser to judge; different values cannot be framed.
fn content_length(head: &[u8]) -> Result<usize, FramingError> {
    let mut found: Option<usize> = None;
    let mut lines = head
        .split(|&c| c == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .skip(1)
        .peekable();
    while let Some(line) = lines.next() {
        let Some(colon) = line.iter().position(|&c| c == b':') else {
            continue;
        };
        if line.first().is_some_and(|c| *c == b' ' || *c == b'\t') {
            continue; // a continuation line of some other header
        }
        let name = trim(&line[..colon]);
        if !(name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")) {
            continue;
        }
        let mut value = trim(&line[colon + 1..]).to_vec();
        while let Some(next) = lines.peek()
            && next.first().is_some_and(|c| *c == b' ' || *c == b'\t')
        {
            value.extend_from_slice(trim(next));
            lines.next();
        }
        let value = trim(&value);
        if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
            return Err(FramingError::InvalidContentLength);
        }
        let n = std::str::from_utf8(value)
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
            .ok_or(FramingError::InvalidContentLength)?;
        match found {
            Some(prev) if prev != n => return Err(FramingError::ConflictingContentLength),
            _ => found = Some(n),
        }
    }
    found.ok_or(FramingError::MissingContentLength)
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &s[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: &[u8] =
        b"OPTIONS sip:example.com SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.1;branch=z9hG4bK1\r\n\
Call-ID: a\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    const WITH_BODY: &[u8] =
        b"MESSAGE sip:b@example.com SIP/2.0\r\nl: 5\r\nCall-ID: b\r\n\r\nhello";

    fn drain(f: &mut StreamFramer) -> Result<Vec<Frame>, FramingError> {
        let mut out = Vec::new();
        while let Some(fr) = f.next()? {
            out.push(fr);
        }
        Ok(out)
    }

    fn frames_of(chunks: &[&[u8]]) -> Result<Vec<Frame>, FramingError> {
        let mut f = StreamFramer::new(Limits::default());
        let mut out = Vec::new();
        for c in chunks {
            f.push(c);
            out.extend(drain(&mut f)?);
        }
        Ok(out)
    }

    fn msg(b: &[u8]) -> Frame {
        Frame::Message(Bytes::copy_from_slice(b))
    }

    #[test]
    fn one_message() {
        assert_eq!(frames_of(&[OPTIONS]).unwrap(), vec![msg(OPTIONS)]);
    }

    #[test]
    fn compact_form_with_body() {
        assert_eq!(frames_of(&[WITH_BODY]).unwrap(), vec![msg(WITH_BODY)]);
    }

    #[test]
    fn pipelined_with_keep_alives() {
        let mut all = Vec::new();
        all.extend_from_slice(b"\r\n\r\n");
        all.extend_from_slice(OPTIONS);
        all.extend_from_slice(WITH_BODY);
        all.extend_from_slice(b"\r\n\r\n");
        all.extend_from_slice(b"\r\n");
        all.extend_from_slice(OPTIONS);
        let expected = vec![
            Frame::KeepAlivePing,
            msg(OPTIONS),
            msg(WITH_BODY),
            Frame::KeepAlivePing,
            Frame::KeepAlivePong,
            msg(OPTIONS),
        ];
        assert_eq!(frames_of(&[&all]).unwrap(), expected);
        // Split at every byte boundary, and byte by byte.
        for i in 0..=all.len() {
            assert_eq!(
                frames_of(&[&all[..i], &all[i..]]).unwrap(),
                expected,
                "split at {i}"
            );
        }
        let bytes: Vec<&[u8]> = all.chunks(1).collect();
        assert_eq!(frames_of(&bytes).unwrap(), expected);
    }

    #[test]
    fn lone_crlf_waits_for_the_next_byte() {
        let mut f = StreamFramer::new(Limits::default());
        f.push(b"\r\n");
        assert_eq!(f.next(), Ok(None));
        f.push(b"\r");
        assert_eq!(f.next(), Ok(None));
        f.push(b"\n");
        assert_eq!(f.next(), Ok(Some(Frame::KeepAlivePing)));
        assert_eq!(f.next(), Ok(None));
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn content_length_forms() {
        for head in [
            "content-length: 3",
            "CONTENT-LENGTH:3",
            "Content-Length  :   3  ",
            "L: 3",
            "Content-Length:\r\n 3",
            "Content-Length: 3\r\nContent-Length: 3",
        ] {
            let m = format!(
                "INFO sip:a SIP/2.0\r\nX-L: 99\r\nXl: 7\r\n{head}\r\nSubject: x\r\n  l: 8\r\n\r\nabcINFO"
            );
            let frames = frames_of(&[m.as_bytes()]).unwrap();
            assert_eq!(frames, vec![msg(&m.as_bytes()[..m.len() - 4])], "{head}");
        }
    }

    #[test]
    fn content_length_errors() {
        for (head, err) in [
            ("Subject: none", FramingError::MissingContentLength),
            ("Content-Length: -1", FramingError::InvalidContentLength),
            ("Content-Length: 1 2", FramingError::InvalidContentLength),
            ("Content-Length:", FramingError::InvalidContentLength),
            (
                "Content-Length: 99999999999999999999999999",
                FramingError::InvalidContentLength,
            ),
            (
                "Content-Length: 1\r\nl: 2",
                FramingError::ConflictingContentLength,
            ),
            (
                "Content-Length: 60001",
                FramingError::BodyTooLarge {
                    len: 60001,
                    limit: 60000,
                },
            ),
        ] {
            let m = format!("INFO sip:a SIP/2.0\r\n{head}\r\n\r\n");
            assert_eq!(frames_of(&[m.as_bytes()]), Err(err), "{head}");
        }
    }

    #[test]
    fn message_too_large() {
        let limits = Limits {
            max_message_size: 100,
            ..Limits::default()
        };
        let mut f = StreamFramer::new(limits);
        f.push(b"INFO sip:a SIP/2.0\r\nContent-Length: 90\r\n\r\n");
        assert_eq!(
            f.next(),
            Err(FramingError::MessageTooLarge {
                len: 132,
                limit: 100
            })
        );
    }

    #[test]
    fn unbounded_headers_are_refused_early() {
        let limits = Limits {
            max_message_size: 1000,
            max_header_line: 200,
            ..Limits::default()
        };
        // Many short lines and no end: stopped at the message size.
        let mut f = StreamFramer::new(limits.clone());
        let mut err = None;
        for _ in 0..200 {
            f.push(b"X-Pad: 0123456789\r\n");
            if let Err(e) = drain(&mut f) {
                err = Some(e);
                break;
            }
        }
        assert_eq!(
            err,
            Some(FramingError::HeaderSectionTooLarge { limit: 1000 })
        );
        assert!(f.buffered() <= 1000 + 19);
        // One endless line: stopped at the line limit.
        let mut f = StreamFramer::new(limits);
        f.push(b"INVITE sip:");
        let mut err = None;
        for _ in 0..100 {
            f.push(b"aaaaaaaaaa");
            if let Err(e) = drain(&mut f) {
                err = Some(e);
                break;
            }
        }
        assert_eq!(err, Some(FramingError::LineTooLong { limit: 200 }));
    }

    #[test]
    fn body_arrives_later() {
        let mut f = StreamFramer::new(Limits::default());
        f.push(&WITH_BODY[..WITH_BODY.len() - 2]);
        assert_eq!(f.next(), Ok(None));
        assert_eq!(f.next(), Ok(None));
        f.push(&WITH_BODY[WITH_BODY.len() - 2..]);
        assert_eq!(f.next(), Ok(Some(msg(WITH_BODY))));
        assert_eq!(f.next(), Ok(None));
    }

    #[test]
    fn framed_messages_parse() {
        let frames = frames_of(&[OPTIONS, WITH_BODY]).unwrap();
        for fr in frames {
            let Frame::Message(b) = fr else {
                panic!("not a message")
            };
            crate::Message::parse(b, crate::Framing::Stream, &Limits::default()).unwrap();
        }
    }
}
