//! Palisade's media layer, sans-IO: the SDP model and the rewrites a B2BUA needs ([`sdp`]), zero-copy RTP/RTCP
//! header views and RFC 4733 events ([`rtp`]), the per-call relay core that decides where each datagram goes and
//! refuses RTP bleed ([`relay`]) toward the peer decided from SDP and signalling source ([`nat`]), and the UDP port pool ([`pool`]). For the media the PBX terminates itself
//! (voicemail, prompts): G.711 ([`g711`]), 8 kHz WAV files ([`wav`]), DTMF from RTP and SIP INFO ([`dtmf`]),
//! tones and their detection ([`tone`]), outgoing RTP ([`packetizer`]) and the compiled-in spoken prompts
//! ([`prompts`]). No sockets and no clocks in here: the tokio edge lives in the `palisade` crate (`palisade::media`) and passes `now` in (docs/architecture.md, principle 7: time is an input).
#![forbid(unsafe_code)]

pub mod convert;
pub mod dtmf;
pub mod g711;
pub mod mixer;
pub mod moh;
pub mod nat;
pub mod packetizer;
pub mod pool;
pub mod prompts;
pub mod recorder;
pub mod relay;
pub mod rtp;
pub mod sdes;
pub mod sdp;
pub mod srtp;
pub mod tone;
pub mod wav;

pub use nat::{Remote, Trust};
pub use pool::{PoolError, PortPool};
pub use relay::{Decision, DropReason, Kind, Leg, LegCrypto, LegStats, Relay};
pub use sdp::{Sdp, SdpError};
