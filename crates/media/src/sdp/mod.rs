//! A small, strict-enough SDP model (RFC 8866, formerly RFC 4566): parse, inspect, rewrite, write.
//!
//! The model keeps every line it does not interpret (`i=`, `u=`, `k=`, unknown attributes, unknown letters) in
//! its original order, so writing a parsed description back gives the same text (always CRLF line ends; fields of
//! the interpreted lines separated by one space). Interpreted lines: `v=`, `o=`, `s=`, `c=`, `b=`, `t=`, `m=` and
//! `a=`; the attributes a B2BUA needs have typed accessors ([`Media::rtpmaps`], [`Media::fmtp`],
//! [`Media::ptime`], [`Media::direction`], [`Media::rtcp`], [`Media::crypto`]).
//!
//! The operations a B2BUA needs: pointing the media at the relay ([`Sdp::rewrite_media_addresses`],
//! [`Sdp::bump_version`]), restricting an answer to the offer's formats ([`restrict_to_offer`],
//! [`has_common_codec`], [`intersect`]), the remote endpoints the relay expects media from ([`Sdp::endpoint`])
//! and hold detection ([`Sdp::is_on_hold`]).

mod ops;
mod parse;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::IpAddr;

pub use ops::{Endpoint, RewriteError, has_common_codec, intersect, restrict_to_offer};
pub use parse::{MAX_FORMATS, MAX_LINES, MAX_MEDIA, MAX_SDP_LEN, SdpError};

/// A parsed session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sdp {
    /// `o=`: the originator and the session version.
    pub origin: Origin,
    /// `s=`: the session name, as written (may be a single space or `-`).
    pub name: String,
    /// The session-level lines after `s=` and before the first `m=`, in order.
    pub session_lines: Vec<Line>,
    /// The media descriptions, in order.
    pub media: Vec<Media>,
}

/// `o=<username> <sess-id> <sess-version> IN <addrtype> <address>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub username: String,
    /// Kept as text: only its uniqueness matters, and phones write anything numeric.
    pub session_id: String,
    pub session_version: u64,
    pub addr_type: AddrType,
    pub address: String,
}

/// The address family of a `c=` or `o=` line (the network type is always `IN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrType {
    Ip4,
    Ip6,
}

impl AddrType {
    /// The family of an IP address.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => AddrType::Ip4,
            IpAddr::V6(_) => AddrType::Ip6,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AddrType::Ip4 => "IP4",
            AddrType::Ip6 => "IP6",
        }
    }
}

/// `c=IN <addrtype> <connection-address>`. The address is kept as written (it may carry a multicast `/ttl`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub addr_type: AddrType,
    pub address: String,
}

impl Connection {
    /// A unicast connection line for `ip`.
    pub fn new(ip: IpAddr) -> Self {
        Connection {
            addr_type: AddrType::of(ip),
            address: ip.to_string(),
        }
    }

    /// The IP address, when the connection address is a literal (not a host name); a `/ttl` suffix is ignored.
    pub fn ip(&self) -> Option<IpAddr> {
        let host = self.address.split('/').next().unwrap_or_default();
        host.parse().ok()
    }

    /// `c=0.0.0.0` (or `::`): the RFC 2543 way of putting a stream on hold.
    pub fn is_unspecified(&self) -> bool {
        self.ip().is_some_and(|ip| ip.is_unspecified())
    }
}

/// `b=<bwtype>:<bandwidth>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bandwidth {
    pub kind: String,
    pub value: u64,
}

/// `t=<start> <stop>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub start: u64,
    pub stop: u64,
}

/// `a=<name>` or `a=<name>:<value>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub name: String,
    pub value: Option<String>,
}

impl Attribute {
    pub fn flag(name: &str) -> Self {
        Attribute {
            name: name.to_owned(),
            value: None,
        }
    }

    pub fn new(name: &str, value: impl Into<String>) -> Self {
        Attribute {
            name: name.to_owned(),
            value: Some(value.into()),
        }
    }
}

/// One line after `s=` (session level) or after `m=` (media level).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Connection(Connection),
    Bandwidth(Bandwidth),
    Timing(Timing),
    Attribute(Attribute),
    /// Any other line (`i=`, `u=`, `e=`, `p=`, `r=`, `z=`, `k=`, unknown letters), kept verbatim.
    Other {
        kind: char,
        value: String,
    },
}

impl Line {
    fn attribute(&self) -> Option<&Attribute> {
        match self {
            Line::Attribute(a) => Some(a),
            _ => None,
        }
    }

    fn connection(&self) -> Option<&Connection> {
        match self {
            Line::Connection(c) => Some(c),
            _ => None,
        }
    }
}

/// `m=<media> <port>[/<count>] <proto> <fmt> ...` and the lines that follow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    /// `audio`, `video`, `application`, ...
    pub kind: String,
    /// 0 means the stream is rejected or disabled.
    pub port: u16,
    pub port_count: Option<u16>,
    /// `RTP/AVP`, `RTP/SAVP`, `RTP/AVPF`, `UDP/TLS/RTP/SAVPF`, ...
    pub proto: String,
    /// The format list: RTP payload types for RTP profiles, kept as text.
    pub formats: Vec<String>,
    pub lines: Vec<Line>,
}

