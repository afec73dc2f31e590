//! The SDP parser: one pass over the lines, bounded, every error naming the line it is about.

use super::{
    AddrType, Attribute, Bandwidth, Connection, Line, Media, Origin, Rtcp, RtpMap, Sdp, Timing,
};

/// Largest SDP body accepted, in bytes (a description with many ICE candidates stays well below).
pub const MAX_SDP_LEN: usize = 32 * 1024;
/// Most lines accepted in one description.
pub const MAX_LINES: usize = 1024;
/// Most `m=` lines accepted.
pub const MAX_MEDIA: usize = 16;
/// Most formats accepted on one `m=` line.
pub const MAX_FORMATS: usize = 64;

/// Why a session description was refused. Line numbers count from 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("SDP larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("SDP has more than {limit} lines")]
    TooManyLines { limit: usize },
    #[error("SDP has more than {limit} m= lines")]
    TooManyMedia { limit: usize },
    #[error("empty SDP")]
    Empty,
    #[error("line {line}: {reason}")]
    Malformed { line: usize, reason: &'static str },
    #[error("line {line} (`{kind}=`): {reason}")]
    BadLine {
        line: usize,
        kind: char,
        reason: &'static str,
    },
    #[error("missing `{0}=` line")]
    Missing(char),
    #[error("line {line}: m= line has no c= line and the session has none")]
    NoConnection { line: usize },
}

struct RawLine<'a> {
    number: usize,
    kind: char,
    value: &'a str,
}

fn bad(line: &RawLine<'_>, reason: &'static str) -> SdpError {
    SdpError::BadLine {
        line: line.number,
        kind: line.kind,
        reason,
    }
}

/// Split the body into `x=value` lines (CRLF or LF), refusing control characters and non-UTF-8.
fn lines(body: &[u8]) -> Result<Vec<RawLine<'_>>, SdpError> {
    if body.len() > MAX_SDP_LEN {
        return Err(SdpError::TooLarge { limit: MAX_SDP_LEN });
    }
    let mut out = Vec::new();
    let mut blank_seen = None;
    for (i, raw) in body.split(|&b| b == b'\n').enumerate() {
        let number = i + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.is_empty() {
            blank_seen.get_or_insert(number);
            continue;
        }
        if let Some(line) = blank_seen {
            return Err(SdpError::Malformed {
                line,
                reason: "empty line inside the description",
            });
        }
        if out.len() == MAX_LINES {
            return Err(SdpError::TooManyLines { limit: MAX_LINES });
        }
        if raw.iter().any(|&b| b < 0x20 && b != b'\t' || b == 0x7f) {
            return Err(SdpError::Malformed {
                line: number,
                reason: "control character",
            });
        }
        let text = std::str::from_utf8(raw).map_err(|_| SdpError::Malformed {
            line: number,
            reason: "not valid UTF-8",
        })?;
        let bytes = text.as_bytes();
        if bytes.len() < 2 || bytes[1] != b'=' || !bytes[0].is_ascii_lowercase() {
            return Err(SdpError::Malformed {
                line: number,
                reason: "not a `<letter>=<value>` line",
            });
        }
        out.push(RawLine {
            number,
            kind: char::from(bytes[0]),
            value: &text[2..],
        });
    }
    Ok(out)
}

pub(super) fn parse(body: &[u8]) -> Result<Sdp, SdpError> {
    let lines = lines(body)?;
    let mut it = lines.iter();

    let v = it.next().ok_or(SdpError::Empty)?;
    if v.kind != 'v' {
        return Err(SdpError::Missing('v'));
    }
    if v.value != "0" {
        return Err(bad(v, "version must be 0"));
    }
    let o = it
        .next()
        .filter(|l| l.kind == 'o')
        .ok_or(SdpError::Missing('o'))?;
    let origin = origin(o)?;
    let s = it
        .next()
        .filter(|l| l.kind == 's')
        .ok_or(SdpError::Missing('s'))?;
    let name = s.value.to_owned();

    let mut session_lines = Vec::new();
    let mut media: Vec<(usize, Media)> = Vec::new();
    for line in it {
        match line.kind {
            'v' | 'o' | 's' => return Err(bad(line, "repeated or out of place")),
            'm' => {
                if media.len() == MAX_MEDIA {
                    return Err(SdpError::TooManyMedia { limit: MAX_MEDIA });
                }
                media.push((line.number, media_line(line)?));
            }
            't' if !media.is_empty() => {
                return Err(bad(
                    line,
                    "timing belongs to the session, before any m= line",
                ));
            }
            _ => {
                let parsed = other_line(line)?;
                match media.last_mut() {
                    Some((_, m)) => m.lines.push(parsed),
                    None => session_lines.push(parsed),
                }
            }
        }
    }

    let session_has_c = session_lines
        .iter()
        .any(|l| matches!(l, Line::Connection(_)));
    if !session_has_c
        && let Some((line, _)) = media
            .iter()
            .find(|(_, m)| m.is_active() && m.connection().is_none())
    {
        return Err(SdpError::NoConnection { line: *line });
    }

    Ok(Sdp {
        origin,
        name,
        session_lines,
        media: media.into_iter().map(|(_, m)| m).collect(),
    })
}

