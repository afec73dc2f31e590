//! What Palisade does with a valid request from a phone: authenticate it (hardening step 1), then serve it.
//!
//! Sans-IO: the caller (the SIP service, inside a server transaction) passes the request, where it came from and
//! the current time, and gets back the response to send. Security events and registration changes accumulate
//! here and are drained by the caller, which writes them to the store (write-behind: they are not on the packet
//! path).
//!
//! Attackers get nothing: an unknown user, a wrong password and a disabled extension all get the same 401/407
//! with a fresh, genuine nonce; the verifier does the same work for each. Only the security event says which.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sip::digest::{Algorithm, DigestAuthorization};
use sip::{HeaderName, Message, Method};

use crate::auth::{
    AuthOutcome, ConfigError, Credentials, DigestVerifier, FailReason, NonceKey, ServerNames,
    VerifierConfig,
};
use crate::model::{
    AuthReason, LocationRefusal, PolicyReason, SecurityEvent, SecurityEventKind, SecurityReason,
};
use crate::policy::{Refusal, Route};
use crate::registrar::{self, Change, Origin, RegisterError, Registrar, RegistrarConfig};
use crate::restrictions::Restrictions;

mod authenticate;
mod office_pins;
mod pins;
mod routing;
#[cfg(test)]
mod tests;

pub use authenticate::auth_reason;
use authenticate::*;
pub use office_pins::ConferencePinOutcome;

/// What the core needs to know about an extension to authenticate it (loaded from the store).
#[derive(Debug, Clone)]
pub struct ExtensionAuth {
    pub number: String,
    pub auth_id: String,
    pub enabled: bool,
    pub credentials: Credentials,
    /// Per-extension override of the digest algorithms, in challenge order.
    pub algorithms: Option<Vec<Algorithm>>,
    /// Registrations and calls only over TLS (hardening step 5).
    pub require_tls: bool,
    /// SRTP policy of the extension's call legs (hardening step 6).
    pub srtp: crate::model::SrtpMode,
    /// What the extension may call (internal only, PIN protect, office hours; hardening step 3).
    pub restrictions: crate::policy::CallerRestrictions,
    /// Registration only from the local networks.
    pub lan_only: bool,
    /// No SIP over WebSocket from outside the local networks (remote "tunnel" clients).
    pub block_remote_ws: bool,
    /// Unanswered, busy and unregistered calls go to the extension's mailbox.
    pub voicemail: bool,
    /// Message-waiting NOTIFYs go to its registered phones even without a subscription.
    pub mwi_unsolicited: bool,
    /// Call forwards (always, on busy, on no answer), routed by the policy as this extension.
    pub forward: crate::calls::Forwarding,
}

impl ExtensionAuth {
    /// An enabled extension with the defaults of `palisade ext add`: no restrictions, SRTP offered, no mailbox,
    /// no forwards.
    pub fn new(number: &str, auth_id: &str, credentials: Credentials) -> Self {
        ExtensionAuth {
            number: number.into(),
            auth_id: auth_id.into(),
            enabled: true,
            credentials,
            algorithms: None,
            require_tls: false,
            srtp: crate::model::SrtpMode::Enabled,
            restrictions: crate::policy::CallerRestrictions {
                number: number.into(),
                ..Default::default()
            },
            lan_only: false,
            block_remote_ws: false,
            voicemail: false,
            mwi_unsolicited: false,
            forward: Default::default(),
        }
    }
}

/// How a refused request is challenged: 401 + WWW-Authenticate (REGISTER) or 407 + Proxy-Authenticate, with the
/// algorithms the claimed extension (or the global setting) offers.
#[derive(Debug)]
struct ChallengeKind {
    proxy: bool,
    algorithms: Vec<Algorithm>,
}

/// Settings of the core.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// The digest realm: the PBX's domain.
    pub realm: String,
    /// Digest algorithms offered, in challenge order (setting `digest_algorithms`).
    pub algorithms: Vec<Algorithm>,
    pub nonce_lifetime: Duration,
    pub registrar: RegistrarConfig,
}

impl CoreConfig {
    pub fn new(realm: impl Into<String>) -> Self {
        CoreConfig {
            realm: realm.into(),
            algorithms: vec![Algorithm::Md5],
            nonce_lifetime: Duration::from_secs(300),
            registrar: RegistrarConfig::default(),
        }
    }
}

/// The response the caller must send: status, reason (standard when `None`) and extra headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub reason: Option<String>,
    pub headers: Vec<(HeaderName, String)>,
    /// What authentication decided for this request, for the anti-hacking counters of its source.
    pub auth: AuthSignal,
}

