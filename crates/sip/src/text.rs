//! Byte-level scanning helpers shared by the header parsers.
//!
//! Header values are kept exactly as received, so they may still contain line folding (CRLF followed by
//! whitespace). Every helper here therefore treats SP, HTAB, CR and LF alike as linear white space (LWS):
//! the message parser has already established where each header ends.

/// RFC 3261 `token` characters: alphanumerics and `-.!%*_+`'~`.
#[inline]
pub fn is_token_char(b: u8) -> bool {
    TOKEN[b as usize]
}

const TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            );
        i += 1;
    }
    t
};

/// RFC 3261 `word` characters: token characters plus a few separators (used by Call-ID).
#[inline]
pub fn is_word_char(b: u8) -> bool {
    is_token_char(b)
        || matches!(
            b,
            b'(' | b')'
                | b'<'
                | b'>'
                | b':'
                | b'\\'
                | b'"'
                | b'/'
                | b'['
                | b']'
                | b'?'
                | b'{'
                | b'}'
        )
}

#[inline]
pub fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

pub fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_token_char(b))
}

/// Strips leading and trailing LWS (including folded line breaks).
pub fn trim(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if is_lws(*first) {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if is_lws(*last) {
            s = rest;
        } else {
            break;
        }
    }
    s
}

pub fn skip_lws(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && is_lws(s[i]) {
        i += 1;
    }
    i
}

/// Given `s[start] == b'"'`, returns the index just past the closing quote, honouring quoted-pairs.
pub fn quoted_string_end(s: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while i < s.len() {
        match s[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// Splits a header value at top-level commas, ignoring commas inside quoted strings and `<...>`.
/// Elements are trimmed; empty elements are kept so callers can reject them where the grammar forbids them.
pub fn split_commas(s: &[u8]) -> CommaSplit<'_> {
    CommaSplit {
        s,
        pos: 0,
        done: false,
    }
}

pub struct CommaSplit<'a> {
    s: &'a [u8],
    pos: usize,
    done: bool,
}

impl<'a> Iterator for CommaSplit<'a> {
    type Item = Result<&'a [u8], UnbalancedQuote>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let s = self.s;
        let start = self.pos;
        let mut i = start;
        let mut in_angle = false;
        while i < s.len() {
            // Jump to the next byte that can change the state: outside <> a quote, '<' or ','; inside, a quote
            // or '>'.
            let skip = if in_angle {
                memchr::memchr2(b'"', b'>', &s[i..])
            } else {
                memchr::memchr3(b'"', b'<', b',', &s[i..])
            };
            match skip {
                Some(n) => i += n,
                None => break,
            }
            match s[i] {
                b'"' => match quoted_string_end(s, i) {
                    Some(end) => {
                        i = end;
                        continue;
                    }
                    None => {
                        self.done = true;
                        return Some(Err(UnbalancedQuote));
                    }
                },
                b'<' => in_angle = true,
                b'>' => in_angle = false,
                b',' if !in_angle => {
                    self.pos = i + 1;
                    return Some(Ok(trim(&s[start..i])));
                }
                _ => {}
            }
            i += 1;
        }
        self.done = true;
        Some(Ok(trim(&s[start..])))
    }
}

/// A quoted string was not closed before the end of its header value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnbalancedQuote;

/// Case-insensitive ASCII comparison.
#[inline]
pub fn eq_ic(a: &[u8], b: &[u8]) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// Parses an unsigned decimal that must fit in 32 bits; leading zeros are allowed (`0068`).
pub fn parse_u32(s: &[u8]) -> Option<u32> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let first_nonzero = s.iter().position(|&b| b != b'0').unwrap_or(s.len());
    let digits = &s[first_nonzero..];
    if digits.len() > 10 {
        return None;
    }
    let v = digits
        .iter()
        .fold(0u64, |v, &b| v * 10 + u64::from(b - b'0'));
    u32::try_from(v).ok()
}

/// Parses `name[=value]` parameters separated by `;`, as in Via, Contact and Content-Type.
/// `s` starts just after the value the parameters belong to (it may begin with LWS and `;`).
pub fn params(s: &[u8]) -> Params<'_> {
    Params { s, pos: 0 }
}

#[derive(Clone)]
pub struct Params<'a> {
    s: &'a [u8],
    pos: usize,
}

