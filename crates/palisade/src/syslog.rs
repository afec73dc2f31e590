//! Security events to a SIEM: each event the security log stores (failed authentications, bans, throttles,
//! policy refusals — not routine challenges) is also sent as one RFC 5424 syslog message over UDP (RFC 5426),
//! when `syslog = "udp:HOST:PORT"` is configured.
//!
//! Format: `<PRI>1 TIMESTAMP HOST palisade PID KIND [palisade@32473 kind=".." reason=".." source=".." user=".."]
//! MESSAGE`, facility authpriv (10). 32473 is the private enterprise number RFC 5612 reserves for examples:
//! the structured data is stable and documented in docs/operations.md.

use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::str::FromStr;
use std::sync::OnceLock;

use pbx::model::SecurityEventKind;
use store::SecurityEvent;

/// Facility authpriv: security/authorization messages.
const FACILITY: u8 = 10;
/// Longest datagram sent (RFC 5426 recommends that receivers accept 2048 octets).
const MAX_MESSAGE: usize = 2048;
const SD_ID: &str = "palisade@32473";

/// Where security events go: `udp:HOST:PORT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyslogTarget(pub SocketAddr);

impl FromStr for SyslogTarget {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| {
            format!(
                "invalid syslog target `{s}`: {why}; expected udp:HOST:PORT, e.g. udp:127.0.0.1:514 or \
                 udp:siem.example.com:514"
            )
        };
        let rest = s
            .strip_prefix("udp:")
            .ok_or_else(|| bad("only udp is supported"))?;
        let addr = rest
            .to_socket_addrs()
            .map_err(|e| bad(&e.to_string()))?
            .next()
            .ok_or_else(|| bad("the host has no address"))?;
        Ok(SyslogTarget(addr))
    }
}

/// Severity by event kind: bans and failures (SIP and console; wrong voicemail PINs are `auth_failure`s) are
/// warnings, policy refusals, throttles and unbans notices, the rest informational.
fn severity(kind: &str) -> u8 {
    use SecurityEventKind as K;
    match SecurityEventKind::from_stored(kind) {
        Some(k) if k.is_ban() || k.is_auth_failure() => 4,
        Some(K::Throttle | K::PolicyRefusal | K::Unban) => 5,
        _ => 6,
    }
}

/// An SD-PARAM value with `"`, `\` and `]` escaped (RFC 5424 §6.3.3); control characters become `?`.
fn sd_escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '"' | '\\' | ']' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

/// A PRINTUSASCII token of at most `max` characters (HOSTNAME, MSGID), `-` when empty.
fn token(v: &str, max: usize) -> String {
    let t: String = v
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if t.is_empty() { "-".to_string() } else { t }
}

/// RFC 3339 UTC with milliseconds, from unix milliseconds.
fn timestamp(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (y, m, d) = crate::backup::archive::civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms.rem_euclid(1000)
    )
}

/// One event as an RFC 5424 message.
pub fn format(e: &SecurityEvent, hostname: &str, pid: u32) -> String {
    let pri = FACILITY * 8 + severity(&e.kind);
    let mut sd = format!(
        "[{SD_ID} kind=\"{}\" reason=\"{}\" source=\"{}\"",
        sd_escape(&e.kind),
        sd_escape(&e.reason),
        sd_escape(&e.source)
    );
    if let Some(user) = &e.user {
        sd.push_str(&format!(" user=\"{}\"", sd_escape(user)));
    }
    sd.push(']');
    let mut msg = format!("{} from {}: {}", e.kind, e.source, e.reason);
    if let Some(d) = &e.detail {
        msg.push_str(" (");
        msg.extend(d.chars().map(|c| if c.is_control() { ' ' } else { c }));
        msg.push(')');
    }
    let mut line = format!(
        "<{pri}>1 {} {} palisade {pid} {} {sd} {msg}",
        timestamp(e.at),
        token(hostname, 255),
        token(&e.kind, 32)
    );
    if line.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
    }
    line
}

struct Sender {
    socket: UdpSocket,
    target: SocketAddr,
    hostname: String,
    pid: u32,
}

static SENDER: OnceLock<Sender> = OnceLock::new();

/// Opens the socket events are sent from (once per process).
pub fn install(target: SyslogTarget, hostname: &str) -> anyhow::Result<()> {
    let bind: SocketAddr = if target.0.is_ipv4() {
        "0.0.0.0:0".parse()?
    } else {
        "[::]:0".parse()?
    };
    let socket = UdpSocket::bind(bind)?;
    socket.set_nonblocking(true)?;
    let _ = SENDER.set(Sender {
        socket,
        target: target.0,
        hostname: hostname.to_string(),
        pid: std::process::id(),
    });
    tracing::info!(target = %target.0, "security events also go to syslog (RFC 5424 over UDP)");
    Ok(())
}

/// Sends `events` (the non-routine ones the security log stores), if a target is configured. Never blocks: a
/// full socket buffer drops the message (the database still has the event).
pub fn forward(events: &[SecurityEvent]) {
    let Some(s) = SENDER.get() else {
        return;
    };
    for e in events {
        let line = format(e, &s.hostname, s.pid);
        if let Err(err) = s.socket.send_to(line.as_bytes(), s.target) {
            tracing::debug!(error = %err, "syslog message dropped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, user: Option<&str>) -> SecurityEvent {
        SecurityEvent {
            at: 1_796_671_461_123,
            kind: kind.into(),
            reason: "wrong_password".into(),
            source: "192.0.2.7:5060".into(),
            user: user.map(str::to_string),
            detail: None,
        }
    }

    #[test]
    fn rfc5424_line() {
        let line = format(&event("auth_failure", Some("1\"0]0\\")), "pbx", 42);
        assert_eq!(
            line,
            "<84>1 2026-12-07T19:24:21.123Z pbx palisade 42 auth_failure [palisade@32473 kind=\"auth_failure\" \
             reason=\"wrong_password\" source=\"192.0.2.7:5060\" user=\"1\\\"0\\]0\\\\\"] auth_failure from \
             192.0.2.7:5060: wrong_password"
        );
    }

    #[test]
    fn hostile_values_stay_inside_their_fields() {
        let mut e = event("ban", Some("a\nb"));
        e.detail = Some("x\r\ny".repeat(1000));
        let line = format(&e, "bad host\n", 1);
        assert!(line.starts_with("<84>1 "), "{line}");
        assert!(!line.contains('\n') && !line.contains('\r'));
        assert!(line.len() <= MAX_MESSAGE);
        assert!(line.contains(" badhost palisade "), "{line}");
    }

    #[test]
    fn targets() {
        assert_eq!(
            "udp:127.0.0.1:514".parse::<SyslogTarget>(),
            Ok(SyslogTarget("127.0.0.1:514".parse().unwrap()))
        );
        assert!("tcp:127.0.0.1:514".parse::<SyslogTarget>().is_err());
        assert!("udp:127.0.0.1".parse::<SyslogTarget>().is_err());
    }
}
