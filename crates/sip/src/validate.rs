//! Request and response validation in RFC 3261's order (§8.2 and §16.3), before any authentication:
//! syntax of every header Palisade relies on (400), URI scheme (416), Max-Forwards (483), Require and
//! Proxy-Require (420), Content-Type and Content-Encoding (415), Accept (406).
//!
//! The version check (505) happens while parsing, because a request with an unknown version cannot be trusted
//! to follow the rest of the grammar.

use std::borrow::Cow;

use crate::addr::{Contact, NameAddr};
use crate::builder::reason_phrase;
use crate::header::HeaderName;
use crate::message::Message;
use crate::method::Method;
use crate::text;
use crate::uri::Scheme;

/// What a request needs from the element that serves it.
#[derive(Debug, Clone, Copy)]
pub struct Capabilities<'a> {
    /// Option tags this element implements (Require from the client is checked against them).
    pub supported: &'a [&'a str],
    /// Body types this element understands (`type/subtype`).
    pub accepted_types: &'a [&'a str],
}

impl Default for Capabilities<'static> {
    fn default() -> Self {
        Capabilities {
            supported: &[],
            accepted_types: &["application/sdp", "multipart/mixed"],
        }
    }
}

/// A refused request: the status, a reason phrase that names the problem, and headers the RFC asks for
/// (Unsupported for 420, Accept for 415).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    pub reason: Cow<'static, str>,
    pub headers: Vec<(HeaderName, String)>,
}

impl Rejection {
    fn bad(detail: impl std::fmt::Display) -> Self {
        Rejection {
            status: 400,
            reason: Cow::Owned(format!("Bad Request ({detail})")),
            headers: Vec::new(),
        }
    }

    fn status(status: u16) -> Self {
        Rejection {
            status,
            reason: Cow::Borrowed(reason_phrase(status)),
            headers: Vec::new(),
        }
    }
}

/// Checks a request that parsed. `Ok` means it may go on to the transaction layer and authentication.
pub fn validate_request(msg: &Message, caps: &Capabilities<'_>) -> Result<(), Rejection> {
    let method = msg
        .method()
        .ok_or_else(|| Rejection::bad("not a request"))?;
    check_syntax(msg)?;

    // 416: a Request-URI whose scheme Palisade does not serve.
    let uri = match msg.request_uri() {
        Some(Ok(uri)) => uri,
        _ => return Err(Rejection::bad("malformed Request-URI")),
    };
    if uri.scheme == Scheme::Other {
        return Err(Rejection::status(416));
    }

    // 483: Palisade terminates OPTIONS and REGISTER itself; anything else with Max-Forwards 0 could only be
    // forwarded, which it must not be.
    if msg.max_forwards().ok().flatten() == Some(0)
        && !matches!(method, Method::Options | Method::Register)
    {
        return Err(Rejection::status(483));
    }

    // 420: RFC 3261 §8.2.2.3 — ACK and CANCEL are never refused for Require.
    if !matches!(method, Method::Ack | Method::Cancel) {
        let unsupported: Vec<&str> = [HeaderName::Require, HeaderName::ProxyRequire]
            .into_iter()
            .flat_map(|h| msg.option_tags(h))
            .filter_map(|t| std::str::from_utf8(t).ok())
            .filter(|t| !caps.supported.iter().any(|s| s.eq_ignore_ascii_case(t)))
            .collect();
        if !unsupported.is_empty() {
            let mut r = Rejection::status(420);
            r.headers
                .push((HeaderName::Unsupported, unsupported.join(", ")));
            return Err(r);
        }
    }

    // 415: a body Palisade cannot read.
    if !msg.body().is_empty() && method != Method::Ack {
        let understood = match msg.content_type() {
            Some(Ok(ct)) => caps
                .accepted_types
                .iter()
                .any(|a| a.split_once('/').is_some_and(|(k, s)| ct.is(k, s))),
            _ => false,
        };
        let encoded = msg
            .header_elements(HeaderName::ContentEncoding)
            .filter_map(Result::ok)
            .any(|e| !e.is_empty() && !e.eq_ignore_ascii_case(b"identity"));
        if !understood || encoded {
            let mut r = Rejection::status(415);
            r.headers
                .push((HeaderName::Accept, caps.accepted_types.join(", ")));
            r.headers
                .push((HeaderName::AcceptEncoding, "identity".into()));
            return Err(r);
        }
    }

    // 406: an INVITE whose Accept rules out SDP cannot be answered with a session description.
    if method == Method::Invite && msg.header_occurrences(HeaderName::Accept) > 0 {
        let sdp_ok = msg
            .header_elements(HeaderName::Accept)
            .filter_map(Result::ok)
            .any(|a| {
                let a = a
                    .split(|&b| b == b';')
                    .next()
                    .map(text::trim)
                    .unwrap_or(b"");
                a.is_empty()
                    || a.eq_ignore_ascii_case(b"application/sdp")
                    || a.eq_ignore_ascii_case(b"application/*")
                    || a == b"*/*"
            });
        if !sdp_ok {
            let mut r = Rejection::status(406);
            r.headers
                .push((HeaderName::Accept, "application/sdp".into()));
            return Err(r);
        }
    }
    Ok(())
}

