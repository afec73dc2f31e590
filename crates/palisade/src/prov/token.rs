//! Provisioning URL tokens: 160 random bits, lowercase base32 (safe in any phone's URL field), stored as SHA-256.

/// A new token: 32 characters of lowercase base32 (160 bits from the OS's generator).
pub fn generate_token() -> String {
    let mut bytes = [0u8; 20];
    rand::Rng::fill(&mut rand::rngs::OsRng, &mut bytes[..]);
    data_encoding::BASE32_NOPAD
        .encode(&bytes)
        .to_ascii_lowercase()
}

/// Could this be a token at all? Anything else is refused before the database is asked.
pub fn plausible(token: &str) -> bool {
    token.len() == 32
        && token
            .bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
}

/// The hash a token is stored and looked up under.
pub fn token_hash(token: &str) -> String {
    crate::admin::accounts::token_hash(token)
}

/// The phone's own web-admin password: 16 letters and digits (about 93 bits), typeable on a phone keypad.
pub fn generate_admin_password() -> String {
    crate::admin::accounts::generate_password(16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_recognisable() {
        let a = generate_token();
        let b = generate_token();
        assert_ne!(a, b);
        assert!(plausible(&a), "{a}");
        assert!(!plausible("../../etc/passwd"));
        assert!(!plausible(&a.to_ascii_uppercase()));
        assert_eq!(token_hash(&a).len(), 64);
    }
}