/// The media direction attributes (RFC 8866 §6.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }
}

/// `a=rtpmap:<pt> <encoding>/<clock rate>[/<channels>]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpMap<'a> {
    pub payload_type: u8,
    pub encoding: &'a str,
    pub clock_rate: u32,
    pub channels: Option<u16>,
}

/// What a format carries, from its `a=rtpmap` or, for static payload types, RFC 3551's table. Two formats are
/// the same codec when these match (encoding names compare case-insensitively; channels default to 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Codec<'a> {
    pub encoding: &'a str,
    pub clock_rate: u32,
    pub channels: u16,
}

impl Codec<'_> {
    pub fn same_as(&self, other: &Codec<'_>) -> bool {
        self.encoding.eq_ignore_ascii_case(other.encoding)
            && self.clock_rate == other.clock_rate
            && self.channels == other.channels
    }

    /// RFC 4733 events: passed through beside the codec, never a codec on their own.
    pub fn is_telephone_event(&self) -> bool {
        self.encoding.eq_ignore_ascii_case("telephone-event")
    }

    /// Formats that travel beside a codec but cannot carry a call alone: telephone-event, comfort noise,
    /// redundancy, FEC and retransmission.
    pub fn is_auxiliary(&self) -> bool {
        ["telephone-event", "CN", "red", "ulpfec", "flexfec", "rtx"]
            .iter()
            .any(|n| self.encoding.eq_ignore_ascii_case(n))
    }
}

/// `a=rtcp:<port> [IN <addrtype> <address>]` (RFC 3605).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rtcp {
    pub port: u16,
    pub connection: Option<Connection>,
}

/// RFC 3551 static payload types: (pt, encoding, clock rate, channels).
const STATIC_PAYLOAD_TYPES: &[(u8, &str, u32, u16)] = &[
    (0, "PCMU", 8000, 1),
    (3, "GSM", 8000, 1),
    (4, "G723", 8000, 1),
    (5, "DVI4", 8000, 1),
    (6, "DVI4", 16000, 1),
    (7, "LPC", 8000, 1),
    (8, "PCMA", 8000, 1),
    (9, "G722", 8000, 1),
    (10, "L16", 44100, 2),
    (11, "L16", 44100, 1),
    (12, "QCELP", 8000, 1),
    (13, "CN", 8000, 1),
    (14, "MPA", 90000, 1),
    (15, "G728", 8000, 1),
    (16, "DVI4", 11025, 1),
    (17, "DVI4", 22050, 1),
    (18, "G729", 8000, 1),
    (25, "CelB", 90000, 1),
    (26, "JPEG", 90000, 1),
    (28, "nv", 90000, 1),
    (31, "H261", 90000, 1),
    (32, "MPV", 90000, 1),
    (33, "MP2T", 90000, 1),
    (34, "H263", 90000, 1),
];

fn attributes(lines: &[Line]) -> impl Iterator<Item = &Attribute> {
    lines.iter().filter_map(Line::attribute)
}

fn direction_of(lines: &[Line]) -> Option<Direction> {
    attributes(lines)
        .filter(|a| a.value.is_none())
        .find_map(|a| Direction::from_name(&a.name))
}

impl Media {
    /// A stream with a non-zero port takes part in the session.
    pub fn is_active(&self) -> bool {
        self.port != 0
    }

    pub fn attributes(&self) -> impl Iterator<Item = &Attribute> {
        attributes(&self.lines)
    }

