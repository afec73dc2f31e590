//! HTTP Digest authentication as SIP uses it (RFC 3261 §22, RFC 7616, RFC 8760): the wire format and the
//! arithmetic, no policy.
//!
//! - [`DigestAuthorization::parse`] reads an `Authorization` / `Proxy-Authorization` header value (zero-copy: values
//!   borrow from the header unless they contain quoted-pair escapes).
//! - [`ha1`], [`session_ha1`] and [`response`] are the RFC 7616 §3.4.1–3.4.3 formulas, lower-case hex.
//! - [`Challenge`] formats a `WWW-Authenticate` / `Proxy-Authenticate` header value.
//!
//! What this module refuses, and why:
//! - `userhash=true` (RFC 7616 §3.4.4): the server would have to hash every user name of the realm to find the
//!   user. Palisade never offers it (it sends no `userhash` parameter), so a client must not use it.
//! - `username*` (RFC 7616 §3.4.4 / RFC 8187 extended notation): Palisade's auth IDs are ASCII alphanumerics.
//! - `qop` values other than `auth` (`auth-int` needs the body hash and no phone uses it).
//!
//! A response without `qop` (the RFC 2069 form) parses and [`response`] can compute it (`qop: None`), but
//! Palisade's verifier refuses it: without `qop` there is no `cnonce` and no `nc`, so no replay protection.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use md5::Md5;
use sha2::{Digest, Sha256};

use crate::text::{is_lws, is_token_char, quoted_string_end};

/// A digest algorithm (RFC 7616 §3.4 and RFC 8760). The `-sess` variants are distinct values: Palisade parses
/// them but never offers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Md5,
    Md5Sess,
    Sha256,
    Sha256Sess,
}

impl Algorithm {
    /// Parses an algorithm name, case-insensitively: `MD5`, `SHA-256`, `MD5-sess`, `SHA-256-sess`.
    pub fn parse(s: &str) -> Result<Self, DigestError> {
        const NAMES: [(&str, Algorithm); 4] = [
            ("MD5", Algorithm::Md5),
            ("MD5-sess", Algorithm::Md5Sess),
            ("SHA-256", Algorithm::Sha256),
            ("SHA-256-sess", Algorithm::Sha256Sess),
        ];
        NAMES
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(s))
            .map(|&(_, alg)| alg)
            .ok_or_else(|| DigestError::UnknownAlgorithm(excerpt(s)))
    }

    /// The canonical name, as written in a challenge.
    pub const fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
        }
    }

    /// True for the `-sess` variants, whose HA1 also covers the nonce and cnonce ([`session_ha1`]).
    pub const fn is_session(self) -> bool {
        matches!(self, Algorithm::Md5Sess | Algorithm::Sha256Sess)
    }

    /// Length of a hash of this algorithm in lower-case hex: 32 for MD5, 64 for SHA-256.
    pub const fn hex_len(self) -> usize {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => 32,
            Algorithm::Sha256 | Algorithm::Sha256Sess => 64,
        }
    }

    /// `H(p1 ":" p2 ":" ...)` in lower-case hex.
    fn hash(self, parts: &[&[u8]]) -> String {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => hash_hex::<Md5>(parts),
            Algorithm::Sha256 | Algorithm::Sha256Sess => hash_hex::<Sha256>(parts),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Algorithm::parse(s)
    }
}

/// The quality of protection. Only `auth` exists here: `auth-int` is refused when parsing (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Qop {
    Auth,
}

impl Qop {
    pub const fn as_str(self) -> &'static str {
        match self {
            Qop::Auth => "auth",
        }
    }
}

fn hash_hex<D: Digest>(parts: &[&[u8]]) -> String {
    let mut d = D::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            d.update(b":");
        }
        d.update(p);
    }
    to_lower_hex(&d.finalize())
}

fn to_lower_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    s
}

/// `HA1 = H(username ":" realm ":" password)` in lower-case hex, with `alg`'s hash function. This is what Palisade
/// stores instead of the password. For a `-sess` algorithm, combine it with [`session_ha1`] per request.
pub fn ha1(alg: Algorithm, username: &str, realm: &str, password: &str) -> String {
    alg.hash(&[username.as_bytes(), realm.as_bytes(), password.as_bytes()])
}

