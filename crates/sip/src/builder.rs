//! Writing messages: responses built from the request they answer, and new requests.
//!
//! Values copied from a received message have their line folding replaced by single spaces so what Palisade
//! sends is always one header per line.

use std::fmt::Write as _;
use std::net::SocketAddr;

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::ParseError;
use crate::header::HeaderName;
use crate::limits::Limits;
use crate::message::{Framing, Message};
use crate::text;

/// The standard reason phrase for a status code (RFC 3261 §21 and later RFCs).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        489 => "Bad Event",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        603 => "Decline",
        _ => match status / 100 {
            1 => "Progress",
            2 => "OK",
            3 => "Redirect",
            4 => "Client Error",
            5 => "Server Error",
            _ => "Global Failure",
        },
    }
}

/// Appends a header value with folded line breaks collapsed to single spaces.
fn put_unfolded(out: &mut BytesMut, v: &[u8]) {
    let v = text::trim(v);
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'\r' || v[i] == b'\n' {
            while i < v.len() && text::is_lws(v[i]) {
                i += 1;
            }
            out.put_u8(b' ');
        } else {
            out.put_u8(v[i]);
            i += 1;
        }
    }
}

fn put_header(out: &mut BytesMut, name: &str, value: &[u8]) {
    out.put_slice(name.as_bytes());
    out.put_slice(b": ");
    put_unfolded(out, value);
    out.put_slice(b"\r\n");
}

/// Strips characters that would break the response line from a reason phrase.
fn sanitize_reason(reason: &str) -> impl Iterator<Item = char> + '_ {
    reason.chars().filter(|c| !c.is_control())
}

/// Builds a response to a request: Via, From, To, Call-ID and CSeq are copied (RFC 3261 §8.2.6.2).
pub struct ResponseBuilder<'a> {
    req: &'a Message,
    status: u16,
    reason: String,
    to_tag: Option<String>,
    received: Option<SocketAddr>,
    headers: BytesMut,
    body: Option<(String, Bytes)>,
}

impl<'a> ResponseBuilder<'a> {
    pub fn new(req: &'a Message, status: u16) -> Self {
        Self::with_reason(req, status, reason_phrase(status))
    }

    pub fn with_reason(req: &'a Message, status: u16, reason: &str) -> Self {
        ResponseBuilder {
            req,
            status,
            reason: sanitize_reason(reason).collect(),
            to_tag: None,
            received: None,
            headers: BytesMut::new(),
            body: None,
        }
    }

    /// Adds a To tag unless the request's To already has one (a request inside a dialog).
    pub fn to_tag(mut self, tag: impl Into<String>) -> Self {
        self.to_tag = Some(tag.into());
        self
    }

    /// Records the transport source of the request in the top Via (`received`, and `rport` when the client
    /// asked for it, RFC 3581) so the response can be routed back through NAT.
    pub fn received_from(mut self, source: SocketAddr) -> Self {
        self.received = Some(source);
        self
    }

    pub fn header(mut self, name: HeaderName, value: impl AsRef<[u8]>) -> Self {
        put_header(&mut self.headers, name.as_str(), value.as_ref());
        self
    }

    pub fn header_named(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        put_header(&mut self.headers, name, value.as_ref());
        self
    }

    pub fn body(mut self, content_type: impl Into<String>, body: Bytes) -> Self {
        self.body = Some((content_type.into(), body));
        self
    }