fn fields<'a, const N: usize>(
    line: &RawLine<'a>,
    reason: &'static str,
) -> Result<[&'a str; N], SdpError> {
    let mut parts = line.value.split_ascii_whitespace();
    let mut out = [""; N];
    for slot in &mut out {
        *slot = parts.next().ok_or_else(|| bad(line, reason))?;
    }
    if parts.next().is_some() {
        return Err(bad(line, reason));
    }
    Ok(out)
}

fn addr_type(line: &RawLine<'_>, net: &str, addr: &str) -> Result<AddrType, SdpError> {
    if net != "IN" {
        return Err(bad(line, "network type must be IN"));
    }
    match addr {
        "IP4" => Ok(AddrType::Ip4),
        "IP6" => Ok(AddrType::Ip6),
        _ => Err(bad(line, "address type must be IP4 or IP6")),
    }
}

fn connection_from(
    line: &RawLine<'_>,
    net: &str,
    atype: &str,
    address: &str,
) -> Result<Connection, SdpError> {
    let addr_type = addr_type(line, net, atype)?;
    let c = Connection {
        addr_type,
        address: address.to_owned(),
    };
    if c.ip().is_some_and(|ip| AddrType::of(ip) != addr_type) {
        return Err(bad(line, "address does not match its address type"));
    }
    Ok(c)
}

fn origin(line: &RawLine<'_>) -> Result<Origin, SdpError> {
    let [username, session_id, version, net, atype, address] = fields::<6>(
        line,
        "expected `<username> <sess-id> <sess-version> IN <IP4|IP6> <address>`",
    )?;
    if !session_id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(line, "session id must be numeric"));
    }
    let session_version = version
        .parse()
        .map_err(|_| bad(line, "session version must be a 64-bit number"))?;
    let addr_type = addr_type(line, net, atype)?;
    Ok(Origin {
        username: username.to_owned(),
        session_id: session_id.to_owned(),
        session_version,
        addr_type,
        address: address.to_owned(),
    })
}

fn media_line(line: &RawLine<'_>) -> Result<Media, SdpError> {
    let mut parts = line.value.split_ascii_whitespace();
    let kind = parts
        .next()
        .ok_or_else(|| bad(line, "missing media type"))?;
    let port_field = parts.next().ok_or_else(|| bad(line, "missing port"))?;
    let proto = parts
        .next()
        .ok_or_else(|| bad(line, "missing transport protocol"))?;
    let (port, port_count) = match port_field.split_once('/') {
        Some((p, n)) => (p, Some(n.parse().map_err(|_| bad(line, "bad port count"))?)),
        None => (port_field, None),
    };
    let port = port
        .parse()
        .map_err(|_| bad(line, "port must be 0-65535"))?;
    let mut formats = Vec::new();
    for f in parts {
        if formats.len() == MAX_FORMATS {
            return Err(bad(line, "too many formats"));
        }
        formats.push(f.to_owned());
    }
    if formats.is_empty() {
        return Err(bad(line, "no formats"));
    }
    if proto.contains("RTP")
        && formats
            .iter()
            .any(|f| f.parse::<u8>().map_or(true, |pt| pt > 127))
    {
        return Err(bad(line, "RTP payload types must be 0-127"));
    }
    Ok(Media {
        kind: kind.to_owned(),
        port,
        port_count,
        proto: proto.to_owned(),
        formats,
        lines: Vec::new(),
    })
}

