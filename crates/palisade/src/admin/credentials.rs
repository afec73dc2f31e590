//! Generated and manual credentials. Interim: mirrors the API of `pbx::auth::credentials` (random_alnum,
//! generate_auth_id, check_manual_password), which replaces this module when it lands.

use anyhow::bail;
use rand::Rng as _;
use rand::distributions::Alphanumeric;
use rand::rngs::OsRng;

/// Longest manual password accepted.
const MAX_PASSWORD_LEN: usize = 128;

/// `len` random ASCII letters and digits from the operating system's generator.
pub fn random_alnum(len: usize) -> String {
    OsRng
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// A random auth ID of `len` characters that is not the extension number.
pub fn generate_auth_id(len: usize, number: &str) -> String {
    loop {
        let id = random_alnum(len);
        if id != number {
            return id;
        }
    }
}

/// A manual password: at least `min_len` characters (printable ASCII), and containing neither the extension
/// number nor the auth ID (case-insensitively), which are the first things a guesser tries.
pub fn check_manual_password(
    password: &str,
    number: &str,
    auth_id: &str,
    min_len: usize,
) -> anyhow::Result<()> {
    let len = password.chars().count();
    if len < min_len || len > MAX_PASSWORD_LEN {
        bail!(
            "the password must be {min_len} to {MAX_PASSWORD_LEN} characters long, got {len} \
             (leave out --password to get a random one)"
        );
    }
    if !password.chars().all(|c| c.is_ascii_graphic()) {
        bail!("the password may only contain printable ASCII characters without spaces");
    }
    let lower = password.to_ascii_lowercase();
    if lower.contains(number) {
        bail!("the password must not contain the extension number {number}");
    }
    if lower.contains(&auth_id.to_ascii_lowercase()) {
        bail!("the password must not contain the auth ID");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_credentials() {
        let p = random_alnum(10);
        assert_eq!(p.len(), 10);
        assert!(p.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(random_alnum(50), random_alnum(50));
        assert_ne!(generate_auth_id(10, "100"), "100");
    }

    #[test]
    fn manual_passwords() {
        assert!(check_manual_password("Xq7!mP2#vL9z", "100", "authid1234", 10).is_ok());
        let too_short = check_manual_password("short", "100", "authid1234", 10)
            .unwrap_err()
            .to_string();
        assert!(too_short.contains("10 to 128"), "{too_short}");
        assert!(check_manual_password("abcd100efghij", "100", "authid1234", 10).is_err());
        assert!(check_manual_password("xxAUTHID1234yy", "100", "authid1234", 10).is_err());
        assert!(check_manual_password("has a space!", "100", "authid1234", 10).is_err());
    }
}