    pub fn build(self) -> Bytes {
        let req = self.req;
        let mut out = BytesMut::with_capacity(512 + self.headers.len());
        let _ = write!(
            Writer(&mut out),
            "SIP/2.0 {} {}\r\n",
            self.status,
            self.reason
        );
        let mut first_via = true;
        for via in req.header_values(HeaderName::Via) {
            // Only the top-most Via element is annotated; a header line may hold several elements.
            if first_via && let Some(src) = self.received {
                let mut elements = text::split_commas(via);
                let top = elements.next().and_then(Result::ok).unwrap_or(b"");
                out.put_slice(b"Via: ");
                put_unfolded(&mut out, &annotate_via(top, src));
                for rest in elements.flatten() {
                    out.put_slice(b", ");
                    put_unfolded(&mut out, rest);
                }
                out.put_slice(b"\r\n");
            } else {
                put_header(&mut out, "Via", via);
            }
            first_via = false;
        }
        if let Some(from) = req.header(HeaderName::From) {
            put_header(&mut out, "From", from);
        }
        if let Some(to) = req.header(HeaderName::To) {
            out.put_slice(b"To: ");
            put_unfolded(&mut out, to);
            if let Some(tag) = &self.to_tag
                && self.status > 100
                && !has_tag(to)
            {
                out.put_slice(b";tag=");
                out.put_slice(tag.as_bytes());
            }
            out.put_slice(b"\r\n");
        }
        if let Some(cid) = req.header(HeaderName::CallId) {
            put_header(&mut out, "Call-ID", cid);
        }
        if let Some(cseq) = req.header(HeaderName::CSeq) {
            put_header(&mut out, "CSeq", cseq);
        }
        out.put_slice(&self.headers);
        match self.body {
            Some((ct, body)) => {
                let _ = write!(
                    Writer(&mut out),
                    "Content-Type: {ct}\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                out.put_slice(&body);
            }
            None => out.put_slice(b"Content-Length: 0\r\n\r\n"),
        }
        out.freeze()
    }
}

fn has_tag(to: &[u8]) -> bool {
    crate::addr::NameAddr::parse(to)
        .map(|a| a.tag().is_some())
        .unwrap_or(false)
}

/// Adds `received` and fills an empty `rport` in a Via value (RFC 3581 §4).
fn annotate_via(via: &[u8], src: SocketAddr) -> Vec<u8> {
    let mut out = Vec::with_capacity(via.len() + 40);
    // Rebuild the parameter list: keep everything, replace a bare `rport` with `rport=PORT`, drop any old
    // `received` (we write our own).
    let semi = via.iter().position(|&b| b == b';').unwrap_or(via.len());
    out.extend_from_slice(text::trim(&via[..semi]));
    for p in text::params(&via[semi..]).flatten() {
        if p.name.eq_ignore_ascii_case(b"received") {
            continue;
        }
        out.push(b';');
        out.extend_from_slice(p.name);
        if p.name.eq_ignore_ascii_case(b"rport") {
            let _ = write!(VecWriter(&mut out), "={}", src.port());
        } else if let Some(v) = p.value {
            out.push(b'=');
            out.extend_from_slice(v);
        }
    }
    match src.ip() {
        std::net::IpAddr::V4(ip) => {
            let _ = write!(VecWriter(&mut out), ";received={ip}");
        }
        std::net::IpAddr::V6(ip) => {
            let _ = write!(VecWriter(&mut out), ";received=[{ip}]");
        }
    }
    out
}

/// Builds a new request. Content-Length is always written; Max-Forwards is added if the caller gives none.
pub struct RequestBuilder {
    out: BytesMut,
    has_max_forwards: bool,
    body: Option<(String, Bytes)>,
}

impl RequestBuilder {
    pub fn new(method: &str, uri: &str) -> Self {
        let mut out = BytesMut::with_capacity(512);
        let _ = write!(Writer(&mut out), "{method} {uri} SIP/2.0\r\n");
        RequestBuilder {
            out,
            has_max_forwards: false,
            body: None,
        }
    }

    pub fn header(mut self, name: HeaderName, value: impl AsRef<[u8]>) -> Self {
        if name == HeaderName::MaxForwards {
            self.has_max_forwards = true;
        }
        put_header(&mut self.out, name.as_str(), value.as_ref());
        self
    }

    pub fn header_named(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        put_header(&mut self.out, name, value.as_ref());
        self
    }

    pub fn body(mut self, content_type: impl Into<String>, body: Bytes) -> Self {
        self.body = Some((content_type.into(), body));
        self
    }

    pub fn build(mut self) -> Bytes {
        if !self.has_max_forwards {
            self.out.put_slice(b"Max-Forwards: 70\r\n");
        }
        match self.body {
            Some((ct, body)) => {
                let _ = write!(
                    Writer(&mut self.out),
                    "Content-Type: {ct}\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                self.out.put_slice(&body);
            }
            None => self.out.put_slice(b"Content-Length: 0\r\n\r\n"),
        }
        self.out.freeze()
    }

    /// The request as a [`Message`], ready for the transaction layer, so a caller that builds a request never
    /// parses its own bytes again. Only limits are checked (none apply to what Palisade writes itself), since the
    /// builder writes one well-formed header per line.
    pub fn build_message(self) -> Result<Message, ParseError> {
        let own = Limits {
            max_message_size: usize::MAX,
            max_headers: usize::MAX,
            max_header_line: usize::MAX,
            max_body_size: usize::MAX,
        };
        Message::parse(self.build(), Framing::Stream, &own)
    }
}

/// The ACK a client INVITE transaction sends for a non-2xx final response (RFC 3261 §17.1.1.3): same
/// Request-URI, top Via, From, Call-ID, CSeq number and Route set as the INVITE; To from the response.
pub fn ack_for_non_2xx(invite: &Message, response: &Message) -> Option<Bytes> {
    let uri = std::str::from_utf8(invite.request_uri_raw()?).ok()?;
    let cseq = invite.cseq().ok()?;
    let top_via = invite.header_elements(HeaderName::Via).next()?.ok()?;
    let mut b = RequestBuilder::new("ACK", uri)
        .header(HeaderName::Via, top_via)
        .header(HeaderName::MaxForwards, b"70")
        .header(HeaderName::From, invite.header(HeaderName::From)?)
        .header(HeaderName::To, response.header(HeaderName::To)?)
        .header(HeaderName::CallId, invite.call_id()?)
        .header(HeaderName::CSeq, format!("{} ACK", cseq.seq));
    for route in invite.header_values(HeaderName::Route) {
        b = b.header(HeaderName::Route, route);
    }
    Some(b.build())
}

/// The CANCEL for a pending INVITE (RFC 3261 §9.1): same Request-URI, top Via, From, To, Call-ID, CSeq number
/// and Route set.
pub fn cancel_for(invite: &Message) -> Option<Bytes> {
    let uri = std::str::from_utf8(invite.request_uri_raw()?).ok()?;
    let cseq = invite.cseq().ok()?;
    let top_via = invite.header_elements(HeaderName::Via).next()?.ok()?;
    let mut b = RequestBuilder::new("CANCEL", uri)
        .header(HeaderName::Via, top_via)
        .header(HeaderName::MaxForwards, b"70")
        .header(HeaderName::From, invite.header(HeaderName::From)?)
        .header(HeaderName::To, invite.header(HeaderName::To)?)
        .header(HeaderName::CallId, invite.call_id()?)
        .header(HeaderName::CSeq, format!("{} CANCEL", cseq.seq));
    for route in invite.header_values(HeaderName::Route) {
        b = b.header(HeaderName::Route, route);
    }
    Some(b.build())
}

struct Writer<'a>(&'a mut BytesMut);

impl std::fmt::Write for Writer<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.put_slice(s.as_bytes());
        Ok(())
    }
}

