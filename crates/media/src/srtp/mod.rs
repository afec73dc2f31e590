//! SRTP and SRTCP (RFC 3711) with the three suites SDES phones offer: `AES_CM_128_HMAC_SHA1_80`,
//! `AES_CM_128_HMAC_SHA1_32` (RFC 4568 §6.2) and `AEAD_AES_128_GCM` (RFC 7714).
//!
//! One [`SrtpContext`] holds the session keys derived from one master key and salt (RFC 3711 §4.3, key
//! derivation rate 0) and, per SSRC, the rollover counter (ROC), the highest index seen and a 64-packet replay
//! window, for SRTP and for SRTCP. **Replay protection is always on**: there is no way to turn it off. The
//! receiver estimates each packet's index from its sequence number (RFC 3711 Appendix A), refuses an index the
//! window has seen or that is 64 or more behind the highest, checks the tag (in constant time, before decrypting),
//! and only then moves the window and the ROC — so a forged packet changes no state.
//!
//! Packets are protected and unprotected in place, in the caller's `Vec<u8>`: the tag (and SRTCP's index word)
//! is appended to or truncated from the same buffer, so with [`MAX_TRAILER`] bytes of spare capacity nothing is
//! allocated per packet. Nothing here panics on input: every length is checked first.
//!
//! Why our own code over `rtc-srtp`: that crate's `Context` returns a freshly allocated buffer per packet,
//! makes replay protection optional (`None` windows mean none), and hides the key
//! derivation that RFC 3711 Appendix B tests. The cryptography itself is RustCrypto's (`aes` with AES-NI,
//! `ctr`, `hmac` + `sha1`, `aes-gcm`, `subtle` for the tag comparison); this module is only the SRTP framing,
//! index and replay bookkeeping around it, tested against RFC 3711 B.2/B.3 and RFC 7714 §16/§17.

use aes::Aes128Enc;
use aes::cipher::{InnerIvInit, KeyInit as CipherKeyInit, StreamCipher};
use aes_gcm::aead::{AeadInPlace, KeyInit as AeadKeyInit};
use aes_gcm::{Aes128Gcm, Nonce, Tag};
use hmac::{Hmac, KeyInit as MacKeyInit, Mac};
use rand::RngCore;
use sha1::Sha1;
use subtle::ConstantTimeEq;

#[cfg(test)]
mod tests;

type HmacSha1 = Hmac<Sha1>;
type Aes128Ctr = ctr::Ctr128BE<Aes128Enc>;
type Aes128CtrCore = ctr::CtrCore<Aes128Enc, ctr::flavors::Ctr128BE>;

/// The most a protect adds to a packet: GCM's 16-byte tag plus SRTCP's 4-byte E-flag and index word.
pub const MAX_TRAILER: usize = 20;
/// Master key length of every supported suite (AES-128).
pub const KEY_LEN: usize = 16;
/// How many SSRCs one context tracks; a further SSRC evicts the least recently used one.
const MAX_STREAMS: usize = 8;
/// Replay window size (RFC 3711 §3.3.2 asks for at least 64).
const WINDOW: u64 = 64;
/// Largest SRTP index (48 bits) and SRTCP index (31 bits).
const MAX_RTP_INDEX: u64 = (1 << 48) - 1;
const MAX_RTCP_INDEX: u32 = (1 << 31) - 1;
const RTP_HEADER_LEN: usize = 12;
const RTCP_HEADER_LEN: usize = 8;
const GCM_TAG_LEN: usize = 16;

/// An SRTP crypto suite (the RFC 4568 / RFC 7714 names are [`Suite::name`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Suite {
    AesCm128HmacSha1_80,
    AesCm128HmacSha1_32,
    AeadAes128Gcm,
}

impl Suite {
    pub const ALL: [Suite; 3] = [
        Suite::AeadAes128Gcm,
        Suite::AesCm128HmacSha1_80,
        Suite::AesCm128HmacSha1_32,
    ];