fn other_line(line: &RawLine<'_>) -> Result<Line, SdpError> {
    Ok(match line.kind {
        'c' => {
            let [net, atype, address] = fields::<3>(line, "expected `IN <IP4|IP6> <address>`")?;
            Line::Connection(connection_from(line, net, atype, address)?)
        }
        'b' => {
            let (kind, value) = line
                .value
                .split_once(':')
                .ok_or_else(|| bad(line, "expected `<type>:<kbps>`"))?;
            if kind.is_empty() {
                return Err(bad(line, "empty bandwidth type"));
            }
            let value = value
                .trim()
                .parse()
                .map_err(|_| bad(line, "bandwidth must be a number"))?;
            Line::Bandwidth(Bandwidth {
                kind: kind.to_owned(),
                value,
            })
        }
        't' => {
            let [start, stop] = fields::<2>(line, "expected `<start> <stop>`")?;
            let start = start
                .parse()
                .map_err(|_| bad(line, "start time must be a number"))?;
            let stop = stop
                .parse()
                .map_err(|_| bad(line, "stop time must be a number"))?;
            Line::Timing(Timing { start, stop })
        }
        'a' => Line::Attribute(attribute(line)?),
        kind => Line::Other {
            kind,
            value: line.value.to_owned(),
        },
    })
}

fn attribute(line: &RawLine<'_>) -> Result<Attribute, SdpError> {
    let (name, value) = match line.value.split_once(':') {
        Some((n, v)) => (n, Some(v)),
        None => (line.value, None),
    };
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.!%*+`'~".contains(&b))
    {
        return Err(bad(line, "bad attribute name"));
    }
    match (name, value) {
        ("rtpmap", Some(v)) => {
            rtpmap(v).ok_or_else(|| {
                bad(
                    line,
                    "expected `rtpmap:<pt> <encoding>/<clock rate>[/<channels>]`",
                )
            })?;
        }
        ("rtpmap" | "fmtp" | "ptime" | "maxptime" | "rtcp", None) => {
            return Err(bad(line, "attribute needs a value"));
        }
        ("fmtp", Some(v)) if v.split_once(' ').is_none_or(|(f, _)| f.is_empty()) => {
            return Err(bad(line, "expected `fmtp:<format> <parameters>`"));
        }
        ("ptime" | "maxptime", Some(v)) => {
            v.trim()
                .parse::<u32>()
                .map_err(|_| bad(line, "packet time must be a whole number of ms"))?;
        }
        ("rtcp", Some(v)) => {
            rtcp_attr(v).map_err(|reason| bad(line, reason))?;
        }
        ("sendrecv" | "sendonly" | "recvonly" | "inactive", Some(_)) => {
            return Err(bad(line, "direction attributes take no value"));
        }
        _ => {}
    }
    Ok(Attribute {
        name: name.to_owned(),
        value: value.map(str::to_owned),
    })
}

pub(super) fn rtpmap(value: &str) -> Option<RtpMap<'_>> {
    let (pt, rest) = value.split_once(' ')?;
    let payload_type: u8 = pt.parse().ok().filter(|&pt| pt <= 127)?;
    let mut parts = rest.trim().split('/');
    let encoding = parts.next().filter(|e| !e.is_empty())?;
    let clock_rate = parts.next()?.parse().ok().filter(|&r| r > 0)?;
    let channels = match parts.next() {
        Some(c) => Some(c.parse().ok().filter(|&c| c > 0)?),
        None => None,
    };
    if parts.next().is_some() {
        return None;
    }
    Some(RtpMap {
        payload_type,
        encoding,
        clock_rate,
        channels,
    })
}

pub(super) fn rtcp_attr(value: &str) -> Result<Rtcp, &'static str> {
    let mut parts = value.split_ascii_whitespace();
    let port = parts
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or("expected `rtcp:<port> [IN <IP4|IP6> <address>]`")?;
    let connection = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (None, ..) => None,
        (Some("IN"), Some(atype), Some(address), None) => {
            let addr_type = match atype {
                "IP4" => AddrType::Ip4,
                "IP6" => AddrType::Ip6,
                _ => return Err("address type must be IP4 or IP6"),
            };
            Some(Connection {
                addr_type,
                address: address.to_owned(),
            })
        }
        _ => return Err("expected `rtcp:<port> [IN <IP4|IP6> <address>]`"),
    };
    Ok(Rtcp { port, connection })
}
