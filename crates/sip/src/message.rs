//! The SIP message: one `Bytes` buffer plus an index of where the start line, each header and the body are.
//!
//! Parsing only finds boundaries (it is cheap and never allocates per header beyond the index). Typed views of
//! individual headers (Via, CSeq, From, …) are parsed on demand by the accessors, straight from the buffer.

use std::ops::Range;

use bytes::Bytes;

use crate::error::{ErrorKind, ParseError};
use crate::header::HeaderName;
use crate::limits::Limits;
use crate::method::Method;
use crate::text;

/// Byte range inside the message buffer. `u32` keeps the header index small; messages are capped far below 4 GiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn new(r: Range<usize>) -> Self {
        // Limits cap messages at well under u32::MAX, so the casts cannot truncate.
        Span {
            start: r.start as u32,
            end: r.end as u32,
        }
    }

    fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct HeaderEntry {
    pub(crate) name: HeaderName,
    pub(crate) name_span: Span,
    pub(crate) value_span: Span,
}

#[derive(Debug, Clone)]
enum StartLine {
    Request {
        method: Method,
        method_span: Span,
        uri: Span,
        version: Span,
    },
    Response {
        version: Span,
        status: u16,
        reason: Span,
    },
}

/// Where the message came from decides how its body is delimited (RFC 3261 §18.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// A datagram: without Content-Length the body runs to the end; octets past Content-Length are ignored.
    Datagram,
    /// A byte stream (TCP, TLS, WebSocket frames already cut by the framer): Content-Length is required.
    Stream,
}

/// A parsed SIP request or response.
#[derive(Debug, Clone)]
pub struct Message {
    buf: Bytes,
    start: StartLine,
    headers: Vec<HeaderEntry>,
    body: Span,
}

/// One header field as received: its name as written and its raw value (which may contain folded lines).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawHeader<'a> {
    pub name: HeaderName,
    pub name_text: &'a [u8],
    pub value: &'a [u8],
}

