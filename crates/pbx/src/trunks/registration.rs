//! Registration to SIP trunks (Palisade as a UAC sending REGISTER), for providers that route calls to a
//! registered contact. Sans-IO: the caller passes the current time in, sends the requests this returns through
//! its transaction layer, and hands back each final response (or the transaction's failure) with the
//! [`RegId`] it was sent for.
//!
//! Per trunk with `register` on and credentials set:
//! - one Call-ID and From tag for the life of the registration; CSeq increases with every REGISTER;
//! - From/To `sip:USERNAME@HOST`, Request-URI `sip:HOST:PORT`, Contact Palisade's address for the trunk's
//!   transport (no user part: the provider's INVITEs then carry the dialled number in To, which is how DIDs are
//!   found), `Expires` the configured value (default 3600 s);
//! - a 401/407 is answered once per attempt with the trunk's credentials ([`super::answer_challenge`]); a second
//!   challenge for the answered request is a refused password (unless the provider says `stale=true`, answered
//!   once more): it is never retried at once, but after a back-off;
//! - refreshed at 85 % of the granted expiry; failures (error answers, timeouts, refused credentials) are
//!   retried after 30 s, doubling to at most 10 min (or the provider's Retry-After, if longer);
//! - 423 Interval Too Brief: retried at once with the provider's Min-Expires (once per attempt);
//! - a trunk removed, or registration turned off, is unregistered (`Expires: 0`) if it was registered.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use sip::{HeaderName, Message, RequestBuilder, Transport};

use super::{answer_challenge, parse_challenge};

/// The registration expiry asked for unless configured otherwise.
pub const DEFAULT_EXPIRES: u32 = 3600;
/// The first retry after a failure; doubles with each further failure up to [`RETRY_MAX`].
pub const RETRY_MIN: Duration = Duration::from_secs(30);
pub const RETRY_MAX: Duration = Duration::from_secs(600);
/// Never refresh sooner than this after a success, whatever the provider grants.
pub const MIN_REFRESH: Duration = Duration::from_secs(5);
/// Registrations kept at most (one per trunk; trunks are bounded by the store).
const MAX_REGISTRATIONS: usize = 1000;

/// What one registration is for. A change of any field starts a new registration (the old one is
/// unregistered).
#[derive(Clone, PartialEq, Eq)]
pub struct RegTarget {
    pub trunk: String,
    /// The provider's host as configured (name or IP): the domain of From, To and the Request-URI.
    pub host: String,
    pub port: u16,
    /// UDP, TCP or TLS (what the store accepts for a trunk).
    pub transport: Transport,
    pub username: String,
    /// The digest username when it differs from `username` (the user of From/To).
    pub auth_user: Option<String>,
    pub password: String,
    /// Where REGISTERs go (the resolved host); `None` while the host does not resolve.
    pub dest: Option<SocketAddr>,
    /// Palisade's address for the transport (Via and Contact); `None` when Palisade does not listen on it.
    pub contact: Option<SocketAddr>,
    /// Seconds asked for.
    pub expires: u32,
}

impl std::fmt::Debug for RegTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegTarget")
            .field("trunk", &self.trunk)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("transport", &self.transport)
            .field("username", &self.username)
            .field("auth_user", &self.auth_user)
            .field("dest", &self.dest)
            .field("contact", &self.contact)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// Identifies one registration (a new one per [`RegTarget`]), so late answers for an old one are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RegId(pub u64);

/// A REGISTER to send.
#[derive(Debug, Clone)]
pub struct RegSend {
    pub id: RegId,
    pub dest: SocketAddr,
    pub transport: Transport,
    /// Built as a message, so the endpoint hands it to the transaction layer without parsing it again.
    pub request: Message,
}

/// Where a trunk registration is. Stored and shown as [`Self::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegState {
    /// The provider accepted the registration and it has not expired.
    Registered,
    /// The first attempt is under way.
    Registering,
    /// The last attempt failed; a retry is scheduled.
    Failed,
    /// Removed or turned off: the `Expires: 0` REGISTER is under way.
    Unregistering,
}

impl RegState {
    const ALL: [RegState; 4] = [
        RegState::Registered,
        RegState::Registering,
        RegState::Failed,
        RegState::Unregistering,
    ];

