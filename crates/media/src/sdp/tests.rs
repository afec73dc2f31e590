use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::*;

/// baresip 3.x offering its default audio codecs (opus, G.722, G.711) and RFC 4733 events.
const BARESIP: &str = "v=0\r\n\
o=- 1256541370 3591658963 IN IP4 192.168.1.10\r\n\
s=-\r\n\
c=IN IP4 192.168.1.10\r\n\
t=0 0\r\n\
a=tool:baresip 3.10.1\r\n\
m=audio 10000 RTP/AVP 96 9 0 8 101\r\n\
b=AS:128\r\n\
a=rtpmap:96 opus/48000/2\r\n\
a=fmtp:96 stereo=1;sprop-stereo=1\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=sendrecv\r\n\
a=label:1\r\n\
a=ssrc:1585449120 cname:5a1d9b71-2a0c-4d55-93b8-4a1d8e3c0b7e\r\n\
a=rtcp-rsize\r\n\
a=ptime:20\r\n";

/// The minimal baresip-style G.711 offer from the brief.
const BARESIP_G711: &str = "v=0\r\n\
o=- 3706181112 1498263212 IN IP4 127.0.0.1\r\n\
s=-\r\n\
c=IN IP4 127.0.0.1\r\n\
t=0 0\r\n\
m=audio 10000 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=sendrecv\r\n\
a=ptime:20\r\n";

/// sipp's built-in uac scenario (`-sn uac`): PCMU only, no rtpmap needed for a static type... but it sends one.
const SIPP_UAC: &str = "v=0\r\n\
o=user1 53655765 2353687637 IN IP4 127.0.0.1\r\n\
s=-\r\n\
c=IN IP4 127.0.0.1\r\n\
t=0 0\r\n\
m=audio 6000 RTP/AVP 0\r\n\
a=rtpmap:0 PCMU/8000\r\n";

/// sipp's uac_pcap scenario: PCMA with telephone-event 0-11,16.
const SIPP_PCAP: &str = "v=0\r\n\
o=user1 53655765 2353687637 IN IP4 127.0.0.1\r\n\
s=-\r\n\
c=IN IP4 127.0.0.1\r\n\
t=0 0\r\n\
m=audio 6000 RTP/AVP 8 101\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-11,16\r\n";

/// A wideband softphone over IPv6 with SRTP (SDES), media-level c=, a=rtcp with an address.
const IPV6_SAVP: &str = "v=0\r\n\
o=linphone 1234 5678 IN IP6 2001:db8::10\r\n\
s=Talk\r\n\
i=a call\r\n\
t=0 0\r\n\
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics\r\n\
m=audio 7078 RTP/SAVP 111 9 101\r\n\
c=IN IP6 2001:db8::10\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=fmtp:111 useinbandfec=1\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:101 telephone-event/48000\r\n\
a=rtcp:7079 IN IP6 2001:db8::11\r\n\
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVzcyAoc2VtY3Rs|2^20|1:32\r\n\
a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj|2^20|1:32\r\n\
a=ptime:20\r\n";

fn parse(text: &str) -> Sdp {
    match Sdp::parse(text) {
        Ok(s) => s,
        Err(e) => panic!("{e}\n{text}"),
    }
}

#[test]
fn round_trip_is_faithful() {
    for text in [BARESIP, BARESIP_G711, SIPP_UAC, SIPP_PCAP, IPV6_SAVP] {
        assert_eq!(parse(text).to_string(), text);
    }
}

#[test]
fn lf_line_ends_parse_and_write_as_crlf() {
    let lf = BARESIP.replace("\r\n", "\n");
    assert_eq!(parse(&lf).to_string(), BARESIP);
    let trailing_blank = format!("{SIPP_UAC}\r\n");
    assert_eq!(parse(&trailing_blank).to_string(), SIPP_UAC);
}