impl Message {
    /// Parses one message from `buf`. For datagrams, trailing octets after the body are ignored (RFC 4475
    /// §3.1.1.8); for streams the framer has already cut the buffer to one message.
    pub fn parse(buf: Bytes, framing: Framing, limits: &Limits) -> Result<Message, ParseError> {
        if buf.len() > limits.max_message_size {
            return Err(ParseError::new(ErrorKind::MessageTooLarge {
                limit: limits.max_message_size,
            }));
        }
        let b = &buf[..];
        // RFC 3261 §7.5: CRLFs before the start line are ignored.
        let mut pos = 0;
        while pos < b.len() && (b[pos] == b'\r' || b[pos] == b'\n') {
            pos += 1;
        }
        if pos == b.len() {
            return Err(ParseError::new(ErrorKind::Empty));
        }
        let (line_end, next) =
            find_line_end(b, pos).ok_or(ParseError::new(ErrorKind::Truncated))?;
        if line_end - pos > limits.max_header_line {
            return Err(ParseError::new(ErrorKind::HeaderTooLong {
                limit: limits.max_header_line,
            }));
        }
        // A request whose start line is malformed is still indexed so that it can be answered (400 or 505);
        // a malformed status line is simply refused (responses are never answered).
        let (start, start_error) = match parse_start_line(b, pos..line_end) {
            Ok(start) => (start, None),
            Err(e)
                if b[pos..line_end].len() >= 4 && b[pos..pos + 4].eq_ignore_ascii_case(b"SIP/") =>
            {
                return Err(ParseError::new(e));
            }
            Err(e) => {
                let empty = Span::new(pos..pos);
                (
                    StartLine::Request {
                        method: Method::Other,
                        method_span: empty,
                        uri: empty,
                        version: empty,
                    },
                    Some(e),
                )
            }
        };

        let mut msg = Message {
            buf: buf.clone(),
            start,
            headers: Vec::with_capacity(24),
            body: Span::default(),
        };
        let mut pos = next;
        let body_start;
        loop {
            if pos >= b.len() {
                // A datagram that ends right after a complete header line has no body; many UAs omit the
                // final blank line there (RFC 4475's own baddn message does). A stream must have it.
                if framing == Framing::Datagram && !msg.headers.is_empty() {
                    body_start = pos;
                    break;
                }
                return Err(ParseError::with_partial(ErrorKind::Truncated, msg));
            }
            // A blank line ends the header section.
            if b[pos] == b'\n' {
                body_start = pos + 1;
                break;
            }
            if b[pos] == b'\r' && b.get(pos + 1) == Some(&b'\n') {
                body_start = pos + 2;
                break;
            }
            if msg.headers.len() >= limits.max_headers {
                return Err(ParseError::with_partial(
                    ErrorKind::TooManyHeaders {
                        limit: limits.max_headers,
                    },
                    msg,
                ));
            }
            let Some((entry, next)) = parse_header_line(b, pos, limits) else {
                let kind = match header_extent(b, pos) {
                    Some(end) if end - pos > limits.max_header_line => ErrorKind::HeaderTooLong {
                        limit: limits.max_header_line,
                    },
                    None => ErrorKind::Truncated,
                    _ => ErrorKind::BadHeaderLine,
                };
                return Err(ParseError::with_partial(kind, msg));
            };
            msg.headers.push(entry);
            pos = next;
        }

        if let Some(e) = start_error {
            return Err(ParseError::with_partial(e, msg));
        }
        let available = b.len() - body_start;
        let body_len = match msg.content_length() {
            Err(kind) => return Err(ParseError::with_partial(kind, msg)),
            Ok(Some(n)) => n as usize,
            Ok(None) if framing == Framing::Datagram => available,
            Ok(None) => {
                return Err(ParseError::with_partial(
                    ErrorKind::ContentLengthMissing,
                    msg,
                ));
            }
        };
        if body_len > limits.max_body_size {
            return Err(ParseError::with_partial(
                ErrorKind::BodyTooLarge {
                    limit: limits.max_body_size,
                },
                msg,
            ));
        }
        if body_len > available {
            return Err(ParseError::with_partial(
                ErrorKind::ContentLengthTooLarge,
                msg,
            ));
        }
        msg.body = Span::new(body_start..body_start + body_len);
        Ok(msg)
    }

    /// Content-Length, checked: one value only, digits only, fitting in 32 bits.
    fn content_length(&self) -> Result<Option<u32>, ErrorKind> {
        let mut found = None;
        for h in self
            .headers
            .iter()
            .filter(|h| h.name == HeaderName::ContentLength)
        {
            if found.is_some() {
                return Err(ErrorKind::BadHeader {
                    header: "Content-Length",
                    reason: "appears more than once",
                });
            }
            let v = text::trim(&self.buf[h.value_span.range()]);
            let n = text::parse_u32(v).ok_or(ErrorKind::BadHeader {
                header: "Content-Length",
                reason: "not a non-negative number",
            })?;
            found = Some(n);
        }
        Ok(found)
    }

    /// The whole buffer the message was parsed from (for datagrams it may extend past the body).
    pub fn bytes(&self) -> &Bytes {
        &self.buf
    }

    /// The message's own bytes: start line through the end of the body.
    pub fn wire(&self) -> Bytes {
        self.buf.slice(0..self.body.end as usize)
    }

    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    pub fn is_response(&self) -> bool {
        !self.is_request()
    }