/// Everything that makes a request a 400: missing or repeated mandatory headers and header syntax.
fn check_syntax(msg: &Message) -> Result<(), Rejection> {
    for (h, name) in [
        (HeaderName::Via, "Via"),
        (HeaderName::From, "From"),
        (HeaderName::To, "To"),
        (HeaderName::CallId, "Call-ID"),
        (HeaderName::CSeq, "CSeq"),
    ] {
        if msg.header_occurrences(h) == 0 {
            return Err(Rejection::bad(format_args!("missing {name} header")));
        }
    }
    for h in [
        HeaderName::From,
        HeaderName::To,
        HeaderName::CallId,
        HeaderName::CSeq,
        HeaderName::MaxForwards,
        HeaderName::ContentType,
        HeaderName::Expires,
    ] {
        if msg.header_occurrences(h) > 1 {
            return Err(Rejection::bad(format_args!(
                "{} header appears more than once",
                h.as_str()
            )));
        }
    }
    for via in msg.vias() {
        via.map_err(Rejection::bad)?;
    }
    NameAddr::parse(msg.header(HeaderName::From).unwrap_or_default())
        .map_err(|e| Rejection::bad(format_args!("From header: {e}")))?;
    NameAddr::parse(msg.header(HeaderName::To).unwrap_or_default())
        .map_err(|e| Rejection::bad(format_args!("To header: {e}")))?;
    let call_id = msg.call_id().unwrap_or_default();
    if !is_call_id(call_id) {
        return Err(Rejection::bad("malformed Call-ID header"));
    }
    let cseq = msg
        .cseq()
        .map_err(|e| Rejection::bad(format_args!("CSeq header: {e}")))?;
    if Some(cseq.method_text) != msg.method_str() {
        return Err(Rejection::bad(
            "CSeq method does not match the request method",
        ));
    }
    msg.max_forwards().map_err(Rejection::bad)?;
    msg.expires().map_err(Rejection::bad)?;
    for c in msg.contacts() {
        match c.map_err(|e| Rejection::bad(format_args!("Contact header: {e}")))? {
            Contact::Star => {}
            Contact::Addr(a) => {
                if let Some(v) = a.param("expires")
                    && v.and_then(text::parse_u32).is_none()
                {
                    return Err(Rejection::bad(
                        "Contact expires is not a number of seconds below 2^32",
                    ));
                }
                if let Some(v) = a.param("q")
                    && !v.is_some_and(is_qvalue)
                {
                    return Err(Rejection::bad("Contact q is not a value from 0 to 1"));
                }
            }
        }
    }
    for h in [HeaderName::Route, HeaderName::RecordRoute] {
        for r in msg.routes(h) {
            r.map_err(|e| Rejection::bad(format_args!("{} header: {e}", h.as_str())))?;
        }
    }
    if let Some(ct) = msg.content_type() {
        ct.map_err(Rejection::bad)?;
    }
    for h in [
        HeaderName::Require,
        HeaderName::ProxyRequire,
        HeaderName::Supported,
    ] {
        for tag in msg.header_elements(h) {
            let tag =
                tag.map_err(|_| Rejection::bad(format_args!("malformed {} header", h.as_str())))?;
            if !tag.is_empty() && !text::is_token(tag) {
                return Err(Rejection::bad(format_args!(
                    "malformed {} header",
                    h.as_str()
                )));
            }
        }
    }
    if let Some(date) = msg.header(HeaderName::Date)
        && !is_sip_date(date)
    {
        return Err(Rejection::bad("Date header is not an RFC 1123 date in GMT"));
    }
    match msg.request_uri() {
        Some(Ok(uri)) => {
            // RFC 3261 §19.1.1: headers are not allowed in a Request-URI.
            if uri.headers.is_some() {
                return Err(Rejection::bad("Request-URI must not contain headers"));
            }
        }
        Some(Err(e)) => return Err(Rejection::bad(format_args!("Request-URI: {e}"))),
        None => return Err(Rejection::bad("no Request-URI")),
    }
    Ok(())
}