#[test]
fn baresip_offer_accessors() {
    let sdp = parse(BARESIP);
    assert_eq!(sdp.origin.session_version, 3591658963);
    assert_eq!(
        sdp.connection().and_then(Connection::ip),
        Some(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 10)))
    );
    assert_eq!(sdp.attribute("tool"), Some("baresip 3.10.1"));
    let m = &sdp.media[0];
    assert_eq!(
        (m.kind.as_str(), m.port, m.proto.as_str()),
        ("audio", 10000, "RTP/AVP")
    );
    assert_eq!(m.formats, ["96", "9", "0", "8", "101"]);
    assert_eq!(m.ptime(), Some(20));
    assert_eq!(m.direction(), Some(Direction::SendRecv));
    assert_eq!(m.fmtp("101"), Some("0-15"));
    assert_eq!(m.fmtp("96"), Some("stereo=1;sprop-stereo=1"));
    let opus = m.rtpmap("96").unwrap();
    assert_eq!(
        (opus.encoding, opus.clock_rate, opus.channels),
        ("opus", 48000, Some(2))
    );
    assert_eq!(m.rtpmaps().count(), 5);
    assert!(m.codec("101").unwrap().is_telephone_event());
    assert_eq!(m.rtcp(), None);
    assert_eq!(m.crypto().count(), 0);
    assert_eq!(
        sdp.endpoint(0),
        Some(Endpoint {
            rtp: "192.168.1.10:10000".parse().unwrap(),
            rtcp: "192.168.1.10:10001".parse().unwrap()
        })
    );
    assert!(!sdp.is_on_hold());
}

#[test]
fn static_payload_type_without_rtpmap_is_known() {
    let sdp = parse(&SIPP_UAC.replace("a=rtpmap:0 PCMU/8000\r\n", ""));
    let c = sdp.media[0].codec("0").unwrap();
    assert_eq!((c.encoding, c.clock_rate, c.channels), ("PCMU", 8000, 1));
    assert_eq!(sdp.media[0].codec("9").unwrap().encoding, "G722");
    assert_eq!(sdp.media[0].codec("96"), None);
}

#[test]
fn ipv6_srtp_offer() {
    let sdp = parse(IPV6_SAVP);
    assert_eq!(sdp.origin.addr_type, AddrType::Ip6);
    assert_eq!(sdp.connection(), None);
    let m = &sdp.media[0];
    assert_eq!(m.proto, "RTP/SAVP");
    assert_eq!(m.crypto().count(), 2);
    assert!(
        m.crypto()
            .next()
            .unwrap()
            .starts_with("1 AES_CM_128_HMAC_SHA1_80 inline:")
    );
    let rtcp = m.rtcp().unwrap();
    assert_eq!(rtcp.port, 7079);
    assert_eq!(rtcp.connection.unwrap().address, "2001:db8::11");
    assert_eq!(
        sdp.endpoint(0),
        Some(Endpoint {
            rtp: "[2001:db8::10]:7078".parse().unwrap(),
            rtcp: "[2001:db8::11]:7079".parse().unwrap()
        })
    );
    assert_eq!(
        sdp.session_lines[0],
        Line::Other {
            kind: 'i',
            value: "a call".into()
        }
    );
}

