//! Voicemail PINs (hardening step 2): random by default, never trivial, stored only as an Argon2id hash.
//!
//! A 4-digit PIN has only 10,000 values, so the hash cannot stop an attacker who has the database; it keeps PINs
//! out of backups and logs. The real defence is online: three wrong tries end the call, and every wrong try counts
//! toward the source's failed-authentication limit.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::Rng;

pub const MIN_LEN: usize = 4;
pub const MAX_LEN: usize = 10;
/// The length of generated PINs.
pub const DEFAULT_LEN: usize = 4;

/// Why a PIN is refused; the message says what is acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PinError {
    #[error("a voicemail PIN must be {MIN_LEN} to {MAX_LEN} digits")]
    Shape,
    #[error("a voicemail PIN must not be one digit repeated (e.g. 1111)")]
    Repeated,
    #[error("a voicemail PIN must not be an ascending or descending run (e.g. 1234, 9876)")]
    Run,
    #[error("a voicemail PIN must not be the extension number")]
    ExtensionNumber,
    #[error("cannot hash the PIN: {0}")]
    Hash(String),
}

/// Checks a PIN a user or administrator chose for extension `number`.
pub fn validate(pin: &str, number: &str) -> Result<(), PinError> {
    if !(MIN_LEN..=MAX_LEN).contains(&pin.len()) || !pin.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PinError::Shape);
    }
    let digits: Vec<i16> = pin.bytes().map(|b| i16::from(b - b'0')).collect();
    if digits.windows(2).all(|w| w[0] == w[1]) {
        return Err(PinError::Repeated);
    }
    // Runs wrap around the keypad order (…8, 9, 0, 1…), as people type them.
    let step = |d: i16| digits.windows(2).all(|w| (w[1] - w[0]).rem_euclid(10) == d);
    if step(1) || step(9) {
        return Err(PinError::Run);
    }
    if pin == number {
        return Err(PinError::ExtensionNumber);
    }
    Ok(())
}

/// A random acceptable PIN of `DEFAULT_LEN` digits.
pub fn generate(number: &str) -> String {
    let mut rng = rand::rngs::OsRng;
    loop {
        let pin: String = (0..DEFAULT_LEN)
            .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
            .collect();
        if validate(&pin, number).is_ok() {
            return pin;
        }
    }
}

/// Light parameters on purpose: with 10,000 possible 4-digit PINs no hashing cost protects a stolen database, and
/// `ext add-range` hashes one PIN per extension. The online limits (three tries, the guard) do the real work.
fn hasher() -> Result<Argon2<'static>, PinError> {
    let params = Params::new(1024, 2, 1, None).map_err(|e| PinError::Hash(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// The PHC string (`$argon2id$…`) to store for `pin`.
pub fn hash(pin: &str) -> Result<String, PinError> {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| PinError::Hash(e.to_string()))?;
    hasher()?
        .hash_password(pin.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PinError::Hash(e.to_string()))
}

/// Whether `pin` matches the stored hash (false for a malformed hash or any input that is not a PIN).
pub fn verify(pin: &str, stored: &str) -> bool {
    if pin.is_empty() || pin.len() > MAX_LEN || !pin.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    let Ok(argon) = hasher() else { return false };
    argon.verify_password(pin.as_bytes(), &parsed).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trivial_pins_are_refused() {
        for (pin, err) in [
            ("123", PinError::Shape),
            ("12345678901", PinError::Shape),
            ("12a4", PinError::Shape),
            ("", PinError::Shape),
            ("1111", PinError::Repeated),
            ("0000000", PinError::Repeated),
            ("1234", PinError::Run),
            ("4321", PinError::Run),
            ("7890", PinError::Run),
            ("0987", PinError::Run),
            ("2345678", PinError::Run),
            ("1001", PinError::ExtensionNumber),
        ] {
            assert_eq!(validate(pin, "1001"), Err(err), "{pin}");
        }
        for pin in ["1357", "2580", "1122", "9731", "4711", "0007"] {
            assert_eq!(validate(pin, "1001"), Ok(()), "{pin}");
        }
    }

    #[test]
    fn generated_pins_are_valid_and_vary() {
        let pins: std::collections::HashSet<String> = (0..50).map(|_| generate("1001")).collect();
        assert!(pins.len() > 30, "only {} distinct PINs in 50", pins.len());
        for p in &pins {
            assert_eq!(p.len(), DEFAULT_LEN);
            assert_eq!(validate(p, "1001"), Ok(()));
        }
    }

    #[test]
    fn hash_verifies_only_the_right_pin() {
        let h = hash("4711").expect("hash");
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(!h.contains("4711"));
        assert!(verify("4711", &h));
        assert!(!verify("4712", &h));
        assert!(!verify("", &h));
        assert!(!verify("47110", &h));
        assert!(!verify("4711", "not a hash"));
        // Salted: the same PIN hashes differently each time.
        assert_ne!(h, hash("4711").expect("hash"));
    }
}
