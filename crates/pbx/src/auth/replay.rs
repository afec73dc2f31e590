//! Nonce-count replay protection: a bounded table of `nonce → highest nc accepted`.
//!
//! Only responses that were already verified (right password, valid nonce) reach the table, so an attacker
//! without credentials cannot fill it. It is bounded all the same ([`DEFAULT_REPLAY_CAPACITY`] entries): when full,
//! the entry recorded first is evicted. An evicted nonce must never become acceptable again with an `nc` that was
//! already used, so the table remembers the latest issue time among evicted entries (a watermark): a nonce issued
//! at or before it that is not in the table is reported [`NcVerdict::Forgotten`], which the verifier answers
//! as stale (a fresh challenge, no failure counted). The cost of a flood is a re-challenge, never a replay.
//!
//! **Retransmissions.** A request answered statelessly (an authenticated REGISTER keeps no server transaction)
//! comes back byte for byte when its answer is lost. The table remembers a fingerprint of the request that set
//! each nonce's highest count ([`ReplayTable::check_request`]); the same request again within
//! [`RETRANSMISSION_WINDOW`] — what a transaction would have absorbed — is a [`NcVerdict::Retransmission`], not a
//! replay. Any other request with that count (another Contact, another branch) is still a replay.
//!
//! Entries leave the table when their nonce expires, by the very rule the nonce check uses, so an entry is never
//! dropped while its nonce could still be accepted.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, SystemTime};

use super::nonce::{NonceId, NonceInfo, is_expired, unix_ms};

/// Default bound on the number of nonces tracked.
pub const DEFAULT_REPLAY_CAPACITY: usize = 100_000;

/// How long the same request may come again as a retransmission: 64·T1, the life of the non-INVITE server
/// transaction that would otherwise have absorbed it (RFC 3261 timer J over UDP).
pub const RETRANSMISSION_WINDOW: Duration = Duration::from_secs(32);

/// What identifies one request among its retransmissions: a hash of its bytes (a retransmission is the same
/// bytes, RFC 3261 §17.1.2.2).
pub type RequestFingerprint = [u8; 16];

/// What the table says about a nonce count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NcVerdict {
    /// Higher than any count seen with this nonce (or the nonce's first use): accepted and recorded.
    Fresh,
    /// Not higher than a count already accepted with this nonce: a replay.
    Replay,
    /// The very request that was accepted with this count, again within [`RETRANSMISSION_WINDOW`]: answer it
    /// as before.
    Retransmission,
    /// The nonce may have been evicted from the table, so its history is unknown: treat as stale.
    Forgotten,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    highest_nc: u32,
    issued_at_ms: u64,
    /// The request accepted with `highest_nc`, and when (ms since the epoch).
    accepted: Option<(RequestFingerprint, u64)>,
}

#[derive(Debug)]
pub struct ReplayTable {
    capacity: usize,
    lifetime: Duration,
    entries: HashMap<NonceId, Entry>,
    /// Keys in the order they were first recorded; exactly the keys of `entries`.
    order: VecDeque<NonceId>,
    /// Latest issue time among evicted nonces.
    evicted_up_to_ms: Option<u64>,
}