#[test]
fn errors_name_the_line() {
    let cases: &[(&str, SdpError)] = &[
        ("", SdpError::Empty),
        ("o=- 1 1 IN IP4 1.2.3.4\r\n", SdpError::Missing('v')),
        (
            "v=1\r\n",
            SdpError::BadLine {
                line: 1,
                kind: 'v',
                reason: "version must be 0",
            },
        ),
        ("v=0\r\ns=-\r\n", SdpError::Missing('o')),
        (
            "v=0\r\no=- x 1 IN IP4 1.2.3.4\r\ns=-\r\n",
            SdpError::BadLine {
                line: 2,
                kind: 'o',
                reason: "session id must be numeric",
            },
        ),
        (
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP5 1.2.3.4\r\n",
            SdpError::BadLine {
                line: 4,
                kind: 'c',
                reason: "address type must be IP4 or IP6",
            },
        ),
        (
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 ::1\r\n",
            SdpError::BadLine {
                line: 4,
                kind: 'c',
                reason: "address does not match its address type",
            },
        ),
        (
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nm=audio 70000 RTP/AVP 0\r\n",
            SdpError::BadLine {
                line: 5,
                kind: 'm',
                reason: "port must be 0-65535",
            },
        ),
        (
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP\r\n",
            SdpError::BadLine {
                line: 5,
                kind: 'm',
                reason: "no formats",
            },
        ),
        (
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU\r\n",
            SdpError::BadLine {
                line: 6,
                kind: 'a',
                reason: "expected `rtpmap:<pt> <encoding>/<clock rate>[/<channels>]`",
            },
        ),
        (
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nm=audio 4000 RTP/AVP 0\r\n",
            SdpError::NoConnection { line: 4 },
        ),
        (
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\n\r\nt=0 0\r\n",
            SdpError::Malformed {
                line: 4,
                reason: "empty line inside the description",
            },
        ),
        (
            "v=0\r\nhello\r\n",
            SdpError::Malformed {
                line: 2,
                reason: "not a `<letter>=<value>` line",
            },
        ),
        (
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\x00\r\n",
            SdpError::Malformed {
                line: 2,
                reason: "control character",
            },
        ),
    ];
    for (text, want) in cases {
        assert_eq!(
            Sdp::parse_bytes(text.as_bytes()).as_ref(),
            Err(want),
            "{text:?}"
        );
    }
    assert_eq!(
        Sdp::parse_bytes(b"v=0\r\no=- 1 1 IN IP4 \xff\r\n"),
        Err(SdpError::Malformed {
            line: 2,
            reason: "not valid UTF-8"
        })
    );
    let e = Sdp::parse(
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nm=audio x RTP/AVP 0\r\n",
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "line 5 (`m=`): port must be 0-65535");
}

#[test]
fn limits_are_enforced() {
    let big = format!("v=0\r\n{}", "a=x\r\n".repeat(MAX_SDP_LEN / 5 + 1));
    assert_eq!(
        Sdp::parse(&big),
        Err(SdpError::TooLarge { limit: MAX_SDP_LEN })
    );
    let many = format!(
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\n{}",
        "a=x\r\n".repeat(MAX_LINES)
    );
    assert_eq!(
        Sdp::parse(&many),
        Err(SdpError::TooManyLines { limit: MAX_LINES })
    );
    let media = format!(
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\n{}",
        "m=audio 0 RTP/AVP 0\r\n".repeat(MAX_MEDIA + 1)
    );
    assert_eq!(
        Sdp::parse(&media),
        Err(SdpError::TooManyMedia { limit: MAX_MEDIA })
    );
}

#[test]
fn garbage_never_panics() {
    let mut seed = 0x2545_f491_u32;
    let base = BARESIP.as_bytes();
    for _ in 0..5000 {
        let mut bytes = base.to_vec();
        for _ in 0..4 {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let i = seed as usize % bytes.len();
            bytes[i] = (seed >> 8) as u8;
        }
        if let Ok(sdp) = Sdp::parse_bytes(&bytes) {
            let text = sdp.to_string();
            assert_eq!(
                Sdp::parse(&text).map(|s| s.to_string()).as_deref(),
                Ok(text.as_str())
            );
        }
        let cut = seed as usize % base.len();
        let _ = Sdp::parse_bytes(&base[..cut]);
    }
}

#[test]
fn rewrite_points_media_at_the_relay() {
    let mut sdp = parse(IPV6_SAVP);
    let relay: IpAddr = "203.0.113.5".parse().unwrap();
    sdp.rewrite_media_addresses(relay, &[40000]).unwrap();
    sdp.bump_version();
    let text = sdp.to_string();
    assert!(
        text.contains("o=linphone 1234 5679 IN IP4 203.0.113.5\r\n"),
        "{text}"
    );
    assert!(
        text.contains("s=Talk\r\ni=a call\r\nc=IN IP4 203.0.113.5\r\nt=0 0\r\n"),
        "{text}"
    );
    assert!(
        text.contains("m=audio 40000 RTP/SAVP 111 9 101\r\n"),
        "{text}"
    );
    assert!(
        text.contains("a=rtcp:40001 IN IP4 203.0.113.5\r\n"),
        "{text}"
    );
    assert!(!text.contains("2001:db8"), "{text}");
    assert_eq!(
        sdp.media[0].crypto().count(),
        2,
        "keys are the SRTP layer's business"
    );
    let e = sdp.endpoint(0).unwrap();
    assert_eq!(e.rtp, SocketAddr::new(relay, 40000));
    assert_eq!(e.rtcp, SocketAddr::new(relay, 40001));
    assert_eq!(Sdp::parse(&text).unwrap(), sdp);
}