    /// The SDES (`a=crypto`) name.
    pub fn name(self) -> &'static str {
        match self {
            Suite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Suite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
            Suite::AeadAes128Gcm => "AEAD_AES_128_GCM",
        }
    }

    /// The suite with SDES name `name` (exact, as RFC 4568's grammar is case-sensitive).
    pub fn from_name(name: &str) -> Option<Suite> {
        Suite::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Master salt length: 112 bits for AES-CM, 96 bits for GCM (RFC 7714 §12).
    pub const fn salt_len(self) -> usize {
        match self {
            Suite::AeadAes128Gcm => 12,
            _ => 14,
        }
    }

    /// Authentication tag length of SRTP packets.
    pub const fn rtp_tag_len(self) -> usize {
        match self {
            Suite::AesCm128HmacSha1_80 => 10,
            Suite::AesCm128HmacSha1_32 => 4,
            Suite::AeadAes128Gcm => GCM_TAG_LEN,
        }
    }

    /// Authentication tag length of SRTCP packets (80 bits for both CM suites, RFC 4568 §6.2.2).
    pub const fn rtcp_tag_len(self) -> usize {
        match self {
            Suite::AeadAes128Gcm => GCM_TAG_LEN,
            _ => 10,
        }
    }
}

impl std::fmt::Display for Suite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a key was refused or a packet not protected/unprotected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum SrtpError {
    #[error("master key must be {KEY_LEN} bytes and master salt {salt} bytes for {suite}")]
    BadKeyLength { suite: Suite, salt: usize },
    #[error("packet too short for its header and tag")]
    TooShort,
    #[error("not a version-2 RTP/RTCP packet, or its header runs past the end")]
    Malformed,
    #[error("authentication tag mismatch")]
    AuthFailed,
    #[error("packet index already received or too old for the replay window")]
    Replay,
    #[error("packet index space exhausted: the stream needs a new key")]
    IndexExhausted,
}

pub type Result<T> = std::result::Result<T, SrtpError>;

/// A master key and salt (the SDES `inline:` material). `Debug` never shows the bytes; equality is constant-time.
#[derive(Clone)]
pub struct MasterKey {
    bytes: [u8; KEY_LEN + 14],
    salt_len: u8,
}

impl MasterKey {
    /// A 16-byte key and a 12- or 14-byte salt.
    pub fn new(key: &[u8], salt: &[u8]) -> Result<Self> {
        let bad = SrtpError::BadKeyLength {
            suite: if salt.len() == 12 {
                Suite::AeadAes128Gcm
            } else {
                Suite::AesCm128HmacSha1_80
            },
            salt: if salt.len() == 12 { 12 } else { 14 },
        };
        if key.len() != KEY_LEN || !(salt.len() == 12 || salt.len() == 14) {
            return Err(bad);
        }
        let mut bytes = [0; KEY_LEN + 14];
        bytes[..KEY_LEN].copy_from_slice(key);
        bytes[KEY_LEN..KEY_LEN + salt.len()].copy_from_slice(salt);
        Ok(MasterKey {
            bytes,
            salt_len: salt.len() as u8,
        })
    }

    /// Key and salt concatenated, as in SDES `inline:` — the length must be right for `suite`.
    pub fn from_concatenated(suite: Suite, key_salt: &[u8]) -> Result<Self> {
        if key_salt.len() != KEY_LEN + suite.salt_len() {
            return Err(SrtpError::BadKeyLength {
                suite,
                salt: suite.salt_len(),
            });
        }
        MasterKey::new(&key_salt[..KEY_LEN], &key_salt[KEY_LEN..])
    }

    /// Fresh key and salt for `suite` from the operating system's CSPRNG.
    pub fn generate(suite: Suite) -> Self {
        let mut bytes = [0; KEY_LEN + 14];
        rand::rngs::OsRng.fill_bytes(&mut bytes[..KEY_LEN + suite.salt_len()]);
        MasterKey {
            bytes,
            salt_len: suite.salt_len() as u8,
        }
    }

    pub fn key(&self) -> &[u8] {
        &self.bytes[..KEY_LEN]
    }

    pub fn salt(&self) -> &[u8] {
        &self.bytes[KEY_LEN..KEY_LEN + usize::from(self.salt_len)]
    }

    /// Key then salt, as SDES encodes them.
    pub fn concatenated(&self) -> &[u8] {
        &self.bytes[..KEY_LEN + usize::from(self.salt_len)]
    }

