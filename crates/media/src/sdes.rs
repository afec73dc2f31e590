//! SDES key exchange (RFC 4568): the `a=crypto` attribute.
//!
//! `a=crypto:TAG SUITE inline:BASE64(KEY‖SALT)[|LIFETIME][|MKI:LEN] [SESSION-PARAMS]`
//!
//! What Palisade accepts is deliberately narrow: one of [`Suite::ALL`], exactly one `inline:` key of the right
//! length, an optional lifetime (`2^31` or decimal — accepted and ignored: calls rekey on re-INVITE long before),
//! no MKI (a key index is only needed for several keys per stream, which SDES phones do not use), and of the
//! session parameters only `KDR=0` and the harmless `WSH=`/`FEC_ORDER=` hints. Anything that weakens the stream
//! (`UNENCRYPTED_SRTP`, `UNAUTHENTICATED_SRTP`, …) or that RFC 4568 §6.3.7 says to refuse when not understood
//! makes the attribute unacceptable. Keys Palisade offers come fresh from the operating system's CSPRNG.

use std::fmt;

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};

use crate::srtp::{MasterKey, Suite};

/// Why an `a=crypto` value is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdesError {
    #[error("malformed crypto attribute: {0}")]
    Syntax(&'static str),
    #[error("unsupported crypto suite {0}")]
    UnknownSuite(String),
    #[error("key method is not inline")]
    NotInline,
    #[error("key is not base64 of {expected} bytes")]
    BadKey { expected: usize },
    #[error("more than one key per attribute")]
    MultipleKeys,
    #[error("MKI is not supported")]
    Mki,
    #[error("session parameter {0} is not acceptable")]
    SessionParam(String),
}

/// One parsed (or generated) `a=crypto` attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptoAttribute {
    pub tag: u32,
    pub suite: Suite,
    pub key: MasterKey,
    /// The lifetime in packets, if the offer gave one (informational).
    pub lifetime: Option<u64>,
}

/// Base64 as RFC 4568 phones write it: standard alphabet, padding present or not.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

impl CryptoAttribute {
    /// Parse the attribute's value (`1 AES_CM_128_HMAC_SHA1_80 inline:...`); a leading `a=crypto:` or `crypto:` is
    /// skipped.
    pub fn parse(value: &str) -> Result<Self, SdesError> {
        let value = value.trim();
        let value = value
            .strip_prefix("a=crypto:")
            .or_else(|| value.strip_prefix("crypto:"))
            .unwrap_or(value);
        let mut fields = value.split_ascii_whitespace();
        let tag = fields.next().ok_or(SdesError::Syntax("no tag"))?;
        if tag.is_empty() || tag.len() > 9 || !tag.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SdesError::Syntax("tag is not 1-9 digits"));
        }
        let tag: u32 = tag.parse().map_err(|_| SdesError::Syntax("tag"))?;
        let suite_name = fields.next().ok_or(SdesError::Syntax("no suite"))?;
        let suite = Suite::from_name(suite_name)
            .ok_or_else(|| SdesError::UnknownSuite(suite_name.to_owned()))?;
        let key_params = fields.next().ok_or(SdesError::Syntax("no key"))?;
        if key_params.contains(';') {
            return Err(SdesError::MultipleKeys);
        }
        let inline = key_params
            .strip_prefix("inline:")
            .ok_or(SdesError::NotInline)?;
        let mut parts = inline.split('|');
        let encoded = parts.next().unwrap_or_default();
        let mut lifetime = None;
        for (i, part) in parts.enumerate() {
            if part.contains(':') {
                return Err(SdesError::Mki);
            }
            if i > 0 {
                return Err(SdesError::Syntax("too many key parameters"));
            }
            lifetime = Some(parse_lifetime(part)?);
        }
        let expected = crate::srtp::KEY_LEN + suite.salt_len();
        let mut raw = [0u8; 48];
        let n = LENIENT
            .decode_slice(encoded, &mut raw)
            .map_err(|_| SdesError::BadKey { expected })?;
        let key = MasterKey::from_concatenated(suite, &raw[..n]);
        raw.fill(0);
        let key = key.map_err(|_| SdesError::BadKey { expected })?;
        for param in fields {
            session_param(param)?;
        }
        Ok(CryptoAttribute {
            tag,
            suite,
            key,
            lifetime,
        })
    }

    /// A fresh key for `suite` (the offer or answer Palisade sends).
    pub fn generate(tag: u32, suite: Suite) -> Self {
        CryptoAttribute {
            tag,
            suite,
            key: MasterKey::generate(suite),
            lifetime: None,
        }
    }

    /// The answer to an accepted offer: same tag and suite, Palisade's own fresh key (RFC 4568 §7.1.2).
    pub fn answer(&self) -> Self {
        CryptoAttribute::generate(self.tag, self.suite)
    }
}