#[test]
fn rewrite_skips_rejected_streams_and_strips_ice() {
    let text = "v=0\r\n\
o=- 1 1 IN IP4 10.0.0.2\r\n\
s=-\r\n\
t=0 0\r\n\
a=ice-ufrag:abcd\r\n\
m=audio 5004 RTP/AVP 0\r\n\
c=IN IP4 10.0.0.2\r\n\
a=candidate:1 1 udp 2130706431 10.0.0.2 5004 typ host\r\n\
a=rtcp:5005\r\n\
m=video 0 RTP/AVP 31\r\n\
c=IN IP4 10.0.0.2\r\n\
m=audio 6004 RTP/AVP 8\r\n\
c=IN IP4 10.0.0.3\r\n";
    let mut sdp = parse(text);
    let relay: IpAddr = "192.0.2.1".parse().unwrap();
    assert_eq!(
        sdp.rewrite_media_addresses(relay, &[30000]),
        Err(RewriteError::NotEnoughPorts {
            active: 2,
            given: 1
        })
    );
    sdp.rewrite_media_addresses(relay, &[30000, 30002]).unwrap();
    let out = sdp.to_string();
    assert_eq!(
        out,
        "v=0\r\n\
o=- 1 1 IN IP4 192.0.2.1\r\n\
s=-\r\n\
c=IN IP4 192.0.2.1\r\n\
t=0 0\r\n\
m=audio 30000 RTP/AVP 0\r\n\
a=rtcp:30001\r\n\
m=video 0 RTP/AVP 31\r\n\
c=IN IP4 10.0.0.2\r\n\
m=audio 30002 RTP/AVP 8\r\n"
    );
}