/// The `-sess` HA1 of RFC 7616 §3.4.2: `H(H(username ":" realm ":" password) ":" nonce ":" cnonce)`.
pub fn session_ha1(alg: Algorithm, ha1: &str, nonce: &str, cnonce: &str) -> String {
    alg.hash(&[ha1.as_bytes(), nonce.as_bytes(), cnonce.as_bytes()])
}

/// The request digest of RFC 7616 §3.4.1 with `HA2 = H(method ":" digest-uri)`:
/// - `qop: Some(Qop::Auth)`: `H(HA1 ":" nonce ":" nc ":" cnonce ":" "auth" ":" HA2)`;
/// - `qop: None` (RFC 2069 legacy form, `nc` and `cnonce` ignored): `H(HA1 ":" nonce ":" HA2)`.
///
/// `ha1` is the effective HA1 (already passed through [`session_ha1`] for a `-sess` algorithm); `nc` is the
/// nonce count exactly as the client sent it (8 hex digits).
#[allow(clippy::too_many_arguments)] // the RFC formula's inputs, in the RFC's order
pub fn response(
    alg: Algorithm,
    ha1: &str,
    nonce: &str,
    nc: &str,
    cnonce: &str,
    qop: Option<Qop>,
    method: &str,
    digest_uri: &str,
) -> String {
    let ha2 = alg.hash(&[method.as_bytes(), digest_uri.as_bytes()]);
    match qop {
        Some(q) => alg.hash(&[
            ha1.as_bytes(),
            nonce.as_bytes(),
            nc.as_bytes(),
            cnonce.as_bytes(),
            q.as_str().as_bytes(),
            ha2.as_bytes(),
        ]),
        None => alg.hash(&[ha1.as_bytes(), nonce.as_bytes(), ha2.as_bytes()]),
    }
}

/// Why an `Authorization` value could not be used. Messages name the parameter and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("empty authorization value")]
    Empty,
    /// The scheme is not `Digest` (RFC 4475 regaut01 sends `NoOneKnowsThisScheme`): answer with a fresh challenge.
    #[error("authorization scheme `{0}` is not supported: only Digest is")]
    UnsupportedScheme(String),
    #[error("malformed digest parameters at byte {at}: expected {expected}")]
    Syntax { at: usize, expected: &'static str },
    #[error("digest parameter `{0}` appears more than once")]
    DuplicateParam(&'static str),
    #[error("digest parameter `{0}` is missing")]
    MissingParam(&'static str),
    #[error("unknown digest algorithm `{0}`: expected MD5, SHA-256, MD5-sess or SHA-256-sess")]
    UnknownAlgorithm(String),
    #[error("qop `{0}` is not supported: only auth is")]
    UnsupportedQop(String),
    #[error("nc must be exactly 8 hexadecimal digits, got `{0}`")]
    BadNonceCount(String),
    #[error(
        "userhash=true is not supported: send the plain user name (the challenge did not offer userhash)"
    )]
    UserhashUnsupported,
    #[error("userhash must be true or false, got `{0}`")]
    BadUserhash(String),
    #[error("username* (RFC 8187 encoded user name) is not supported: send a quoted username")]
    EncodedUsernameUnsupported,
}

/// Client-controlled text echoed in an error, cut to a bounded length.
fn excerpt(s: &str) -> String {
    const MAX: usize = 64;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// The nonce count (`nc`): the raw 8 hex digits (hashed as sent) and their value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NonceCount<'a> {
    pub raw: &'a str,
    pub value: u32,
}

/// A parsed `Digest` credentials value (RFC 7616 §3.4). Values are unquoted; they borrow from the header value
/// unless they contained quoted-pair escapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestAuthorization<'a> {
    pub username: Cow<'a, str>,
    pub realm: Cow<'a, str>,
    pub nonce: Cow<'a, str>,
    /// The `uri` parameter (digest-uri), compared by the verifier with the Request-URI.
    pub uri: Cow<'a, str>,
    /// The client's request digest, as sent (normally lower-case hex).
    pub response: Cow<'a, str>,
    /// MD5 when the parameter is absent (RFC 7616 §3.4).
    pub algorithm: Algorithm,
    pub cnonce: Option<Cow<'a, str>>,
    pub opaque: Option<Cow<'a, str>>,
    pub qop: Option<Qop>,
    pub nc: Option<NonceCount<'a>>,
}