    /// The state a stored name stands for (exact names only).
    pub fn from_stored(s: &str) -> Option<RegState> {
        RegState::ALL.into_iter().find(|r| r.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RegState::Registered => "registered",
            RegState::Registering => "registering",
            RegState::Failed => "failed",
            RegState::Unregistering => "unregistering",
        }
    }
}

/// How a registration stands, for `palisade trunk list` (written to the store by the server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegStatus {
    pub trunk: String,
    pub state: RegState,
    /// Until when the provider accepted the registration (while registered).
    pub registered_until: Option<SystemTime>,
    /// The last failure, kept until the next success.
    pub last_error: Option<String>,
    /// When the next REGISTER is due (refresh or retry).
    pub next_attempt: Option<SystemTime>,
}

#[derive(Debug)]
struct Registration {
    id: RegId,
    target: RegTarget,
    call_id: String,
    from_tag: String,
    cseq: u32,
    /// The REGISTER awaiting its final answer, with the Expires it asked for.
    in_flight: Option<u32>,
    /// This attempt already answered a challenge (and how many stale ones).
    answered: bool,
    stale_answers: u8,
    min_expires_retried: bool,
    /// Expires to ask for (the target's, or the provider's Min-Expires).
    expires: u32,
    next_at: Option<Instant>,
    failures: u32,
    /// Unregistering: dropped once the Expires: 0 REGISTER is answered or fails.
    removing: bool,
    registered_until: Option<(Instant, SystemTime)>,
    last_error: Option<String>,
}

/// Every trunk registration.
#[derive(Debug, Default)]
pub struct Registrations {
    regs: Vec<Registration>,
    next_id: u64,
}