    /// The request method, `None` for responses.
    pub fn method(&self) -> Option<Method> {
        match self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The method exactly as written (extension methods included).
    pub fn method_str(&self) -> Option<&str> {
        match self.start {
            StartLine::Request { method_span, .. } => {
                std::str::from_utf8(&self.buf[method_span.range()]).ok()
            }
            StartLine::Response { .. } => None,
        }
    }

    /// The Request-URI text as written, unparsed.
    pub fn request_uri_raw(&self) -> Option<&[u8]> {
        match self.start {
            StartLine::Request { uri, .. } => Some(&self.buf[uri.range()]),
            StartLine::Response { .. } => None,
        }
    }

    /// The parsed Request-URI.
    pub fn request_uri(&self) -> Option<Result<crate::uri::Uri<'_>, crate::uri::UriError>> {
        self.request_uri_raw().map(crate::uri::Uri::parse)
    }

    /// The SIP-Version text of the start line (`SIP/2.0`).
    pub fn version(&self) -> &[u8] {
        match self.start {
            StartLine::Request { version, .. } | StartLine::Response { version, .. } => {
                &self.buf[version.range()]
            }
        }
    }

    /// The status code of a response.
    pub fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { status, .. } => Some(status),
            StartLine::Request { .. } => None,
        }
    }

    /// The reason phrase of a response (may be empty, may be UTF-8).
    pub fn reason(&self) -> Option<&[u8]> {
        match self.start {
            StartLine::Response { reason, .. } => Some(&self.buf[reason.range()]),
            StartLine::Request { .. } => None,
        }
    }

    pub fn body(&self) -> &[u8] {
        &self.buf[self.body.range()]
    }

    pub fn body_bytes(&self) -> Bytes {
        self.buf.slice(self.body.range())
    }

    /// Every header field in order of appearance.
    pub fn headers(&self) -> impl Iterator<Item = RawHeader<'_>> + '_ {
        self.headers.iter().map(move |h| RawHeader {
            name: h.name,
            name_text: &self.buf[h.name_span.range()],
            value: &self.buf[h.value_span.range()],
        })
    }

    pub fn header_count(&self) -> usize {
        self.headers.len()
    }

    /// Raw values of every field with this (known) name, in order. List headers may carry several
    /// comma-separated elements in one value; see [`Message::header_elements`].
    pub fn header_values(&self, name: HeaderName) -> impl Iterator<Item = &[u8]> + '_ {
        self.headers
            .iter()
            .filter(move |h| h.name == name)
            .map(move |h| &self.buf[h.value_span.range()])
    }

    /// Raw values of fields whose name is not one of the known ones, matched case-insensitively.
    pub fn other_header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers
            .iter()
            .filter(move |h| {
                h.name == HeaderName::Other
                    && self.buf[h.name_span.range()].eq_ignore_ascii_case(name.as_bytes())
            })
            .map(move |h| &self.buf[h.value_span.range()])
    }

    /// The first raw value of a header, trimmed.
    pub fn header(&self, name: HeaderName) -> Option<&[u8]> {
        self.header_values(name).next().map(text::trim)
    }

    /// The first value of a header as text, trimmed; `None` when absent or not UTF-8.
    pub fn header_str(&self, name: HeaderName) -> Option<&str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// How many times a header field appears.
    pub fn header_occurrences(&self, name: HeaderName) -> usize {
        self.headers.iter().filter(|h| h.name == name).count()
    }

    /// All comma-separated elements of a list header across all its fields, trimmed.
    pub fn header_elements(
        &self,
        name: HeaderName,
    ) -> impl Iterator<Item = Result<&[u8], text::UnbalancedQuote>> + '_ {
        self.header_values(name).flat_map(text::split_commas)
    }

    /// The Call-ID, trimmed.
    pub fn call_id(&self) -> Option<&[u8]> {
        self.header(HeaderName::CallId)
    }

    /// The top (first) Via.
    pub fn top_via(&self) -> Result<crate::via::Via<'_>, crate::via::ViaError> {
        let first = self
            .header_elements(HeaderName::Via)
            .next()
            .ok_or(crate::via::ViaError::Missing)?;
        crate::via::Via::parse(first.map_err(|_| crate::via::ViaError::Syntax("unbalanced quote"))?)
    }

    /// Every Via, top first.
    pub fn vias(
        &self,
    ) -> impl Iterator<Item = Result<crate::via::Via<'_>, crate::via::ViaError>> + '_ {
        self.header_elements(HeaderName::Via).map(|e| {
            e.map_err(|_| crate::via::ViaError::Syntax("unbalanced quote"))
                .and_then(crate::via::Via::parse)
        })
    }

    pub fn cseq(&self) -> Result<crate::cseq::CSeq<'_>, crate::cseq::CSeqError> {
        let v = self
            .header(HeaderName::CSeq)
            .ok_or(crate::cseq::CSeqError::Missing)?;
        crate::cseq::CSeq::parse(v)
    }

    pub fn from(&self) -> Result<crate::addr::NameAddr<'_>, crate::addr::AddrError> {
        crate::addr::NameAddr::parse(
            self.header(HeaderName::From)
                .ok_or(crate::addr::AddrError::Missing)?,
        )
    }

    pub fn to(&self) -> Result<crate::addr::NameAddr<'_>, crate::addr::AddrError> {
        crate::addr::NameAddr::parse(
            self.header(HeaderName::To)
                .ok_or(crate::addr::AddrError::Missing)?,
        )
    }

    /// Every Contact element (`*` is returned as [`crate::addr::Contact::Star`]).
    pub fn contacts(
        &self,
    ) -> impl Iterator<Item = Result<crate::addr::Contact<'_>, crate::addr::AddrError>> + '_ {
        self.header_elements(HeaderName::Contact).map(|e| {
            e.map_err(|_| crate::addr::AddrError::Syntax("unbalanced quote"))
                .and_then(crate::addr::Contact::parse)
        })
    }

    /// Route (or Record-Route) elements, in order.
    pub fn routes(
        &self,
        name: HeaderName,
    ) -> impl Iterator<Item = Result<crate::addr::NameAddr<'_>, crate::addr::AddrError>> + '_ {
        self.header_elements(name).map(|e| {
            e.map_err(|_| crate::addr::AddrError::Syntax("unbalanced quote"))
                .and_then(crate::addr::NameAddr::parse)
        })
    }

    /// Max-Forwards: `Ok(None)` when absent, an error when not a number in 0..=255.
    pub fn max_forwards(&self) -> Result<Option<u8>, ErrorKind> {
        let bad = ErrorKind::BadHeader {
            header: "Max-Forwards",
            reason: "not a number from 0 to 255",
        };
        match self.header(HeaderName::MaxForwards) {
            None => Ok(None),
            Some(v) => text::parse_u32(v)
                .and_then(|n| u8::try_from(n).ok())
                .map(Some)
                .ok_or(bad),
        }
    }

    /// Expires header (delta-seconds, 32-bit).
    pub fn expires(&self) -> Result<Option<u32>, ErrorKind> {
        match self.header(HeaderName::Expires) {
            None => Ok(None),
            Some(v) => text::parse_u32(v).map(Some).ok_or(ErrorKind::BadHeader {
                header: "Expires",
                reason: "not a number of seconds below 2^32",
            }),
        }
    }

    /// Content-Type media type (`type/subtype`, lower-cased comparison is up to the caller) and its parameters.
    pub fn content_type(&self) -> Option<Result<crate::media_type::MediaType<'_>, ErrorKind>> {
        self.header(HeaderName::ContentType)
            .map(crate::media_type::MediaType::parse)
    }

    /// Option tags of Require, Proxy-Require, Supported, Unsupported.
    pub fn option_tags(&self, name: HeaderName) -> impl Iterator<Item = &[u8]> + '_ {
        self.header_elements(name)
            .filter_map(Result::ok)
            .filter(|t| !t.is_empty())
    }

    /// The user agent's product text (User-Agent or Server), for logs and scanner heuristics.
    pub fn user_agent(&self) -> Option<&[u8]> {
        self.header(HeaderName::UserAgent)
    }
}

