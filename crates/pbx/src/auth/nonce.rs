//! Stateless digest nonces: nothing is stored per challenge, so a flood of unanswered challenges costs no memory.
//!
//! A nonce is `base64url(timestamp ‖ salt ‖ tag)` (48 characters, no padding), where
//! - `timestamp` is the issue time in Unix milliseconds (8 bytes, big endian),
//! - `salt` is 12 random bytes (every nonce is distinct, so the replay table can key on it),
//! - `tag` is HMAC-SHA256(key, "palisade-nonce-v1" ‖ timestamp ‖ salt ‖ realm ‖ binding), left-truncated to 16 bytes.
//!
//! Checking a nonce recomputes the tag (constant-time comparison) with the current key and then with the previous
//! one, so a key rotation does not invalidate challenges in flight.
//!
//! **Source binding.** The tag can cover the client's transport source address. Palisade does *not* bind by
//! default ([`super::VerifierConfig::bind_nonce_to_source`]): a phone behind a NAT whose public address changes
//! (carrier-grade NAT pools, mobile handover) would fail authentication with a nonce it was legitimately given,
//! and that failure is indistinguishable from a forged nonce, so it would count toward the source's ban. Binding
//! adds little: nonces are free to obtain from anywhere, a captured response cannot be replayed (the replay table
//! refuses a repeated `nc`), and computing a new response needs the HA1.
//!
//! The key must be shared by every node that may see the answer to a challenge (a cluster).

use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use rand::RngCore;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Length of a nonce key in bytes.
pub const KEY_LEN: usize = 32;
/// Length of the random salt in a nonce.
pub const SALT_LEN: usize = 12;
const TAG_LEN: usize = 16;
const RAW_LEN: usize = 8 + SALT_LEN + TAG_LEN;
/// Length of a nonce in characters.
pub const NONCE_LEN: usize = RAW_LEN / 3 * 4;
/// How long a nonce is valid: an authentic nonce older than this is stale.
pub const DEFAULT_NONCE_LIFETIME: Duration = Duration::from_secs(300);
/// A nonce stamped up to this far in the future still counts as valid (clock steps, skew between cluster
/// nodes); beyond it, it is stale.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(30);
const DOMAIN: &[u8] = b"palisade-nonce-v1";

/// The secret behind the nonces: 32 random bytes, generated at start (or shared by a cluster).
#[derive(Clone)]
pub struct NonceKey([u8; KEY_LEN]);

impl NonceKey {
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        NonceKey(bytes)
    }

    /// A fresh key from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, rand::Error> {
        let mut bytes = [0u8; KEY_LEN];
        rand::rngs::OsRng.try_fill_bytes(&mut bytes)?;
        Ok(NonceKey(bytes))
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC pads a short key with zeros to the block size; doing it here makes construction infallible.
        let mut block = [0u8; 64];
        block[..KEY_LEN].copy_from_slice(&self.0);
        <HmacSha256 as KeyInit>::new(&block.into())
    }
}

impl fmt::Debug for NonceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NonceKey(<redacted>)")
    }
}

/// Identifies one issued nonce (its tag): the replay table's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NonceId([u8; TAG_LEN]);

impl NonceId {
    #[cfg(test)]
    pub(crate) fn from_bytes(bytes: [u8; TAG_LEN]) -> Self {
        NonceId(bytes)
    }
}

/// What an authentic nonce says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NonceInfo {
    pub id: NonceId,
    /// Issue time, Unix milliseconds.
    pub issued_at_ms: u64,
}

/// The verdict on a nonce presented by a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceCheck {
    /// Issued by us, for this realm (and source, if bound), within its lifetime.
    Valid(NonceInfo),
    /// Issued by us but expired (or stamped too far in the future): answer with a fresh challenge, `stale=true`
    /// if the response was otherwise right.
    Stale(NonceInfo),
    /// Not one of ours: wrong length or encoding, forged or tampered, other realm, other source (when bound), or
    /// signed with a key we no longer hold.
    Invalid,
}

/// Issues and checks nonces. Pure: time, salt and source are inputs.
#[derive(Clone)]
pub struct NonceSigner {
    current: HmacSha256,
    previous: Option<HmacSha256>,
    lifetime: Duration,
}

impl fmt::Debug for NonceSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NonceSigner")
            .field("previous_key", &self.previous.is_some())
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

