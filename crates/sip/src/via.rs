//! The Via header: `SIP/2.0/UDP host:port;branch=…;received=…;rport`.

use crate::text;
use crate::uri::{Host, parse_hostport};

/// RFC 3261 §8.1.1.7: branches that start with this were made by an RFC 3261 element and are unique.
pub const MAGIC_COOKIE: &str = "z9hG4bK";

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ViaError {
    #[error("no Via header")]
    Missing,
    #[error("malformed Via: {0}")]
    Syntax(&'static str),
}

/// One Via element, borrowed from the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Via<'a> {
    /// Transport as written (`UDP`, `TCP`, `TLS`, `WS`, `WSS`, or an unknown token).
    pub transport: &'a str,
    pub host: Host<'a>,
    pub port: Option<u16>,
    /// Text of the sent-by (host and port) as written, for transaction matching.
    pub sent_by: &'a str,
    /// The parameters, from the first `;` on (may contain folding white space).
    params: &'a [u8],
    branch: Option<&'a [u8]>,
}

impl<'a> Via<'a> {
    pub fn parse(v: &'a [u8]) -> Result<Via<'a>, ViaError> {
        let mut i = text::skip_lws(v, 0);
        // sent-protocol = protocol-name SLASH protocol-version SLASH transport, with LWS allowed around slashes
        let mut parts: [&[u8]; 3] = [b""; 3];
        for (n, part) in parts.iter_mut().enumerate() {
            let start = i;
            while i < v.len() && text::is_token_char(v[i]) {
                i += 1;
            }
            *part = &v[start..i];
            if part.is_empty() {
                return Err(ViaError::Syntax("bad sent-protocol"));
            }
            i = text::skip_lws(v, i);
            if n < 2 {
                if v.get(i) != Some(&b'/') {
                    return Err(ViaError::Syntax("bad sent-protocol"));
                }
                i = text::skip_lws(v, i + 1);
            }
        }
        if !parts[0].eq_ignore_ascii_case(b"SIP") || parts[1] != b"2.0" {
            return Err(ViaError::Syntax("protocol is not SIP/2.0"));
        }
        let transport =
            std::str::from_utf8(parts[2]).map_err(|_| ViaError::Syntax("bad transport"))?;
        // sent-by runs until LWS, ';' or the end
        let start = i;
        while i < v.len() && !text::is_lws(v[i]) && v[i] != b';' {
            i += 1;
        }
        let sent_by =
            std::str::from_utf8(&v[start..i]).map_err(|_| ViaError::Syntax("bad sent-by"))?;
        let (host, port) = parse_hostport(sent_by).map_err(|_| ViaError::Syntax("bad sent-by"))?;
        let params = &v[i..];
        let mut branch = None;
        for p in text::params(params) {
            let p = p.map_err(|_| ViaError::Syntax("bad parameter"))?;
            if p.name.eq_ignore_ascii_case(b"branch") {
                match p.value {
                    Some(b) if text::is_token(b) => {
                        if branch.is_none() {
                            branch = Some(b);
                        }
                    }
                    _ => return Err(ViaError::Syntax("bad branch")),
                }
            }
        }
        Ok(Via {
            transport,
            host,
            port,
            sent_by,
            params,
            branch,
        })
    }

    /// A parameter's value: `Some(None)` for a flag like `rport`, `None` when absent.
    pub fn param(&self, name: &str) -> Option<Option<&'a [u8]>> {
        text::params(self.params)
            .filter_map(Result::ok)
            .find(|p| p.name.eq_ignore_ascii_case(name.as_bytes()))
            .map(|p| p.value)
    }

    pub fn branch(&self) -> Option<&'a str> {
        // Validated as a token (ASCII) by `parse`.
        self.branch.and_then(|b| std::str::from_utf8(b).ok())
    }

    /// True when the branch carries the RFC 3261 magic cookie (transaction matching by branch is valid).
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch()
            .is_some_and(|b| b.len() > MAGIC_COOKIE.len() && b.starts_with(MAGIC_COOKIE))
    }

    /// `rport` present (RFC 3581): `Some(None)` when requested without value.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.param("rport")
            .map(|v| v.and_then(|v| std::str::from_utf8(v).ok()?.parse().ok()))
    }

    pub fn received(&self) -> Option<&'a str> {
        self.param("received")
            .flatten()
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    pub fn params_raw(&self) -> &'a [u8] {
        self.params
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folded_via() {
        let v = Via::parse(b"SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw").unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.sent_by, "192.0.2.2");
        assert_eq!(v.branch(), Some("390skdjuw"));
        assert!(!v.has_rfc3261_branch());
    }

    #[test]
    fn rport_and_ipv6() {
        let v =
            Via::parse(b"SIP/2.0/TCP [2001:db8::9:1]:5070;branch=z9hG4bKas3-111;rport").unwrap();
        assert_eq!(v.port, Some(5070));
        assert_eq!(v.rport(), Some(None));
        assert!(v.has_rfc3261_branch());
        assert!(Via::parse(b"SIP/2.0/UDP host;branch=").is_err());
        assert!(Via::parse(b"SIP/3.0/UDP host").is_err());
    }
}
