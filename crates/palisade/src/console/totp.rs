//! Time-based one-time passwords (RFC 6238 over RFC 4226 HOTP, HMAC-SHA1, 6 digits, 30-second steps): the
//! second factor of console logins. Pure: the time is an argument.

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

/// Seconds per time step (RFC 6238's default, what authenticator apps use).
pub const STEP_SECONDS: u64 = 30;
/// Digits per code.
pub const DIGITS: u32 = 6;
/// Bytes of a generated secret (160 bits, RFC 4226's recommendation).
pub const SECRET_BYTES: usize = 20;

/// The RFC 4226 HOTP value of `counter` under `key`, as a number of `digits` digits.
pub fn hotp(key: &[u8], counter: u64, digits: u32) -> u32 {
    // HMAC accepts keys of any length; new_from_slice cannot fail for it.
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(key) else {
        return 0;
    };
    mac.update(&counter.to_be_bytes());
    let hash = mac.finalize().into_bytes();
    let offset = usize::from(hash[hash.len() - 1] & 0x0f);
    let code = u32::from_be_bytes([
        hash[offset] & 0x7f,
        hash[offset + 1],
        hash[offset + 2],
        hash[offset + 3],
    ]);
    code % 10u32.pow(digits)
}

/// The 6-digit code for `unix_seconds`, zero-padded.
pub fn code_at(key: &[u8], unix_seconds: u64) -> String {
    format!(
        "{:0width$}",
        hotp(key, unix_seconds / STEP_SECONDS, DIGITS),
        width = DIGITS as usize
    )
}

/// Whether `code` is valid at `unix_seconds`, allowing one step of clock drift either way. Compared in constant
/// time. Returns the matching time step, so a caller can refuse a step already used (replay).
pub fn verify(key: &[u8], code: &str, unix_seconds: u64) -> Option<u64> {
    let code = code.trim();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now_step = unix_seconds / STEP_SECONDS;
    let mut found = None;
    for step in [now_step.saturating_sub(1), now_step, now_step + 1] {
        let expected = format!(
            "{:0width$}",
            hotp(key, step, DIGITS),
            width = DIGITS as usize
        );
        if constant_time_eq(expected.as_bytes(), code.as_bytes()) {
            found = Some(step);
        }
    }
    found
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A new random secret, base32 (RFC 4648, no padding) as authenticator apps expect.
pub fn new_secret() -> String {
    let mut bytes = [0u8; SECRET_BYTES];
    rand::Rng::fill(&mut rand::rngs::OsRng, &mut bytes[..]);
    data_encoding::BASE32_NOPAD.encode(&bytes)
}

/// Decodes a base32 secret (case and spaces ignored).
pub fn decode_secret(secret: &str) -> Option<Vec<u8>> {
    let cleaned: String = secret
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '=')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    data_encoding::BASE32_NOPAD
        .decode(cleaned.as_bytes())
        .ok()
        .filter(|k| !k.is_empty())
}

/// The `otpauth://` URI authenticator apps read from a QR code.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &str) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    };
    format!(
        "otpauth://totp/{}:{}?secret={secret}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
        enc(issuer),
        enc(account),
        enc(issuer)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_KEY: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc4226_appendix_d_hotp_values() {
        let expected = [
            755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489,
        ];
        for (counter, want) in expected.iter().enumerate() {
            assert_eq!(hotp(RFC_KEY, counter as u64, 6), *want, "counter {counter}");
        }
    }

    #[test]
    fn rfc6238_appendix_b_sha1_values() {
        // The RFC's table gives 8 digits; the same truncation modulo 10^8.
        for (t, want) in [
            (59u64, 94287082u32),
            (1111111109, 7081804),
            (1111111111, 14050471),
            (1234567890, 89005924),
            (2000000000, 69279037),
            (20000000000, 65353130),
        ] {
            assert_eq!(hotp(RFC_KEY, t / STEP_SECONDS, 8), want, "T={t}");
        }
    }

    #[test]
    fn verify_accepts_one_step_of_drift_and_refuses_others() {
        let t = 1_234_567_890;
        let code = code_at(RFC_KEY, t);
        assert_eq!(verify(RFC_KEY, &code, t), Some(t / 30));
        assert!(verify(RFC_KEY, &code, t + 30).is_some());
        assert!(verify(RFC_KEY, &code, t - 30).is_some());
        assert_eq!(verify(RFC_KEY, &code, t + 90), None);
        assert_eq!(verify(RFC_KEY, "12345", t), None);
        assert_eq!(verify(RFC_KEY, "abcdef", t), None);
        assert_eq!(verify(RFC_KEY, "", t), None);
    }

    #[test]
    fn secrets_round_trip_through_base32() {
        let s = new_secret();
        assert_eq!(s.len(), 32);
        assert_eq!(decode_secret(&s).map(|k| k.len()), Some(SECRET_BYTES));
        assert_eq!(decode_secret(&s.to_lowercase()), decode_secret(&s));
        assert_eq!(decode_secret("not base32!"), None);
    }

    #[test]
    fn otpauth_uri_escapes_names() {
        let u = otpauth_uri("Palisade pbx", "ann@x", "ABC");
        assert!(
            u.starts_with("otpauth://totp/Palisade%20pbx:ann%40x?secret=ABC&issuer=Palisade%20pbx")
        );
    }
}