/// `callid = word [ "@" word ]`
fn is_call_id(v: &[u8]) -> bool {
    let mut parts = v.splitn(2, |&b| b == b'@');
    let ok = |w: &[u8]| !w.is_empty() && w.iter().all(|&b| text::is_word_char(b));
    parts.next().is_some_and(ok) && parts.next().is_none_or(ok)
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`
fn is_qvalue(v: &[u8]) -> bool {
    match v {
        [b'0'] | [b'1'] => true,
        [b'0', b'.', rest @ ..] => rest.len() <= 3 && rest.iter().all(u8::is_ascii_digit),
        [b'1', b'.', rest @ ..] => rest.len() <= 3 && rest.iter().all(|&b| b == b'0'),
        _ => false,
    }
}

/// RFC 3261 `SIP-date` (RFC 1123 form, always GMT): `Sat, 13 Nov 2010 23:29:00 GMT`.
fn is_sip_date(v: &[u8]) -> bool {
    let Ok(s) = std::str::from_utf8(v) else {
        return false;
    };
    let parts: Vec<&str> = s.split_whitespace().collect();
    const DAYS: [&str; 7] = ["Mon,", "Tue,", "Wed,", "Thu,", "Fri,", "Sat,", "Sun,"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let digits = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_digit());
    let time_ok = |t: &str| {
        let f: Vec<&str> = t.split(':').collect();
        f.len() == 3 && f.iter().all(|p| digits(p, 2))
    };
    parts.len() == 6
        && DAYS.contains(&parts[0])
        && digits(parts[1], 2)
        && MONTHS.contains(&parts[2])
        && digits(parts[3], 4)
        && time_ok(parts[4])
        && parts[5] == "GMT"
}

/// Checks a response before it is matched to a client transaction; a bad one is dropped (responses are
/// never answered).
pub fn validate_response(msg: &Message) -> Result<(), &'static str> {
    if msg.top_via().is_err() {
        return Err("malformed or missing Via");
    }
    if msg.cseq().is_err() {
        return Err("malformed or missing CSeq");
    }
    if msg.from().is_err() || msg.to().is_err() {
        return Err("malformed From or To");
    }
    if msg.call_id().is_none_or(|c| !is_call_id(c)) {
        return Err("malformed or missing Call-ID");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qvalues() {
        assert!(is_qvalue(b"0.33"));
        assert!(is_qvalue(b"1.000"));
        assert!(!is_qvalue(b"1.5"));
        assert!(!is_qvalue(b"0.3333"));
    }

    #[test]
    fn dates() {
        assert!(is_sip_date(b"Sat, 13 Nov 2010 23:29:00 GMT"));
        assert!(!is_sip_date(b"Fri, 01 Jan 2010 16:00:00 EST"));
    }
}

/// What to do with a received datagram or framed stream message.
#[derive(Debug)]
pub enum Triage {
    /// A request that passed validation.
    Request(Message),
    /// A response that may be matched to a client transaction.
    Response(Message),
    /// A request to refuse with this status; `request` holds what could be parsed, enough to build the answer.
    Reject {
        request: Box<Message>,
        rejection: Rejection,
    },
    /// Nothing to answer: a bad response, or a request too broken to address a response to.
    Drop(Cow<'static, str>),
}

/// Parses and validates one message: the single entry point from the transports into the SIP stack.
pub fn triage(
    data: bytes::Bytes,
    framing: crate::message::Framing,
    limits: &crate::limits::Limits,
    caps: &Capabilities<'_>,
) -> Triage {
    match Message::parse(data, framing, limits) {
        Ok(msg) if msg.is_request() => match validate_request(&msg, caps) {
            Ok(()) => Triage::Request(msg),
            Err(rejection) => Triage::Reject {
                request: Box::new(msg),
                rejection,
            },
        },
        Ok(msg) => match validate_response(&msg) {
            Ok(()) => Triage::Response(msg),
            Err(why) => Triage::Drop(Cow::Borrowed(why)),
        },
        Err(e) => match e.partial() {
            // Only a request that carries the headers a response is built from can be answered.
            Some(partial) if partial.is_request() && answerable(partial) => {
                let status = e.kind.status();
                let reason = if status == 400 {
                    Cow::Owned(format!("Bad Request ({})", e.kind))
                } else {
                    Cow::Borrowed(reason_phrase(status))
                };
                Triage::Reject {
                    request: Box::new(partial.clone()),
                    rejection: Rejection {
                        status,
                        reason,
                        headers: Vec::new(),
                    },
                }
            }
            _ => Triage::Drop(Cow::Owned(e.kind.to_string())),
        },
    }
}

/// A response copies Via, From, To, Call-ID and CSeq; it goes back to the transport source address, so the
/// Via only has to be present, not understood (a `SIP/7.0` Via still gets its 505).
fn answerable(msg: &Message) -> bool {
    msg.header(HeaderName::Via).is_some()
        && msg.header(HeaderName::From).is_some()
        && msg.header(HeaderName::To).is_some()
        && msg.call_id().is_some()
        && msg.header(HeaderName::CSeq).is_some()
}

#[cfg(test)]
mod limit_tests {
    use super::*;
    use crate::limits::Limits;
    use crate::message::Framing;

    fn run(msg: String, limits: &Limits) -> Triage {
        triage(
            bytes::Bytes::from(msg),
            Framing::Datagram,
            limits,
            &Capabilities::default(),
        )
    }

    fn request(extra: &str, body: &str) -> String {
        format!(
            "MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:c@d>;tag=1\r\nTo: <sip:a@b>\r\n\
             Call-ID: x\r\nCSeq: 1 MESSAGE\r\n{extra}Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    #[test]
    fn oversized_body_is_413_and_oversized_message_is_dropped() {
        let limits = Limits {
            max_body_size: 10,
            max_message_size: 1000,
            ..Limits::default()
        };
        match run(request("", &"x".repeat(11)), &limits) {
            Triage::Reject { rejection, .. } => assert_eq!(rejection.status, 413),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            run(request("", &"x".repeat(2000)), &limits),
            Triage::Drop(_)
        ));
    }

    #[test]
    fn too_many_headers_is_a_400_naming_the_limit() {
        let limits = Limits {
            max_headers: 8,
            ..Limits::default()
        };
        match run(request("A: 1\r\nB: 2\r\nC: 3\r\n", ""), &limits) {
            Triage::Reject { rejection, .. } => {
                assert_eq!(rejection.status, 400);
                assert!(
                    rejection.reason.contains("more than 8 header fields"),
                    "{}",
                    rejection.reason
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