/// Finds the end of the line starting at `pos`: returns (index of CR or LF, index after the line break).
fn find_line_end(b: &[u8], pos: usize) -> Option<(usize, usize)> {
    let nl = pos + memchr::memchr(b'\n', &b[pos..])?;
    let end = if nl > pos && b[nl - 1] == b'\r' {
        nl - 1
    } else {
        nl
    };
    Some((end, nl + 1))
}

/// End (exclusive, before the line break) of the header field starting at `pos`, following folded lines.
fn header_extent(b: &[u8], pos: usize) -> Option<usize> {
    let mut p = pos;
    loop {
        let (end, next) = find_line_end(b, p)?;
        match b.get(next) {
            Some(b' ') | Some(b'\t') => p = next,
            _ => return Some(end),
        }
    }
}

fn parse_start_line(b: &[u8], line: Range<usize>) -> Result<StartLine, ErrorKind> {
    let l = &b[line.clone()];
    if l.len() >= 4 && l[..4].eq_ignore_ascii_case(b"SIP/") {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
        let sp = l
            .iter()
            .position(|&c| c == b' ')
            .ok_or(ErrorKind::BadStartLine("no status code"))?;
        let version = line.start..line.start + sp;
        let rest = &l[sp + 1..];
        if rest.len() < 3
            || !rest[..3].iter().all(u8::is_ascii_digit)
            || rest.get(3).is_some_and(|&c| c != b' ')
        {
            return Err(ErrorKind::BadStartLine("status code is not three digits"));
        }
        let status = u16::from(rest[0] - b'0') * 100
            + u16::from(rest[1] - b'0') * 10
            + u16::from(rest[2] - b'0');
        if !(100..=699).contains(&status) {
            return Err(ErrorKind::BadStartLine("status code outside 100-699"));
        }
        let reason_start = (line.start + sp + 5).min(line.end);
        check_version(&b[version.clone()])?;
        return Ok(StartLine::Response {
            version: Span::new(version),
            status,
            reason: Span::new(reason_start..line.end),
        });
    }
    // Request-Line = Method SP Request-URI SP SIP-Version. The URI is whatever lies between the first and the
    // last space so that a URI with stray spaces is reported as a bad URI (400), not a bad version.
    let first = l
        .iter()
        .position(|&c| c == b' ')
        .ok_or(ErrorKind::BadStartLine("no Request-URI"))?;
    let last = l
        .iter()
        .rposition(|&c| c == b' ')
        .ok_or(ErrorKind::BadStartLine("no SIP version"))?;
    if last <= first {
        return Err(ErrorKind::BadStartLine("no SIP version"));
    }
    let method_bytes = &l[..first];
    if !text::is_token(method_bytes) {
        return Err(ErrorKind::BadStartLine("method is not a token"));
    }
    let version = line.start + last + 1..line.end;
    check_version(&b[version.clone()])?;
    Ok(StartLine::Request {
        method: Method::from_bytes(method_bytes),
        method_span: Span::new(line.start..line.start + first),
        uri: Span::new(line.start + first + 1..line.start + last),
        version: Span::new(version),
    })
}

