//! Content-Type values: `type/subtype *(;param)`.

use crate::error::ErrorKind;
use crate::text;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaType<'a> {
    pub kind: &'a str,
    pub subtype: &'a str,
    params: &'a [u8],
}

const BAD: ErrorKind = ErrorKind::BadHeader {
    header: "Content-Type",
    reason: "not a media type",
};

impl<'a> MediaType<'a> {
    pub fn parse(v: &'a [u8]) -> Result<MediaType<'a>, ErrorKind> {
        let v = text::trim(v);
        let slash = v.iter().position(|&b| b == b'/').ok_or(BAD)?;
        let kind = text::trim(&v[..slash]);
        let rest = &v[slash + 1..];
        let mut i = text::skip_lws(rest, 0);
        let st = i;
        while i < rest.len() && text::is_token_char(rest[i]) {
            i += 1;
        }
        let subtype = &rest[st..i];
        if !text::is_token(kind) || subtype.is_empty() {
            return Err(BAD);
        }
        let params = &rest[i..];
        for p in text::params(params) {
            p.map_err(|_| BAD)?;
        }
        Ok(MediaType {
            kind: std::str::from_utf8(kind).map_err(|_| BAD)?,
            subtype: std::str::from_utf8(subtype).map_err(|_| BAD)?,
            params,
        })
    }

    /// True for `type/subtype`, compared case-insensitively.
    pub fn is(&self, kind: &str, subtype: &str) -> bool {
        self.kind.eq_ignore_ascii_case(kind) && self.subtype.eq_ignore_ascii_case(subtype)
    }

    pub fn param(&self, name: &str) -> Option<Option<&'a [u8]>> {
        text::params(self.params)
            .filter_map(Result::ok)
            .find(|p| p.name.eq_ignore_ascii_case(name.as_bytes()))
            .map(|p| p.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_params() {
        let m = MediaType::parse(b"multipart/mixed;boundary=7a9cbec02ceef655").unwrap();
        assert!(m.is("Multipart", "MIXED"));
        assert_eq!(m.param("boundary"), Some(Some(&b"7a9cbec02ceef655"[..])));
        let m = MediaType::parse(b"application/sdp ; param = \"quoted;value\"").unwrap();
        assert!(m.is("application", "sdp"));
        assert!(MediaType::parse(b"garbage").is_err());
    }
}
