//! What the B2BUA does to descriptions: point them at the relay, keep answers within the offer, find where the
//! peer's media comes from, notice hold.

use std::net::{IpAddr, SocketAddr};

use super::{AddrType, Attribute, Connection, Direction, Line, Media, Sdp};

/// Attributes that describe the peer's own transport (ICE); they must not cross the relay, or the far end would
/// learn the peer's addresses and try to reach it directly.
const ICE_ATTRIBUTES: &[&str] = &[
    "candidate",
    "remote-candidates",
    "end-of-candidates",
    "ice-ufrag",
    "ice-pwd",
    "ice-options",
    "ice-lite",
    "ice-mismatch",
];

/// Why a description could not be pointed at the relay.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RewriteError {
    #[error("{active} active m= lines but only {given} relay ports")]
    NotEnoughPorts { active: usize, given: usize },
}

/// Where a peer sends (and receives) one stream: the relay latches on these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    pub rtp: SocketAddr,
    pub rtcp: SocketAddr,
}

impl Sdp {
    /// Point every active m= line (port ≠ 0) at the relay: the session-level `c=` becomes `addr` (added if
    /// absent), media-level `c=` lines of active streams are removed, the i-th active m= line gets `ports[i]`,
    /// an `a=rtcp` becomes `ports[i] + 1`, ICE attributes are removed and `o=` names `addr` (topology hiding).
    /// A stream on RFC 2543 hold (`c=0.0.0.0`) keeps an unspecified media-level `c=` so the hold still reaches
    /// the far end. Rejected streams (port 0) are left alone. Call [`Sdp::bump_version`] when the description
    /// sent on a leg changes.
    pub fn rewrite_media_addresses(
        &mut self,
        addr: IpAddr,
        ports: &[u16],
    ) -> Result<(), RewriteError> {
        let active = self.media.iter().filter(|m| m.is_active()).count();
        if ports.len() < active {
            return Err(RewriteError::NotEnoughPorts {
                active,
                given: ports.len(),
            });
        }
        let held: Vec<bool> = (0..self.media.len())
            .map(|i| {
                self.media_connection(i)
                    .is_some_and(Connection::is_unspecified)
            })
            .collect();
        let unspecified = match addr {
            IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        };

        self.origin.addr_type = AddrType::of(addr);
        self.origin.address = addr.to_string();
        set_session_connection(&mut self.session_lines, Connection::new(addr));
        self.session_lines.retain(|l| !is_ice(l));

        let mut next_port = ports.iter();
        for (m, held) in self.media.iter_mut().zip(held) {
            if !m.is_active() {
                continue;
            }
            let Some(&port) = next_port.next() else { break };
            m.port = port;
            m.lines
                .retain(|l| !matches!(l, Line::Connection(_)) && !is_ice(l));
            if held {
                m.lines
                    .insert(0, Line::Connection(Connection::new(unspecified)));
            }
            for line in &mut m.lines {
                if let Line::Attribute(a) = line
                    && a.name == "rtcp"
                {
                    let rtcp_port = port.saturating_add(1);
                    let had_address = a.value.as_deref().is_some_and(|v| v.contains(' '));
                    a.value = Some(if had_address {
                        format!("{rtcp_port} {}", Connection::new(addr))
                    } else {
                        rtcp_port.to_string()
                    });
                }
            }
        }
        Ok(())
    }

    /// The next version of this description (`o=` session version + 1), as RFC 3264 §8 asks for every changed
    /// offer or answer sent in the same dialog.
    pub fn bump_version(&mut self) {
        self.origin.session_version = self.origin.session_version.wrapping_add(1);
    }

    /// Where the peer's media for stream `index` comes from: the effective connection address with the m= port
    /// for RTP, and `a=rtcp` (port, and address if given) or port + 1 for RTCP. `None` for a rejected stream, a
    /// host-name connection address, or `c=0.0.0.0` (on hold: keep relaying to the previous endpoint).
    pub fn endpoint(&self, index: usize) -> Option<Endpoint> {
        let m = self.media.get(index).filter(|m| m.is_active())?;
        let ip = self
            .media_connection(index)?
            .ip()
            .filter(|ip| !ip.is_unspecified())?;
        let rtp = SocketAddr::new(ip, m.port);
        let rtcp = match m.rtcp() {
            Some(r) => {
                let rtcp_ip = r
                    .connection
                    .and_then(|c| c.ip())
                    .filter(|ip| !ip.is_unspecified())
                    .unwrap_or(ip);
                SocketAddr::new(rtcp_ip, r.port)
            }
            None => SocketAddr::new(ip, m.port.checked_add(1).unwrap_or(m.port)),
        };
        Some(Endpoint { rtp, rtcp })
    }

    /// The endpoints of all active streams with a usable address, with their m= line index.
    pub fn endpoints(&self) -> impl Iterator<Item = (usize, Endpoint)> + '_ {
        (0..self.media.len()).filter_map(|i| self.endpoint(i).map(|e| (i, e)))
    }

    /// Stream `index` is held by the side that wrote this description: it is active and its direction is
    /// sendonly or inactive, or its connection address is 0.0.0.0 / `::`.
    pub fn media_on_hold(&self, index: usize) -> bool {
        if !self.media.get(index).is_some_and(Media::is_active) {
            return false;
        }
        matches!(
            self.media_direction(index),
            Direction::SendOnly | Direction::Inactive
        ) || self
            .media_connection(index)
            .is_some_and(Connection::is_unspecified)
    }

    /// The whole session is on hold: there is at least one active stream and every active stream is held.
    pub fn is_on_hold(&self) -> bool {
        let mut active = (0..self.media.len())
            .filter(|&i| self.media[i].is_active())
            .peekable();
        active.peek().is_some() && active.all(|i| self.media_on_hold(i))
    }
}

