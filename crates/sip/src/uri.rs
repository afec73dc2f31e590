//! URIs: `sip:`, `sips:` and `tel:` parsed into their parts; any other absolute URI is kept opaque so the
//! caller can answer 416 Unsupported URI Scheme.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::text;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Sip,
    Sips,
    Tel,
    /// A syntactically valid scheme Palisade does not route (`http:`, `urn:`, `soap.beep:` …).
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host<'a> {
    /// A host name, as written (compare case-insensitively).
    Name(&'a str),
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

impl Host<'_> {
    pub fn ip(&self) -> Option<IpAddr> {
        match *self {
            Host::V4(a) => Some(IpAddr::V4(a)),
            Host::V6(a) => Some(IpAddr::V6(a)),
            Host::Name(_) => None,
        }
    }
}

impl std::fmt::Display for Host<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::V4(a) => write!(f, "{a}"),
            Host::V6(a) => write!(f, "[{a}]"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    #[error("URI has no scheme")]
    NoScheme,
    #[error("URI contains white space")]
    WhiteSpace,
    #[error("URI has an invalid user part")]
    BadUser,
    #[error("URI has an invalid host")]
    BadHost,
    #[error("URI has an invalid port")]
    BadPort,
    #[error("URI has an invalid parameter")]
    BadParam,
    #[error("URI has an invalid escape sequence")]
    BadEscape,
    #[error("tel URI has an invalid number")]
    BadTelNumber,
}

/// A parsed URI borrowing from the message. Escapes are left in place; use the `*_unescaped` accessors to
/// compare user parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uri<'a> {
    pub raw: &'a str,
    pub scheme: Scheme,
    /// The user part of a sip/sips URI (may contain `;` parameters of a telephone-subscriber), or the number of
    /// a tel URI.
    pub user: Option<&'a str>,
    pub password: Option<&'a str>,
    /// The host; `None` for tel and opaque URIs.
    pub host: Option<Host<'a>>,
    pub port: Option<u16>,
    /// URI parameters including the leading `;` (empty if none).
    pub params: &'a str,
    /// The `?` header part without the `?`, if present.
    pub headers: Option<&'a str>,
}

impl<'a> Uri<'a> {
    pub fn parse(raw: &'a [u8]) -> Result<Uri<'a>, UriError> {
        let raw = std::str::from_utf8(raw).map_err(|_| UriError::BadUser)?;
        if raw.bytes().any(|b| text::is_lws(b) || b.is_ascii_control()) {
            return Err(UriError::WhiteSpace);
        }
        let colon = raw.find(':').ok_or(UriError::NoScheme)?;
        let scheme_text = &raw[..colon];
        let valid_scheme = scheme_text
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic())
            && scheme_text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
        if !valid_scheme {
            return Err(UriError::NoScheme);
        }
        let rest = &raw[colon + 1..];
        let scheme = if scheme_text.eq_ignore_ascii_case("sip") {
            Scheme::Sip
        } else if scheme_text.eq_ignore_ascii_case("sips") {
            Scheme::Sips
        } else if scheme_text.eq_ignore_ascii_case("tel") {
            Scheme::Tel
        } else {
            Scheme::Other
        };
        match scheme {
            Scheme::Sip | Scheme::Sips => parse_sip(raw, scheme, rest),
            Scheme::Tel => parse_tel(raw, rest),
            Scheme::Other => {
                if rest.is_empty() {
                    return Err(UriError::NoScheme);
                }
                Ok(Uri {
                    raw,
                    scheme,
                    user: None,
                    password: None,
                    host: None,
                    port: None,
                    params: "",
                    headers: None,
                })
            }
        }
    }

    /// The value of a URI parameter: `Some(None)` for a flag such as `lr`, `None` when absent. Names compare
    /// case-insensitively.
    pub fn param(&self, name: &str) -> Option<Option<&'a str>> {
        for p in self.params.split(';').skip(1) {
            let (n, v) = match p.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (p, None),
            };
            if n.eq_ignore_ascii_case(name) {
                return Some(v);
            }
        }
        None
    }

    /// The user part with %-escapes decoded.
    pub fn user_unescaped(&self) -> Option<Cow<'a, [u8]>> {
        self.user
            .map(|u| unescape(u.as_bytes()).unwrap_or(Cow::Borrowed(u.as_bytes())))
    }

    /// The `transport=` parameter, lower-cased comparison left to the caller.
    pub fn transport(&self) -> Option<&'a str> {
        self.param("transport").flatten()
    }

    pub fn is_sip(&self) -> bool {
        matches!(self.scheme, Scheme::Sip | Scheme::Sips)
    }
}

