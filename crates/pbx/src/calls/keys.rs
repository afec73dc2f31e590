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

/// Palisade's key in use toward `leg` of `call`: the `a=crypto` of the last description Palisade sent that leg —
/// the only one for an answer, or for an offer the one whose tag the leg's answer chose. A re-INVITE (hold,
/// resume) offers and answers with it again, so the leg keeps its keys: phones that do not re-key on a re-INVITE
/// go on decrypting (music on hold included), and the relay keeps that direction's SRTP context.
pub(super) fn key_in_use(call: &Call, leg: Leg) -> Option<CryptoAttribute> {
    let sent = call.sent[idx(leg)].as_ref()?;
    let ours: Vec<CryptoAttribute> = sdp::security(sent)
        .crypto
        .iter()
        .filter_map(|c| CryptoAttribute::parse(c).ok())
        .collect();
    if ours.len() == 1 {
        return ours.into_iter().next();
    }
    let answer = call.answers[idx(leg)].as_ref()?;
    let theirs = sdp::security(answer)
        .crypto
        .iter()
        .find_map(|c| CryptoAttribute::parse(c).ok())?;
    ours.into_iter()
        .find(|o| o.tag == theirs.tag && o.suite == theirs.suite)
}

/// Palisade's answer to `theirs` (a phone's re-offer): the key already in use toward that leg when the suite is
/// the same (under the offer's tag), else a fresh one.
pub(super) fn answer_keeping(
    theirs: &CryptoAttribute,
    in_use: Option<CryptoAttribute>,
) -> CryptoAttribute {
    match in_use {
        Some(k) if k.suite == theirs.suite => CryptoAttribute {
            tag: theirs.tag,
            ..k
        },
        _ => theirs.answer(),
    }
}