/// One `;name=value` parameter. `value` keeps its quotes if it was a quoted string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param<'a> {
    pub name: &'a [u8],
    pub value: Option<&'a [u8]>,
}

/// A parameter list did not follow `*( SEMI generic-param )`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadParam;

impl<'a> Iterator for Params<'a> {
    type Item = Result<Param<'a>, BadParam>;

    fn next(&mut self) -> Option<Self::Item> {
        let s = self.s;
        let mut i = skip_lws(s, self.pos);
        if i >= s.len() {
            return None;
        }
        if s[i] != b';' {
            self.pos = s.len();
            return Some(Err(BadParam));
        }
        i = skip_lws(s, i + 1);
        let name_start = i;
        while i < s.len() && is_token_char(s[i]) {
            i += 1;
        }
        let name = &s[name_start..i];
        if name.is_empty() {
            self.pos = s.len();
            return Some(Err(BadParam));
        }
        let mut j = skip_lws(s, i);
        let mut value = None;
        if j < s.len() && s[j] == b'=' {
            j = skip_lws(s, j + 1);
            let v_start = j;
            if j < s.len() && s[j] == b'"' {
                match quoted_string_end(s, j) {
                    Some(end) => j = end,
                    None => {
                        self.pos = s.len();
                        return Some(Err(BadParam));
                    }
                }
            } else if j < s.len() && s[j] == b'[' {
                // IPv6 reference, e.g. received=[2001:db8::1]
                match s[j..].iter().position(|&b| b == b']') {
                    Some(p) => j += p + 1,
                    None => {
                        self.pos = s.len();
                        return Some(Err(BadParam));
                    }
                }
            } else {
                while j < s.len() && (is_token_char(s[j]) || s[j] == b':') {
                    j += 1;
                }
            }
            if j == v_start {
                self.pos = s.len();
                return Some(Err(BadParam));
            }
            value = Some(&s[v_start..j]);
        } else {
            j = i;
        }
        self.pos = j;
        Some(Ok(Param { name, value }))
    }
}

/// Removes the quotes and quoted-pair escapes of a quoted string; returns the input if it is not quoted.
pub fn unquote(s: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if s.len() >= 2 && s[0] == b'"' && s[s.len() - 1] == b'"' {
        let inner = &s[1..s.len() - 1];
        if !inner.contains(&b'\\') {
            return std::borrow::Cow::Borrowed(inner);
        }
        let mut out = Vec::with_capacity(inner.len());
        let mut i = 0;
        while i < inner.len() {
            if inner[i] == b'\\' && i + 1 < inner.len() {
                out.push(inner[i + 1]);
                i += 2;
            } else {
                out.push(inner[i]);
                i += 1;
            }
        }
        std::borrow::Cow::Owned(out)
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commas_respect_quotes_and_angles() {
        let v = br#""a, b" <sip:x@y;p=1,2>, <sip:z>"#;
        let parts: Vec<_> = split_commas(v).map(Result::unwrap).collect();
        assert_eq!(parts, vec![&br#""a, b" <sip:x@y;p=1,2>"#[..], b"<sip:z>"]);
    }

    #[test]
    fn unbalanced_quote_is_reported() {
        assert!(split_commas(br#""abc, def"#).any(|p| p.is_err()));
    }

    #[test]
    fn params_with_folding_and_quotes() {
        let v = b" ;\r\n  tag = 98asjd8 ; x=\"q;v\" ;lr";
        let p: Vec<_> = params(v).map(Result::unwrap).collect();
        assert_eq!(
            p[0],
            Param {
                name: b"tag",
                value: Some(b"98asjd8")
            }
        );
        assert_eq!(
            p[1],
            Param {
                name: b"x",
                value: Some(b"\"q;v\"")
            }
        );
        assert_eq!(
            p[2],
            Param {
                name: b"lr",
                value: None
            }
        );
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u32(b"0068"), Some(68));
        assert_eq!(parse_u32(b"4294967295"), Some(u32::MAX));
        assert_eq!(parse_u32(b"4294967296"), None);
        assert_eq!(parse_u32(b"000000000001"), Some(1));
        assert_eq!(parse_u32(b"-1"), None);
        assert_eq!(parse_u32(b""), None);
    }
}