fn parse_sip<'a>(raw: &'a str, scheme: Scheme, rest: &'a str) -> Result<Uri<'a>, UriError> {
    // '@' cannot appear unescaped in the host, parameters or headers, so the last one ends the userinfo
    // (whose user part may itself contain '?', ';' and ',').
    let (userinfo, hostpart) = match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let (hostpart, headers) = match hostpart.find('?') {
        Some(q) => (&hostpart[..q], Some(&hostpart[q + 1..])),
        None => (hostpart, None),
    };
    let (user, password) = match userinfo {
        None => (None, None),
        Some(ui) => {
            let (u, p) = match ui.find(':') {
                Some(c) => (&ui[..c], Some(&ui[c + 1..])),
                None => (ui, None),
            };
            if u.is_empty() || !u.bytes().all(is_user_char) {
                return Err(UriError::BadUser);
            }
            check_escapes(u)?;
            if let Some(p) = p {
                if !p.bytes().all(is_password_char) {
                    return Err(UriError::BadUser);
                }
                check_escapes(p)?;
            }
            (Some(u), p)
        }
    };
    let (hostport, params) = match hostpart.find(';') {
        Some(s) => (&hostpart[..s], &hostpart[s..]),
        None => (hostpart, ""),
    };
    let (host, port) = parse_hostport(hostport)?;
    for p in params.split(';').skip(1) {
        if p.is_empty() || !p.bytes().all(|b| is_param_char(b) || b == b'=') {
            return Err(UriError::BadParam);
        }
        check_escapes(p)?;
    }
    if let Some(h) = headers {
        if h.is_empty()
            || !h
                .bytes()
                .all(|b| is_header_char(b) || b == b'=' || b == b'&')
        {
            return Err(UriError::BadParam);
        }
        check_escapes(h)?;
    }
    Ok(Uri {
        raw,
        scheme,
        user,
        password,
        host: Some(host),
        port,
        params,
        headers,
    })
}

fn parse_tel<'a>(raw: &'a str, rest: &'a str) -> Result<Uri<'a>, UriError> {
    let (number, params) = match rest.find(';') {
        Some(s) => (&rest[..s], &rest[s..]),
        None => (rest, ""),
    };
    let digits = number.strip_prefix('+').unwrap_or(number);
    let ok = !digits.is_empty()
        && digits
            .bytes()
            .any(|b| b.is_ascii_hexdigit() || b == b'*' || b == b'#')
        && digits
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || matches!(b, b'*' | b'#' | b'-' | b'.' | b'(' | b')'));
    if !ok {
        return Err(UriError::BadTelNumber);
    }
    for p in params.split(';').skip(1) {
        if p.is_empty() || !p.bytes().all(|b| is_param_char(b) || b == b'=') {
            return Err(UriError::BadParam);
        }
    }
    Ok(Uri {
        raw,
        scheme: Scheme::Tel,
        user: Some(number),
        password: None,
        host: None,
        port: None,
        params,
        headers: None,
    })
}

/// Parses `host[:port]`, where host may be an IPv6 reference in brackets.
pub fn parse_hostport(s: &str) -> Result<(Host<'_>, Option<u16>), UriError> {
    let (host, port) = if let Some(inner) = s.strip_prefix('[') {
        let close = inner.find(']').ok_or(UriError::BadHost)?;
        let addr: Ipv6Addr = inner[..close].parse().map_err(|_| UriError::BadHost)?;
        let after = &inner[close + 1..];
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or(UriError::BadHost)?),
        };
        (Host::V6(addr), port)
    } else {
        let (h, p) = match s.rfind(':') {
            Some(c) => (&s[..c], Some(&s[c + 1..])),
            None => (s, None),
        };
        (parse_host_name(h)?, p)
    };
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse::<u16>().map_err(|_| UriError::BadPort)?)
        }
        Some(_) => return Err(UriError::BadPort),
    };
    Ok((host, port))
}

fn parse_host_name(h: &str) -> Result<Host<'_>, UriError> {
    if h.is_empty() {
        return Err(UriError::BadHost);
    }
    if h.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return h
            .parse::<Ipv4Addr>()
            .map(Host::V4)
            .map_err(|_| UriError::BadHost);
    }
    // A trailing dot (fully qualified name) is allowed once, after at least one label.
    let name = h.strip_suffix('.').unwrap_or(h);
    let ok = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if ok {
        Ok(Host::Name(h))
    } else {
        Err(UriError::BadHost)
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
        )
}

