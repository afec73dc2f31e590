//! The relay as the call layer sees it: point each leg of an open session at its phone, ask how long it has been
//! silent, release it. Opening a session (binding sockets, starting a task) is the edge's job, asked for with
//! [`super::CallOutput::AllocateMedia`] and answered with [`super::Calls::media_ready`]; nothing here may block or
//! do I/O, since the endpoint calls it under the edge's lock. The binary implements it over its socket relay;
//! tests use a fake.

use std::net::IpAddr;
use std::time::{Duration, Instant};

/// One side of a call: A is the caller, B the callee.
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
}

/// A relay session (the media of one call).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MediaId(pub u64);

/// Music on hold for a held leg: whose callers they are (the holding extension's music setting applies; `None` for
/// a trunk's caller holding: the default music) and the G.711 payload type the held phone accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldMusic {
    pub holder: Option<String>,
    /// 0 (PCMU) or 8 (PCMA), from the held phone's answer.
    pub payload_type: u8,
}

/// A call between two parties was answered: what the relay needs to record it if the parties' settings say so
/// (the edge decides, from the extensions' recording settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answered {
    /// The caller's Call-ID (the call record's key).
    pub call_id: String,
    pub caller: String,
    pub callee: String,
    /// Whether each party (A, B) is one of this PBX's extensions.
    pub extensions: [bool; 2],
    /// The G.711 payload type each leg agreed on (for an announcement), if any.
    pub payload_type: [Option<u8>; 2],
    /// The telephone-event payload type each leg agreed on (for the on-demand feature code).
    pub dtmf_payload_type: [Option<u8>; 2],
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    #[error("no free media ports")]
    Exhausted,
    #[error("media relay error: {0}")]
    Other(String),
}

pub trait MediaControl {
    /// The relay's RTP port for `leg` (RTCP is the next port).
    fn local_port(&self, id: MediaId, leg: Leg) -> Option<u16>;
    /// The address to write in SDP for the relay.
    fn advertise_ip(&self) -> IpAddr;
    /// Where `leg`'s media may come from and go to, per stream, decided by [`::media::nat::remote_for`] from its
    /// SDP and signalling source; the relay accepts media on that leg only from the expected IP.
    fn set_remote(&mut self, id: MediaId, leg: Leg, rtp: ::media::Remote, rtcp: ::media::Remote);
    /// How long since the relay last saw media from either phone; `None` before any media.
    fn idle_for(&self, id: MediaId, now: Instant) -> Option<Duration>;
    /// SRTP keys of `leg` (what its phone encrypts with, and what Palisade encrypts with toward it), or plain RTP.
    fn set_crypto(&mut self, id: MediaId, leg: Leg, crypto: Option<::media::LegCrypto>);
    /// Gives the ports back.
    fn release(&mut self, id: MediaId);
    /// Plays music on hold to `leg` (in place of what the other leg sends), or stops it with `None`. A relay
    /// without music (tests) ignores it.
    fn set_music(&mut self, _id: MediaId, _leg: Leg, _music: Option<HoldMusic>) {}
    /// The call on session `id` was answered (recording may start). A relay without recording ignores it.
    fn answered(&mut self, _id: MediaId, _call: Answered) {}
    /// Whether a relay opens ports when asked ([`super::CallOutput::AllocateMedia`]); without one every request
    /// for ports fails at once.
    fn has_relay(&self) -> bool {
        true
    }
}

/// No relay (unit tests of the endpoint): the endpoint answers its own requests for ports with
/// [`MediaError::Exhausted`], so every call is refused with 503.
pub struct NoMedia;

impl MediaControl for NoMedia {
    fn has_relay(&self) -> bool {
        false
    }
    fn local_port(&self, _: MediaId, _: Leg) -> Option<u16> {
        None
    }
    fn advertise_ip(&self) -> IpAddr {
        IpAddr::from([127, 0, 0, 1])
    }
    fn set_remote(&mut self, _: MediaId, _: Leg, _: ::media::Remote, _: ::media::Remote) {}
    fn idle_for(&self, _: MediaId, _: Instant) -> Option<Duration> {
        None
    }
    fn set_crypto(&mut self, _: MediaId, _: Leg, _: Option<::media::LegCrypto>) {}
    fn release(&mut self, _: MediaId) {}
}
