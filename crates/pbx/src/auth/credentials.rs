//! Extension credentials: random auth IDs and passwords, the rules for passwords an administrator types, and the
//! stored form (HA1 per algorithm, never the password).

use std::fmt;

use rand::Rng;
use rand::distributions::Alphanumeric;
use sip::digest::{self, Algorithm};

/// Default length of generated auth IDs and passwords.
pub const DEFAULT_CREDENTIAL_LEN: usize = 10;
/// Longest generated auth ID or password.
pub const MAX_GENERATED_LEN: usize = 50;
/// Shortest generated auth ID.
pub const MIN_AUTH_ID_LEN: usize = 8;
/// Shortest password, generated or typed.
pub const MIN_PASSWORD_LEN: usize = 10;
/// Longest password an administrator may type.
pub const MAX_MANUAL_PASSWORD_LEN: usize = 128;
/// Bound on the rejection-sampling loop; past it, [`avoiding`] builds a string that cannot match.
const MAX_DRAWS: usize = 64;

const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// What the digest verifier needs to know about a user: the HA1 per algorithm (`H(auth_id:realm:password)`,
/// lower-case hex) and whether the extension is disabled. `Debug` does not print the HA1s: they are
/// password-equivalent for their realm.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Credentials {
    pub ha1_md5: Option<String>,
    pub ha1_sha256: Option<String>,
    /// A disabled extension is refused like a wrong password (same answer to the client).
    pub disabled: bool,
}

impl Credentials {
    /// Both HA1s for `username` (the auth ID) in `realm`.
    pub fn from_password(username: &str, realm: &str, password: &str) -> Self {
        Credentials {
            ha1_md5: Some(digest::ha1(Algorithm::Md5, username, realm, password)),
            ha1_sha256: Some(digest::ha1(Algorithm::Sha256, username, realm, password)),
            disabled: false,
        }
    }

    /// The stored HA1 for `alg` (the base HA1 for a `-sess` variant).
    pub fn ha1(&self, alg: Algorithm) -> Option<&str> {
        match alg {
            Algorithm::Md5 | Algorithm::Md5Sess => self.ha1_md5.as_deref(),
            Algorithm::Sha256 | Algorithm::Sha256Sess => self.ha1_sha256.as_deref(),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |h: &Option<String>| if h.is_some() { "<set>" } else { "<none>" };
        f.debug_struct("Credentials")
            .field("ha1_md5", &shown(&self.ha1_md5))
            .field("ha1_sha256", &shown(&self.ha1_sha256))
            .field("disabled", &self.disabled)
            .finish()
    }
}

/// A generated credential could not be made as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("{what} length {len} is out of range: use {min} to {max} characters")]
    LengthOutOfRange {
        what: &'static str,
        len: usize,
        min: usize,
        max: usize,
    },
}

/// A password typed by an administrator was refused. Each message says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("the password has {len} characters: use at least {min}")]
    TooShort { len: usize, min: usize },
    #[error("the password has {len} characters: use at most {max}")]
    TooLong { len: usize, max: usize },
    #[error("the password contains the extension number {number}: choose one that does not")]
    ContainsNumber { number: String },
    #[error("the password contains the auth ID: choose one that does not")]
    ContainsAuthId,
    #[error(
        "the password contains a control character at position {position}: use printable characters only"
    )]
    ControlCharacter { position: usize },
}

/// `len` random ASCII letters and digits from the operating system's CSPRNG.
pub fn random_alnum(len: usize) -> String {
    rand::rngs::OsRng
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

fn check_len(what: &'static str, len: usize, min: usize) -> Result<(), CredentialError> {
    if (min..=MAX_GENERATED_LEN).contains(&len) {
        Ok(())
    } else {
        Err(CredentialError::LengthOutOfRange {
            what,
            len,
            min,
            max: MAX_GENERATED_LEN,
        })
    }
}

/// A random auth ID of `len` characters (8 to 50) that never equals, nor contains, the extension `number`: a
/// scanner that knows the extension numbers learns nothing about the auth IDs.
pub fn generate_auth_id(len: usize, number: &str) -> Result<String, CredentialError> {
    check_len("auth ID", len, MIN_AUTH_ID_LEN)?;
    Ok(draw(len, &[number]))
}

/// A random password of `len` characters (10 to 50) that passes [`check_manual_password`] for this extension.
pub fn generate_password(
    len: usize,
    number: &str,
    auth_id: &str,
) -> Result<String, CredentialError> {
    check_len("password", len, MIN_PASSWORD_LEN)?;
    Ok(draw(len, &[number, auth_id]))
}

/// Random alphanumerics containing none of `forbidden` (compared case-insensitively).
fn draw(len: usize, forbidden: &[&str]) -> String {
    let ok = |s: &str| {
        forbidden
            .iter()
            .all(|f| f.is_empty() || !contains_ignore_case(s, f))
    };
    for _ in 0..MAX_DRAWS {
        let s = random_alnum(len);
        if ok(&s) {
            return s;
        }
    }
    avoiding(len, forbidden)
}

/// Random characters from an alphabet without the first character of each forbidden string (either case):
/// the result cannot contain any of them. Only reached if rejection sampling keeps failing.
fn avoiding(len: usize, forbidden: &[&str]) -> String {
    let banned: Vec<u8> = forbidden
        .iter()
        .filter_map(|f| f.bytes().next())
        .map(|b| b.to_ascii_lowercase())
        .collect();
    let alphabet: Vec<u8> = ALPHANUMERIC
        .iter()
        .copied()
        .filter(|b| !banned.contains(&b.to_ascii_lowercase()))
        .collect();
    let mut rng = rand::rngs::OsRng;
    (0..len)
        .filter_map(|_| {
            alphabet
                .get(rng.gen_range(0..alphabet.len().max(1)))
                .copied()
        })
        .map(char::from)
        .collect()
}

fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    haystack
        .to_ascii_lowercase()
        .contains(&needle.to_ascii_lowercase())
}

