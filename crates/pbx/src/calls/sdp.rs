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

/// The same description with its audio pointed at `ip:port` (other streams refused: one relayed stream per
/// call), as sent to the other leg.
pub fn rewrite(body: &[u8], ip: IpAddr, port: u16) -> Option<Bytes> {
    let mut sdp = Sdp::parse_bytes(body).ok()?;
    relay_only_audio(&mut sdp);
    sdp.rewrite_media_addresses(ip, &[port]).ok()?;
    Some(Bytes::from(sdp.to_text()))
}

/// The callee's answer as the caller may receive it: only formats of the caller's offer, pointed at
/// `ip:port`. `None` when nothing but telephone-event is left in common.
pub fn answer_for(answer: &[u8], offer: &[u8], ip: IpAddr, port: u16) -> Option<Bytes> {
    let offer = Sdp::parse_bytes(offer).ok()?;
    let mut answer = Sdp::parse_bytes(answer).ok()?;
    if !media::sdp::has_common_codec(&offer, &answer) {
        return None;
    }
    media::sdp::restrict_to_offer(&mut answer, &offer);
    relay_only_audio(&mut answer);
    answer.rewrite_media_addresses(ip, &[port]).ok()?;
    Some(Bytes::from(answer.to_text()))
}

fn first_audio(sdp: &Sdp) -> Option<usize> {
    sdp.media
        .iter()
        .position(|m| m.kind.eq_ignore_ascii_case("audio") && m.is_active())
}

/// Refuses (port 0) every stream but the first active audio one.
fn relay_only_audio(sdp: &mut Sdp) {
    let keep = first_audio(sdp);
    for (i, m) in sdp.media.iter_mut().enumerate() {
        if Some(i) != keep {
            m.port = 0;
        }
    }
}