/// Milliseconds since the Unix epoch; times before it count as 0 and far futures saturate.
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl NonceSigner {
    pub fn new(key: &NonceKey, lifetime: Duration) -> Self {
        NonceSigner {
            current: key.mac(),
            previous: None,
            lifetime,
        }
    }

    /// Makes `key` the signing key; the old one is still accepted when checking (one generation back).
    pub fn rotate(&mut self, key: &NonceKey) {
        let old = std::mem::replace(&mut self.current, key.mac());
        self.previous = Some(old);
    }

    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// A new nonce issued at `now`. `binding` is the client's source address when nonces are bound to it.
    pub fn issue(
        &self,
        now: SystemTime,
        salt: [u8; SALT_LEN],
        realm: &str,
        binding: Option<IpAddr>,
    ) -> String {
        let mut raw = [0u8; RAW_LEN];
        raw[..8].copy_from_slice(&unix_ms(now).to_be_bytes());
        raw[8..8 + SALT_LEN].copy_from_slice(&salt);
        let tag = tag(self.current.clone(), &raw[..8 + SALT_LEN], realm, binding).finalize();
        raw[8 + SALT_LEN..].copy_from_slice(&tag.into_bytes()[..TAG_LEN]);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Checks a nonce presented at `now` for `realm` (and `binding`, the same as when it was issued).
    pub fn check(
        &self,
        nonce: &str,
        now: SystemTime,
        realm: &str,
        binding: Option<IpAddr>,
    ) -> NonceCheck {
        if nonce.len() != NONCE_LEN {
            return NonceCheck::Invalid;
        }
        let mut raw = [0u8; RAW_LEN];
        match URL_SAFE_NO_PAD.decode_slice(nonce, &mut raw) {
            Ok(RAW_LEN) => {}
            _ => return NonceCheck::Invalid,
        }
        let (signed, tag_bytes) = raw.split_at(8 + SALT_LEN);
        let authentic = std::iter::once(&self.current)
            .chain(self.previous.as_ref())
            .any(|key| {
                tag(key.clone(), signed, realm, binding)
                    .verify_truncated_left(tag_bytes)
                    .is_ok()
            });
        if !authentic {
            return NonceCheck::Invalid;
        }
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&raw[..8]);
        let mut id = [0u8; TAG_LEN];
        id.copy_from_slice(tag_bytes);
        let info = NonceInfo {
            id: NonceId(id),
            issued_at_ms: u64::from_be_bytes(ts),
        };
        if is_expired(info.issued_at_ms, unix_ms(now), self.lifetime) {
            NonceCheck::Stale(info)
        } else {
            NonceCheck::Valid(info)
        }
    }
}

/// True when a nonce issued at `issued_at_ms` is no longer valid at `now_ms`. The replay table forgets entries by
/// the same rule, so it never forgets a nonce that could still be accepted.
pub(crate) fn is_expired(issued_at_ms: u64, now_ms: u64, lifetime: Duration) -> bool {
    if issued_at_ms > now_ms {
        issued_at_ms - now_ms > duration_ms(MAX_CLOCK_SKEW)
    } else {
        now_ms - issued_at_ms > duration_ms(lifetime)
    }
}