struct VecWriter<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for VecWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Framing, Limits};

    fn req(s: &str) -> Message {
        Message::parse(
            Bytes::copy_from_slice(s.as_bytes()),
            Framing::Datagram,
            &Limits::default(),
        )
        .unwrap()
    }

    #[test]
    fn response_copies_dialog_headers_and_annotates_via() {
        let r = req(
            "OPTIONS sip:pbx SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;rport, SIP/2.0/UDP p\r\n\
                     From: <sip:a@b>;tag=1\r\nTo: <sip:pbx>\r\nCall-ID: c1\r\nCSeq: 1\r\n OPTIONS\r\nContent-Length: 0\r\n\r\n",
        );
        let resp = ResponseBuilder::new(&r, 200)
            .to_tag("xyz")
            .received_from("192.0.2.7:4000".parse().unwrap())
            .header(HeaderName::Allow, "INVITE, ACK")
            .build();
        let m = Message::parse(resp, Framing::Stream, &Limits::default()).unwrap();
        assert_eq!(m.status(), Some(200));
        let via = m.top_via().unwrap();
        assert_eq!(via.rport(), Some(Some(4000)));
        assert_eq!(via.received(), Some("192.0.2.7"));
        assert_eq!(m.vias().count(), 2);
        assert_eq!(m.to().unwrap().tag(), Some("xyz"));
        assert_eq!(m.cseq().unwrap().seq, 1);
        assert_eq!(m.header(HeaderName::Allow), Some(&b"INVITE, ACK"[..]));
    }

    #[test]
    fn a_built_request_is_a_message_with_its_body() {
        let m = RequestBuilder::new("INVITE", "sip:200@192.0.2.9:5062")
            .header(HeaderName::CallId, "c9")
            .header(HeaderName::CSeq, "1 INVITE")
            .body("application/sdp", Bytes::from_static(b"v=0\r\n"))
            .build_message()
            .unwrap();
        assert_eq!(m.method(), Some(crate::Method::Invite));
        assert_eq!(m.request_uri_raw(), Some(&b"sip:200@192.0.2.9:5062"[..]));
        assert_eq!(m.max_forwards(), Ok(Some(70)));
        assert_eq!(m.body(), b"v=0\r\n");
    }

    #[test]
    fn ack_and_cancel() {
        let inv = req(
            "INVITE sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bKx\r\nRoute: <sip:p;lr>\r\n\
                       From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: c\r\nCSeq: 5 INVITE\r\nContent-Length: 0\r\n\r\n",
        );
        let resp = req(
            "SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP a;branch=z9hG4bKx\r\nFrom: <sip:a@h>;tag=1\r\n\
                        To: <sip:b@h>;tag=2\r\nCall-ID: c\r\nCSeq: 5 INVITE\r\nContent-Length: 0\r\n\r\n",
        );
        let ack = Message::parse(
            ack_for_non_2xx(&inv, &resp).unwrap(),
            Framing::Stream,
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(ack.method_str(), Some("ACK"));
        assert_eq!(ack.cseq().unwrap().seq, 5);
        assert_eq!(ack.to().unwrap().tag(), Some("2"));
        assert_eq!(ack.top_via().unwrap().branch(), Some("z9hG4bKx"));
        assert_eq!(ack.header_occurrences(HeaderName::Route), 1);
        let cancel = Message::parse(
            cancel_for(&inv).unwrap(),
            Framing::Stream,
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(cancel.cseq().unwrap().method_text, "CANCEL");
    }
}