/// Raw (still quoted) values of the parameters we know, as found in the header.
#[derive(Default)]
struct RawParams<'a> {
    username: Option<&'a str>,
    realm: Option<&'a str>,
    nonce: Option<&'a str>,
    uri: Option<&'a str>,
    response: Option<&'a str>,
    algorithm: Option<&'a str>,
    cnonce: Option<&'a str>,
    opaque: Option<&'a str>,
    qop: Option<&'a str>,
    nc: Option<&'a str>,
    userhash: Option<&'a str>,
    username_ext: Option<&'a str>,
}

impl<'a> RawParams<'a> {
    fn slot(&mut self, name: &str) -> Option<(&'static str, &mut Option<&'a str>)> {
        let slots: [(&'static str, &mut Option<&'a str>); 12] = [
            ("username", &mut self.username),
            ("realm", &mut self.realm),
            ("nonce", &mut self.nonce),
            ("uri", &mut self.uri),
            ("response", &mut self.response),
            ("algorithm", &mut self.algorithm),
            ("cnonce", &mut self.cnonce),
            ("opaque", &mut self.opaque),
            ("qop", &mut self.qop),
            ("nc", &mut self.nc),
            ("userhash", &mut self.userhash),
            ("username*", &mut self.username_ext),
        ];
        slots
            .into_iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(name))
    }
}

impl<'a> DigestAuthorization<'a> {
    /// Parses an `Authorization` or `Proxy-Authorization` header value.
    ///
    /// Accepts what phones send in practice: any case for the scheme and parameter names, LWS (including folded
    /// lines) around `=` and `,`, empty list elements (`a=1,,b=2`), quoted or unquoted values for every parameter
    /// (some clients quote `qop`, `nc` or `algorithm`), quoted-pair escapes. Unknown parameters are ignored
    /// (RFC 7616 `auth-param`); a known parameter given twice is an error.
    pub fn parse(value: &'a str) -> Result<Self, DigestError> {
        let s = value.as_bytes();
        let start = skip_lws(s, 0);
        if start == s.len() {
            return Err(DigestError::Empty);
        }
        let mut i = start;
        while i < s.len() && is_token_char(s[i]) {
            i += 1;
        }
        if i == start {
            return Err(DigestError::Syntax {
                at: start,
                expected: "an authorization scheme",
            });
        }
        let scheme = &value[start..i];
        if !scheme.eq_ignore_ascii_case("Digest") {
            return Err(DigestError::UnsupportedScheme(excerpt(scheme)));
        }
        if i < s.len() && !is_lws(s[i]) {
            return Err(DigestError::Syntax {
                at: i,
                expected: "white space after the scheme",
            });
        }

        let mut raw = RawParams::default();
        loop {
            // Skip white space and empty list elements.
            while i < s.len() && (is_lws(s[i]) || s[i] == b',') {
                i += 1;
            }
            if i >= s.len() {
                break;
            }
            let name_start = i;
            while i < s.len() && is_token_char(s[i]) {
                i += 1;
            }
            if i == name_start {
                return Err(DigestError::Syntax {
                    at: i,
                    expected: "a parameter name",
                });
            }
            let name = &value[name_start..i];
            i = skip_lws(s, i);
            if i >= s.len() || s[i] != b'=' {
                return Err(DigestError::Syntax {
                    at: i,
                    expected: "`=` after the parameter name",
                });
            }
            i = skip_lws(s, i + 1);
            let value_start = i;
            if i < s.len() && s[i] == b'"' {
                i = quoted_string_end(s, i).ok_or(DigestError::Syntax {
                    at: value_start,
                    expected: "a closing quote",
                })?;
            } else {
                while i < s.len() && is_unquoted_value_char(s[i]) {
                    i += 1;
                }
                if i == value_start {
                    return Err(DigestError::Syntax {
                        at: i,
                        expected: "a parameter value",
                    });
                }
            }
            let raw_value = &value[value_start..i];
            i = skip_lws(s, i);
            if i < s.len() && s[i] != b',' {
                return Err(DigestError::Syntax {
                    at: i,
                    expected: "`,` between parameters",
                });
            }
            if let Some((known, slot)) = raw.slot(name) {
                if slot.is_some() {
                    return Err(DigestError::DuplicateParam(known));
                }
                *slot = Some(raw_value);
            }
        }
        Self::from_raw(raw)
    }