    /// Whether the salt length is the one `suite` uses.
    pub fn fits(&self, suite: Suite) -> bool {
        usize::from(self.salt_len) == suite.salt_len()
    }
}

impl PartialEq for MasterKey {
    fn eq(&self, other: &Self) -> bool {
        self.concatenated().ct_eq(other.concatenated()).into()
    }
}

impl Eq for MasterKey {}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "MasterKey(<{} bytes redacted>)",
            self.concatenated().len()
        )
    }
}

/// RFC 3711 §4.3.1 with key derivation rate 0: AES-CM keyed with the master key, IV = (master salt XOR
/// label · 2^48) · 2^16, keystream = output. A 96-bit (GCM) salt is left-aligned in the 112 bits, as libsrtp and
/// libre do (RFC 7714 §11).
fn derive(master: &MasterKey, label: u8, out: &mut [u8]) {
    let aes = Aes128Enc::new(master.key().into());
    let mut iv = [0u8; 16];
    iv[..master.salt().len()].copy_from_slice(master.salt());
    iv[7] ^= label;
    out.fill(0);
    aes_cm(&aes, &iv, out);
}

/// XOR `data` with the AES counter-mode keystream starting at counter block `iv`.
fn aes_cm(aes: &Aes128Enc, iv: &[u8; 16], data: &mut [u8]) {
    Aes128Ctr::from_core(Aes128CtrCore::inner_iv_init(aes.clone(), &(*iv).into()))
        .apply_keystream(data);
}

/// The session keys of SRTP or of SRTCP.
#[derive(Clone)]
enum Keys {
    Cm {
        aes: Aes128Enc,
        salt: [u8; 14],
        mac: HmacSha1,
        tag_len: usize,
    },
    Gcm {
        aead: Aes128Gcm,
        salt: [u8; 12],
    },
}

impl Keys {
    /// Labels: encryption, authentication, salt (0, 1, 2 for SRTP; 3, 4, 5 for SRTCP).
    fn derive(suite: Suite, master: &MasterKey, labels: [u8; 3], tag_len: usize) -> Keys {
        let mut key = [0u8; KEY_LEN];
        derive(master, labels[0], &mut key);
        let keys = match suite {
            Suite::AeadAes128Gcm => {
                let mut salt = [0u8; 12];
                derive(master, labels[2], &mut salt);
                Keys::Gcm {
                    aead: <Aes128Gcm as AeadKeyInit>::new(&key.into()),
                    salt,
                }
            }
            _ => {
                let mut auth = [0u8; 20];
                let mut salt = [0u8; 14];
                derive(master, labels[1], &mut auth);
                derive(master, labels[2], &mut salt);
                let keys = Keys::cm(&key, salt, &auth, tag_len);
                auth.fill(0);
                keys
            }
        };
        key.fill(0);
        keys
    }

    fn cm(key: &[u8; KEY_LEN], salt: [u8; 14], auth: &[u8], tag_len: usize) -> Keys {
        Keys::Cm {
            aes: Aes128Enc::new(key.into()),
            salt,
            mac: <HmacSha1 as MacKeyInit>::new_from_slice(auth).expect("HMAC takes any key length"),
            tag_len,
        }
    }
}

/// AES-CM IV (RFC 3711 §4.1.1): (salt · 2^16) XOR (SSRC · 2^64) XOR (index · 2^16).
fn cm_iv(salt: &[u8; 14], ssrc: u32, index: u64) -> [u8; 16] {
    let mut iv = [0u8; 16];
    iv[..14].copy_from_slice(salt);
    for (b, s) in iv[4..8].iter_mut().zip(ssrc.to_be_bytes()) {
        *b ^= s;
    }
    for (b, s) in iv[8..14].iter_mut().zip(&index.to_be_bytes()[2..]) {
        *b ^= s;
    }
    iv
}

/// GCM IV for SRTP (RFC 7714 §8.1): salt XOR (00 00 ‖ SSRC ‖ ROC ‖ SEQ) — i.e. the 48-bit index in the last six.
/// For SRTCP (§9.1): salt XOR (00 00 ‖ SSRC ‖ 00 00 ‖ 0 ‖ 31-bit index) — the same layout with the index.
fn gcm_iv(salt: &[u8; 12], ssrc: u32, index: u64) -> [u8; 12] {
    let mut iv = *salt;
    for (b, s) in iv[2..6].iter_mut().zip(ssrc.to_be_bytes()) {
        *b ^= s;
    }
    for (b, s) in iv[6..12].iter_mut().zip(&index.to_be_bytes()[2..]) {
        *b ^= s;
    }
    iv
}