/// `SIP/2.0` (case-insensitive per RFC 3261 §7.1). Any other well-formed version is a 505; garbage is a 400.
pub(crate) fn check_version(v: &[u8]) -> Result<(), ErrorKind> {
    if v.eq_ignore_ascii_case(b"SIP/2.0") {
        return Ok(());
    }
    let well_formed = v.len() > 4
        && v[..4].eq_ignore_ascii_case(b"SIP/")
        && v[4..].split(|&c| c == b'.').count() == 2
        && v[4..]
            .split(|&c| c == b'.')
            .all(|p| !p.is_empty() && p.iter().all(u8::is_ascii_digit));
    if well_formed {
        Err(ErrorKind::BadVersion)
    } else {
        Err(ErrorKind::BadStartLine("malformed SIP version"))
    }
}

/// Parses `name HCOLON value` plus continuation lines. Returns `None` if the line is not a header field or is
/// longer than allowed.
fn parse_header_line(b: &[u8], pos: usize, limits: &Limits) -> Option<(HeaderEntry, usize)> {
    let mut i = pos;
    while i < b.len() && text::is_token_char(b[i]) {
        i += 1;
    }
    if i == pos {
        return None;
    }
    let name_span = Span::new(pos..i);
    while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
        i += 1;
    }
    if b.get(i) != Some(&b':') {
        return None;
    }
    let value_start = i + 1;
    // Follow continuation lines (folding) to find the end of the field.
    let mut p = value_start;
    let value_end;
    let next;
    loop {
        let (end, after) = find_line_end(b, p)?;
        if end - pos > limits.max_header_line {
            return None;
        }
        match b.get(after) {
            Some(b' ') | Some(b'\t') => p = after,
            _ => {
                value_end = end;
                next = after;
                break;
            }
        }
    }
    let name = HeaderName::from_bytes(&b[name_span.range()]);
    // Keep the value untrimmed at the end but skip leading white space; accessors trim folding.
    let mut vs = value_start;
    while vs < value_end && (b[vs] == b' ' || b[vs] == b'\t') {
        vs += 1;
    }
    Some((
        HeaderEntry {
            name,
            name_span,
            value_span: Span::new(vs..value_end),
        },
        next,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Message, ParseError> {
        Message::parse(
            Bytes::copy_from_slice(s.as_bytes()),
            Framing::Datagram,
            &Limits::default(),
        )
    }

    #[test]
    fn request_with_folding_and_compact_forms() {
        let m = parse(
            "OPTIONS sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\nX-Long: one\r\n two\r\nl: 4\r\n\r\nbody",
        )
        .unwrap();
        assert_eq!(m.method(), Some(Method::Options));
        assert_eq!(m.header_count(), 3);
        assert_eq!(
            m.other_header_values("x-long").next(),
            Some(&b"one\r\n two"[..])
        );
        assert_eq!(m.body(), b"body");
    }

    #[test]
    fn response_reason_may_be_empty() {
        let m = parse("SIP/2.0 100 \r\nl: 0\r\n\r\n").unwrap();
        assert_eq!(m.status(), Some(100));
        assert_eq!(m.reason(), Some(&b""[..]));
    }

    #[test]
    fn stream_requires_content_length() {
        let e = Message::parse(
            Bytes::from_static(b"OPTIONS sip:a SIP/2.0\r\n\r\n"),
            Framing::Stream,
            &Limits::default(),
        )
        .unwrap_err();
        assert_eq!(e.kind, ErrorKind::ContentLengthMissing);
    }

    #[test]
    fn limits_are_enforced() {
        let limits = Limits {
            max_headers: 2,
            ..Limits::default()
        };
        let e = Message::parse(
            Bytes::from_static(b"OPTIONS sip:a SIP/2.0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"),
            Framing::Datagram,
            &limits,
        )
        .unwrap_err();
        assert_eq!(e.kind, ErrorKind::TooManyHeaders { limit: 2 });
        let big = format!("OPTIONS sip:a SIP/2.0\r\nX: {}\r\n\r\n", "a".repeat(10_000));
        assert_eq!(
            parse(&big).unwrap_err().kind,
            ErrorKind::HeaderTooLong {
                limit: Limits::default().max_header_line
            }
        );
    }

    #[test]
    fn truncated_and_empty() {
        assert_eq!(parse("\r\n\r\n").unwrap_err().kind, ErrorKind::Empty);
        assert_eq!(
            parse("OPTIONS sip:a SIP/2.0\r\nVia: x").unwrap_err().kind,
            ErrorKind::Truncated
        );
    }
}
