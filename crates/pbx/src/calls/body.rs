//! Session bodies that are not a plain `application/sdp` (issue 12 item 10). The B2BUA rewrites every SDP it
//! relays (addresses to the relay, keys per leg); a body it does not understand would otherwise travel to the
//! other leg untouched — with the sender's addresses and SDES keys inside. The rule, applied before the call layer
//! sees an INVITE, re-INVITE, UPDATE or a response to one:
//!
//! * `application/sdp`, or no body: as it is;
//! * `multipart/mixed`, `multipart/alternative`, `multipart/related` with exactly one `application/sdp` part
//!   (RFC 4475 `mpart01`, SIP-T/SIP-I providers with an ISUP part): rewritten part by part — the SDP part becomes
//!   the message's body (and is then rewritten like any SDP), every other part is dropped, never forwarded;
//! * anything else (another type, no SDP part, several SDP parts, nested multiparts): a request is refused with
//!   415 and `Accept: application/sdp`; a response loses its body.
//!
//! Pure: the service applies [`classify`] and [`with_body`] at its edge.

use bytes::Bytes;
use sip::media_type::MediaType;
use sip::{Framing, HeaderName, Limits, Message};

/// What a message's body is, for the call layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionBody {
    /// No body, or a plain `application/sdp` one: nothing to do.
    Plain,
    /// A multipart body whose one SDP part is this (the other parts are dropped).
    SdpPart(Bytes),
    /// A body Palisade does not relay.
    Unsupported,
}

/// The longest multipart body looked into (the parser's own limits bound messages anyway).
const MAX_PARTS: usize = 16;

pub fn classify(msg: &Message) -> SessionBody {
    if msg.body().is_empty() {
        return SessionBody::Plain;
    }
    let Some(Ok(ct)) = msg.content_type() else {
        return SessionBody::Unsupported;
    };
    if ct.is("application", "sdp") {
        return SessionBody::Plain;
    }
    if !ct.kind.eq_ignore_ascii_case("multipart") {
        return SessionBody::Unsupported;
    }
    let Some(Some(boundary)) = ct.param("boundary") else {
        return SessionBody::Unsupported;
    };
    let boundary = unquote(boundary);
    match sdp_part(boundary, msg.body()) {
        Some(range) => SessionBody::SdpPart(msg.body_bytes().slice(range)),
        None => SessionBody::Unsupported,
    }
}

fn unquote(v: &[u8]) -> &[u8] {
    match v {
        [b'"', inner @ .., b'"'] => inner,
        _ => v,
    }
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || from > hay.len() {
        return None;
    }
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// The byte range of the one `application/sdp` part of a multipart body (RFC 2046 §5.1.1), or `None` when there
/// is not exactly one, or the body is not well formed.
fn sdp_part(boundary: &[u8], body: &[u8]) -> Option<std::ops::Range<usize>> {
    if boundary.is_empty() || boundary.len() > 70 {
        return None;
    }
    let mut delimiter = b"--".to_vec();
    delimiter.extend_from_slice(boundary);
    // The first delimiter may start the body; every later one follows a CRLF.
    let mut at = if body.starts_with(&delimiter) {
        0
    } else {
        let mut d = b"\r\n".to_vec();
        d.extend_from_slice(&delimiter);
        find(body, &d, 0)? + 2
    };
    let mut found = None;
    let mut parts = 0;
    loop {
        let after = at + delimiter.len();
        if body[after..].starts_with(b"--") {
            break; // the close delimiter
        }
        let line_end = find(body, b"\r\n", after)?;
        let start = line_end + 2;
        let mut next = b"\r\n".to_vec();
        next.extend_from_slice(&delimiter);
        let end = find(body, &next, start)?;
        parts += 1;
        if parts > MAX_PARTS {
            return None;
        }
        let part = &body[start..end];
        let (headers_len, is_sdp) = part_headers(part)?;
        if is_sdp {
            if found.is_some() {
                return None;
            }
            found = Some(start + headers_len..end);
        }
        at = end + 2;
    }
    found
}

/// The length of a part's header block (with its empty line) and whether its Content-Type is SDP. A part without
/// headers starts with the empty line (RFC 2046: its type is text/plain).
fn part_headers(part: &[u8]) -> Option<(usize, bool)> {
    if part.starts_with(b"\r\n") {
        return Some((2, false));
    }
    let end = find(part, b"\r\n\r\n", 0)?;
    let is_sdp = part[..end].split(|&b| b == b'\n').any(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return false;
        };
        let name = line[..colon].trim_ascii();
        (name.eq_ignore_ascii_case(b"content-type") || name.eq_ignore_ascii_case(b"c"))
            && MediaType::parse(&line[colon + 1..]).is_ok_and(|m| m.is("application", "sdp"))
    });
    Some((end + 4, is_sdp))
}

