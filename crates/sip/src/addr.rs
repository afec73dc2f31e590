//! name-addr / addr-spec values: From, To, Contact, Route, Record-Route, Refer-To.

use std::borrow::Cow;

use crate::text;
use crate::uri::{Uri, UriError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AddrError {
    #[error("header is missing")]
    Missing,
    #[error("malformed address: {0}")]
    Syntax(&'static str),
    #[error("malformed URI: {0}")]
    Uri(#[from] UriError),
}

/// `[display-name] <URI> *(;param)` or `URI *(;param)`, borrowed from the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// The display name as written (quoted or a run of tokens), if any.
    pub display_raw: Option<&'a [u8]>,
    pub uri: Uri<'a>,
    /// True when the URI was written inside `<>`.
    pub bracketed: bool,
    params: &'a [u8],
    /// The first `tag` parameter, found while the parameters were checked.
    tag: Option<Option<&'a [u8]>>,
}

impl<'a> NameAddr<'a> {
    pub fn parse(v: &'a [u8]) -> Result<NameAddr<'a>, AddrError> {
        let v = text::trim(v);
        let mut i = 0;
        let mut display_raw = None;
        if v.first() == Some(&b'"') {
            let end = text::quoted_string_end(v, 0)
                .ok_or(AddrError::Syntax("unterminated quoted display name"))?;
            display_raw = Some(&v[..end]);
            i = text::skip_lws(v, end);
            if v.get(i) != Some(&b'<') {
                return Err(AddrError::Syntax("display name not followed by <URI>"));
            }
        } else if let Some(lt) = v.iter().position(|&b| b == b'<') {
            // An unquoted display name is a run of tokens separated by LWS.
            let dn = text::trim(&v[..lt]);
            if !dn.is_empty() {
                if !dn
                    .split(|&b| text::is_lws(b))
                    .all(|w| w.is_empty() || text::is_token(w))
                {
                    return Err(AddrError::Syntax(
                        "display name has characters that must be quoted",
                    ));
                }
                display_raw = Some(dn);
            }
            i = lt;
        }
        if v.get(i) == Some(&b'<') {
            let close = v[i..]
                .iter()
                .position(|&b| b == b'>')
                .ok_or(AddrError::Syntax("missing >"))?
                + i;
            let uri = Uri::parse(&v[i + 1..close])?;
            let params = &v[close + 1..];
            let tag = check_params(params)?;
            return Ok(NameAddr {
                display_raw,
                uri,
                bracketed: true,
                params,
                tag,
            });
        }
        // addr-spec without brackets: parameters after the first ';' belong to the header, and the URI may not
        // contain ',', ';' or '?' (RFC 3261 §20).
        let end = v
            .iter()
            .position(|&b| b == b';' || text::is_lws(b))
            .unwrap_or(v.len());
        let spec = &v[..end];
        if spec.contains(&b'?') || spec.contains(&b',') {
            return Err(AddrError::Syntax(
                "URI with '?' or ',' must be enclosed in <>",
            ));
        }
        let uri = Uri::parse(spec)?;
        let params = &v[end..];
        let tag = check_params(params)?;
        Ok(NameAddr {
            display_raw: None,
            uri,
            bracketed: false,
            params,
            tag,
        })
    }

    /// A header parameter (after the URI): `Some(None)` for a flag, `None` when absent.
    pub fn param(&self, name: &str) -> Option<Option<&'a [u8]>> {
        text::params(self.params)
            .filter_map(Result::ok)
            .find(|p| p.name.eq_ignore_ascii_case(name.as_bytes()))
            .map(|p| p.value)
    }

    pub fn tag(&self) -> Option<&'a str> {
        self.tag.flatten().and_then(|t| std::str::from_utf8(t).ok())
    }

    /// The display name with quotes and escapes removed.
    pub fn display_name(&self) -> Option<Cow<'a, [u8]>> {
        self.display_raw.map(text::unquote)
    }

    pub fn params_raw(&self) -> &'a [u8] {
        self.params
    }
}

/// Checks the parameter list and returns the first `tag` parameter.
fn check_params(params: &[u8]) -> Result<Option<Option<&[u8]>>, AddrError> {
    let mut tag = None;
    for p in text::params(params) {
        let p = p.map_err(|_| AddrError::Syntax("malformed parameter"))?;
        if tag.is_none() && p.name.eq_ignore_ascii_case(b"tag") {
            tag = Some(p.value);
        }
    }
    Ok(tag)
}

/// A Contact element: `*` (unregister all) or an address with `expires` and `q` parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contact<'a> {
    Star,
    Addr(NameAddr<'a>),
}

impl<'a> Contact<'a> {
    pub fn parse(v: &'a [u8]) -> Result<Contact<'a>, AddrError> {
        if text::trim(v) == b"*" {
            return Ok(Contact::Star);
        }
        NameAddr::parse(v).map(Contact::Addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names() {
        let a = NameAddr::parse(
            br#""J Rosenberg \\\""       <sip:jdrosen@example.com>  ;  tag = 98asjd8"#,
        )
        .unwrap();
        assert_eq!(a.display_name().unwrap().as_ref(), br#"J Rosenberg \""#);
        assert_eq!(a.tag(), Some("98asjd8"));
        let a = NameAddr::parse(b"caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(a.display_raw, Some(&b"caller"[..]));
        assert!(NameAddr::parse(b"Bell, Alexander <sip:a.g.bell@bell-tel.com>;tag=43").is_err());
        assert!(NameAddr::parse(br#""Mr. J. User <sip:j.user@example.com>"#).is_err());
    }

    #[test]
    fn addr_spec_forms() {
        let a = NameAddr::parse(b"sip:user@example.com;tag=1").unwrap();
        assert_eq!(a.uri.user, Some("user"));
        assert_eq!(a.tag(), Some("1"));
        assert!(NameAddr::parse(b"sip:user@example.com?Route=%3Csip:sip.example.com%3E").is_err());
        assert!(NameAddr::parse(b"isbn:2983792873").is_ok());
        assert_eq!(Contact::parse(b" * ").unwrap(), Contact::Star);
    }
}
