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

/// The description with its audio stream made two-way (`a=sendrecv`, any session-level direction removed): the
/// offer to a transfer target, whatever hold the transferor had put the call on.
pub fn sendrecv(body: &[u8]) -> Option<Bytes> {
    let mut sdp = Sdp::parse_bytes(body).ok()?;
    sdp.session_lines.retain(|l| {
        !matches!(l, media::sdp::Line::Attribute(a)
            if a.value.is_none() && media::sdp::Direction::from_name(&a.name).is_some())
    });
    let index = first_audio(&sdp)?;
    sdp.media[index].set_direction(media::sdp::Direction::SendRecv);
    Some(Bytes::from(sdp.to_text()))
}

/// Whether the first audio stream of a description is two-way: `sendrecv` (its own direction, else the
/// session's) toward a real address (not the `c=0.0.0.0` of RFC 2543 hold). False for what does not parse.
pub fn is_two_way(body: &[u8]) -> bool {
    let Ok(sdp) = Sdp::parse_bytes(body) else {
        return false;
    };
    let Some(index) = first_audio(&sdp) else {
        return false;
    };
    sdp.media_direction(index) == media::sdp::Direction::SendRecv && sdp.endpoint(index).is_some()
}

/// Palisade's own offer to take a leg off hold: the codecs of `agreed` (the other party's answer), two-way,
/// pointed at the relay (`ip`, `port`) with `crypto` as in [`rewrite_with_crypto`]. The origin is the one of
/// `previous` (the description Palisade last sent that leg) with its version incremented (RFC 3264 §8); without
/// one, the origin of `agreed`, incremented.
pub fn resume_offer(
    agreed: &[u8],
    previous: Option<&[u8]>,
    ip: IpAddr,
    port: u16,
    crypto: &[media::sdes::CryptoAttribute],
) -> Option<Bytes> {
    let two_way = sendrecv(agreed)?;
    let mut sdp = Sdp::parse_bytes(&two_way).ok()?;
    relay_only_audio(&mut sdp);
    sdp.rewrite_media_addresses(ip, &[port]).ok()?;
    set_crypto(&mut sdp, crypto);
    let mut origin = previous
        .and_then(|p| Sdp::parse_bytes(p).ok())
        .map(|p| p.origin)
        .unwrap_or_else(|| sdp.origin.clone());
    origin.session_version = origin.session_version.saturating_add(1);
    origin.addr_type = media::sdp::AddrType::of(ip);
    origin.address = ip.to_string();
    sdp.origin = origin;
    Some(Bytes::from(sdp.to_text()))
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
/// neither side learns anything about the other beyond the codecs. A refused stream also loses its `a=crypto`
/// keys: they are the other phone's, and a secure phone's video keys must not reach a plain-transport callee
/// (nor make the call fail at the last gate that stops keys in clear).
fn relay_only_audio(sdp: &mut Sdp) {
    let keep = first_audio(sdp);
    for (i, m) in sdp.media.iter_mut().enumerate() {
        let refused = Some(i) != keep;
        if refused {
            m.port = 0;
        }
        m.lines.retain(|l| {
            !matches!(l, media::sdp::Line::Attribute(a)
                if ["ssrc", "ssrc-group", "msid"].iter().any(|n| a.name.eq_ignore_ascii_case(n))
                    || (refused && a.name.eq_ignore_ascii_case("crypto")))
        });
    }
}

/// What a media application (voicemail) speaks with the caller: G.711 and, when offered, RFC 4733 events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppCodec {
    /// 0 (PCMU) or 8 (PCMA).
    pub payload_type: u8,
    /// The offer's `telephone-event/8000` payload type.
    pub dtmf_payload_type: Option<u8>,
}