/// Checks a password typed by an administrator: 10 to 128 characters, no control characters, and it must not
/// contain the extension number nor the auth ID (compared case-insensitively).
pub fn check_manual_password(pw: &str, number: &str, auth_id: &str) -> Result<(), PasswordError> {
    let len = pw.chars().count();
    if len < MIN_PASSWORD_LEN {
        return Err(PasswordError::TooShort {
            len,
            min: MIN_PASSWORD_LEN,
        });
    }
    if len > MAX_MANUAL_PASSWORD_LEN {
        return Err(PasswordError::TooLong {
            len,
            max: MAX_MANUAL_PASSWORD_LEN,
        });
    }
    if let Some(position) = pw.chars().position(char::is_control) {
        return Err(PasswordError::ControlCharacter {
            position: position + 1,
        });
    }
    if !number.is_empty() && contains_ignore_case(pw, number) {
        return Err(PasswordError::ContainsNumber {
            number: number.to_owned(),
        });
    }
    if !auth_id.is_empty() && contains_ignore_case(pw, auth_id) {
        return Err(PasswordError::ContainsAuthId);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_alnum_is_alnum_and_varies() {
        let a = random_alnum(50);
        assert_eq!(a.len(), 50);
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(a, random_alnum(50));
        assert_eq!(random_alnum(0), "");
    }

    #[test]
    fn auth_id_never_equals_or_contains_the_number() {
        for _ in 0..200 {
            let id = generate_auth_id(8, "1").unwrap();
            assert_eq!(id.len(), 8);
            assert!(!id.contains('1'));
        }
        let id = generate_auth_id(DEFAULT_CREDENTIAL_LEN, "100").unwrap();
        assert_ne!(id, "100");
        assert_eq!(
            generate_auth_id(7, "100"),
            Err(CredentialError::LengthOutOfRange {
                what: "auth ID",
                len: 7,
                min: 8,
                max: 50
            })
        );
        assert!(generate_auth_id(51, "100").is_err());
        assert_eq!(generate_auth_id(50, "").unwrap().len(), 50);
    }

    #[test]
    fn fallback_alphabet_avoids_the_forbidden_strings() {
        for _ in 0..100 {
            let s = avoiding(50, &["1", "a"]);
            assert_eq!(s.len(), 50);
            assert!(!s.contains('1') && !s.to_ascii_lowercase().contains('a'));
        }
    }

    #[test]
    fn generated_passwords_pass_the_manual_rules() {
        for len in [10, 23, 50] {
            let pw = generate_password(len, "7", "x").unwrap();
            assert_eq!(pw.len(), len);
            assert_eq!(check_manual_password(&pw, "7", "x"), Ok(()));
        }
        assert!(generate_password(9, "100", "abc").is_err());
    }

    #[test]
    fn manual_password_rules() {
        assert_eq!(
            check_manual_password("short", "100", "authid12"),
            Err(PasswordError::TooShort { len: 5, min: 10 })
        );
        assert_eq!(
            check_manual_password("ünïcødé-ok!", "100", "authid12"),
            Ok(())
        );
        assert_eq!(
            check_manual_password("mypassword100x", "100", "authid12"),
            Err(PasswordError::ContainsNumber {
                number: "100".into()
            })
        );
        assert_eq!(
            check_manual_password("xxAUTHID12xx", "100", "authid12"),
            Err(PasswordError::ContainsAuthId)
        );
        assert_eq!(
            check_manual_password("good\npassword", "100", "authid12"),
            Err(PasswordError::ControlCharacter { position: 5 })
        );
        assert!(matches!(
            check_manual_password(&"x".repeat(129), "100", "authid12"),
            Err(PasswordError::TooLong { .. })
        ));
        assert_eq!(
            check_manual_password("correct horse battery", "100", "authid12"),
            Ok(())
        );
        assert_eq!(
            PasswordError::ContainsNumber {
                number: "100".into()
            }
            .to_string(),
            "the password contains the extension number 100: choose one that does not"
        );
    }

    #[test]
    fn credentials_from_password() {
        // RFC 7616 §3.9.1 user.
        let c = Credentials::from_password("Mufasa", "http-auth@example.org", "Circle of Life");
        assert_eq!(
            c.ha1(Algorithm::Md5),
            Some(
                digest::ha1(
                    Algorithm::Md5,
                    "Mufasa",
                    "http-auth@example.org",
                    "Circle of Life"
                )
                .as_str()
            )
        );
        assert_eq!(c.ha1_md5.as_deref().map(str::len), Some(32));
        assert_eq!(c.ha1_sha256.as_deref().map(str::len), Some(64));
        assert_eq!(c.ha1(Algorithm::Sha256Sess), c.ha1_sha256.as_deref());
        assert!(!c.disabled);
        let shown = format!("{c:?}");
        assert!(
            !shown.contains(c.ha1_md5.as_deref().unwrap_or("-")),
            "{shown}"
        );
    }
}
