//! CSeq: a 32-bit sequence number and the method.

use crate::method::Method;
use crate::text;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CSeqError {
    #[error("no CSeq header")]
    Missing,
    #[error("CSeq number is not a number below 2^31")]
    BadNumber,
    #[error("CSeq method is not a token")]
    BadMethod,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CSeq<'a> {
    pub seq: u32,
    pub method: Method,
    pub method_text: &'a str,
}

impl<'a> CSeq<'a> {
    pub fn parse(v: &'a [u8]) -> Result<CSeq<'a>, CSeqError> {
        let v = text::trim(v);
        let split = v
            .iter()
            .position(|&b| text::is_lws(b))
            .ok_or(CSeqError::BadMethod)?;
        let seq = text::parse_u32(&v[..split]).ok_or(CSeqError::BadNumber)?;
        // RFC 3261 §8.1.1.5: the sequence number MUST be less than 2^31.
        if seq >= 1 << 31 {
            return Err(CSeqError::BadNumber);
        }
        let m = text::trim(&v[split..]);
        if !text::is_token(m) {
            return Err(CSeqError::BadMethod);
        }
        let method_text = std::str::from_utf8(m).map_err(|_| CSeqError::BadMethod)?;
        Ok(CSeq {
            seq,
            method: Method::from_bytes(m),
            method_text,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folded_and_leading_zeros() {
        let c = CSeq::parse(b"0009\r\n  INVITE").unwrap();
        assert_eq!((c.seq, c.method), (9, Method::Invite));
        assert_eq!(
            CSeq::parse(b"36893488147419103232 INVITE"),
            Err(CSeqError::BadNumber)
        );
        assert_eq!(CSeq::parse(b"2147483648 INVITE"), Err(CSeqError::BadNumber));
        assert_eq!(CSeq::parse(b"1"), Err(CSeqError::BadMethod));
    }
}
