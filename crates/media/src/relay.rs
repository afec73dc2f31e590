//! The relay core for one call, sans-IO: given a datagram that arrived on a leg's RTP or RTCP port, from some
//! source, at some time, decide where it goes — or why it is dropped.
//!
//! Leg A faces the caller, leg B the callee. Each leg knows, per stream (RTP and RTCP), a [`Remote`]: the one IP
//! its media may come from, the address its SDP signalled, and whether that address may be sent to before the
//! phone's first packet ([`crate::nat`] decides, from the SDP and the signalling source).
//! **Anti-bleed** (Asterisk CVE-2017-14099, docs/security.md "Calls and media"): a leg accepts media only from its expected IP.
//! NAT: the *first* valid packet from that IP after (re)signalling may come from any port, and then that port
//! is latched — once. Later packets from other ports of that IP, and any packet from any other IP, are dropped
//! and counted; a new SDP ([`Relay::set_remote`]) is the only way to move a leg. Forwarded packets go to the
//! other leg's latched address, or its signalled one until it latches when that one is trusted — an untrusted
//! leg (a phone whose SDP names a private or foreign address) gets nothing until it latched.
//!
//! Hold needs nothing here: whatever arrives from the right source is forwarded — unless the call layer asks for
//! **music on hold** on a leg ([`Relay::set_music`]): then that leg hears the [`MusicPlayer`]'s packets, pulled
//! with [`Relay::poll_music`] and protected with the leg's own SRTP key like any other packet to it, and what
//! the other (holding) leg sends toward it is dropped ([`DropReason::Held`]) until the music stops.
//!
//! **SRTP** (RFC 3711, keys from SDES) is terminated per leg: a leg with [`LegCrypto`] unprotects what its phone
//! sends — a packet that fails authentication or is a replay is dropped and counted, and never latches — and
//! the relay protects what it sends to that phone with its own key. So a call can bridge an SRTP leg and a plain
//! one, or two SRTP legs with unrelated keys. Packets are rewritten in the caller's buffer; give it
//! [`crate::srtp::MAX_TRAILER`] bytes of spare capacity and nothing is allocated per packet.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::moh::{Music, MusicPlayer};
use crate::nat::Remote;
use crate::recorder::Recorder;
use crate::rtp::{RtcpPacket, RtpPacket, is_rtcp};
use crate::srtp::{MasterKey, SrtpContext, SrtpError, Suite};

/// A call leg: A faces the caller, B the callee.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Leg {
    A,
    B,
}

impl Leg {
    pub fn other(self) -> Leg {
        match self {
            Leg::A => Leg::B,
            Leg::B => Leg::A,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Which of a leg's two ports a datagram arrived on (RTP: the even port, RTCP: the one above).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Rtp,
    Rtcp,
}

impl Kind {
    fn index(self) -> usize {
        self as usize
    }
}

/// Why a datagram was not forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Not version-2 RTP (or RTCP on the RTP port, RFC 5761) with consistent lengths, or not RTCP on the RTCP port.
    Malformed,
    /// From an IP address other than the leg's expected peer: a bleed attempt or a stray.
    UnknownSource,
    /// From the expected IP but a port other than the signalled or latched one, after the latch decision.
    WrongPort,
    /// The leg has no signalled peer yet (no SDP from that side).
    NoRemote,
    /// The other leg has no peer to send to yet (no SDP, or an untrusted one not latched yet).
    NoDestination,
    /// The leg speaks SRTP and the packet's authentication tag is wrong (a forgery, plain RTP, a stale key).
    AuthFailed,
    /// The leg speaks SRTP and the packet was already received, or is too old for the replay window.
    Replay,
    /// The other leg speaks SRTP and the packet could not be protected for it (its index space ran out).
    ProtectFailed,
    /// The other leg is on hold and hears music instead.
    Held,
}

impl DropReason {
    pub const ALL: [DropReason; 9] = [
        DropReason::Malformed,
        DropReason::UnknownSource,
        DropReason::WrongPort,
        DropReason::NoRemote,
        DropReason::NoDestination,
        DropReason::AuthFailed,
        DropReason::Replay,
        DropReason::ProtectFailed,
        DropReason::Held,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::UnknownSource => "unknown_source",
            DropReason::WrongPort => "wrong_port",
            DropReason::NoRemote => "no_remote",
            DropReason::NoDestination => "no_destination",
            DropReason::AuthFailed => "auth_failed",
            DropReason::Replay => "replay",
            DropReason::ProtectFailed => "protect_failed",
            DropReason::Held => "held",
        }
    }