fn random_hex() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// `host` for a URI: IPv6 literals in brackets.
fn uri_host(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// The Request-URI and Contact parameter naming the transport (none for UDP, the default: RFC 3261 §19.1.2).
fn transport_param(transport: Transport) -> String {
    match transport {
        Transport::Udp => String::new(),
        other => format!(";transport={}", other.name()),
    }
}

/// The back-off after `failures` failures in a row (at least 1).
pub fn backoff(failures: u32) -> Duration {
    let shift = failures.saturating_sub(1).min(16);
    RETRY_MIN.saturating_mul(1 << shift).min(RETRY_MAX)
}

/// When to refresh a registration granted for `granted` seconds: at 85 %, not sooner than [`MIN_REFRESH`].
pub fn refresh_after(granted: u32) -> Duration {
    (Duration::from_secs(u64::from(granted)) * 85 / 100).max(MIN_REFRESH)
}

impl Registration {
    fn new(id: RegId, target: RegTarget, now: Instant) -> Self {
        Registration {
            id,
            expires: target.expires,
            target,
            call_id: format!("{}@palisade", random_hex()),
            from_tag: random_hex(),
            cseq: 0,
            in_flight: None,
            answered: false,
            stale_answers: 0,
            min_expires_retried: false,
            next_at: Some(now),
            failures: 0,
            removing: false,
            registered_until: None,
            last_error: None,
        }
    }

    fn is_registered(&self, now: Instant) -> bool {
        self.registered_until.is_some_and(|(until, _)| until > now)
    }

    /// A REGISTER asking for `expires` seconds, with `auth` (header, value) when answering a challenge.
    fn request(
        &mut self,
        expires: u32,
        auth: Option<(HeaderName, String)>,
        now: Instant,
    ) -> Option<RegSend> {
        let t = &self.target;
        let (dest, contact) = (t.dest?, t.contact?);
        self.cseq = self.cseq.saturating_add(1);
        let host = uri_host(&t.host);
        let tp = t.transport;
        let tparam = transport_param(tp);
        let aor = format!("<sip:{}@{host}>", t.username);
        let mut b = RequestBuilder::new("REGISTER", &format!("sip:{host}:{}{tparam}", t.port))
            .header(
                HeaderName::Via,
                format!(
                    "SIP/2.0/{} {contact};branch=z9hG4bK{};rport",
                    tp.via_token(),
                    random_hex()
                ),
            )
            .header(HeaderName::MaxForwards, "70")
            .header(HeaderName::From, format!("{aor};tag={}", self.from_tag))
            .header(HeaderName::To, &aor)
            .header(HeaderName::CallId, &self.call_id)
            .header(HeaderName::CSeq, format!("{} REGISTER", self.cseq))
            .header(HeaderName::Contact, format!("<sip:{contact}{tparam}>"))
            .header(HeaderName::Expires, expires.to_string());
        if let Some((name, value)) = auth {
            b = b.header(name, value);
        }
        match b.build_message() {
            Ok(request) => {
                self.in_flight = Some(expires);
                Some(RegSend {
                    id: self.id,
                    dest,
                    transport: tp,
                    request,
                })
            }
            Err(e) => {
                // Only a configured value Palisade cannot write into SIP (the store validates them) gets here.
                self.fail(format!("the REGISTER could not be built: {e}"), None, now);
                None
            }
        }
    }

    /// Starts a new attempt (a registration, refresh, retry or the unregistration).
    fn attempt(&mut self, now: Instant) -> Option<RegSend> {
        self.answered = false;
        self.stale_answers = 0;
        self.min_expires_retried = false;
        self.next_at = None;
        let expires = if self.removing { 0 } else { self.expires };
        let t = &self.target;
        let why = if t.dest.is_none() {
            Some(format!(
                "the host {} does not resolve to an address",
                t.host
            ))
        } else if t.contact.is_none() {
            Some(format!(
                "Palisade does not listen on {} (add a --listen for it)",
                t.transport
            ))
        } else {
            None
        };
        if let Some(why) = why {
            if !self.removing {
                self.fail(why, None, now);
            }
            return None;
        }
        self.request(expires, None, now)
    }

    /// Records a failure and schedules the retry (Retry-After wins when longer than the back-off).
    fn fail(&mut self, why: String, retry_after: Option<Duration>, now: Instant) {
        self.in_flight = None;
        self.failures = self.failures.saturating_add(1);
        let wait = backoff(self.failures).max(retry_after.unwrap_or_default().min(RETRY_MAX));
        tracing::warn!(trunk = %self.target.trunk, error = %why, retry_in_secs = wait.as_secs(),
            "trunk registration failed");
        self.last_error = Some(why);
        self.next_at = Some(now + wait);
        if !self.is_registered(now) {
            self.registered_until = None;
        }
    }

    /// A final answer to the REGISTER in flight. Returns the next REGISTER to send now, if any.
    fn on_response(&mut self, msg: &Message, now: Instant, wall: SystemTime) -> Option<RegSend> {
        let asked = self.in_flight?;
        let status = msg.status()?;
        if status < 200 {
            return None;
        }
        self.in_flight = None;
        match status {
            200..=299 if self.removing => None,
            200..=299 => {
                let granted = granted_expiry(msg, self.target.contact).unwrap_or(asked);
                if granted == 0 {
                    self.fail(
                        "the provider accepted the REGISTER but granted no time (expires 0)".into(),
                        None,
                        now,
                    );
                    return None;
                }
                let span = Duration::from_secs(u64::from(granted));
                self.registered_until = Some((now + span, wall + span));
                self.failures = 0;
                self.last_error = None;
                self.next_at = Some(now + refresh_after(granted));
                tracing::info!(trunk = %self.target.trunk, expires = granted, "registered to the trunk");
                None
            }
            401 | 407 => {
                let (challenge_h, answer_h) = if status == 407 {
                    (
                        HeaderName::ProxyAuthenticate,
                        HeaderName::ProxyAuthorization,
                    )
                } else {
                    (HeaderName::WwwAuthenticate, HeaderName::Authorization)
                };
                let raw = msg
                    .header_values(challenge_h)
                    .filter_map(|v| std::str::from_utf8(v).ok())
                    .find(|v| parse_challenge(v).is_some());
                let Some(raw) = raw else {
                    self.fail(
                        format!("the provider answered {status} without a Digest challenge Palisade can answer"),
                        None,
                        now,
                    );
                    return None;
                };
                let stale = raw
                    .to_ascii_lowercase()
                    .replace(' ', "")
                    .contains("stale=true");
                if self.answered && !(stale && self.stale_answers == 0) {
                    let why = format!(
                        "the provider refused the credentials ({status} again after Palisade answered its \
                         challenge as user {}): check the trunk's --username{} and --password",
                        self.target
                            .auth_user
                            .as_deref()
                            .unwrap_or(&self.target.username),
                        if self.target.auth_user.is_some() {
                            ", --auth-user"
                        } else {
                            ""
                        }
                    );
                    if self.removing {
                        return None;
                    }
                    self.fail(why, None, now);
                    return None;
                }
                if self.answered {
                    self.stale_answers += 1;
                }
                self.answered = true;
                let challenge = parse_challenge(raw)?;
                let uri = format!(
                    "sip:{}:{}{}",
                    uri_host(&self.target.host),
                    self.target.port,
                    transport_param(self.target.transport)
                );
                let answer = answer_challenge(
                    &challenge,
                    self.target
                        .auth_user
                        .as_deref()
                        .unwrap_or(&self.target.username),
                    &self.target.password,
                    "REGISTER",
                    &uri,
                );
                self.request(asked, Some((answer_h, answer)), now)
            }
            423 if !self.removing && !self.min_expires_retried => {
                let min = msg
                    .header_str(HeaderName::MinExpires)
                    .and_then(|v| v.trim().parse::<u32>().ok())
                    .filter(|m| *m > asked && *m <= 7 * 86_400);
                match min {
                    Some(min) => {
                        self.min_expires_retried = true;
                        self.expires = min;
                        self.request(min, None, now)
                    }
                    None => {
                        self.fail(
                            "the provider answered 423 Interval Too Brief without a usable Min-Expires".into(),
                            None,
                            now,
                        );
                        None
                    }
                }
            }
            _ if self.removing => None,
            _ => {
                let reason = msg
                    .reason()
                    .map(|r| String::from_utf8_lossy(r).into_owned())
                    .unwrap_or_default();
                let retry_after = msg
                    .header_str(HeaderName::RetryAfter)
                    .and_then(|v| {
                        v.split(|c: char| !c.is_ascii_digit())
                            .next()?
                            .parse::<u64>()
                            .ok()
                    })
                    .map(Duration::from_secs);
                self.fail(
                    format!("the provider answered {status} {reason}")
                        .trim_end()
                        .to_string(),
                    retry_after,
                    now,
                );
                None
            }
        }
    }

    fn status(&self, now: Instant) -> RegStatus {
        let registered = self.is_registered(now);
        let state = if self.removing {
            RegState::Unregistering
        } else if registered {
            RegState::Registered
        } else if self.failures > 0 {
            RegState::Failed
        } else {
            RegState::Registering
        };
        RegStatus {
            trunk: self.target.trunk.clone(),
            state,
            registered_until: registered
                .then(|| self.registered_until.map(|(_, w)| w))
                .flatten(),
            last_error: self.last_error.clone(),
            next_attempt: None,
        }
    }
}

/// The expiry the provider granted: our Contact's `expires` parameter, else the Expires header.
fn granted_expiry(msg: &Message, contact: Option<SocketAddr>) -> Option<u32> {
    let ours = contact.map(|c| c.to_string());
    let from_contact = msg
        .contacts()
        .filter_map(Result::ok)
        .filter_map(|c| match c {
            sip::addr::Contact::Addr(a) => Some(a),
            sip::addr::Contact::Star => None,
        })
        .find(|a| ours.as_deref().is_some_and(|o| a.uri.raw.contains(o)))
        .and_then(|a| a.param("expires").flatten())
        .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<u32>().ok());
    from_contact.or_else(|| msg.expires().ok().flatten())
}