#[test]
fn rewrite_keeps_rfc2543_hold() {
    let mut sdp = parse(&SIPP_UAC.replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0"));
    assert!(sdp.is_on_hold());
    assert_eq!(sdp.endpoint(0), None);
    sdp.rewrite_media_addresses("192.0.2.1".parse().unwrap(), &[30000])
        .unwrap();
    assert!(sdp.is_on_hold(), "{sdp}");
    assert_eq!(sdp.connection().unwrap().address, "192.0.2.1");
}

#[test]
fn hold_detection() {
    let base = parse(BARESIP_G711);
    assert!(!base.is_on_hold());
    for (dir, held) in [
        ("sendonly", true),
        ("inactive", true),
        ("recvonly", false),
        ("sendrecv", false),
    ] {
        let sdp = parse(&BARESIP_G711.replace("a=sendrecv", &format!("a={dir}")));
        assert_eq!(sdp.is_on_hold(), held, "{dir}");
        assert_eq!(sdp.media_on_hold(0), held, "{dir}");
    }
    // Session-level direction applies to streams without their own.
    let session = BARESIP_G711
        .replace("a=sendrecv\r\n", "")
        .replace("t=0 0\r\n", "t=0 0\r\na=sendonly\r\n");
    assert!(parse(&session).is_on_hold());
    // A rejected stream alone is not hold.
    let rejected = SIPP_UAC.replace("m=audio 6000", "m=audio 0");
    assert!(!parse(&rejected).is_on_hold());
    // Direction attributes take no value.
    assert!(Sdp::parse(&BARESIP_G711.replace("a=sendrecv", "a=sendonly:1")).is_err());

    let mut resumed = parse(&BARESIP_G711.replace("a=sendrecv", "a=sendonly"));
    resumed.media[0].set_direction(Direction::SendRecv);
    assert!(!resumed.is_on_hold());
    assert_eq!(
        resumed.media[0]
            .attributes()
            .filter(|a| a.name.starts_with("send"))
            .count(),
        1
    );
}

#[test]
fn restrict_answer_to_the_offer() {
    let offer = parse(BARESIP_G711); // PCMU, PCMA, telephone-event/8000
    let mut answer = parse(BARESIP); // opus, G722, PCMU, PCMA, telephone-event/8000
    assert_eq!(
        intersect(&offer.media[0], &answer.media[0]),
        ["0", "8", "101"]
    );
    assert!(has_common_codec(&offer, &answer));
    restrict_to_offer(&mut answer, &offer);
    let m = &answer.media[0];
    assert_eq!(m.formats, ["0", "8", "101"]);
    assert_eq!(
        m.rtpmaps().map(|r| r.payload_type).collect::<Vec<_>>(),
        [0, 8, 101]
    );
    assert_eq!(m.fmtp("96"), None);
    assert_eq!(m.fmtp("101"), Some("0-15"));
    assert_eq!(m.ptime(), Some(20));
    assert_eq!(m.attribute("label"), Some("1"));
}

#[test]
fn dynamic_payload_types_match_by_codec_not_number() {
    let offer = parse(&BARESIP.replace("96", "111").replace("101", "100"));
    let answer = parse(IPV6_SAVP); // opus as 111, G722, telephone-event/48000 as 101
    let common = intersect(&offer.media[0], &answer.media[0]);
    // telephone-event/48000 was not offered (the offer has it at 8000): dropped like any format.
    assert_eq!(common, ["111", "9"]);
}

#[test]
fn telephone_event_alone_is_not_a_common_codec() {
    let offer = parse(SIPP_PCAP); // PCMA + telephone-event
    let mut answer = parse(BARESIP.replace("96 9 0 8 101", "96 0 101").as_str());
    assert!(!has_common_codec(&offer, &answer));
    restrict_to_offer(&mut answer, &offer);
    let m = &answer.media[0];
    assert_eq!(
        (m.port, m.formats.as_slice()),
        (0, ["8".to_owned()].as_slice()),
        "{answer}"
    );
    assert_eq!(
        m.rtpmaps().map(|r| r.payload_type).collect::<Vec<_>>(),
        [8],
        "only the kept format's"
    );
    assert_eq!(m.fmtp("101"), None);
}

#[test]
fn restrict_rejects_extra_and_mismatched_streams() {
    let offer = parse(SIPP_UAC);
    let extra = format!("{SIPP_UAC}m=video 7000 RTP/AVP 31\r\n");
    let mut answer = parse(&extra);
    restrict_to_offer(&mut answer, &offer);
    assert_eq!(answer.media[0].port, 6000);
    assert_eq!(answer.media[1].port, 0);

    let mut video = parse(&SIPP_UAC.replace("m=audio 6000 RTP/AVP 0", "m=video 6000 RTP/AVP 0"));
    assert!(!has_common_codec(&offer, &video));
    restrict_to_offer(&mut video, &offer);
    assert_eq!(video.media[0].port, 0);
}

#[test]
fn unknown_lines_keep_their_place() {
    let text = "v=0\r\n\
o=- 1 2 IN IP4 10.0.0.1\r\n\
s= \r\n\
u=http://example.com/\r\n\
e=alice@example.com\r\n\
c=IN IP4 10.0.0.1\r\n\
b=CT:1000\r\n\
t=0 0\r\n\
r=7d 1h 0 25h\r\n\
z=2882844526 -1h\r\n\
x=private extension\r\n\
m=audio 4000/2 RTP/AVP 0\r\n\
i=voice\r\n\
k=prompt\r\n\
a=x-custom\r\n";
    let sdp = parse(text);
    assert_eq!(sdp.to_string(), text);
    assert_eq!(sdp.name, " ");
    assert_eq!(sdp.media[0].port_count, Some(2));
}