/// `msg` with its body replaced: `Some((content type, body))`, or no body at all. Every other header is kept as
/// it was. `None` if the result does not parse (it always should).
pub fn with_body(msg: &Message, body: Option<(&str, &[u8])>, limits: &Limits) -> Option<Message> {
    let wire = msg.bytes();
    let start_line_end = find(wire, b"\r\n", 0)?;
    let mut out = Vec::with_capacity(wire.len());
    out.extend_from_slice(&wire[..start_line_end + 2]);
    for h in msg.headers() {
        if matches!(h.name, HeaderName::ContentType | HeaderName::ContentLength) {
            continue;
        }
        out.extend_from_slice(h.name_text);
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value);
        out.extend_from_slice(b"\r\n");
    }
    let content = body.map_or(&[][..], |(_, b)| b);
    if let Some((ct, _)) = body {
        out.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", content.len()).as_bytes());
    out.extend_from_slice(content);
    Message::parse(Bytes::from(out), Framing::Stream, limits).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4475 §3.1.1.11 (mpart01), shortened: an SDP part and an ISUP part.
    fn mpart(content_type: &str, parts: &str) -> Message {
        let s = format!(
            "INVITE sip:101@pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.5;branch=z9hG4bKm\r\nMax-Forwards: 70\r\n\
             From: <sip:100@pbx.test>;tag=a\r\nTo: <sip:101@pbx.test>\r\nCall-ID: mp@x\r\nCSeq: 1 INVITE\r\n\
             Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{parts}",
            parts.len()
        );
        Message::parse(Bytes::from(s), Framing::Stream, &Limits::default()).unwrap()
    }

    const SDP: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\nt=0 0\r\n\
                       m=audio 4000 RTP/AVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:secret\r\n";

    fn parts() -> String {
        format!(
            "--unique-boundary-1\r\nContent-Type: application/SDP\r\n\r\n{SDP}\r\n--unique-boundary-1\r\n\
             Content-Type: application/ISUP; version=nxv3; base=etsi121\r\nContent-Disposition: signal; handling=required\r\n\r\n\
             \x01\x00\x49\x00\x00\x03192.0.2.5\r\n--unique-boundary-1--\r\n"
        )
    }

    #[test]
    fn the_sdp_part_of_rfc4475_mpart01_is_taken_and_the_rest_dropped() {
        let m = mpart("multipart/mixed;boundary=unique-boundary-1", &parts());
        let SessionBody::SdpPart(sdp) = classify(&m) else {
            panic!("{:?}", classify(&m));
        };
        assert_eq!(&sdp[..], SDP.as_bytes());
        let rebuilt = with_body(&m, Some(("application/sdp", &sdp)), &Limits::default()).unwrap();
        assert_eq!(rebuilt.body(), SDP.as_bytes());
        assert!(
            rebuilt
                .content_type()
                .unwrap()
                .unwrap()
                .is("application", "sdp")
        );
        assert_eq!(rebuilt.call_id(), m.call_id());
        assert_eq!(rebuilt.header_occurrences(HeaderName::ContentType), 1);
        let text = String::from_utf8_lossy(rebuilt.bytes());
        assert!(
            !text.contains("ISUP") && !text.contains("unique-boundary"),
            "{text}"
        );
    }

    #[test]
    fn a_quoted_boundary_a_preamble_and_alternative_work() {
        let body = format!(
            "preamble\r\n{}",
            parts().replace("unique-boundary-1", "b 1")
        );
        let m = mpart("multipart/alternative; boundary=\"b 1\"", &body);
        assert!(matches!(classify(&m), SessionBody::SdpPart(s) if &s[..] == SDP.as_bytes()));
    }

    #[test]
    fn what_is_not_exactly_one_sdp_part_is_unsupported() {
        let isup_only = "--b\r\nContent-Type: application/isup\r\n\r\nxx\r\n--b--\r\n";
        let two = format!(
            "--b\r\nContent-Type: application/sdp\r\n\r\n{SDP}\r\n--b\r\nContent-Type: application/sdp\r\n\r\n{SDP}\r\n--b--\r\n"
        );
        let unterminated = format!("--b\r\nContent-Type: application/sdp\r\n\r\n{SDP}");
        for (ct, body) in [
            ("multipart/mixed;boundary=b", isup_only.to_string()),
            ("multipart/mixed;boundary=b", two),
            ("multipart/mixed;boundary=b", unterminated),
            ("multipart/mixed", isup_only.to_string()),
            ("application/x-foo", SDP.to_string()),
            ("text/plain", "hello".to_string()),
        ] {
            assert_eq!(
                classify(&mpart(ct, &body)),
                SessionBody::Unsupported,
                "{ct}: {body}"
            );
        }
        assert_eq!(classify(&mpart("application/sdp", SDP)), SessionBody::Plain);
    }

    #[test]
    fn a_body_can_be_removed() {
        let m = mpart("text/plain", "hello");
        let bare = with_body(&m, None, &Limits::default()).unwrap();
        assert!(bare.body().is_empty());
        assert_eq!(bare.header_occurrences(HeaderName::ContentType), 0);
    }

    #[test]
    fn damaged_multiparts_never_panic() {
        let p = parts();
        for cut in 0..p.len() {
            let _ = classify(&mpart(
                "multipart/mixed;boundary=unique-boundary-1",
                &p[..cut],
            ));
        }
    }
}