fn parse_lifetime(s: &str) -> Result<u64, SdesError> {
    let bad = SdesError::Syntax("lifetime");
    if let Some(exp) = s.strip_prefix("2^") {
        let exp: u32 = exp.parse().map_err(|_| bad.clone())?;
        if exp >= 64 {
            return Err(bad);
        }
        Ok(1 << exp)
    } else {
        s.parse().map_err(|_| bad)
    }
}

fn session_param(param: &str) -> Result<(), SdesError> {
    let (name, value) = param.split_once('=').unwrap_or((param, ""));
    let ok = match name {
        "KDR" => value == "0",
        "WSH" => value.parse::<u32>().is_ok(),
        "FEC_ORDER" => matches!(value, "FEC_SRTP" | "SRTP_FEC"),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(SdesError::SessionParam(param.to_owned()))
    }
}

/// The attribute's value, without `a=crypto:`.
impl fmt::Display for CryptoAttribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 40];
        let n = STANDARD
            .encode_slice(self.key.concatenated(), &mut buf)
            .map_err(|_| fmt::Error)?;
        let encoded = std::str::from_utf8(&buf[..n]).map_err(|_| fmt::Error)?;
        write!(f, "{} {} inline:{encoded}", self.tag, self.suite)?;
        if let Some(lifetime) = self.lifetime {
            if lifetime.is_power_of_two() {
                write!(f, "|2^{}", lifetime.trailing_zeros())?;
            } else {
                write!(f, "|{lifetime}")?;
            }
        }
        Ok(())
    }
}

/// Preference among suites: GCM (AEAD, full 128-bit tag), then the 80-bit HMAC tag, then the 32-bit one.
fn rank(suite: Suite) -> usize {
    Suite::ALL
        .iter()
        .position(|&s| s == suite)
        .unwrap_or(usize::MAX)
}

/// Whether a message body (an SDP, or a multipart body holding one) carries SDES keys: any `a=crypto:` line.
/// Such a body may only leave over TLS (RFC 4568 §8.3); the service checks every message it sends with this,
/// whatever path built it.
pub fn body_has_keys(body: &[u8]) -> bool {
    const ATTR: &[u8] = b"a=crypto:";
    body.split(|&b| b == b'\n').any(|line| {
        let line = line.trim_ascii_start();
        line.len() >= ATTR.len() && line[..ATTR.len()].eq_ignore_ascii_case(ATTR)
    })
}