    fn unprotect(e: SrtpError) -> DropReason {
        match e {
            SrtpError::AuthFailed => DropReason::AuthFailed,
            SrtpError::Replay => DropReason::Replay,
            _ => DropReason::Malformed,
        }
    }
}

/// SRTP on one leg: the suite, the key the phone encrypts with (`rx`) and the key the relay encrypts with
/// toward the phone (`tx`). `Debug` shows no key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegCrypto {
    suite: Suite,
    rx: MasterKey,
    tx: MasterKey,
}

impl LegCrypto {
    /// Both keys must have `suite`'s salt length.
    pub fn new(suite: Suite, rx: MasterKey, tx: MasterKey) -> Result<Self, SrtpError> {
        if !(rx.fits(suite) && tx.fits(suite)) {
            return Err(SrtpError::BadKeyLength {
                suite,
                salt: suite.salt_len(),
            });
        }
        Ok(LegCrypto { suite, rx, tx })
    }

    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// The phone's key (what arrives on the leg is protected with it).
    pub fn rx(&self) -> &MasterKey {
        &self.rx
    }

    /// Palisade's key toward the phone.
    pub fn tx(&self) -> &MasterKey {
        &self.tx
    }
}

/// A leg's SRTP state: the keys and a context per direction.
#[derive(Debug, Clone)]
struct LegSrtp {
    keys: LegCrypto,
    rx: SrtpContext,
    tx: SrtpContext,
}

impl LegSrtp {
    fn new(keys: LegCrypto) -> Self {
        let context = |key: &MasterKey| {
            SrtpContext::from_master(keys.suite, key).expect("LegCrypto::new checked the lengths")
        };
        LegSrtp {
            rx: context(&keys.rx),
            tx: context(&keys.tx),
            keys,
        }
    }

    /// New keys: a direction whose key did not change keeps its context (its ROC, SRTCP index and replay
    /// window — restarting those under the same key would reuse keystream or reopen the window).
    fn rekey(&mut self, keys: LegCrypto) {
        let fresh = LegSrtp::new(keys);
        if fresh.keys.suite != self.keys.suite || fresh.keys.rx != self.keys.rx {
            self.rx = fresh.rx;
        }
        if fresh.keys.suite != self.keys.suite || fresh.keys.tx != self.keys.tx {
            self.tx = fresh.tx;
        }
        self.keys = fresh.keys;
    }
}

/// What to do with a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Send the datagram — as rewritten in the caller's buffer when a leg speaks SRTP, else unchanged — to `to`
    /// from the socket of `via` (the other leg, the same kind).
    Forward {
        to: SocketAddr,
        via: (Leg, Kind),
    },
    Drop(DropReason),
}

/// Counters of one leg. "In" counts accepted datagrams that arrived on the leg; "out" counts datagrams the relay
/// decided to send out of the leg. Bytes are as on the wire of that leg (with SRTP tags where it has them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LegStats {
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
    drops: [u64; DropReason::ALL.len()],
    /// When the last accepted datagram arrived on this leg.
    pub last_activity: Option<Instant>,
}