fn is_ice(line: &Line) -> bool {
    matches!(line, Line::Attribute(a) if ICE_ATTRIBUTES.contains(&a.name.as_str()))
}

/// Replace the session-level `c=` (dropping any extra ones) or insert it where RFC 8866 puts it: after
/// `i=`/`u=`/`e=`/`p=`, before `b=`/`t=`/attributes.
fn set_session_connection(lines: &mut Vec<Line>, c: Connection) {
    if let Some(i) = lines.iter().position(|l| matches!(l, Line::Connection(_))) {
        lines[i] = Line::Connection(c);
        let mut seen = false;
        lines.retain(|l| {
            if matches!(l, Line::Connection(_)) {
                let keep = !seen;
                seen = true;
                keep
            } else {
                true
            }
        });
        return;
    }
    let at = lines
        .iter()
        .position(|l| {
            !matches!(
                l,
                Line::Other {
                    kind: 'i' | 'u' | 'e' | 'p',
                    ..
                }
            )
        })
        .unwrap_or(lines.len());
    lines.insert(at, Line::Connection(c));
}

/// The answer's formats (in the answer's order) that the offer also has: the same codec by `a=rtpmap` or the
/// static payload-type table (payload type numbers may differ; each side's numbers are what it receives, and the
/// relay passes them through untouched). Formats without a codec description match by identical text.
pub fn intersect<'a>(offer: &Media, answer: &'a Media) -> Vec<&'a str> {
    answer
        .formats
        .iter()
        .map(String::as_str)
        .filter(|f| offered(offer, answer, f))
        .collect()
}

fn offered(offer: &Media, answer: &Media, format: &str) -> bool {
    match answer.codec(format) {
        Some(c) => offer
            .formats
            .iter()
            .any(|o| offer.codec(o).is_some_and(|oc| oc.same_as(&c))),
        None => offer
            .formats
            .iter()
            .any(|o| o == format && offer.codec(o).is_none()),
    }
}

/// Drop from `answer` every format the offer does not have (with its `a=rtpmap`, `a=fmtp` and `a=rtcp-fb`
/// lines). telephone-event is treated like any format: kept when offered at the same clock rate. A stream left
/// without a real codec (nothing, or only telephone-event/CN/FEC), of another media type than the offer's, or beyond the offer's m= lines is rejected
/// (port 0, the offer's first format), as RFC 3264 §6 wants.
pub fn restrict_to_offer(answer: &mut Sdp, offer: &Sdp) {
    for (i, am) in answer.media.iter_mut().enumerate() {
        if !am.is_active() {
            continue;
        }
        let Some(om) = offer.media.get(i) else {
            reject(am, None);
            continue;
        };
        if om.kind != am.kind || !om.is_active() {
            reject(am, Some(om));
            continue;
        }
        let keep: Vec<String> = intersect(om, am).into_iter().map(str::to_owned).collect();
        if !keep.iter().any(|f| carries_media(am, f)) {
            reject(am, Some(om));
            continue;
        }
        let dropped: Vec<String> = am
            .formats
            .iter()
            .filter(|f| !keep.contains(f))
            .cloned()
            .collect();
        am.lines.retain(|l| !describes_any(l, &dropped));
        am.formats = keep;
    }
}

fn reject(m: &mut Media, offer: Option<&Media>) {
    m.port = 0;
    if let Some(first) = offer.and_then(|o| o.formats.first()) {
        m.formats = vec![first.clone()];
    }
    let formats = m.formats.clone();
    m.lines.retain(|l| match l {
        Line::Attribute(a) if matches!(a.name.as_str(), "rtpmap" | "fmtp" | "rtcp-fb") => {
            format_of(a).is_some_and(|f| formats.iter().any(|k| k == f))
        }
        _ => true,
    });
}

fn format_of(a: &Attribute) -> Option<&str> {
    a.value.as_deref()?.split(' ').next()
}

fn describes_any(line: &Line, formats: &[String]) -> bool {
    match line {
        Line::Attribute(a) if matches!(a.name.as_str(), "rtpmap" | "fmtp" | "rtcp-fb") => {
            format_of(a).is_some_and(|f| formats.iter().any(|d| d == f))
        }
        _ => false,
    }
}

/// The offer and the answer share at least one real codec (not only telephone-event, comfort noise, FEC or
/// retransmission) on some active stream: without one the call cannot carry audio without transcoding.
pub fn has_common_codec(offer: &Sdp, answer: &Sdp) -> bool {
    offer.media.iter().zip(&answer.media).any(|(om, am)| {
        om.is_active()
            && am.is_active()
            && om.kind == am.kind
            && intersect(om, am).into_iter().any(|f| carries_media(am, f))
    })
}

/// A format that can carry a stream on its own (a codec, or a non-RTP format we know nothing about).
fn carries_media(m: &Media, format: &str) -> bool {
    m.codec(format).is_none_or(|c| !c.is_auxiliary())
}