/// The best acceptable attribute among an offer's `a=crypto` values (unparsable or refused ones are skipped;
/// among equals, the first offered).
pub fn choose<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<CryptoAttribute> {
    values
        .into_iter()
        .filter_map(|v| CryptoAttribute::parse(v).ok())
        .min_by_key(|c| rank(c.suite))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CM80: &str = "1 AES_CM_128_HMAC_SHA1_80 inline:MDEyMzQ1Njc4OWFiY2RlZkFCQ0RFRkdISUpLTE1O";

    #[test]
    fn parses_rfc4568_examples() {
        let c = CryptoAttribute::parse(&format!("a=crypto:{CM80}|2^20")).unwrap();
        assert_eq!(c.tag, 1);
        assert_eq!(c.suite, Suite::AesCm128HmacSha1_80);
        assert_eq!(c.lifetime, Some(1 << 20));
        assert_eq!(c.key.key(), b"0123456789abcdef");
        assert_eq!(c.key.salt(), b"ABCDEFGHIJKLMN");
        let c = CryptoAttribute::parse(CM80).unwrap();
        assert_eq!(c.lifetime, None);
        assert_eq!(c.to_string(), CM80, "round trip");
        let c = CryptoAttribute::parse(&format!("{CM80}|1048576 KDR=0 WSH=64")).unwrap();
        assert_eq!(c.lifetime, Some(1 << 20));
        assert_eq!(c.to_string(), format!("{CM80}|2^20"));
    }

    #[test]
    fn gcm_keys_with_and_without_padding() {
        let c = CryptoAttribute::generate(3, Suite::AeadAes128Gcm);
        let s = c.to_string();
        assert!(s.starts_with("3 AEAD_AES_128_GCM inline:"), "{s}");
        assert!(s.ends_with('='), "28 bytes pad to 40 characters: {s}");
        assert_eq!(CryptoAttribute::parse(&s).unwrap(), c);
        let unpadded = s.trim_end_matches('=');
        assert_eq!(CryptoAttribute::parse(unpadded).unwrap(), c);
    }

    #[test]
    fn refuses_what_it_cannot_honour() {
        let key = "inline:MDEyMzQ1Njc4OWFiY2RlZkFCQ0RFRkdISUpLTE1O";
        let cases = [
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 {key}|2^20|1:32"),
                SdesError::Mki,
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 {key}|1:4"),
                SdesError::Mki,
            ),
            (
                format!("1 AES_256_CM_HMAC_SHA1_80 {key}"),
                SdesError::UnknownSuite("AES_256_CM_HMAC_SHA1_80".into()),
            ),
            (
                format!("1 F8_128_HMAC_SHA1_80 {key}"),
                SdesError::UnknownSuite("F8_128_HMAC_SHA1_80".into()),
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 {key};{key}"),
                SdesError::MultipleKeys,
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 {key} UNENCRYPTED_SRTP"),
                SdesError::SessionParam("UNENCRYPTED_SRTP".into()),
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 {key} UNAUTHENTICATED_SRTP"),
                SdesError::SessionParam("UNAUTHENTICATED_SRTP".into()),
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 {key} KDR=24"),
                SdesError::SessionParam("KDR=24".into()),
            ),
            (
                format!("1 AEAD_AES_128_GCM {key}"),
                SdesError::BadKey { expected: 28 },
            ),
            (
                "1 AES_CM_128_HMAC_SHA1_80 inline:!!!!".into(),
                SdesError::BadKey { expected: 30 },
            ),
            (
                "1 AES_CM_128_HMAC_SHA1_80 uri:https://example.org/key".into(),
                SdesError::NotInline,
            ),
            (
                format!("x AES_CM_128_HMAC_SHA1_80 {key}"),
                SdesError::Syntax("tag is not 1-9 digits"),
            ),
            (
                "1 AES_CM_128_HMAC_SHA1_80".into(),
                SdesError::Syntax("no key"),
            ),
            (String::new(), SdesError::Syntax("no tag")),
        ];
        for (value, want) in cases {
            assert_eq!(CryptoAttribute::parse(&value), Err(want), "{value}");
        }
    }

    #[test]
    fn chooses_the_strongest_common_suite() {
        let cm32 = CryptoAttribute::generate(1, Suite::AesCm128HmacSha1_32).to_string();
        let cm80 = CryptoAttribute::generate(2, Suite::AesCm128HmacSha1_80).to_string();
        let gcm = CryptoAttribute::generate(3, Suite::AeadAes128Gcm).to_string();
        let mki = format!("{cm80}|2^31|1:4").replacen("2 ", "4 ", 1);
        let bad = "5 AES_256_CM_HMAC_SHA1_80 inline:AAAA";
        let pick = |v: &[&str]| choose(v.iter().copied()).map(|c| (c.tag, c.suite));
        assert_eq!(
            pick(&[&cm32, &cm80, &gcm, bad]),
            Some((3, Suite::AeadAes128Gcm))
        );
        assert_eq!(pick(&[&cm32, &cm80]), Some((2, Suite::AesCm128HmacSha1_80)));
        assert_eq!(pick(&[&mki, &cm32]), Some((1, Suite::AesCm128HmacSha1_32)));
        assert_eq!(pick(&[&mki, bad]), None);
        assert_eq!(pick(&[]), None);
    }

    #[test]
    fn answers_and_offers_carry_fresh_keys() {
        let offer = CryptoAttribute::parse(CM80).unwrap();
        let a = offer.answer();
        let b = offer.answer();
        assert_eq!((a.tag, a.suite), (1, Suite::AesCm128HmacSha1_80));
        assert_ne!(a.key, offer.key);
        assert_ne!(a.key, b.key);
        assert_eq!(CryptoAttribute::parse(&a.to_string()).unwrap(), a);
    }

    #[test]
    fn keys_are_found_in_any_body() {
        assert!(body_has_keys(
            b"v=0\r\nm=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x\r\n"
        ));
        assert!(body_has_keys(
            b"--b\r\nContent-Type: application/sdp\r\n\r\nA=CRYPTO:1 x\r\n--b--"
        ));
        assert!(!body_has_keys(
            b"v=0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
        ));
        assert!(!body_has_keys(b""));
    }
}