fn tag(mut mac: HmacSha256, signed: &[u8], realm: &str, binding: Option<IpAddr>) -> HmacSha256 {
    mac.update(DOMAIN);
    mac.update(signed);
    // Length-prefixed so that realm and binding cannot bleed into each other.
    mac.update(&u64::try_from(realm.len()).unwrap_or(u64::MAX).to_be_bytes());
    mac.update(realm.as_bytes());
    match binding.map(|ip| ip.to_canonical()) {
        None => mac.update(&[0]),
        Some(IpAddr::V4(v4)) => {
            mac.update(&[4]);
            mac.update(&v4.octets());
        }
        Some(IpAddr::V6(v6)) => {
            mac.update(&[6]);
            mac.update(&v6.octets());
        }
    }
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    const T0: u64 = 1_700_000_000;
    const REALM: &str = "pbx.example.com";

    fn signer() -> NonceSigner {
        NonceSigner::new(&NonceKey::from_bytes([7; KEY_LEN]), DEFAULT_NONCE_LIFETIME)
    }

    #[test]
    fn valid_within_lifetime_then_stale() {
        let s = signer();
        let n = s.issue(at(T0), [1; SALT_LEN], REALM, None);
        assert_eq!(n.len(), NONCE_LEN);
        assert!(
            n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        let NonceCheck::Valid(info) = s.check(&n, at(T0), REALM, None) else {
            panic!("fresh nonce must be valid")
        };
        assert_eq!(info.issued_at_ms, T0 * 1000);
        assert!(matches!(
            s.check(&n, at(T0 + 300), REALM, None),
            NonceCheck::Valid(_)
        ));
        assert_eq!(
            s.check(&n, at(T0 + 301), REALM, None),
            NonceCheck::Stale(info)
        );
        // Stamped in the future: tolerated up to the skew, stale beyond.
        assert!(matches!(
            s.check(&n, at(T0 - 30), REALM, None),
            NonceCheck::Valid(_)
        ));
        assert!(matches!(
            s.check(&n, at(T0 - 31), REALM, None),
            NonceCheck::Stale(_)
        ));
    }

    #[test]
    fn tampered_or_foreign_nonces_are_invalid() {
        let s = signer();
        let n = s.issue(at(T0), [1; SALT_LEN], REALM, None);
        // Change each character in turn: 48 characters carry exactly 36 bytes, so every change is significant.
        for i in 0..n.len() {
            let mut b = n.clone().into_bytes();
            b[i] = if b[i] == b'A' { b'B' } else { b'A' };
            let t = String::from_utf8(b).unwrap();
            assert_eq!(s.check(&t, at(T0), REALM, None), NonceCheck::Invalid, "{i}");
        }
        assert_eq!(
            s.check(&n, at(T0), "other.realm", None),
            NonceCheck::Invalid
        );
        assert_eq!(s.check("", at(T0), REALM, None), NonceCheck::Invalid);
        assert_eq!(s.check(&n[1..], at(T0), REALM, None), NonceCheck::Invalid);
        assert_eq!(
            s.check(&"=".repeat(NONCE_LEN), at(T0), REALM, None),
            NonceCheck::Invalid
        );
        assert_eq!(
            s.check(&"é".repeat(NONCE_LEN / 2), at(T0), REALM, None),
            NonceCheck::Invalid
        );
        let other = NonceSigner::new(&NonceKey::from_bytes([8; KEY_LEN]), DEFAULT_NONCE_LIFETIME);
        assert_eq!(other.check(&n, at(T0), REALM, None), NonceCheck::Invalid);
    }

    #[test]
    fn salts_make_nonces_distinct() {
        let s = signer();
        let a = s.issue(at(T0), [1; SALT_LEN], REALM, None);
        let b = s.issue(at(T0), [2; SALT_LEN], REALM, None);
        assert_ne!(a, b);
    }

    #[test]
    fn binding_to_the_source_address() {
        let s = signer();
        let ip: IpAddr = "192.0.2.10".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.10".parse().unwrap();
        let other: IpAddr = "192.0.2.11".parse().unwrap();
        let n = s.issue(at(T0), [1; SALT_LEN], REALM, Some(ip));
        assert!(matches!(
            s.check(&n, at(T0), REALM, Some(ip)),
            NonceCheck::Valid(_)
        ));
        assert!(matches!(
            s.check(&n, at(T0), REALM, Some(mapped)),
            NonceCheck::Valid(_)
        ));
        assert_eq!(s.check(&n, at(T0), REALM, Some(other)), NonceCheck::Invalid);
        assert_eq!(s.check(&n, at(T0), REALM, None), NonceCheck::Invalid);
    }

    #[test]
    fn previous_key_still_accepted_after_rotation() {
        let mut s = signer();
        let old = s.issue(at(T0), [1; SALT_LEN], REALM, None);
        s.rotate(&NonceKey::from_bytes([9; KEY_LEN]));
        let new = s.issue(at(T0), [1; SALT_LEN], REALM, None);
        assert_ne!(old, new);
        assert!(matches!(
            s.check(&old, at(T0), REALM, None),
            NonceCheck::Valid(_)
        ));
        assert!(matches!(
            s.check(&new, at(T0), REALM, None),
            NonceCheck::Valid(_)
        ));
        s.rotate(&NonceKey::from_bytes([10; KEY_LEN]));
        assert_eq!(s.check(&old, at(T0), REALM, None), NonceCheck::Invalid);
        assert!(matches!(
            s.check(&new, at(T0), REALM, None),
            NonceCheck::Valid(_)
        ));
    }

    #[test]
    fn key_is_not_printed() {
        let k = NonceKey::from_bytes([0x41; KEY_LEN]);
        assert_eq!(format!("{k:?}"), "NonceKey(<redacted>)");
        assert!(!format!("{:?}", NonceSigner::new(&k, DEFAULT_NONCE_LIFETIME)).contains("65"));
    }
}
