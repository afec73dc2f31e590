//! The SDP work of the B2BUA: where a phone wants its audio, and the same session description pointed at the
//! relay. Built on [`media::sdp`].

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use media::sdp::Sdp;

/// The first active audio stream's RTP and RTCP addresses (`None` on hold with `c=0.0.0.0`, or without audio).
pub fn endpoint(body: &[u8]) -> Option<(SocketAddr, SocketAddr)> {
    let sdp = Sdp::parse_bytes(body).ok()?;
    let index = first_audio(&sdp)?;
    sdp.endpoint(index).map(|e| (e.rtp, e.rtcp))
}

/// Whether the body is an SDP with an active audio stream (a usable offer).
pub fn has_audio(body: &[u8]) -> bool {
    Sdp::parse_bytes(body)
        .ok()
        .is_some_and(|s| first_audio(&s).is_some())
}

/// The SDES side of a description's first active audio stream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Security {
    /// The profile is RTP/SAVP (or another SAVP profile).
    pub savp: bool,
    /// The `a=crypto` values offered or answered.
    pub crypto: Vec<String>,
}

pub fn security(body: &[u8]) -> Security {
    let Ok(sdp) = Sdp::parse_bytes(body) else {
        return Security::default();
    };
    let Some(index) = first_audio(&sdp) else {
        return Security::default();
    };
    let m = &sdp.media[index];
    Security {
        savp: m.proto.to_ascii_uppercase().contains("SAVP"),
        crypto: m.crypto().map(str::to_string).collect(),
    }
}

/// Like [`rewrite`], and sets the audio stream's profile and keys: RTP/SAVP with `crypto` when given, plain
/// RTP/AVP without any `a=crypto` otherwise (a plain leg never sees the other leg's keys).
pub fn rewrite_with_crypto(
    body: &[u8],
    ip: IpAddr,
    port: u16,
    crypto: &[media::sdes::CryptoAttribute],
) -> Option<Bytes> {
    let mut sdp = Sdp::parse_bytes(body).ok()?;
    relay_only_audio(&mut sdp);
    sdp.rewrite_media_addresses(ip, &[port]).ok()?;
    set_crypto(&mut sdp, crypto);
    Some(Bytes::from(sdp.to_text()))
}

/// Like [`answer_for`], with the answer's profile and keys set as in [`rewrite_with_crypto`].
pub fn answer_for_with_crypto(
    answer: &[u8],
    offer: &[u8],
    ip: IpAddr,
    port: u16,
    crypto: &[media::sdes::CryptoAttribute],
) -> Option<Bytes> {
    let offer = Sdp::parse_bytes(offer).ok()?;
    let mut answer = Sdp::parse_bytes(answer).ok()?;
    if !media::sdp::has_common_codec(&offer, &answer) {
        return None;
    }
    media::sdp::restrict_to_offer(&mut answer, &offer);
    relay_only_audio(&mut answer);
    answer.rewrite_media_addresses(ip, &[port]).ok()?;
    set_crypto(&mut answer, crypto);
    Some(Bytes::from(answer.to_text()))
}

fn set_crypto(sdp: &mut Sdp, crypto: &[media::sdes::CryptoAttribute]) {
    let Some(index) = first_audio(sdp) else {
        return;
    };
    let m = &mut sdp.media[index];
    m.lines.retain(
        |l| !matches!(l, media::sdp::Line::Attribute(a) if a.name.eq_ignore_ascii_case("crypto")),
    );
    m.proto = if crypto.is_empty() {
        "RTP/AVP".into()
    } else {
        "RTP/SAVP".into()
    };
    for c in crypto {
        m.lines
            .push(media::sdp::Line::Attribute(media::sdp::Attribute::new(
                "crypto",
                c.to_string(),
            )));
    }
}

fn first_audio(sdp: &Sdp) -> Option<usize> {
    sdp.media
        .iter()
        .position(|m| m.kind.eq_ignore_ascii_case("audio") && m.is_active())
}

/// Refuses (port 0) every stream but the first active audio one: one relayed stream per call. Also removes the
/// source descriptions (`a=ssrc`, `a=ssrc-group`, `a=msid`), whose CNAME often names the phone's own address:
/// neither side learns anything about the other beyond the codecs.
fn relay_only_audio(sdp: &mut Sdp) {
    let keep = first_audio(sdp);
    for (i, m) in sdp.media.iter_mut().enumerate() {
        if Some(i) != keep {
            m.port = 0;
        }
        m.lines.retain(|l| {
            !matches!(l, media::sdp::Line::Attribute(a)
                if ["ssrc", "ssrc-group", "msid"].iter().any(|n| a.name.eq_ignore_ascii_case(n)))
        });
    }
}