    /// The value of the first attribute called `name` (`Some("")` for a flag attribute).
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes()
            .find(|a| a.name == name)
            .map(|a| a.value.as_deref().unwrap_or(""))
    }

    pub fn has_attribute(&self, name: &str) -> bool {
        self.attributes().any(|a| a.name == name)
    }

    /// The media-level `c=` line, if any (see [`Sdp::media_connection`] for the effective one).
    pub fn connection(&self) -> Option<&Connection> {
        self.lines.iter().find_map(Line::connection)
    }

    /// All `a=rtpmap` lines (validated when parsed).
    pub fn rtpmaps(&self) -> impl Iterator<Item = RtpMap<'_>> {
        self.attributes()
            .filter(|a| a.name == "rtpmap")
            .filter_map(|a| parse::rtpmap(a.value.as_deref()?))
    }

    pub fn rtpmap(&self, format: &str) -> Option<RtpMap<'_>> {
        let pt: u8 = format.parse().ok()?;
        self.rtpmaps().find(|m| m.payload_type == pt)
    }

    /// The codec a format stands for: its `a=rtpmap`, else the static payload-type table.
    pub fn codec(&self, format: &str) -> Option<Codec<'_>> {
        if let Some(m) = self.rtpmap(format) {
            return Some(Codec {
                encoding: m.encoding,
                clock_rate: m.clock_rate,
                channels: m.channels.unwrap_or(1),
            });
        }
        let pt: u8 = format.parse().ok()?;
        STATIC_PAYLOAD_TYPES.iter().find(|s| s.0 == pt).map(
            |&(_, encoding, clock_rate, channels)| Codec {
                encoding,
                clock_rate,
                channels,
            },
        )
    }

    /// The parameters of `a=fmtp:<format> <parameters>`.
    pub fn fmtp(&self, format: &str) -> Option<&str> {
        self.attributes()
            .filter(|a| a.name == "fmtp")
            .find_map(|a| {
                let (fmt, params) = a.value.as_deref()?.split_once(' ')?;
                (fmt == format).then_some(params)
            })
    }

    /// `a=ptime` in milliseconds.
    pub fn ptime(&self) -> Option<u32> {
        self.attribute("ptime")?.trim().parse().ok()
    }

    /// The media-level direction attribute, if any (see [`Sdp::media_direction`] for the effective one).
    pub fn direction(&self) -> Option<Direction> {
        direction_of(&self.lines)
    }

    /// `a=rtcp` (RFC 3605).
    pub fn rtcp(&self) -> Option<Rtcp> {
        parse::rtcp_attr(self.attribute("rtcp")?).ok()
    }

    /// The raw values of the `a=crypto` lines (RFC 4568), in order.
    pub fn crypto(&self) -> impl Iterator<Item = &str> {
        self.attributes()
            .filter(|a| a.name == "crypto")
            .filter_map(|a| a.value.as_deref())
    }

    /// Replace (or add) the media-level direction attribute.
    pub fn set_direction(&mut self, direction: Direction) {
        self.lines.retain(|l| {
            !l.attribute()
                .is_some_and(|a| a.value.is_none() && Direction::from_name(&a.name).is_some())
        });
        self.lines
            .push(Line::Attribute(Attribute::flag(direction.as_str())));
    }
}

impl Sdp {
    /// Parse a session description (CRLF or LF line ends).
    pub fn parse(text: &str) -> Result<Sdp, SdpError> {
        parse::parse(text.as_bytes())
    }

    /// Parse a message body; it must be UTF-8.
    pub fn parse_bytes(body: &[u8]) -> Result<Sdp, SdpError> {
        parse::parse(body)
    }

    /// The session-level `c=` line.
    pub fn connection(&self) -> Option<&Connection> {
        self.session_lines.iter().find_map(Line::connection)
    }

    pub fn attributes(&self) -> impl Iterator<Item = &Attribute> {
        attributes(&self.session_lines)
    }

    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes()
            .find(|a| a.name == name)
            .map(|a| a.value.as_deref().unwrap_or(""))
    }

    /// The session-level direction attribute, if any.
    pub fn direction(&self) -> Option<Direction> {
        direction_of(&self.session_lines)
    }

    /// The connection that applies to media `index`: its own `c=`, else the session's.
    pub fn media_connection(&self, index: usize) -> Option<&Connection> {
        let m = self.media.get(index)?;
        m.connection().or_else(|| self.connection())
    }

    /// The direction that applies to media `index`: its own, else the session's, else sendrecv.
    pub fn media_direction(&self, index: usize) -> Direction {
        self.media
            .get(index)
            .and_then(Media::direction)
            .or_else(|| self.direction())
            .unwrap_or(Direction::SendRecv)
    }

    /// The text of the description, CRLF line ends.
    pub fn to_text(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} IN {} {}",
            self.username,
            self.session_id,
            self.session_version,
            self.addr_type.as_str(),
            self.address
        )
    }
}

impl fmt::Display for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IN {} {}", self.addr_type.as_str(), self.address)
    }
}

impl fmt::Display for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{}:{}", self.name, v),
            None => f.write_str(&self.name),
        }
    }
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Line::Connection(c) => write!(f, "c={c}\r\n"),
            Line::Bandwidth(b) => write!(f, "b={}:{}\r\n", b.kind, b.value),
            Line::Timing(t) => write!(f, "t={} {}\r\n", t.start, t.stop),
            Line::Attribute(a) => write!(f, "a={a}\r\n"),
            Line::Other { kind, value } => write!(f, "{kind}={value}\r\n"),
        }
    }
}

impl fmt::Display for Media {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "m={} {}", self.kind, self.port)?;
        if let Some(n) = self.port_count {
            write!(f, "/{n}")?;
        }
        write!(f, " {}", self.proto)?;
        for fmt in &self.formats {
            write!(f, " {fmt}")?;
        }
        f.write_str("\r\n")?;
        self.lines.iter().try_for_each(|l| l.fmt(f))
    }
}

impl fmt::Display for Sdp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v=0\r\no={}\r\ns={}\r\n", self.origin, self.name)?;
        self.session_lines.iter().try_for_each(|l| l.fmt(f))?;
        self.media.iter().try_for_each(|m| m.fmt(f))
    }
}
