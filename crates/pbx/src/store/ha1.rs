//! Interim HA1 computation for the admin commands, until `auth::credentials::Credentials::from_password`
//! lands; then this module goes and its callers use that.

use md5::{Digest as _, Md5};
use sha2::Sha256;

/// (MD5 HA1, SHA-256 HA1) of `username ":" realm ":" password` (RFC 7616 §3.4.2), lower-case hex.
pub fn ha1_pair(username: &str, realm: &str, password: &str) -> (String, String) {
    let input = format!("{username}:{realm}:{password}");
    (
        hex(&Md5::digest(input.as_bytes())),
        hex(&Sha256::digest(input.as_bytes())),
    )
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc_2617_and_7616_examples() {
        // RFC 2617 §3.5: Mufasa / testrealm@host.com / Circle Of Life.
        let (md5, _) = super::ha1_pair("Mufasa", "testrealm@host.com", "Circle Of Life");
        assert_eq!(md5, "939e7578ed9e3c518a452acee763bce9");
        // RFC 7616 §3.9.1 credentials (values checked with Python hashlib).
        let (md5, sha) = super::ha1_pair("Mufasa", "http-auth@example.org", "Circle of Life");
        assert_eq!(md5, "3d78807defe7de2157e2b0b6573a855f");
        assert_eq!(
            sha,
            "7987c64c30e25f1b74be53f966b49b90f2808aa92faf9a00262392d7b4794232"
        );
    }
}