fn hmac_tag(mac: &HmacSha1, data: &[u8], roc: Option<u32>) -> [u8; 20] {
    let mut mac = mac.clone();
    mac.update(data);
    if let Some(roc) = roc {
        mac.update(&roc.to_be_bytes());
    }
    let mut out = [0u8; 20];
    out.copy_from_slice(&mac.finalize().into_bytes());
    out
}

/// A 64-packet sliding window over indices: `top` is the highest accepted, bit k of `seen` is `top - k`.
#[derive(Debug, Clone, Copy, Default)]
struct ReplayWindow {
    top: Option<u64>,
    seen: u64,
}

impl ReplayWindow {
    fn check(&self, index: u64) -> Result<()> {
        match self.top {
            Some(top) if index <= top => {
                let behind = top - index;
                if behind >= WINDOW || self.seen & (1 << behind) != 0 {
                    Err(SrtpError::Replay)
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    fn accept(&mut self, index: u64) {
        match self.top {
            Some(top) if index <= top => self.seen |= 1 << (top - index),
            Some(top) => {
                let ahead = index - top;
                self.seen = if ahead >= WINDOW {
                    1
                } else {
                    (self.seen << ahead) | 1
                };
                self.top = Some(index);
            }
            None => {
                self.top = Some(index);
                self.seen = 1;
            }
        }
    }
}

/// RFC 3711 Appendix A: the index of a packet with sequence number `seq`, given the highest index so far
/// (ROC ‖ s_l). `None` when the guess is before index 0 (ROC would be −1).
fn estimate_index(highest: Option<u64>, seq: u16) -> Option<u64> {
    let Some(highest) = highest else {
        return Some(u64::from(seq));
    };
    let roc = highest >> 16;
    let s_l = highest & 0xffff;
    let seq = u64::from(seq);
    let v = if s_l < 0x8000 {
        if seq > s_l + 0x8000 {
            roc.checked_sub(1)?
        } else {
            roc
        }
    } else if seq + 0x8000 < s_l {
        roc + 1
    } else {
        roc
    };
    Some((v << 16) | seq)
}

/// Per-SSRC state.
#[derive(Debug, Clone, Copy, Default)]
struct Stream {
    ssrc: u32,
    used: u64,
    /// Receiving SRTP: highest authenticated index and the window.
    rtp_rx: ReplayWindow,
    /// Sending SRTP: highest index sent (its ROC is what we use).
    rtp_tx: Option<u64>,
    rtcp_rx: ReplayWindow,
    /// Sending SRTCP: the next index.
    rtcp_tx: u32,
}

/// SRTP and SRTCP state for one master key (one direction of one leg, in the relay).
#[derive(Clone)]
pub struct SrtpContext {
    suite: Suite,
    rtp: Keys,
    rtcp: Keys,
    streams: [Option<Stream>; MAX_STREAMS],
    tick: u64,
}

impl std::fmt::Debug for SrtpContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpContext")
            .field("suite", &self.suite)
            .field("streams", &self.streams.iter().flatten().count())
            .finish_non_exhaustive()
    }
}

/// Bytes of an RTP header including CSRCs and the extension; checks only what SRTP needs (the padding is
/// encrypted and checked by the caller after unprotecting).
fn rtp_header_len(p: &[u8]) -> Result<usize> {
    if p.len() < RTP_HEADER_LEN {
        return Err(SrtpError::TooShort);
    }
    if p[0] >> 6 != 2 {
        return Err(SrtpError::Malformed);
    }
    let mut len = RTP_HEADER_LEN + 4 * usize::from(p[0] & 0x0f);
    if p[0] & 0x10 != 0 {
        let ext = p.get(len..len + 4).ok_or(SrtpError::Malformed)?;
        len += 4 + 4 * usize::from(u16::from_be_bytes([ext[2], ext[3]]));
    }
    if len > p.len() {
        return Err(SrtpError::Malformed);
    }
    Ok(len)
}

fn rtcp_check(p: &[u8]) -> Result<()> {
    if p.len() < RTCP_HEADER_LEN {
        return Err(SrtpError::TooShort);
    }
    if p[0] >> 6 != 2 {
        return Err(SrtpError::Malformed);
    }
    Ok(())
}

fn u32_at(p: &[u8], i: usize) -> u32 {
    u32::from_be_bytes([p[i], p[i + 1], p[i + 2], p[i + 3]])
}

impl SrtpContext {
    /// A context for `suite` from a 16-byte master key and a master salt of [`Suite::salt_len`] bytes.
    pub fn new(suite: Suite, master_key: &[u8], master_salt: &[u8]) -> Result<Self> {
        let master =
            MasterKey::new(master_key, master_salt).map_err(|_| SrtpError::BadKeyLength {
                suite,
                salt: suite.salt_len(),
            })?;
        SrtpContext::from_master(suite, &master)
    }

    pub fn from_master(suite: Suite, master: &MasterKey) -> Result<Self> {
        if !master.fits(suite) {
            return Err(SrtpError::BadKeyLength {
                suite,
                salt: suite.salt_len(),
            });
        }
        Ok(SrtpContext {
            suite,
            rtp: Keys::derive(suite, master, [0, 1, 2], suite.rtp_tag_len()),
            rtcp: Keys::derive(suite, master, [3, 4, 5], suite.rtcp_tag_len()),
            streams: [None; MAX_STREAMS],
            tick: 0,
        })
    }

    pub fn suite(&self) -> Suite {
        self.suite
    }

    fn find(&self, ssrc: u32) -> Option<Stream> {
        self.streams
            .iter()
            .flatten()
            .find(|s| s.ssrc == ssrc)
            .copied()
    }

    /// Store `stream` (new or updated), evicting the least recently used SSRC if the table is full.
    fn store(&mut self, mut stream: Stream) {
        self.tick += 1;
        stream.used = self.tick;
        let slot = match self
            .streams
            .iter()
            .position(|s| s.is_some_and(|s| s.ssrc == stream.ssrc))
        {
            Some(i) => i,
            None => match self.streams.iter().position(Option::is_none) {
                Some(i) => i,
                None => (0..MAX_STREAMS)
                    .min_by_key(|&i| self.streams[i].map_or(0, |s| s.used))
                    .unwrap_or(0),
            },
        };
        self.streams[slot] = Some(stream);
    }

    fn stream(&self, ssrc: u32) -> Stream {
        self.find(ssrc).unwrap_or(Stream {
            ssrc,
            ..Stream::default()
        })
    }

    /// Encrypt and authenticate the RTP packet in `pkt`, appending the tag.
    pub fn protect_rtp(&mut self, pkt: &mut Vec<u8>) -> Result<()> {
        let header = rtp_header_len(pkt)?;
        let seq = u16::from_be_bytes([pkt[2], pkt[3]]);
        let ssrc = u32_at(pkt, 8);
        let mut stream = self.stream(ssrc);
        // The sender's own stream: a sequence number from before the first one sent stays in ROC 0.
        let index = estimate_index(stream.rtp_tx, seq).unwrap_or(u64::from(seq));
        if index > MAX_RTP_INDEX {
            return Err(SrtpError::IndexExhausted);
        }
        if stream.rtp_tx.is_none_or(|top| index > top) {
            stream.rtp_tx = Some(index);
        }
        let roc = (index >> 16) as u32;
        match &self.rtp {
            Keys::Cm {
                aes,
                salt,
                mac,
                tag_len,
            } => {
                aes_cm(aes, &cm_iv(salt, ssrc, index), &mut pkt[header..]);
                let tag = hmac_tag(mac, pkt, Some(roc));
                pkt.extend_from_slice(&tag[..*tag_len]);
            }
            Keys::Gcm { aead, salt } => {
                let iv = gcm_iv(salt, ssrc, index);
                let (aad, body) = pkt.split_at_mut(header);
                let tag = aead
                    .encrypt_in_place_detached(&Nonce::from(iv), aad, body)
                    .map_err(|_| SrtpError::TooShort)?;
                pkt.extend_from_slice(&tag);
            }
        }
        self.store(stream);
        Ok(())
    }

    /// Check the replay window and the tag of the SRTP packet in `pkt`, then decrypt it and strip the tag. On
    /// error `pkt` may hold garbage, and no state has changed.
    pub fn unprotect_rtp(&mut self, pkt: &mut Vec<u8>) -> Result<()> {
        let header = rtp_header_len(pkt)?;
        let tag_len = self.suite.rtp_tag_len();
        if pkt.len() < header + tag_len {
            return Err(SrtpError::TooShort);
        }
        let seq = u16::from_be_bytes([pkt[2], pkt[3]]);
        let ssrc = u32_at(pkt, 8);
        let mut stream = self.stream(ssrc);
        let index = estimate_index(stream.rtp_rx.top, seq).ok_or(SrtpError::Replay)?;
        if index > MAX_RTP_INDEX {
            return Err(SrtpError::AuthFailed);
        }
        stream.rtp_rx.check(index)?;
        let roc = (index >> 16) as u32;
        let end = pkt.len() - tag_len;
        match &self.rtp {
            Keys::Cm { aes, salt, mac, .. } => {
                let tag = hmac_tag(mac, &pkt[..end], Some(roc));
                if !bool::from(tag[..tag_len].ct_eq(&pkt[end..])) {
                    return Err(SrtpError::AuthFailed);
                }
                aes_cm(aes, &cm_iv(salt, ssrc, index), &mut pkt[header..end]);
            }
            Keys::Gcm { aead, salt } => {
                let iv = gcm_iv(salt, ssrc, index);
                let (aad, rest) = pkt.split_at_mut(header);
                let (body, tag) = rest.split_at_mut(end - header);
                let mut t = [0u8; GCM_TAG_LEN];
                t.copy_from_slice(tag);
                aead.decrypt_in_place_detached(&Nonce::from(iv), aad, body, &Tag::from(t))
                    .map_err(|_| SrtpError::AuthFailed)?;
            }
        }
        pkt.truncate(end);
        stream.rtp_rx.accept(index);
        self.store(stream);
        Ok(())
    }

    /// Encrypt and authenticate the RTCP compound packet in `pkt` (E flag set), appending the index word and tag.
    pub fn protect_rtcp(&mut self, pkt: &mut Vec<u8>) -> Result<()> {
        rtcp_check(pkt)?;
        let ssrc = u32_at(pkt, 4);
        let mut stream = self.stream(ssrc);
        let index = stream.rtcp_tx;
        if index > MAX_RTCP_INDEX {
            return Err(SrtpError::IndexExhausted);
        }
        stream.rtcp_tx += 1;
        let word = (0x8000_0000 | index).to_be_bytes();
        match &self.rtcp {
            Keys::Cm {
                aes,
                salt,
                mac,
                tag_len,
            } => {
                aes_cm(
                    aes,
                    &cm_iv(salt, ssrc, u64::from(index)),
                    &mut pkt[RTCP_HEADER_LEN..],
                );
                pkt.extend_from_slice(&word);
                let tag = hmac_tag(mac, pkt, None);
                pkt.extend_from_slice(&tag[..*tag_len]);
            }
            Keys::Gcm { aead, salt } => {
                let iv = gcm_iv(salt, ssrc, u64::from(index));
                let mut aad = [0u8; RTCP_HEADER_LEN + 4];
                aad[..RTCP_HEADER_LEN].copy_from_slice(&pkt[..RTCP_HEADER_LEN]);
                aad[RTCP_HEADER_LEN..].copy_from_slice(&word);
                let tag = aead
                    .encrypt_in_place_detached(&Nonce::from(iv), &aad, &mut pkt[RTCP_HEADER_LEN..])
                    .map_err(|_| SrtpError::TooShort)?;
                pkt.extend_from_slice(&tag);
                pkt.extend_from_slice(&word);
            }
        }
        self.store(stream);
        Ok(())
    }

    /// Check the replay window and tag of the SRTCP packet in `pkt`, decrypt it (if its E flag is set) and strip
    /// the index word and tag.
    pub fn unprotect_rtcp(&mut self, pkt: &mut Vec<u8>) -> Result<()> {
        rtcp_check(pkt)?;
        let tag_len = self.suite.rtcp_tag_len();
        if pkt.len() < RTCP_HEADER_LEN + 4 + tag_len {
            return Err(SrtpError::TooShort);
        }
        let ssrc = u32_at(pkt, 4);
        let mut stream = self.stream(ssrc);
        match &self.rtcp {
            Keys::Cm { aes, salt, mac, .. } => {
                let end = pkt.len() - tag_len;
                let word = u32_at(pkt, end - 4);
                let index = word & MAX_RTCP_INDEX;
                stream.rtcp_rx.check(u64::from(index))?;
                let tag = hmac_tag(mac, &pkt[..end], None);
                if !bool::from(tag[..tag_len].ct_eq(&pkt[end..])) {
                    return Err(SrtpError::AuthFailed);
                }
                if word & 0x8000_0000 != 0 {
                    let iv = cm_iv(salt, ssrc, u64::from(index));
                    aes_cm(aes, &iv, &mut pkt[RTCP_HEADER_LEN..end - 4]);
                }
                pkt.truncate(end - 4);
                stream.rtcp_rx.accept(u64::from(index));
            }
            Keys::Gcm { aead, salt } => {
                let len = pkt.len();
                let word_bytes = [pkt[len - 4], pkt[len - 3], pkt[len - 2], pkt[len - 1]];
                let word = u32::from_be_bytes(word_bytes);
                let index = word & MAX_RTCP_INDEX;
                stream.rtcp_rx.check(u64::from(index))?;
                let iv = gcm_iv(salt, ssrc, u64::from(index));
                let body_end = len - 4 - GCM_TAG_LEN;
                let mut tag = [0u8; GCM_TAG_LEN];
                tag.copy_from_slice(&pkt[body_end..len - 4]);
                if word & 0x8000_0000 != 0 {
                    let mut aad = [0u8; RTCP_HEADER_LEN + 4];
                    aad[..RTCP_HEADER_LEN].copy_from_slice(&pkt[..RTCP_HEADER_LEN]);
                    aad[RTCP_HEADER_LEN..].copy_from_slice(&word_bytes);
                    aead.decrypt_in_place_detached(
                        &Nonce::from(iv),
                        &aad,
                        &mut pkt[RTCP_HEADER_LEN..body_end],
                        &Tag::from(tag),
                    )
                    .map_err(|_| SrtpError::AuthFailed)?;
                } else {
                    // Authenticated only (RFC 7714 §9.3): the AAD is the whole packet and the index word; move
                    // the word over the tag so that is one slice.
                    pkt[body_end..body_end + 4].copy_from_slice(&word_bytes);
                    aead.decrypt_in_place_detached(
                        &Nonce::from(iv),
                        &pkt[..body_end + 4],
                        &mut [],
                        &Tag::from(tag),
                    )
                    .map_err(|_| SrtpError::AuthFailed)?;
                }
                pkt.truncate(body_end);
                stream.rtcp_rx.accept(u64::from(index));
            }
        }
        self.store(stream);
        Ok(())
    }

    /// Test hook: a context with the given SRTP and SRTCP session keys (RFC 7714's vectors skip derivation).
    #[cfg(test)]
    fn from_gcm_session(key: [u8; KEY_LEN], salt: [u8; 12]) -> Self {
        let keys = Keys::Gcm {
            aead: <Aes128Gcm as AeadKeyInit>::new(&key.into()),
            salt,
        };
        SrtpContext {
            suite: Suite::AeadAes128Gcm,
            rtp: keys.clone(),
            rtcp: keys,
            streams: [None; MAX_STREAMS],
            tick: 0,
        }
    }

    /// Test hook: the next SRTCP index sent for `ssrc`.
    #[cfg(test)]
    fn set_rtcp_tx_index(&mut self, ssrc: u32, index: u32) {
        let mut s = self.stream(ssrc);
        s.rtcp_tx = index;
        self.store(s);
    }

    /// Test hook: the ROC and s_l the receiver believes for `ssrc`.
    #[cfg(test)]
    fn rx_highest(&self, ssrc: u32) -> Option<u64> {
        self.find(ssrc).and_then(|s| s.rtp_rx.top)
    }
}