impl Registrations {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the registrations match `wanted` (one per trunk): new targets start registering now, changed ones
    /// start over (the old one unregisters), and those no longer wanted unregister.
    pub fn sync(&mut self, wanted: &[RegTarget], now: Instant) {
        let mut keep: Vec<Registration> = Vec::with_capacity(self.regs.len());
        for mut r in std::mem::take(&mut self.regs) {
            if r.removing {
                keep.push(r);
                continue;
            }
            if wanted.contains(&r.target) {
                keep.push(r);
                continue;
            }
            // No longer wanted (or changed): unregister if the provider holds a binding (or may, while a
            // REGISTER is in flight); else simply forget it.
            if r.is_registered(now) || r.in_flight.is_some() {
                r.removing = true;
                if r.in_flight.is_none() {
                    r.next_at = Some(now);
                }
                keep.push(r);
            }
        }
        self.regs = keep;
        for t in wanted {
            let exists = self.regs.iter().any(|r| !r.removing && r.target == *t);
            if !exists && self.regs.len() < MAX_REGISTRATIONS {
                self.next_id += 1;
                self.regs
                    .push(Registration::new(RegId(self.next_id), t.clone(), now));
            }
        }
    }

    /// No registration is kept (after a `sync` with nothing wanted: every unregistration is over).
    pub fn is_empty(&self) -> bool {
        self.regs.is_empty()
    }