fn is_user_char(b: u8) -> bool {
    is_unreserved(b)
        || matches!(
            b,
            b'%' | b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/'
        )
}

fn is_password_char(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'%' | b'&' | b'=' | b'+' | b'$' | b',')
}

fn is_param_char(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'%' | b'[' | b']' | b'/' | b':' | b'&' | b'+' | b'$')
}

fn is_header_char(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'%' | b'[' | b']' | b'/' | b'?' | b':' | b'+' | b'$')
}

fn check_escapes(s: &str) -> Result<(), UriError> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if !(b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
            {
                return Err(UriError::BadEscape);
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    Ok(())
}

/// Decodes %-escapes. Returns `None` when an escape is malformed.
pub fn unescape(s: &[u8]) -> Option<Cow<'_, [u8]>> {
    if !s.contains(&b'%') {
        return Some(Cow::Borrowed(s));
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            let hi = hex_val(*s.get(i + 1)?)?;
            let lo = hex_val(*s.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    Some(Cow::Owned(out))
}

fn hex_val(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_uri_parts() {
        let u = Uri::parse(b"sips:alice:secret@[2001:db8::10]:5061;transport=tcp;lr?subject=x")
            .unwrap();
        assert_eq!(u.scheme, Scheme::Sips);
        assert_eq!(u.user, Some("alice"));
        assert_eq!(u.password, Some("secret"));
        assert_eq!(u.host, Some(Host::V6("2001:db8::10".parse().unwrap())));
        assert_eq!(u.port, Some(5061));
        assert_eq!(u.transport(), Some("tcp"));
        assert_eq!(u.param("LR"), Some(None));
        assert_eq!(u.headers, Some("subject=x"));
    }

    #[test]
    fn unusual_user_parts() {
        let u = Uri::parse(
            b"sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com",
        )
        .unwrap();
        assert_eq!(
            u.user,
            Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
        );
        assert_eq!(
            u.password,
            Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
        );
        assert_eq!(u.host, Some(Host::Name("example.com")));
        let u = Uri::parse(b"sip:user;par=u%40example.net@example.com").unwrap();
        assert_eq!(u.user, Some("user;par=u%40example.net"));
    }

    #[test]
    fn escapes() {
        let u = Uri::parse(b"sip:%61lice@atlanta.com").unwrap();
        assert_eq!(u.user_unescaped().unwrap().as_ref(), b"alice");
        assert_eq!(
            Uri::parse(b"sip:null-%00-null@example.com")
                .unwrap()
                .user_unescaped()
                .unwrap()
                .as_ref(),
            b"null-\0-null"
        );
        assert_eq!(
            Uri::parse(b"sip:a%zz@example.com"),
            Err(UriError::BadEscape)
        );
        assert_eq!(Uri::parse(b"sip:a%4@example.com"), Err(UriError::BadEscape));
    }

    #[test]
    fn tel_and_other_schemes() {
        let u = Uri::parse(b"tel:+1-201-555-0123;phone-context=example.com").unwrap();
        assert_eq!(u.scheme, Scheme::Tel);
        assert_eq!(u.user, Some("+1-201-555-0123"));
        assert_eq!(
            Uri::parse(b"soap.beep://192.0.2.103:3002").unwrap().scheme,
            Scheme::Other
        );
        assert_eq!(
            Uri::parse(b"<sip:user@example.com>"),
            Err(UriError::NoScheme)
        );
        assert_eq!(
            Uri::parse(b"sip:user@example.com; lr"),
            Err(UriError::WhiteSpace)
        );
        assert_eq!(Uri::parse(b"tel:abc-xyz"), Err(UriError::BadTelNumber));
    }

    #[test]
    fn hosts_and_ports() {
        assert_eq!(
            parse_hostport("192.0.2.1:5060").unwrap(),
            (Host::V4("192.0.2.1".parse().unwrap()), Some(5060))
        );
        assert!(parse_hostport("192.0.2.300").is_err());
        assert!(parse_hostport("host:99999").is_err());
        assert!(parse_hostport("[::1").is_err());
        assert!(parse_hostport("bad_host").is_err());
        assert!(parse_hostport("example.com.").is_ok());
    }
}