/// The first of PCMU and PCMA in the offer's order (static payload types need no rtpmap), with its
/// telephone-event payload type. `None` when the offer has neither: Palisade does not transcode.
pub fn app_codec(offer: &[u8]) -> Option<AppCodec> {
    let sdp = Sdp::parse_bytes(offer).ok()?;
    let m = &sdp.media[first_audio(&sdp)?];
    let payload_type = m
        .formats
        .iter()
        .filter_map(|f| f.parse::<u8>().ok())
        .find(|pt| matches!(pt, 0 | 8))?;
    let dtmf_payload_type = m
        .rtpmaps()
        .find(|r| r.encoding.eq_ignore_ascii_case("telephone-event") && r.clock_rate == 8000)
        .map(|r| r.payload_type);
    Some(AppCodec {
        payload_type,
        dtmf_payload_type,
    })
}

/// The session description of a media application listening at `addr`, as if it were the callee's answer.
pub fn app_description(addr: SocketAddr, codec: AppCodec) -> Bytes {
    let (net, ip) = match addr.ip() {
        IpAddr::V4(v4) => ("IP4", v4.to_string()),
        IpAddr::V6(v6) => ("IP6", v6.to_string()),
    };
    let name = if codec.payload_type == 0 {
        "PCMU"
    } else {
        "PCMA"
    };
    let mut formats = codec.payload_type.to_string();
    let mut attributes = format!("a=rtpmap:{} {name}/8000\r\n", codec.payload_type);
    if let Some(pt) = codec.dtmf_payload_type {
        formats.push_str(&format!(" {pt}"));
        attributes.push_str(&format!(
            "a=rtpmap:{pt} telephone-event/8000\r\na=fmtp:{pt} 0-15\r\n"
        ));
    }
    Bytes::from(format!(
        "v=0\r\no=palisade 1 1 IN {net} {ip}\r\ns=palisade\r\nc=IN {net} {ip}\r\nt=0 0\r\n\
         m=audio {} RTP/AVP {formats}\r\n{attributes}a=ptime:20\r\na=sendrecv\r\n",
        addr.port()
    ))
}

#[cfg(test)]
mod app_tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
        m=audio 4000 RTP/AVP 9 8 0 101\r\na=rtpmap:9 G722/8000\r\na=rtpmap:101 telephone-event/8000\r\n";

    #[test]
    fn app_speaks_the_first_g711_of_the_offer() {
        let c = app_codec(OFFER.as_bytes()).expect("codec");
        assert_eq!(c.payload_type, 8);
        assert_eq!(c.dtmf_payload_type, Some(101));
        let no_g711 = OFFER.replace("9 8 0 101", "9 101");
        assert_eq!(app_codec(no_g711.as_bytes()), None);
    }

    #[test]
    fn app_description_answers_the_offer() {
        let c = app_codec(OFFER.as_bytes()).expect("codec");
        let d = app_description("127.0.0.1:5000".parse().unwrap(), c);
        let answer = answer_for_with_crypto(
            &d,
            OFFER.as_bytes(),
            "192.0.2.1".parse().unwrap(),
            30000,
            &[],
        )
        .expect("answer");
        let text = String::from_utf8_lossy(&answer);
        assert!(text.contains("m=audio 30000 RTP/AVP 8 101"), "{text}");
        assert!(text.contains("c=IN IP4 192.0.2.1"), "{text}");
        assert_eq!(endpoint(&d).map(|e| e.0.port()), Some(5000));
    }

    #[test]
    fn a_refused_video_stream_carries_no_keys_to_a_plain_leg() {
        let offer = "v=0\r\no=- 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n\
            m=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 \
            inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n\
            m=video 4002 RTP/SAVP 96\r\na=rtpmap:96 VP8/90000\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 \
            inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj\r\n";
        let plain = rewrite_with_crypto(offer.as_bytes(), "192.0.2.1".parse().unwrap(), 30000, &[])
            .expect("rewritten");
        assert!(
            !media::sdes::body_has_keys(&plain),
            "{}",
            String::from_utf8_lossy(&plain)
        );
        let text = String::from_utf8_lossy(&plain);
        assert!(text.contains("m=video 0 "), "{text}");
        assert!(text.contains("m=audio 30000 RTP/AVP 0"), "{text}");
    }
}