    /// When [`Registrations::handle_timeout`] should next run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.regs
            .iter()
            .filter(|r| r.in_flight.is_none())
            .filter_map(|r| r.next_at)
            .min()
    }

    /// Sends what is due: registrations, refreshes, retries and unregistrations.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<RegSend> {
        let mut out = Vec::new();
        for r in &mut self.regs {
            if r.in_flight.is_none()
                && r.next_at.is_some_and(|t| t <= now)
                && let Some(s) = r.attempt(now)
            {
                out.push(s);
            }
        }
        // An unregistration that could not even be sent is done.
        self.regs
            .retain(|r| !(r.removing && r.in_flight.is_none() && r.next_at.is_none()));
        out
    }

    /// A final response to the REGISTER sent for `id`; returns a REGISTER to send now (a challenge answered,
    /// a Min-Expires retry, or the unregistration that waited for it).
    pub fn on_response(
        &mut self,
        id: RegId,
        msg: &Message,
        now: Instant,
        wall: SystemTime,
    ) -> Option<RegSend> {
        let i = self.regs.iter().position(|r| r.id == id)?;
        let r = &mut self.regs[i];
        let was_unregister = r.in_flight == Some(0);
        let next = r.on_response(msg, now, wall);
        if next.is_none() && r.in_flight.is_none() && r.removing {
            if was_unregister {
                tracing::info!(trunk = %r.target.trunk, "unregistered from the trunk");
                self.regs.remove(i);
                return None;
            }
            // The registration in flight when removal was asked for is answered: unregister now.
            r.registered_until = None;
            return r.attempt(now);
        }
        next
    }

    /// The REGISTER for `id` timed out or could not be sent.
    pub fn on_failure(&mut self, id: RegId, now: Instant) {
        let Some(i) = self.regs.iter().position(|r| r.id == id) else {
            return;
        };
        let r = &mut self.regs[i];
        if r.in_flight.is_none() {
            return;
        }
        if r.removing {
            self.regs.remove(i);
            return;
        }
        let why = format!(
            "no answer from the provider at {} ({})",
            r.target
                .dest
                .map_or_else(|| r.target.host.clone(), |d| d.to_string()),
            r.target.transport
        );
        r.fail(why, None, now);
    }

    /// No connection to `dest` over `transport` could be made (e.g. the provider's TLS certificate did not
    /// verify): every registration with a REGISTER in flight to it fails now, with `reason`, instead of waiting
    /// for its transaction to time out. Returns the registrations that failed (their transactions are moot).
    pub fn on_connect_failure(
        &mut self,
        dest: SocketAddr,
        transport: Transport,
        reason: &str,
        now: Instant,
    ) -> Vec<RegId> {
        let mut failed = Vec::new();
        let mut i = 0;
        while i < self.regs.len() {
            let r = &mut self.regs[i];
            let hit = r.in_flight.is_some()
                && r.target.dest == Some(dest)
                && r.target.transport == transport;
            if !hit {
                i += 1;
                continue;
            }
            failed.push(r.id);
            if r.removing {
                self.regs.remove(i);
                continue;
            }
            let why = format!(
                "cannot connect to the provider at {dest} ({}): {reason}",
                r.target.transport
            );
            r.fail(why, None, now);
            i += 1;
        }
        failed
    }

    /// How each registration stands (unregistering ones included).
    pub fn status(&self, now: Instant, wall: SystemTime) -> Vec<RegStatus> {
        self.regs
            .iter()
            .map(|r| {
                let mut s = r.status(now);
                s.next_attempt = r.next_at.map(|t| wall + t.saturating_duration_since(now));
                s
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
