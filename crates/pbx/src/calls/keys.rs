//! SRTP keys (SDES, RFC 4568) for each leg: what Palisade offers, what it answers, and the relay's key pair.

use super::*;

/// Palisade's SRTP offer to a phone: a fresh key for each suite it can take, strongest first.
pub(super) fn offer_keys() -> Vec<CryptoAttribute> {
    [Suite::AesCm128HmacSha1_80, Suite::AesCm128HmacSha1_32]
        .into_iter()
        .enumerate()
        .map(|(i, suite)| CryptoAttribute::generate(u32::try_from(i + 1).unwrap_or(1), suite))
        .collect()
}

/// The key pair for a leg: what the phone answered (it encrypts with that) and Palisade's offered key with the
/// same tag and suite.
pub(super) fn answered_keys(
    offered: &[CryptoAttribute],
    answer_crypto: &[String],
) -> Option<(CryptoAttribute, CryptoAttribute)> {
    answer_crypto.iter().find_map(|value| {
        let theirs = CryptoAttribute::parse(value).ok()?;
        let ours = offered
            .iter()
            .find(|o| o.tag == theirs.tag && o.suite == theirs.suite)?
            .clone();
        Some((theirs, ours))
    })
}

pub(super) fn leg_crypto(
    theirs: &CryptoAttribute,
    ours: &CryptoAttribute,
) -> Option<::media::LegCrypto> {
    ::media::LegCrypto::new(theirs.suite, theirs.key.clone(), ours.key.clone()).ok()
}