impl ReplayTable {
    /// A table holding at most `capacity` nonces (at least 1), each for `lifetime` (the nonce lifetime).
    pub fn new(capacity: usize, lifetime: Duration) -> Self {
        let capacity = capacity.max(1);
        ReplayTable {
            capacity,
            lifetime,
            entries: HashMap::new(),
            order: VecDeque::new(),
            evicted_up_to_ms: None,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Checks `nc` for a valid nonce at `now` and records it when fresh.
    pub fn check(&mut self, nonce: NonceInfo, nc: u32, now: SystemTime) -> NcVerdict {
        self.check_inner(nonce, nc, None, now)
    }

    /// As [`ReplayTable::check`], for the request `fingerprint`: its retransmission is recognised.
    pub fn check_request(
        &mut self,
        nonce: NonceInfo,
        nc: u32,
        fingerprint: RequestFingerprint,
        now: SystemTime,
    ) -> NcVerdict {
        self.check_inner(nonce, nc, Some(fingerprint), now)
    }

    fn check_inner(
        &mut self,
        nonce: NonceInfo,
        nc: u32,
        fingerprint: Option<RequestFingerprint>,
        now: SystemTime,
    ) -> NcVerdict {
        self.purge_expired(now);
        let now_ms = unix_ms(now);
        let accepted = fingerprint.map(|f| (f, now_ms));
        if let Some(entry) = self.entries.get_mut(&nonce.id) {
            if nc <= entry.highest_nc {
                let window = RETRANSMISSION_WINDOW.as_millis() as u64;
                return match (entry.accepted, fingerprint) {
                    (Some((seen, at)), Some(f))
                        if nc == entry.highest_nc
                            && seen == f
                            && now_ms.saturating_sub(at) <= window =>
                    {
                        NcVerdict::Retransmission
                    }
                    _ => NcVerdict::Replay,
                };
            }
            entry.highest_nc = nc;
            entry.accepted = accepted;
            return NcVerdict::Fresh;
        }
        if self
            .evicted_up_to_ms
            .is_some_and(|mark| nonce.issued_at_ms <= mark)
        {
            return NcVerdict::Forgotten;
        }
        while self.entries.len() >= self.capacity {
            self.evict_oldest();
        }
        self.entries.insert(
            nonce.id,
            Entry {
                highest_nc: nc,
                issued_at_ms: nonce.issued_at_ms,
                accepted,
            },
        );
        self.order.push_back(nonce.id);
        NcVerdict::Fresh
    }

    /// Drops the entries at the front of the table whose nonces have expired (amortised O(1) per insertion).
    pub fn purge_expired(&mut self, now: SystemTime) {
        let now_ms = unix_ms(now);
        while let Some(id) = self.order.front() {
            match self.entries.get(id) {
                Some(e) if !is_expired(e.issued_at_ms, now_ms, self.lifetime) => break,
                _ => {
                    if let Some(id) = self.order.pop_front() {
                        self.entries.remove(&id);
                    }
                }
            }
        }
    }

    fn evict_oldest(&mut self) {
        let Some(id) = self.order.pop_front() else {
            return;
        };
        if let Some(e) = self.entries.remove(&id) {
            let mark = self
                .evicted_up_to_ms
                .map_or(e.issued_at_ms, |m| m.max(e.issued_at_ms));
            self.evicted_up_to_ms = Some(mark);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::nonce::{
        DEFAULT_NONCE_LIFETIME, KEY_LEN, NonceCheck, NonceKey, NonceSigner, SALT_LEN,
    };
    use std::time::UNIX_EPOCH;

    const T0: u64 = 1_700_000_000;

    fn at_ms(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    /// A real nonce (so ids are real tags) issued at `ms`, distinguished by `n`.
    fn nonce(signer: &NonceSigner, ms: u64, n: u64) -> NonceInfo {
        let mut salt = [0u8; SALT_LEN];
        salt[..8].copy_from_slice(&n.to_be_bytes());
        let s = signer.issue(at_ms(ms), salt, "pbx", None);
        match signer.check(&s, at_ms(ms), "pbx", None) {
            NonceCheck::Valid(info) => info,
            other => panic!("{other:?}"),
        }
    }

    fn signer() -> NonceSigner {
        NonceSigner::new(&NonceKey::from_bytes([3; KEY_LEN]), DEFAULT_NONCE_LIFETIME)
    }

    #[test]
    fn increasing_nc_accepted_repeats_refused() {
        let s = signer();
        let mut t = ReplayTable::new(10, DEFAULT_NONCE_LIFETIME);
        let n = nonce(&s, T0 * 1000, 1);
        let now = at_ms(T0 * 1000);
        assert_eq!(t.check(n, 1, now), NcVerdict::Fresh);
        assert_eq!(t.check(n, 1, now), NcVerdict::Replay);
        assert_eq!(t.check(n, 2, now), NcVerdict::Fresh);
        assert_eq!(t.check(n, 5, now), NcVerdict::Fresh);
        assert_eq!(t.check(n, 3, now), NcVerdict::Replay);
        assert_eq!(t.check(n, 5, now), NcVerdict::Replay);
        // Another nonce has its own count.
        let m = nonce(&s, T0 * 1000, 2);
        assert_eq!(t.check(m, 1, now), NcVerdict::Fresh);
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn the_same_request_again_is_a_retransmission_for_a_while_anything_else_a_replay() {
        let s = signer();
        let mut t = ReplayTable::new(10, DEFAULT_NONCE_LIFETIME);
        let ms = T0 * 1000;
        let n = nonce(&s, ms, 1);
        let (req, other) = ([1u8; 16], [2u8; 16]);
        assert_eq!(t.check_request(n, 1, req, at_ms(ms)), NcVerdict::Fresh);
        assert_eq!(
            t.check_request(n, 1, req, at_ms(ms + 500)),
            NcVerdict::Retransmission
        );
        assert_eq!(
            t.check_request(n, 1, req, at_ms(ms + 32_000)),
            NcVerdict::Retransmission
        );
        assert_eq!(
            t.check_request(n, 1, other, at_ms(ms + 600)),
            NcVerdict::Replay,
            "same nc, other request"
        );
        assert_eq!(
            t.check(n, 1, at_ms(ms + 600)),
            NcVerdict::Replay,
            "no fingerprint: never a retransmission"
        );
        assert_eq!(
            t.check_request(n, 1, req, at_ms(ms + 32_001)),
            NcVerdict::Replay,
            "too late: a replay"
        );
        // The next request with nc 2; the first one is now an old count.
        assert_eq!(
            t.check_request(n, 2, other, at_ms(ms + 40_000)),
            NcVerdict::Fresh
        );
        assert_eq!(
            t.check_request(n, 1, req, at_ms(ms + 40_001)),
            NcVerdict::Replay
        );
        assert_eq!(
            t.check_request(n, 2, other, at_ms(ms + 40_002)),
            NcVerdict::Retransmission
        );
    }

    #[test]
    fn entries_expire_with_the_nonce() {
        let s = signer();
        let mut t = ReplayTable::new(10, DEFAULT_NONCE_LIFETIME);
        let n = nonce(&s, T0 * 1000, 1);
        assert_eq!(t.check(n, 1, at_ms(T0 * 1000)), NcVerdict::Fresh);
        t.purge_expired(at_ms((T0 + 300) * 1000));
        assert_eq!(t.len(), 1, "still valid at exactly the lifetime");
        t.purge_expired(at_ms((T0 + 301) * 1000));
        assert!(t.is_empty());
    }

    #[test]
    fn evicted_nonce_is_forgotten_not_fresh() {
        let s = signer();
        let mut t = ReplayTable::new(2, DEFAULT_NONCE_LIFETIME);
        let ms = T0 * 1000;
        let now = at_ms(ms + 10);
        let a = nonce(&s, ms, 1);
        let b = nonce(&s, ms + 1, 2);
        let c = nonce(&s, ms + 2, 3);
        assert_eq!(t.check(a, 1, now), NcVerdict::Fresh);
        assert_eq!(t.check(b, 1, now), NcVerdict::Fresh);
        assert_eq!(t.check(c, 1, now), NcVerdict::Fresh); // evicts a
        assert_eq!(t.len(), 2);
        // a's history is gone: replaying nc=1 must not pass, nor any nc.
        assert_eq!(t.check(a, 1, now), NcVerdict::Forgotten);
        assert_eq!(t.check(a, 99, now), NcVerdict::Forgotten);
        // A nonce issued after the watermark is unaffected.
        let d = nonce(&s, ms + 3, 4);
        assert_eq!(t.check(d, 1, now), NcVerdict::Fresh);
        assert_eq!(t.check(b, 1, now), NcVerdict::Forgotten); // b was evicted by d
    }

    #[test]
    fn bounded_under_a_million_distinct_nonces() {
        let cap = DEFAULT_REPLAY_CAPACITY;
        let mut t = ReplayTable::new(cap, DEFAULT_NONCE_LIFETIME);
        let ms = T0 * 1000;
        // Ids only need to be distinct (a million HMACs would just slow the test): ten nonces per millisecond.
        let info = |i: u64| {
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&i.to_be_bytes());
            NonceInfo {
                id: NonceId::from_bytes(id),
                issued_at_ms: ms + i / 10,
            }
        };
        let now = at_ms(ms + 100_000);
        for i in 0..1_000_000u64 {
            assert_eq!(t.check(info(i), 1, now), NcVerdict::Fresh, "{i}");
            assert!(t.len() <= cap);
        }
        assert_eq!(t.len(), cap);
        assert_eq!(t.order.len(), t.entries.len());
        // Anything evicted stays refused, whatever its nc.
        assert_eq!(t.check(info(0), 1, now), NcVerdict::Forgotten);
        assert_eq!(t.check(info(5), 2, now), NcVerdict::Forgotten);
        assert_eq!(t.check(info(999_999), 1, now), NcVerdict::Replay);
    }

    #[test]
    fn bounded_when_every_nonce_has_the_same_issue_time() {
        let cap = 1000;
        let mut t = ReplayTable::new(cap, DEFAULT_NONCE_LIFETIME);
        let ms = T0 * 1000;
        let now = at_ms(ms);
        let info = |i: u64| {
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&i.to_be_bytes());
            NonceInfo {
                id: NonceId::from_bytes(id),
                issued_at_ms: ms,
            }
        };
        let verdicts: Vec<_> = (0..100_000).map(|i| t.check(info(i), 1, now)).collect();
        assert!(t.len() <= cap);
        // Once one nonce of that instant was evicted, later ones of the same instant are re-challenged.
        assert_eq!(
            verdicts.iter().filter(|v| **v == NcVerdict::Fresh).count(),
            cap + 1
        );
        assert!(
            verdicts[cap + 1..]
                .iter()
                .all(|v| *v == NcVerdict::Forgotten)
        );
    }
}