/// The authentication decision behind a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthSignal {
    /// No authentication was involved (OPTIONS, 481, 501, …).
    #[default]
    None,
    /// A 401/407 challenge went out (no credentials, or a stale nonce).
    Challenged,
    /// The credentials were valid.
    Succeeded,
    /// The credentials were wrong, unknown, disabled, replayed or used for another extension.
    Failed,
}

impl Reply {
    fn status(status: u16) -> Self {
        Reply {
            status,
            reason: None,
            headers: Vec::new(),
            auth: AuthSignal::None,
        }
    }

    fn reason(mut self, reason: &str) -> Self {
        self.reason = Some(reason.to_string());
        self
    }

    fn with(mut self, name: HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

pub use crate::model::event_kind;

/// Methods Palisade serves today, as listed in Allow.
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, UPDATE, INFO, SUBSCRIBE";
/// The Allow header in call signalling: also REFER (blind transfer inside a call) and NOTIFY (relayed between the
/// legs, and a transfer's progress).
pub const ALLOW_CALLS: &str =
    "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, UPDATE, INFO, SUBSCRIBE, REFER, NOTIFY";

/// Pending security events beyond this are dropped (and counted) rather than growing without bound when the
/// store falls behind.
const MAX_PENDING_EVENTS: usize = 100_000;

pub struct PbxCore {
    config: CoreConfig,
    authenticator: Authenticator,
    by_auth_id: HashMap<String, Arc<ExtensionAuth>>,
    by_number: HashMap<String, Arc<ExtensionAuth>>,
    registrar: Registrar,
    events: Vec<SecurityEvent>,
    events_dropped: u64,
    changes: Vec<Change>,
    /// The authentication decision of the request being handled.
    signal: AuthSignal,
    restrictions: Restrictions,
}

impl PbxCore {
    pub fn new(config: CoreConfig, key: NonceKey) -> Result<Self, ConfigError> {
        let authenticator = Authenticator::new(&config, key)?;
        Ok(PbxCore {
            registrar: Registrar::new(config.registrar),
            config,
            authenticator,
            by_auth_id: HashMap::new(),
            by_number: HashMap::new(),
            events: Vec::new(),
            events_dropped: 0,
            changes: Vec::new(),
            signal: AuthSignal::None,
            restrictions: Restrictions::default(),
        })
    }

    pub fn config(&self) -> &CoreConfig {
        &self.config
    }

    /// Replaces the digest algorithms offered (setting `digest_algorithms`). The verifier accepts every
    /// algorithm Palisade implements; which one an extension may use is checked after verification.
    pub fn set_algorithms(&mut self, algorithms: Vec<Algorithm>) {
        if !algorithms.is_empty() {
            self.config.algorithms = algorithms;
        }
    }

    /// The addresses Palisade listens on and advertises: a digest `uri` naming one of them (or the domain), with
    /// or without the port, names this server as well as the Request-URI does.
    pub fn set_server_addresses(&mut self, addresses: impl IntoIterator<Item = SocketAddr>) {
        let names = ServerNames::new([self.config.realm.as_str()], addresses);
        self.authenticator.verifier.set_server_names(names);
    }

    /// Contacts registered now (for metrics and `palisade status`).
    pub fn registration_count(&self) -> usize {
        self.registrar.len()
    }

    /// Like [`Self::set_server_addresses`], with the SIP domain as a further name when it differs from the realm.
    pub fn set_server_names(
        &mut self,
        domain: &str,
        addresses: impl IntoIterator<Item = SocketAddr>,
    ) {
        let names = ServerNames::new([self.config.realm.as_str(), domain], addresses);
        self.authenticator.verifier.set_server_names(names);
    }

    /// Replaces the extension directory (at start and whenever an admin changes something). Bindings of
    /// extensions that were removed or disabled are dropped.
    pub fn set_extensions(&mut self, extensions: Vec<ExtensionAuth>) {
        self.by_auth_id.clear();
        self.by_number.clear();
        for e in extensions {
            let e = Arc::new(e);
            self.by_auth_id.insert(e.auth_id.clone(), e.clone());
            self.by_number.insert(e.number.clone(), e);
        }
        let stale: Vec<String> = self
            .registrar
            .all()
            .map(|b| b.aor.clone())
            .filter(|aor| self.by_number.get(aor).is_none_or(|e| !e.enabled))
            .collect();
        for aor in stale {
            let removed = self.registrar.remove_aor(&aor);
            self.changes.extend(removed);
        }
    }

    /// Restores bindings read from the store at start.
    pub fn restore_bindings(&mut self, bindings: Vec<registrar::Binding>, now: SystemTime) {
        self.registrar.restore(bindings, unix_secs(now));
    }

    pub fn registrar(&self) -> &Registrar {
        &self.registrar
    }

    /// Expires bindings; the removals join the pending changes.
    pub fn expire(&mut self, now: SystemTime) {
        let removed = self.registrar.expire(unix_secs(now));
        self.changes.extend(removed);
    }

    /// Security events since the last call, oldest first.
    pub fn take_events(&mut self) -> Vec<SecurityEvent> {
        std::mem::take(&mut self.events)
    }

    /// Events dropped because the store fell too far behind.
    pub fn events_dropped(&self) -> u64 {
        self.events_dropped
    }

    /// Registration changes since the last call, in order.
    pub fn take_changes(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.changes)
    }

    /// Puts back events and changes that could not be written, ahead of newer ones.
    pub fn requeue(&mut self, mut events: Vec<SecurityEvent>, mut changes: Vec<Change>) {
        events.append(&mut self.events);
        events.truncate(MAX_PENDING_EVENTS);
        self.events = events;
        changes.append(&mut self.changes);
        self.changes = changes;
    }

    /// New call-policy settings (after an admin change); PIN unlocks in progress are kept.
    pub fn set_restrictions(&mut self, restrictions: Restrictions) {
        self.restrictions.update(restrictions);
    }

    /// An extension by number.
    pub fn extension(&self, number: &str) -> Option<Arc<ExtensionAuth>> {
        self.by_number.get(number).cloned()
    }

    /// Answers a validated request that opened a server transaction (not ACK, not CANCEL).
    pub fn handle_request(&mut self, msg: &Message, origin: Origin, now: SystemTime) -> Reply {
        self.signal = AuthSignal::None;
        let mut reply = match msg.method() {
            Some(Method::Options) => Reply::status(200)
                .with(HeaderName::Allow, ALLOW)
                .with(HeaderName::Accept, "application/sdp")
                .with(HeaderName::AcceptEncoding, "identity")
                .with(HeaderName::AcceptLanguage, "en"),
            Some(Method::Register) => self.register(msg, origin, now),
            _ => self.other(msg, origin, now),
        };
        reply.auth = self.signal;
        reply
    }

    fn register(&mut self, msg: &Message, origin: Origin, now: SystemTime) -> Reply {
        // The address of record is the extension number in the To URI, which must be a SIP or SIPS URI
        // (RFC 3261 §10.2; RFC 4475 unksm2): anything else is a 400 before any challenge, the same for every
        // user, so it reveals nothing about extensions.
        let to_uri = msg.to().ok().map(|to| to.uri);
        let Some(to_uri) = to_uri.filter(|u| u.is_sip()) else {
            return Reply::status(400).reason("Bad Request (To is not a SIP or SIPS URI)");
        };
        let aor = to_uri.user.map(str::to_string).unwrap_or_default();
        if let Err(reply) = self.authenticate(msg, HeaderName::Authorization, &aor, origin, now) {
            return reply;
        }
        match self.registrar.register(&aor, msg, origin, unix_secs(now)) {
            Ok(outcome) => {
                let mut reply = Reply::status(200);
                for c in registrar::contact_header_values(&outcome.bindings, unix_secs(now)) {
                    reply.headers.push((HeaderName::Contact, c));
                }
                self.changes.extend(outcome.changes);
                reply
            }
            Err(e) => {
                let mut reply = Reply::status(e.status());
                if let Some(h) = registrar::min_expires_header(&e) {
                    reply.headers.push(h);
                }
                if matches!(e, RegisterError::BadWildcard | RegisterError::BadContact) {
                    reply.reason = Some(format!("Bad Request ({e})"));
                }
                reply
            }
        }
    }

    /// Every other request from a phone: authenticated with 407, then answered with what Palisade can do today.
    fn other(&mut self, msg: &Message, origin: Origin, now: SystemTime) -> Reply {
        // A request inside a dialog (To tag) is exempt from authentication, but Palisade has no dialogs yet, so
        // it matches none (RFC 3261 §12.2.2).
        if msg.to().is_ok_and(|to| to.tag().is_some()) {
            return Reply::status(481);
        }
        // RFC 3261 §8.2.1: a method the UAS does not know is a 501, whoever asks; it reveals nothing of users.
        if msg.method() == Some(Method::Other) {
            return Reply::status(501).with(HeaderName::Allow, ALLOW);
        }
        let claimed = msg
            .from()
            .ok()
            .and_then(|f| f.uri.user.map(str::to_string))
            .unwrap_or_default();
        if let Err(reply) =
            self.authenticate(msg, HeaderName::ProxyAuthorization, &claimed, origin, now)
        {
            return reply;
        }
        // Calls, messaging and subscriptions arrive in later releases; say so truthfully.
        Reply::status(405).with(HeaderName::Allow, ALLOW)
    }

    /// The transport source of an event, for callers that key per-source state on it.
    pub fn source_ip(origin: &Origin) -> IpAddr {
        origin.source.ip()
    }
}

pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn unix_millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