    fn from_raw(raw: RawParams<'a>) -> Result<Self, DigestError> {
        if let Some(userhash) = raw.userhash {
            let v = unquote(userhash);
            if v.eq_ignore_ascii_case("true") {
                return Err(DigestError::UserhashUnsupported);
            }
            if !v.eq_ignore_ascii_case("false") {
                return Err(DigestError::BadUserhash(excerpt(&v)));
            }
        }
        if raw.username_ext.is_some() {
            return Err(DigestError::EncodedUsernameUnsupported);
        }
        let required =
            |v: Option<&'a str>, name| v.map(unquote).ok_or(DigestError::MissingParam(name));
        let username = required(raw.username, "username")?;
        let realm = required(raw.realm, "realm")?;
        let nonce = required(raw.nonce, "nonce")?;
        let uri = required(raw.uri, "uri")?;
        let response = required(raw.response, "response")?;
        let algorithm = match raw.algorithm {
            Some(a) => Algorithm::parse(&unquote(a))?,
            None => Algorithm::Md5,
        };
        let qop = match raw.qop {
            Some(q) => {
                let q = unquote(q);
                if q.eq_ignore_ascii_case("auth") {
                    Some(Qop::Auth)
                } else {
                    return Err(DigestError::UnsupportedQop(excerpt(&q)));
                }
            }
            None => None,
        };
        let nc = raw.nc.map(parse_nc).transpose()?;
        let cnonce = raw.cnonce.map(unquote);
        if qop.is_some() {
            // RFC 7616 §3.4: with qop, cnonce and nc are mandatory.
            if cnonce.is_none() {
                return Err(DigestError::MissingParam("cnonce"));
            }
            if nc.is_none() {
                return Err(DigestError::MissingParam("nc"));
            }
        }
        Ok(DigestAuthorization {
            username,
            realm,
            nonce,
            uri,
            response,
            algorithm,
            cnonce,
            opaque: raw.opaque.map(unquote),
            qop,
            nc,
        })
    }

    /// The response a client knowing `ha1` (the stored, non-session HA1 for [`Self::algorithm`]) would have sent
    /// for `method`. Applies [`session_ha1`] for `-sess` algorithms.
    pub fn expected_response(&self, ha1: &str, method: &str) -> String {
        let cnonce = self.cnonce.as_deref().unwrap_or("");
        let nc = self.nc.map_or("", |nc| nc.raw);
        let sess;
        let ha1 = if self.algorithm.is_session() {
            sess = session_ha1(self.algorithm, ha1, &self.nonce, cnonce);
            sess.as_str()
        } else {
            ha1
        };
        response(
            self.algorithm,
            ha1,
            &self.nonce,
            nc,
            cnonce,
            self.qop,
            method,
            &self.uri,
        )
    }
}

fn skip_lws(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && is_lws(s[i]) {
        i += 1;
    }
    i
}

/// Characters of an unquoted value: visible ASCII except the list separator and quotes. Broader than `token`
/// so that an unquoted `uri=sip:alice@example.com` from a sloppy client still parses.
fn is_unquoted_value_char(b: u8) -> bool {
    b.is_ascii_graphic() && b != b',' && b != b'"'
}

/// Removes the quotes and quoted-pair escapes of a value the parser delimited; unquoted values are returned as is.
fn unquote(raw: &str) -> Cow<'_, str> {
    let Some(inner) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) else {
        return Cow::Borrowed(raw);
    };
    if !inner.contains('\\') {
        return Cow::Borrowed(inner);
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(escaped) = chars.next() {
                out.push(escaped);
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `nc`: exactly 8 hex digits (RFC 7616 `nc-value = 8LHEX`; upper case tolerated), quoted or not. A quoted value
/// with escapes cannot be 8 hex digits, so the raw digits always borrow from the header.
fn parse_nc(raw: &str) -> Result<NonceCount<'_>, DigestError> {
    let digits = raw
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .unwrap_or(raw);
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(DigestError::BadNonceCount(excerpt(raw)));
    }
    let value =
        u32::from_str_radix(digits, 16).map_err(|_| DigestError::BadNonceCount(excerpt(raw)))?;
    Ok(NonceCount { raw: digits, value })
}