impl LegStats {
    /// Datagrams that arrived on this leg and were dropped for `reason`.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize]
    }

    pub fn drops_total(&self) -> u64 {
        self.drops.iter().sum()
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Peer {
    /// From the leg's SDP and signalling source.
    remote: Option<Remote>,
    /// The NAT-mapped source, latched once.
    latched: Option<SocketAddr>,
    /// Whether the latch decision has been taken (a packet was accepted since the last signalling).
    decided: bool,
    /// Where the leg's media went before the signalling moved it elsewhere: a late packet from there may not take
    /// the latch meant for the new peer (a transferor's last packets when a transfer target on the same address,
    /// e.g. behind the same NAT, takes its place).
    previous: Option<SocketAddr>,
}

impl Peer {
    fn current(&self) -> Option<SocketAddr> {
        self.latched
            .or_else(|| self.remote.and_then(|r| r.send_to()))
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct LegState {
    peers: [Peer; 2],
    stats: LegStats,
}

/// The relay state of one call (two legs, RTP and RTCP each).
#[derive(Debug, Clone)]
pub struct Relay {
    legs: [LegState; 2],
    crypto: [Option<Box<LegSrtp>>; 2],
    /// Music on hold playing to a leg.
    music: [Option<Box<MusicPlayer>>; 2],
    /// Call recording, with the announcement to play when it starts (if the office announces recordings).
    recording: Option<Box<(Recorder, [Option<Music>; 2])>>,
    created: Instant,
}

/// Compare and store addresses in canonical form (an IPv4-mapped IPv6 source is the IPv4 address).
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// RTP on the RTP port (or RTCP multiplexed onto it, RFC 5761); RTCP on the RTCP port.
fn well_formed(kind: Kind, packet: &[u8]) -> bool {
    match kind {
        Kind::Rtp if is_rtcp(packet) => RtcpPacket::parse(packet).is_ok(),
        Kind::Rtp => RtpPacket::parse(packet).is_ok(),
        Kind::Rtcp => RtcpPacket::parse(packet).is_ok(),
    }
}

impl Relay {
    /// A relay with no peers known yet; `now` starts the idle clock.
    pub fn new(now: Instant) -> Self {
        Relay {
            legs: [LegState::default(); 2],
            crypto: [None, None],
            music: [None, None],
            recording: None,
            created: now,
        }
    }

    /// Set the peer a leg's SDP signalled, trusted as it is ([`Remote::exact`]): see [`Relay::set_remote`].
    pub fn update_remote(&mut self, leg: Leg, rtp: SocketAddr, rtcp: SocketAddr) {
        self.set_remote(leg, Remote::exact(rtp), Remote::exact(rtcp));
    }

    /// Set where a leg's media may come from and go to (initial offer/answer or a re-INVITE/UPDATE). A changed
    /// remote resets that kind's latch, so the next valid packet decides again; an unchanged one keeps it (a
    /// re-INVITE for hold does not break a NAT-latched stream).
    pub fn set_remote(&mut self, leg: Leg, rtp: Remote, rtcp: Remote) {
        for (kind, remote) in [(Kind::Rtp, rtp), (Kind::Rtcp, rtcp)] {
            let peer = &mut self.legs[leg.index()].peers[kind.index()];
            if peer.remote != Some(remote) {
                let next = remote.send_to();
                *peer = Peer {
                    remote: Some(remote),
                    latched: None,
                    decided: false,
                    previous: peer.current().filter(|p| Some(*p) != next),
                };
            }
        }
    }

    /// Turn SRTP on for `leg` with these keys (initial answer or a re-INVITE with new keys), or off with `None`.
    /// A direction whose key is unchanged keeps its state; a changed key starts a fresh context.
    pub fn set_crypto(&mut self, leg: Leg, crypto: Option<LegCrypto>) {
        let slot = &mut self.crypto[leg.index()];
        match (slot.as_mut(), crypto) {
            (Some(current), Some(keys)) => current.rekey(keys),
            (None, Some(keys)) => *slot = Some(Box::new(LegSrtp::new(keys))),
            (_, None) => *slot = None,
        }
    }

    /// The SRTP suite of `leg`, if it speaks SRTP.
    pub fn crypto(&self, leg: Leg) -> Option<Suite> {
        self.crypto[leg.index()].as_ref().map(|c| c.keys.suite)
    }

    /// Where the relay sends a leg's media of `kind` now (latched, else signalled when trusted).
    pub fn remote(&self, leg: Leg, kind: Kind) -> Option<SocketAddr> {
        self.legs[leg.index()].peers[kind.index()].current()
    }

    /// Decide what to do with `packet`, which arrived on `leg`'s `kind` port from `source` at `now`. With SRTP on
    /// either leg the packet is unprotected and/or protected in place: on `Forward`, send what `packet` holds.
    pub fn on_packet(
        &mut self,
        leg: Leg,
        kind: Kind,
        source: SocketAddr,
        packet: &mut Vec<u8>,
        now: Instant,
    ) -> Decision {
        let decision = self.decide(leg, kind, source, packet, now);
        if let Decision::Drop(reason) = decision {
            self.legs[leg.index()].stats.drops[reason as usize] += 1;
        }
        decision
    }

    fn decide(
        &mut self,
        leg: Leg,
        kind: Kind,
        source: SocketAddr,
        packet: &mut Vec<u8>,
        now: Instant,
    ) -> Decision {
        let peer = self.legs[leg.index()].peers[kind.index()];
        let Some(remote) = peer.remote else {
            return Decision::Drop(DropReason::NoRemote);
        };
        let source = canonical(source);
        let latch = if Some(source) == peer.current() {
            false
        } else if source.ip() != remote.expect {
            return Decision::Drop(DropReason::UnknownSource);
        } else if peer.decided || Some(source) == peer.previous {
            return Decision::Drop(DropReason::WrongPort);
        } else {
            true
        };
        let rtcp = kind == Kind::Rtcp || is_rtcp(packet);
        let len_in = packet.len() as u64;
        if let Some(srtp) = &mut self.crypto[leg.index()] {
            let unprotected = if rtcp {
                srtp.rx.unprotect_rtcp(packet)
            } else {
                srtp.rx.unprotect_rtp(packet)
            };
            if let Err(e) = unprotected {
                return Decision::Drop(DropReason::unprotect(e));
            }
        }
        if !well_formed(kind, packet) {
            return Decision::Drop(DropReason::Malformed);
        }

        let this = &mut self.legs[leg.index()];
        let p = &mut this.peers[kind.index()];
        if latch {
            p.latched = Some(source);
        }
        p.decided = true;
        this.stats.packets_in += 1;
        this.stats.bytes_in += len_in;
        this.stats.last_activity = Some(now);

        if !rtcp && let Some(rec) = &mut self.recording {
            let (recorder, notices) = rec.as_mut();
            if recorder.on_packet(leg, packet, now) {
                let (notices, seed) = (notices.clone(), recorder.toggles);
                self.announce(notices, seed, now);
            }
        }
        if !rtcp && self.music[leg.other().index()].is_some() {
            return Decision::Drop(DropReason::Held);
        }
        let other = &mut self.legs[leg.other().index()];
        let Some(to) = other.peers[kind.index()].current() else {
            return Decision::Drop(DropReason::NoDestination);
        };
        if let Some(srtp) = &mut self.crypto[leg.other().index()] {
            let protected = if rtcp {
                srtp.tx.protect_rtcp(packet)
            } else {
                srtp.tx.protect_rtp(packet)
            };
            if protected.is_err() {
                return Decision::Drop(DropReason::ProtectFailed);
            }
        }
        other.stats.packets_out += 1;
        other.stats.bytes_out += packet.len() as u64;
        Decision::Forward {
            to,
            via: (leg.other(), kind),
        }
    }

    /// Plays music to `leg` (on hold) in place of what the other leg sends, or stops it with `None`. RTCP still
    /// flows both ways.
    pub fn set_music(&mut self, leg: Leg, player: Option<MusicPlayer>) {
        self.music[leg.index()] = player.map(Box::new);
    }

    /// Records the call (both legs mixed) with `recorder`; `notices` (per leg, in its codec) are played when
    /// recording starts (now, if the recorder records from the start, and each time the feature code switches it
    /// on).
    pub fn set_recording(&mut self, recorder: Recorder, notices: [Option<Music>; 2], now: Instant) {
        if recorder.is_recording() {
            self.announce(notices.clone(), 0, now);
        }
        self.recording = Some(Box::new((recorder, notices)));
    }

    /// The recording so far, taken out of the relay (the call ended).
    pub fn take_recording(&mut self) -> Option<Recorder> {
        self.recording.take().map(|r| r.0)
    }

    /// Plays each leg's notice once (numbered from `seed`, so two announcements never share an SSRC).
    fn announce(&mut self, notices: [Option<Music>; 2], seed: u32, now: Instant) {
        for (leg, notice) in [Leg::A, Leg::B].into_iter().zip(notices) {
            let Some(notice) = notice else { continue };
            let ssrc = 0x7265_6300 ^ seed.wrapping_mul(2) ^ leg.index() as u32;
            self.music[leg.index()] = Some(Box::new(MusicPlayer::once(notice, ssrc, 0, 0, now)));
        }
    }

    /// Whether `leg` hears music now.
    pub fn music(&self, leg: Leg) -> bool {
        self.music[leg.index()].is_some()
    }

    /// When a music packet is next due on either leg.
    pub fn next_music_at(&self) -> Option<Instant> {
        self.music.iter().flatten().map(|p| p.next_due()).min()
    }

    /// The next music packet due at `now`, written into `packet` (protected for the leg when it speaks SRTP), and
    /// where to send it from which leg's RTP socket. `None` when nothing is due or the leg has nowhere to send
    /// yet (the packet is skipped: music keeps time, it is not queued). Call until `None`.
    pub fn poll_music(&mut self, now: Instant, packet: &mut Vec<u8>) -> Option<(Leg, SocketAddr)> {
        for leg in [Leg::A, Leg::B] {
            while let Some(bytes) = self.music[leg.index()]
                .as_mut()
                .and_then(|player| player.poll(now))
            {
                let Some(to) = self.legs[leg.index()].peers[Kind::Rtp.index()].current() else {
                    continue;
                };
                packet.clear();
                packet.extend_from_slice(&bytes);
                if let Some(srtp) = &mut self.crypto[leg.index()]
                    && srtp.tx.protect_rtp(packet).is_err()
                {
                    continue;
                }
                let stats = &mut self.legs[leg.index()].stats;
                stats.packets_out += 1;
                stats.bytes_out += packet.len() as u64;
                return Some((leg, to));
            }
            // An announcement that has played out gives the leg back to the other side's audio.
            if self.music[leg.index()]
                .as_ref()
                .is_some_and(|p| p.finished())
            {
                self.music[leg.index()] = None;
            }
        }
        None
    }

    pub fn stats(&self, leg: Leg) -> &LegStats {
        &self.legs[leg.index()].stats
    }

    /// How long `leg` has sent nothing acceptable (since the relay was created, if never).
    pub fn leg_idle_for(&self, leg: Leg, now: Instant) -> Duration {
        let since = self.legs[leg.index()]
            .stats
            .last_activity
            .unwrap_or(self.created);
        now.saturating_duration_since(since)
    }

    /// The media timeout's input: the longer of the two legs' idle times, so a phone that vanished mid-call is
    /// noticed even while the other keeps talking. RTCP counts as activity (a held stream keeps sending it).
    pub fn idle_for(&self, now: Instant) -> Duration {
        self.leg_idle_for(Leg::A, now)
            .max(self.leg_idle_for(Leg::B, now))
    }
}

#[cfg(test)]
mod tests;