/// A `WWW-Authenticate` / `Proxy-Authenticate` challenge (RFC 7616 §3.3), always with `qop="auth"`:
/// `Digest realm="…", nonce="…"[, opaque="…"], algorithm=MD5, qop="auth"[, stale=true]`.
///
/// `Display` writes the header value. Quoted values are escaped (`"` and `\`), and control characters (which
/// could end the header line) are dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Challenge<'a> {
    pub realm: &'a str,
    pub nonce: &'a str,
    pub opaque: Option<&'a str>,
    pub algorithm: Algorithm,
    /// The previous nonce was authentic but expired and the response was right: retry with the new nonce
    /// without asking the user again.
    pub stale: bool,
}

impl Challenge<'_> {
    /// The header value (same as `to_string()`).
    pub fn header_value(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Challenge<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Digest realm=")?;
        write_quoted(f, self.realm)?;
        f.write_str(", nonce=")?;
        write_quoted(f, self.nonce)?;
        if let Some(opaque) = self.opaque {
            f.write_str(", opaque=")?;
            write_quoted(f, opaque)?;
        }
        write!(f, ", algorithm={}, qop=\"auth\"", self.algorithm)?;
        if self.stale {
            f.write_str(", stale=true")?;
        }
        Ok(())
    }
}

fn write_quoted(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    use fmt::Write;
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                f.write_char('\\')?;
                f.write_char(c)?;
            }
            c if c.is_control() && c != '\t' => {}
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7616 §3.9.1.
    const USER: &str = "Mufasa";
    const PASSWORD: &str = "Circle of Life";
    const REALM: &str = "http-auth@example.org";
    const NONCE: &str = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
    const CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
    const URI: &str = "/dir/index.html";

    fn rfc7616_response(alg: Algorithm) -> String {
        let ha1 = ha1(alg, USER, REALM, PASSWORD);
        response(
            alg,
            &ha1,
            NONCE,
            "00000001",
            CNONCE,
            Some(Qop::Auth),
            "GET",
            URI,
        )
    }

    #[test]
    fn rfc7616_md5_vector() {
        assert_eq!(
            rfc7616_response(Algorithm::Md5),
            "8ca523f5e9506fed4657c9700eebdbec"
        );
    }

    #[test]
    fn rfc7616_sha256_vector() {
        assert_eq!(
            rfc7616_response(Algorithm::Sha256),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn rfc7616_authorization_headers_parse_and_verify() {
        // The two Authorization values of RFC 7616 §3.9.1, as printed there (with line folding).
        let md5 = "Digest username=\"Mufasa\",\r\n realm=\"http-auth@example.org\",\r\n \
                   uri=\"/dir/index.html\",\r\n algorithm=MD5,\r\n \
                   nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\",\r\n nc=00000001,\r\n \
                   cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\",\r\n qop=auth,\r\n \
                   response=\"8ca523f5e9506fed4657c9700eebdbec\",\r\n \
                   opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"";
        let sha = md5.replace("algorithm=MD5", "algorithm=SHA-256").replace(
            "8ca523f5e9506fed4657c9700eebdbec",
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
        );
        for (value, alg) in [(md5, Algorithm::Md5), (sha.as_str(), Algorithm::Sha256)] {
            let a = DigestAuthorization::parse(value).unwrap();
            assert_eq!(a.username, "Mufasa");
            assert_eq!(a.realm, REALM);
            assert_eq!(a.nonce, NONCE);
            assert_eq!(a.uri, URI);
            assert_eq!(a.algorithm, alg);
            assert_eq!(a.qop, Some(Qop::Auth));
            assert_eq!(
                a.nc,
                Some(NonceCount {
                    raw: "00000001",
                    value: 1
                })
            );
            assert_eq!(a.cnonce.as_deref(), Some(CNONCE));
            assert_eq!(
                a.opaque.as_deref(),
                Some("FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS")
            );
            assert!(matches!(a.username, Cow::Borrowed(_)), "zero-copy");
            let ha1 = ha1(alg, USER, REALM, PASSWORD);
            assert_eq!(a.expected_response(&ha1, "GET"), a.response);
        }
    }

    #[test]
    fn rfc2069_form_without_qop() {
        // RFC 2617 §3.5 example (password "Circle Of Life"), with qop and in the RFC 2069 form H(HA1:nonce:HA2).
        let ha1 = ha1(
            Algorithm::Md5,
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
        );
        let with_qop = response(
            Algorithm::Md5,
            &ha1,
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            "00000001",
            "0a4f113b",
            Some(Qop::Auth),
            "GET",
            "/dir/index.html",
        );
        assert_eq!(with_qop, "6629fae49393a05397450978507c4ef1");
        let r = response(
            Algorithm::Md5,
            &ha1,
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            "",
            "",
            None,
            "GET",
            "/dir/index.html",
        );
        assert_eq!(r, "670fd8c2df070c60b045671b8b24ff02");
        let a = DigestAuthorization::parse(
            "Digest username=\"Mufasa\", realm=\"testrealm@host.com\", \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"/dir/index.html\", \
             response=\"670fd8c2df070c60b045671b8b24ff02\"",
        )
        .unwrap();
        assert_eq!(a.qop, None);
        assert_eq!(a.nc, None);
        assert_eq!(a.expected_response(&ha1, "GET"), r);
    }

    #[test]
    fn session_variant_uses_session_ha1() {
        let base = ha1(Algorithm::Md5Sess, USER, REALM, PASSWORD);
        assert_eq!(base, ha1(Algorithm::Md5, USER, REALM, PASSWORD));
        let sess = session_ha1(Algorithm::Md5Sess, &base, NONCE, CNONCE);
        let header = format!(
            "Digest username=\"Mufasa\", realm=\"{REALM}\", nonce=\"{NONCE}\", uri=\"{URI}\", \
             algorithm=MD5-sess, qop=auth, nc=00000001, cnonce=\"{CNONCE}\", response=\"x\""
        );
        let a = DigestAuthorization::parse(&header).unwrap();
        assert_eq!(a.algorithm, Algorithm::Md5Sess);
        let expected = response(
            Algorithm::Md5Sess,
            &sess,
            NONCE,
            "00000001",
            CNONCE,
            Some(Qop::Auth),
            "GET",
            URI,
        );
        assert_eq!(a.expected_response(&base, "GET"), expected);
        assert_ne!(expected, rfc7616_response(Algorithm::Md5));
    }

    #[test]
    fn algorithm_names() {
        for (s, alg) in [
            ("MD5", Algorithm::Md5),
            ("md5", Algorithm::Md5),
            ("SHA-256", Algorithm::Sha256),
            ("sha-256", Algorithm::Sha256),
            ("MD5-SESS", Algorithm::Md5Sess),
            ("Sha-256-Sess", Algorithm::Sha256Sess),
        ] {
            assert_eq!(Algorithm::parse(s), Ok(alg));
            assert_eq!(Algorithm::parse(alg.as_str()), Ok(alg));
        }
        for bad in ["SHA-512-256", "SHA256", "MD5 ", "", "sha-1"] {
            assert!(matches!(
                Algorithm::parse(bad),
                Err(DigestError::UnknownAlgorithm(_))
            ));
        }
        assert_eq!("SHA-256".parse::<Algorithm>(), Ok(Algorithm::Sha256));
        assert_eq!(Algorithm::Md5.hex_len(), 32);
        assert_eq!(Algorithm::Sha256Sess.hex_len(), 64);
    }

    const MIN: &str =
        "username=\"alice\", realm=\"pbx\", nonce=\"n\", uri=\"sip:pbx\", response=\"r\"";

    #[test]
    fn odd_formatting() {
        // Lower-case scheme and names, no spaces, unquoted values, empty elements, folding around `=`.
        let a = DigestAuthorization::parse(
            "digest USERNAME=alice,Realm = \"pbx\" ,,nonce\r\n\t=\r\n n,uri=sip:pbx;transport=tcp,\
             response=r,ALGORITHM=\"sha-256\",qop=\"auth\",nc=\"0000000A\",cnonce=c,",
        )
        .unwrap();
        assert_eq!(a.username, "alice");
        assert_eq!(a.realm, "pbx");
        assert_eq!(a.nonce, "n");
        assert_eq!(a.uri, "sip:pbx;transport=tcp");
        assert_eq!(a.algorithm, Algorithm::Sha256);
        assert_eq!(a.qop, Some(Qop::Auth));
        assert_eq!(
            a.nc,
            Some(NonceCount {
                raw: "0000000A",
                value: 10
            })
        );
        assert_eq!(a.cnonce.as_deref(), Some("c"));
    }

    #[test]
    fn escapes_and_unknown_params() {
        let value = format!("Digest {MIN}, x-unknown=\"a, b\", other=token");
        let a = DigestAuthorization::parse(&value).unwrap();
        assert_eq!(a.username, "alice");
        assert_eq!(a.algorithm, Algorithm::Md5, "default algorithm");
        let a = DigestAuthorization::parse(
            r#"Digest username="al\"ice\\", realm="p,b x", nonce="n", uri="sip:pbx", response="r""#,
        )
        .unwrap();
        assert_eq!(a.username, "al\"ice\\");
        assert!(matches!(a.username, Cow::Owned(_)));
        assert_eq!(a.realm, "p,b x");
        let value = format!("Digest {MIN}, userhash=false");
        let a = DigestAuthorization::parse(&value).unwrap();
        assert_eq!(a.username, "alice");
        let a = DigestAuthorization::parse(
            r#"Digest username="Ünïcødé", realm="pbx", nonce="n", uri="u", response="r""#,
        )
        .unwrap();
        assert_eq!(a.username, "Ünïcødé");
    }

    #[test]
    fn scheme_errors() {
        assert_eq!(
            DigestAuthorization::parse("NoOneKnowsThisScheme opaque-data=here"),
            Err(DigestError::UnsupportedScheme(
                "NoOneKnowsThisScheme".into()
            ))
        );
        assert!(matches!(
            DigestAuthorization::parse("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
            Err(DigestError::UnsupportedScheme(_))
        ));
        assert_eq!(DigestAuthorization::parse(""), Err(DigestError::Empty));
        assert_eq!(
            DigestAuthorization::parse(" \r\n "),
            Err(DigestError::Empty)
        );
        assert!(matches!(
            DigestAuthorization::parse("Digestusername=\"a\""),
            Err(DigestError::UnsupportedScheme(_))
        ));
        assert!(matches!(
            DigestAuthorization::parse("Digest,username=a"),
            Err(DigestError::Syntax { at: 6, .. })
        ));
        assert_eq!(
            DigestAuthorization::parse("Digest"),
            Err(DigestError::MissingParam("username"))
        );
        let long = "X".repeat(10_000);
        match DigestAuthorization::parse(&long) {
            Err(DigestError::UnsupportedScheme(s)) => assert!(s.len() < 100),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn param_errors() {
        let cases: &[(&str, DigestError)] = &[
            (
                "Digest username=\"alice\", realm=\"pbx\", nonce=\"n\", uri=\"sip:pbx\"",
                DigestError::MissingParam("response"),
            ),
            (
                "Digest realm=\"pbx\", nonce=\"n\", uri=\"sip:pbx\", response=\"r\"",
                DigestError::MissingParam("username"),
            ),
            (
                "Digest username=\"alice\", realm=\"pbx\", nonce=\"n\", uri=\"sip:pbx\", response=\"r\", Username=bob",
                DigestError::DuplicateParam("username"),
            ),
            (
                "Digest username=\"alice\", realm=\"pbx\", nonce=\"n\", uri=\"sip:pbx\", response=\"r\", qop=auth, nc=00000001",
                DigestError::MissingParam("cnonce"),
            ),
            (
                "Digest username=\"alice\", realm=\"pbx\", nonce=\"n\", uri=\"sip:pbx\", response=\"r\", qop=auth, cnonce=x",
                DigestError::MissingParam("nc"),
            ),
            (
                "Digest username=\"alice\", realm=\"pbx\", nonce=\"n\", uri=\"sip:pbx\", response=\"r\", qop=auth-int, cnonce=x, nc=00000001",
                DigestError::UnsupportedQop("auth-int".into()),
            ),
            (
                "Digest username=\"alice\", realm=\"pbx\", nonce=\"n\", uri=\"sip:pbx\", response=\"r\", qop=auth, cnonce=x, nc=1",
                DigestError::BadNonceCount("1".into()),
            ),
            (
                "Digest username=\"alice\", realm=\"pbx\", nonce=\"n\", uri=\"sip:pbx\", response=\"r\", qop=auth, cnonce=x, nc=+0000001",
                DigestError::BadNonceCount("+0000001".into()),
            ),
            (
                "Digest username=\"alice\", realm=\"pbx\", nonce=\"n\", uri=\"sip:pbx\", response=\"r\", algorithm=SHA-512",
                DigestError::UnknownAlgorithm("SHA-512".into()),
            ),
            (
                "Digest username=\"alice\", realm=\"pbx\", nonce=\"n\", uri=\"sip:pbx\", response=\"r\", userhash=true",
                DigestError::UserhashUnsupported,
            ),
            (
                "Digest username=\"alice\", realm=\"pbx\", nonce=\"n\", uri=\"sip:pbx\", response=\"r\", userhash=maybe",
                DigestError::BadUserhash("maybe".into()),
            ),
            (
                "Digest username*=UTF-8''al%C3%AFce, realm=\"pbx\", nonce=\"n\", uri=\"sip:pbx\", response=\"r\"",
                DigestError::EncodedUsernameUnsupported,
            ),
        ];
        for (value, expected) in cases {
            assert_eq!(
                DigestAuthorization::parse(value).as_ref(),
                Err(expected),
                "{value}"
            );
        }
    }

    #[test]
    fn syntax_errors() {
        for bad in [
            "Digest username=\"alice",           // unclosed quote
            "Digest username",                   // no `=`
            "Digest username=",                  // no value
            "Digest username=\"a\" realm=\"b\"", // missing comma
            "Digest =\"a\"",                     // no name
            "Digest username=a b",               // two words
            "Digest username=\"a\"x",            // junk after a quoted string
            "Digest username=\u{e9}",            // non-ASCII unquoted value
        ] {
            assert!(
                matches!(
                    DigestAuthorization::parse(bad),
                    Err(DigestError::Syntax { .. })
                ),
                "{bad}: {:?}",
                DigestAuthorization::parse(bad)
            );
        }
    }

    #[test]
    fn error_messages_name_the_problem() {
        assert_eq!(
            DigestError::MissingParam("nonce").to_string(),
            "digest parameter `nonce` is missing"
        );
        assert_eq!(
            DigestError::UnsupportedScheme("Basic".into()).to_string(),
            "authorization scheme `Basic` is not supported: only Digest is"
        );
    }

    #[test]
    fn challenge_format() {
        let c = Challenge {
            realm: "pbx.example.com",
            nonce: "abc-_123",
            opaque: None,
            algorithm: Algorithm::Md5,
            stale: false,
        };
        assert_eq!(
            c.to_string(),
            "Digest realm=\"pbx.example.com\", nonce=\"abc-_123\", algorithm=MD5, qop=\"auth\""
        );
        let c = Challenge {
            realm: "we \"quote\"\r\nX-Injected: 1",
            nonce: "n",
            opaque: Some("o\\p"),
            algorithm: Algorithm::Sha256,
            stale: true,
        };
        assert_eq!(
            c.header_value(),
            "Digest realm=\"we \\\"quote\\\"X-Injected: 1\", nonce=\"n\", opaque=\"o\\\\p\", \
             algorithm=SHA-256, qop=\"auth\", stale=true"
        );
    }

    #[test]
    fn challenge_round_trips_through_a_client_computation() {
        // What a phone does with our challenge, end to end with the parser.
        let nonce = "bm9uY2U";
        let ha1 = ha1(Algorithm::Sha256, "x7Kp2", "pbx", "s3cretpassw0rd");
        let resp = response(
            Algorithm::Sha256,
            &ha1,
            nonce,
            "00000002",
            "cn",
            Some(Qop::Auth),
            "REGISTER",
            "sip:pbx",
        );
        let header = format!(
            "Digest username=\"x7Kp2\",realm=\"pbx\",nonce=\"{nonce}\",uri=\"sip:pbx\",\
             response=\"{resp}\",algorithm=SHA-256,cnonce=\"cn\",qop=auth,nc=00000002"
        );
        let a = DigestAuthorization::parse(&header).unwrap();
        assert_eq!(a.expected_response(&ha1, "REGISTER"), resp);
        assert_ne!(a.expected_response(&ha1, "INVITE"), resp);
    }
}
