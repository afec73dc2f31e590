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
use crate::model::SecurityEvent;
use crate::policy::{Refusal, Route};
use crate::registrar::{self, Change, Origin, RegisterError, Registrar, RegistrarConfig};
use crate::restrictions::Restrictions;

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
    verifier: DigestVerifier,
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
        let verifier = DigestVerifier::new(verifier_config(&config), key)?;
        Ok(PbxCore {
            registrar: Registrar::new(config.registrar),
            config,
            verifier,
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
        self.verifier.set_server_names(names);
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
        self.verifier.set_server_names(names);
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

    /// Authenticates a new INVITE (Proxy-Authorization, 407): the calling extension, or the reply to send.
    pub fn authorize_call(
        &mut self,
        msg: &Message,
        origin: Origin,
        now: SystemTime,
    ) -> Result<Arc<ExtensionAuth>, Reply> {
        self.signal = AuthSignal::None;
        let claimed = msg
            .from()
            .ok()
            .and_then(|f| f.uri.user.map(str::to_string))
            .unwrap_or_default();
        self.authenticate(msg, HeaderName::ProxyAuthorization, &claimed, origin, now)
            .map_err(|mut reply| {
                reply.auth = self.signal;
                reply
            })
    }

    /// New call-policy settings (after an admin change); PIN unlocks in progress are kept.
    pub fn set_restrictions(&mut self, restrictions: Restrictions) {
        self.restrictions.update(restrictions);
    }

    /// Where a call from `caller` to `dialed` goes now (extension, outbound, emergency, PIN unlock, or refused).
    /// A refusal is recorded as a policy event.
    pub fn route_call(
        &mut self,
        caller: &ExtensionAuth,
        dialed: &str,
        origin: Origin,
        now: SystemTime,
    ) -> Route {
        self.route_as(caller, dialed, None, origin, now)
    }

    /// Where a forwarded or transferred leg goes: routed exactly as if `caller` (the forwarding or transferring
    /// extension) dialled `dialed`, with the same refusals and events; `why` (e.g. "forward busy from 101") is
    /// written in front of the refusal event's detail.
    pub fn route_forward(
        &mut self,
        caller: &ExtensionAuth,
        dialed: &str,
        why: &str,
        origin: Origin,
        now: SystemTime,
    ) -> Route {
        self.route_as(caller, dialed, Some(why), origin, now)
    }

    fn route_as(
        &mut self,
        caller: &ExtensionAuth,
        dialed: &str,
        why: Option<&str>,
        origin: Origin,
        now: SystemTime,
    ) -> Route {
        let by_number = &self.by_number;
        let route = self.restrictions.route(
            &caller.restrictions,
            dialed,
            |n| by_number.contains_key(n),
            now,
        );
        if let Route::Refused(r) = &route {
            let detail = match (r, self.restrictions.not_configured()) {
                (Refusal::CountryNotAllowed(_), Some(why)) => format!("{dialed}: {why}"),
                _ => format!("{dialed}: {r}"),
            };
            let detail = match why {
                Some(why) => format!("{why}: {detail}"),
                None => detail,
            };
            self.event(
                event_kind::POLICY,
                r.reason_code(),
                origin,
                Some(&caller.auth_id),
                Some(detail),
                now,
            );
        }
        route
    }

    /// Records a policy refusal decided outside the core (e.g. an inbound trunk call to an internal-only
    /// extension).
    pub fn policy_event(&mut self, reason: &str, origin: Origin, detail: &str, now: SystemTime) {
        self.event(
            event_kind::POLICY,
            reason,
            origin,
            None,
            Some(detail.to_string()),
            now,
        );
    }

    /// A wrong voicemail PIN from `origin` for `mailbox` (`locked_out`: the last allowed try), as an
    /// authentication failure event.
    pub fn voicemail_pin_failure(
        &mut self,
        mailbox: &str,
        origin: Origin,
        locked_out: bool,
        now: SystemTime,
    ) {
        let (reason, detail) = if locked_out {
            (
                "voicemail_locked_out",
                format!("mailbox {mailbox}: 3 wrong PINs, call ended"),
            )
        } else {
            ("voicemail_pin_wrong", format!("mailbox {mailbox}"))
        };
        self.event(
            event_kind::FAILURE,
            reason,
            origin,
            Some(mailbox),
            Some(detail),
            now,
        );
        self.signal = AuthSignal::None;
    }

    /// `mailbox`'s PIN entry is locked until `until` (unix ms) after too many wrong PINs across calls: `new`
    /// when a wrong PIN from `origin` just locked it (the `lockouts`-th lockout since the last correct PIN), else
    /// a PIN entry from `origin` refused because of it. Both are authentication-failure events.
    pub fn voicemail_pin_lockout(
        &mut self,
        mailbox: &str,
        origin: Origin,
        until: i64,
        lockouts: u32,
        new: bool,
        now: SystemTime,
    ) {
        let until_secs = until.max(0) / 1000;
        let (reason, detail) = if new {
            (
                "voicemail_pin_lockout",
                format!(
                    "mailbox {mailbox}: too many wrong PINs, PIN entry locked until unix time {until_secs}                      (lockout {lockouts}; lift it with `palisade ext unlock-pin {mailbox}`)"
                ),
            )
        } else {
            (
                "voicemail_mailbox_locked",
                format!(
                    "mailbox {mailbox}: PIN entry refused, locked until unix time {until_secs}"
                ),
            )
        };
        self.event(
            event_kind::FAILURE,
            reason,
            origin,
            Some(mailbox),
            Some(detail),
            now,
        );
        self.signal = AuthSignal::None;
    }

    /// A request inside a dialog of extension `number` (not re-authenticated) breaks one of its location rules
    /// (`--lan-only`, `--require-tls`, `--block-remote-ws`): the 403 to send, after a policy event. `None`: it
    /// may go on.
    pub fn in_dialog_location(
        &mut self,
        number: &str,
        method: &str,
        origin: Origin,
        now: SystemTime,
    ) -> Option<Reply> {
        let ext = self.by_number.get(number).cloned()?;
        let local = self.restrictions.is_local(origin.source.ip());
        let refusal = location_refusal(&ext, origin, local)?;
        let detail = Some(format!(
            "extension {} {method} inside a dialog over {} from {}",
            ext.number,
            origin.transport,
            origin.source.ip()
        ));
        self.event(
            event_kind::POLICY,
            refusal.reason_code(),
            origin,
            Some(&ext.auth_id),
            detail,
            now,
        );
        Some(Reply::status(403).reason(refusal.phrase()))
    }

    /// Records that `number` lifted its PIN protection (an audit trail of when external calls were unlocked).
    pub fn pin_unlock_event(
        &mut self,
        number: &str,
        origin: Origin,
        until: SystemTime,
        now: SystemTime,
    ) {
        self.event(
            event_kind::SUCCESS,
            "pin_unlock",
            origin,
            Some(number),
            Some(format!(
                "external calls allowed until unix time {}",
                unix_secs(until)
            )),
            now,
        );
        self.signal = AuthSignal::None;
    }

    /// Lifts `number`'s PIN protection for the configured time; returns until when.
    pub fn unlock_pin(&mut self, number: &str, now: SystemTime) -> SystemTime {
        self.restrictions.unlock(number, now)
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

    /// Checks the credentials in `header` (Authorization for REGISTER, Proxy-Authorization otherwise).
    /// `claimed` is the extension the request is about (To user for REGISTER, From user otherwise); it only
    /// chooses the algorithms to challenge with when that extension has its own setting.
    fn authenticate(
        &mut self,
        msg: &Message,
        header: HeaderName,
        claimed: &str,
        origin: Origin,
        now: SystemTime,
    ) -> Result<Arc<ExtensionAuth>, Reply> {
        let challenge = ChallengeKind {
            // REGISTER carries Authorization and is challenged 401; everything else 407 (RFC 3261 §22).
            proxy: header != HeaderName::Authorization,
            algorithms: self
                .by_number
                .get(claimed)
                .and_then(|e| e.algorithms.clone())
                .unwrap_or_else(|| self.config.algorithms.clone()),
        };

        // A phone may carry credentials for several realms; only ours count.
        let credentials = msg
            .header_values(header)
            .filter_map(|v| std::str::from_utf8(sip::text::trim(v)).ok())
            .find(|v| {
                DigestAuthorization::parse(v)
                    .map(|a| a.realm == self.config.realm)
                    .unwrap_or(true)
            });
        let Some(credentials) = credentials else {
            return Err(self.refuse(
                &challenge,
                event_kind::CHALLENGE,
                "no_credentials",
                origin,
                None,
                None,
                now,
                false,
            ));
        };
        let method = msg.method_str().unwrap_or_default().to_string();
        let uri = msg
            .request_uri_raw()
            .and_then(|u| std::str::from_utf8(u).ok())
            .unwrap_or_default()
            .to_string();
        let by_auth_id = &self.by_auth_id;
        let outcome = self.verifier.verify(
            credentials,
            &method,
            &uri,
            |user| {
                by_auth_id.get(user).map(|e| Credentials {
                    disabled: !e.enabled,
                    ..e.credentials.clone()
                })
            },
            now,
            origin.source.ip(),
        );
        match outcome {
            AuthOutcome::Ok { username } => {
                let Some(ext) = self.by_auth_id.get(&username).cloned() else {
                    // The directory changed between lookup and now; treat as unknown.
                    return Err(self.refuse(
                        &challenge,
                        event_kind::FAILURE,
                        "unknown_user",
                        origin,
                        Some(&username),
                        None,
                        now,
                        false,
                    ));
                };
                let used = DigestAuthorization::parse(credentials)
                    .map(|a| a.algorithm)
                    .ok();
                let allowed = ext.algorithms.as_ref().unwrap_or(&self.config.algorithms);
                if used.is_none_or(|a| !allowed.contains(&a)) {
                    return Err(self.refuse(
                        &challenge,
                        event_kind::FAILURE,
                        "algorithm_not_allowed",
                        origin,
                        Some(&username),
                        None,
                        now,
                        false,
                    ));
                }
                if ext.number != claimed {
                    // Valid credentials of one extension used for another: refused exactly like a wrong
                    // password, so the answer confirms nothing about the password.
                    let detail = Some(format!("credentials of {} used for {claimed}", ext.number));
                    return Err(self.refuse(
                        &challenge,
                        event_kind::FAILURE,
                        "aor_mismatch",
                        origin,
                        Some(&username),
                        detail,
                        now,
                        false,
                    ));
                }
                // Where an extension may be used (LAN only, TLS only, no remote WebSocket) holds for every
                // request its credentials authenticate — REGISTER, INVITE, SUBSCRIBE, MESSAGE, REFER … — not
                // only for registration. Right credentials from the wrong place are a policy decision: 403 and
                // a policy event, not an authentication failure (it does not count toward a ban).
                let local = self.restrictions.is_local(origin.source.ip());
                if let Some(refusal) = location_refusal(&ext, origin, local) {
                    let detail = Some(format!(
                        "extension {} {} over {} from {}",
                        ext.number,
                        msg.method_str().unwrap_or("request"),
                        origin.transport,
                        origin.source.ip()
                    ));
                    self.event(
                        event_kind::POLICY,
                        refusal.reason_code(),
                        origin,
                        Some(&username),
                        detail,
                        now,
                    );
                    return Err(Reply::status(403).reason(refusal.phrase()));
                }
                self.event(
                    event_kind::SUCCESS,
                    "ok",
                    origin,
                    Some(&username),
                    None,
                    now,
                );
                Ok(ext)
            }
            AuthOutcome::Stale => Err(self.refuse(
                &challenge,
                event_kind::CHALLENGE,
                "stale_nonce",
                origin,
                None,
                None,
                now,
                true,
            )),
            AuthOutcome::Fail { reason, username } => Err(self.refuse(
                &challenge,
                event_kind::FAILURE,
                reason_code(&reason),
                origin,
                username.as_deref(),
                None,
                now,
                false,
            )),
        }
    }

    /// A refused authentication: its event (which also feeds the guard), then a fresh challenge.
    #[allow(clippy::too_many_arguments)]
    fn refuse(
        &mut self,
        challenge: &ChallengeKind,
        kind: &str,
        reason: &str,
        origin: Origin,
        user: Option<&str>,
        detail: Option<String>,
        now: SystemTime,
        stale: bool,
    ) -> Reply {
        self.event(kind, reason, origin, user, detail, now);
        let values =
            self.verifier
                .challenge_with(&challenge.algorithms, now, origin.source.ip(), stale);
        let (status, header) = if challenge.proxy {
            (407, HeaderName::ProxyAuthenticate)
        } else {
            (401, HeaderName::WwwAuthenticate)
        };
        let mut reply = Reply::status(status);
        for v in values {
            reply.headers.push((header, v));
        }
        reply
    }

    fn event(
        &mut self,
        kind: &str,
        reason: &str,
        origin: Origin,
        user: Option<&str>,
        detail: Option<String>,
        now: SystemTime,
    ) {
        self.signal = match kind {
            event_kind::CHALLENGE => AuthSignal::Challenged,
            event_kind::SUCCESS => AuthSignal::Succeeded,
            event_kind::FAILURE => AuthSignal::Failed,
            _ => self.signal,
        };
        if self.events.len() >= MAX_PENDING_EVENTS {
            self.events_dropped += 1;
            return;
        }
        self.events.push(SecurityEvent {
            at: unix_millis(now),
            kind: kind.to_string(),
            reason: reason.to_string(),
            source: origin.source.to_string(),
            user: user.map(str::to_string),
            detail,
        });
    }

    /// The transport source of an event, for callers that key per-source state on it.
    pub fn source_ip(origin: &Origin) -> IpAddr {
        origin.source.ip()
    }
}

/// A per-extension rule about where the extension may be used, broken by a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LocationRefusal {
    /// `--lan-only`: from outside the local networks.
    LanOnly,
    /// `--block-remote-ws`: over WebSocket from outside the local networks.
    RemoteWebSocket,
    /// `--require-tls`: over a transport without TLS.
    TlsRequired,
}

impl LocationRefusal {
    fn reason_code(self) -> &'static str {
        match self {
            LocationRefusal::LanOnly => "lan_only",
            LocationRefusal::RemoteWebSocket => "remote_ws_blocked",
            LocationRefusal::TlsRequired => "tls_required",
        }
    }

    fn phrase(self) -> &'static str {
        match self {
            LocationRefusal::LanOnly => "Forbidden (only from the local network)",
            LocationRefusal::RemoteWebSocket => {
                "Forbidden (WebSocket clients only from the local network)"
            }
            LocationRefusal::TlsRequired => "Forbidden (TLS required)",
        }
    }
}

/// Which of `ext`'s location rules a request arriving at `origin` breaks, if any (`local`: the source is on one of
/// the local networks).
fn location_refusal(ext: &ExtensionAuth, origin: Origin, local: bool) -> Option<LocationRefusal> {
    if ext.lan_only && !local {
        Some(LocationRefusal::LanOnly)
    } else if ext.block_remote_ws && matches!(origin.transport, "WS" | "WSS") && !local {
        Some(LocationRefusal::RemoteWebSocket)
    } else if ext.require_tls && !matches!(origin.transport, "TLS" | "WSS") {
        Some(LocationRefusal::TlsRequired)
    } else {
        None
    }
}

fn verifier_config(config: &CoreConfig) -> VerifierConfig {
    let mut v = VerifierConfig::new(config.realm.clone());
    // Offer (and accept) the global list; per-extension lists are enforced after verification.
    let mut algorithms = config.algorithms.clone();
    for a in [Algorithm::Md5, Algorithm::Sha256] {
        if !algorithms.contains(&a) {
            algorithms.push(a);
        }
    }
    v.algorithms = algorithms;
    v.nonce_lifetime = config.nonce_lifetime;
    v
}

/// The stored reason code of a failed authentication.
pub fn reason_code(reason: &FailReason) -> &'static str {
    match reason {
        FailReason::UnknownUser => "unknown_user",
        FailReason::WrongPassword => "wrong_password",
        FailReason::Disabled => "disabled",
        FailReason::NoHa1ForAlgorithm => "no_ha1_for_algorithm",
        FailReason::BadNonce => "bad_nonce",
        FailReason::Replay => "replay",
        FailReason::AlgorithmNotOffered(_) => "algorithm_not_offered",
        FailReason::QopRequired => "qop_required",
        FailReason::Malformed(_) => "malformed_credentials",
        FailReason::UnsupportedScheme => "unsupported_scheme",
        FailReason::RealmMismatch => "realm_mismatch",
        FailReason::UriMismatch => "uri_mismatch",
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

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use sip::digest::{self, Qop};
    use sip::{Framing, Limits};

    use super::*;

    const REALM: &str = "pbx.test";
    const PASSWORD: &str = "Secr3tPassw0rd";

    fn core() -> PbxCore {
        let mut c = PbxCore::new(CoreConfig::new(REALM), NonceKey::from_bytes([7; 32])).unwrap();
        c.set_extensions(vec![
            ext("100", "aUthId100x", true),
            ext("101", "aUthId101x", false),
        ]);
        c
    }

    fn ext(number: &str, auth_id: &str, enabled: bool) -> ExtensionAuth {
        ExtensionAuth {
            enabled,
            ..ExtensionAuth::new(
                number,
                auth_id,
                Credentials::from_password(auth_id, REALM, PASSWORD),
            )
        }
    }

    fn origin() -> Origin {
        Origin {
            transport: "UDP",
            source: "192.0.2.50:5062".parse().unwrap(),
            local: "192.0.2.1:5060".parse().unwrap(),
        }
    }

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    fn msg(method: &str, user: &str, cseq: u32, extra: &str) -> Message {
        let s = format!(
            "{method} sip:{REALM} SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bK{cseq}\r\n\
             From: <sip:{user}@{REALM}>;tag=f1\r\nTo: <sip:{user}@{REALM}>\r\nCall-ID: reg-{user}\r\n\
             CSeq: {cseq} {method}\r\nContact: <sip:{user}@10.0.0.5:5062>\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        Message::parse(Bytes::from(s), Framing::Stream, &Limits::default()).unwrap()
    }

    fn nonce_of(reply: &Reply) -> String {
        let v = &reply
            .headers
            .iter()
            .find(|(h, _)| {
                matches!(
                    h,
                    HeaderName::WwwAuthenticate | HeaderName::ProxyAuthenticate
                )
            })
            .unwrap()
            .1;
        let start = v.find("nonce=\"").unwrap() + 7;
        v[start..start + v[start..].find('"').unwrap()].to_string()
    }

    fn authorization(auth_id: &str, password: &str, nonce: &str, method: &str, nc: u32) -> String {
        let uri = format!("sip:{REALM}");
        let ha1 = digest::ha1(Algorithm::Md5, auth_id, REALM, password);
        let nc = format!("{nc:08x}");
        let resp = digest::response(
            Algorithm::Md5,
            &ha1,
            nonce,
            &nc,
            "c0ffee",
            Some(Qop::Auth),
            method,
            &uri,
        );
        format!(
            "Digest username=\"{auth_id}\", realm=\"{REALM}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{resp}\", \
             algorithm=MD5, qop=auth, nc={nc}, cnonce=\"c0ffee\""
        )
    }

    /// Extension 100 registers from `from`: an unauthenticated REGISTER (CSeq `cseq`), then one
    /// answering its challenge (CSeq `cseq + 1`); returns the reply to the second.
    fn register_100(c: &mut PbxCore, from: Origin, cseq: u32) -> Reply {
        let r = c.handle_request(&msg("REGISTER", "100", cseq, ""), from, now());
        let auth = authorization("aUthId100x", PASSWORD, &nonce_of(&r), "REGISTER", 1);
        let m = msg(
            "REGISTER",
            "100",
            cseq + 1,
            &format!("Authorization: {auth}\r\n"),
        );
        c.handle_request(&m, from, now())
    }

    fn header_names(r: &Reply) -> Vec<HeaderName> {
        r.headers.iter().map(|(h, _)| *h).collect()
    }

    #[test]
    fn register_challenge_then_success_with_contact() {
        let mut c = core();
        let r = c.handle_request(&msg("REGISTER", "100", 1, ""), origin(), now());
        assert_eq!(r.status, 401);
        assert_eq!(header_names(&r), vec![HeaderName::WwwAuthenticate]);
        let auth = authorization("aUthId100x", PASSWORD, &nonce_of(&r), "REGISTER", 1);
        let r = c.handle_request(
            &msg("REGISTER", "100", 2, &format!("Authorization: {auth}\r\n")),
            origin(),
            now(),
        );
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(
            r.headers,
            vec![(
                HeaderName::Contact,
                "<sip:100@10.0.0.5:5062>;expires=3600".to_string()
            )]
        );
        assert_eq!(c.registrar().lookup("100", unix_secs(now())).len(), 1);
        assert!(matches!(&c.take_changes()[..], [Change::Upsert(_)]));
        let kinds: Vec<_> = c
            .take_events()
            .into_iter()
            .map(|e| (e.kind, e.reason))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (event_kind::CHALLENGE.into(), "no_credentials".into()),
                (event_kind::SUCCESS.into(), "ok".into())
            ]
        );
    }

    #[test]
    fn a_register_whose_to_is_not_a_sip_uri_gets_400_before_any_challenge() {
        let mut c = core();
        let unksm2 = "REGISTER sip:example.com SIP/2.0\r\nTo: isbn:2983792873\r\n\
            From: <http://www.example.com>;tag=3234233\r\nCall-ID: unksm2.daksdj@hyphenated-host.example.com\r\n\
            CSeq: 234902 REGISTER\r\nMax-Forwards: 70\r\nVia: SIP/2.0/UDP 192.0.2.21:5060;branch=z9hG4bKkdjuw\r\n\
            Contact: <name:John_Smith>\r\nl: 0\r\n\r\n";
        let m = Message::parse(Bytes::from(unksm2), Framing::Datagram, &Limits::default()).unwrap();
        let r = c.handle_request(&m, origin(), now());
        assert_eq!(r.status, 400);
        assert!(r.headers.is_empty(), "no challenge: {r:?}");
        assert_eq!(r.auth, AuthSignal::None);
        assert!(c.take_events().is_empty());
        // A sips: To is fine (challenged as usual).
        let m = msg("REGISTER", "100", 1, "");
        let text = String::from_utf8(m.bytes().to_vec()).unwrap();
        let sips = text.replacen("To: <sip:", "To: <sips:", 1);
        let m = Message::parse(Bytes::from(sips), Framing::Stream, &Limits::default()).unwrap();
        assert_eq!(c.handle_request(&m, origin(), now()).status, 401);
    }

    #[test]
    fn unknown_user_wrong_password_and_disabled_get_identical_answers() {
        let mut c = core();
        let mut answers = Vec::new();
        for (to, auth_id, password) in [
            ("100", "aUthId100x", "WrongPassword1"),
            ("555", "nobodyHere", PASSWORD),
            ("101", "aUthId101x", PASSWORD),
        ] {
            let r = c.handle_request(&msg("REGISTER", to, 1, ""), origin(), now());
            let auth = authorization(auth_id, password, &nonce_of(&r), "REGISTER", 1);
            let r = c.handle_request(
                &msg("REGISTER", to, 2, &format!("Authorization: {auth}\r\n")),
                origin(),
                now(),
            );
            answers.push((
                r.status,
                r.reason.clone(),
                header_names(&r),
                nonce_of(&r).len(),
            ));
        }
        assert_eq!(answers[0].0, 401);
        let r = c.handle_request(&msg("REGISTER", "100", 9, ""), origin(), now());
        assert_eq!(r.auth, AuthSignal::Challenged);
        assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
        let reasons: Vec<_> = c
            .take_events()
            .into_iter()
            .filter(|e| e.kind == event_kind::FAILURE)
            .map(|e| e.reason)
            .collect();
        assert_eq!(reasons, vec!["wrong_password", "unknown_user", "disabled"]);
        assert!(c.registrar().is_empty());
    }

    #[test]
    fn replayed_credentials_are_refused() {
        let mut c = core();
        let r = c.handle_request(&msg("REGISTER", "100", 1, ""), origin(), now());
        let auth = authorization("aUthId100x", PASSWORD, &nonce_of(&r), "REGISTER", 1);
        let m = msg("REGISTER", "100", 2, &format!("Authorization: {auth}\r\n"));
        assert_eq!(c.handle_request(&m, origin(), now()).status, 200);
        assert_eq!(c.handle_request(&m, origin(), now()).status, 401);
        assert!(c.take_events().iter().any(|e| e.reason == "replay"));
    }

    #[test]
    fn credentials_of_one_extension_cannot_register_another() {
        let mut c = core();
        c.set_extensions(vec![
            ext("100", "aUthId100x", true),
            ext("102", "aUthId102x", true),
        ]);
        let r = c.handle_request(&msg("REGISTER", "102", 1, ""), origin(), now());
        let auth = authorization("aUthId100x", PASSWORD, &nonce_of(&r), "REGISTER", 1);
        let r = c.handle_request(
            &msg("REGISTER", "102", 2, &format!("Authorization: {auth}\r\n")),
            origin(),
            now(),
        );
        assert_eq!(r.status, 401, "refused like a wrong password");
        assert!(c.registrar().is_empty());
    }

    #[test]
    fn other_methods_are_challenged_with_407_and_in_dialog_requests_get_481() {
        let mut c = core();
        let r = c.handle_request(&msg("MESSAGE", "100", 1, ""), origin(), now());
        assert_eq!(r.status, 407);
        assert_eq!(header_names(&r), vec![HeaderName::ProxyAuthenticate]);
        let auth = authorization("aUthId100x", PASSWORD, &nonce_of(&r), "MESSAGE", 1);
        let r = c.handle_request(
            &msg(
                "MESSAGE",
                "100",
                2,
                &format!("Proxy-Authorization: {auth}\r\n"),
            ),
            origin(),
            now(),
        );
        assert_eq!(r.status, 405);
        let bye = Message::parse(
            Bytes::from(
                "BYE sip:100@pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5;branch=z9hG4bKb\r\nFrom: <sip:x@y>;tag=1\r\n\
                 To: <sip:100@pbx.test>;tag=2\r\nCall-ID: d\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n",
            ),
            Framing::Stream,
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(c.handle_request(&bye, origin(), now()).status, 481);
    }

    #[test]
    fn challenges_follow_the_algorithm_setting_and_disabling_drops_bindings() {
        let mut c = core();
        c.set_algorithms(vec![Algorithm::Sha256, Algorithm::Md5]);
        let r = c.handle_request(&msg("REGISTER", "100", 1, ""), origin(), now());
        let algs: Vec<_> = r
            .headers
            .iter()
            .map(|(_, v)| v.contains("algorithm=SHA-256"))
            .collect();
        assert_eq!(algs, vec![true, false]);
        let auth = authorization("aUthId100x", PASSWORD, &nonce_of(&r), "REGISTER", 1);
        let r = c.handle_request(
            &msg("REGISTER", "100", 2, &format!("Authorization: {auth}\r\n")),
            origin(),
            now(),
        );
        assert_eq!(r.status, 200);
        c.take_changes();
        c.set_extensions(vec![ext("100", "aUthId100x", false)]);
        assert!(c.registrar().is_empty());
        assert!(matches!(&c.take_changes()[..], [Change::Remove { .. }]));
    }

    #[test]
    fn an_extension_that_requires_tls_is_refused_over_udp_and_accepted_over_tls() {
        let mut c = core();
        let mut e = ext("100", "aUthId100x", true);
        e.require_tls = true;
        c.set_extensions(vec![e]);
        let r = register_100(&mut c, origin(), 1);
        assert_eq!(r.status, 403);
        assert!(
            c.take_events()
                .iter()
                .any(|e| e.kind == event_kind::POLICY && e.reason == "tls_required")
        );
        assert!(c.registrar().is_empty());
        let tls = Origin {
            transport: "TLS",
            ..origin()
        };
        let r = register_100(&mut c, tls, 3);
        assert_eq!(r.status, 200);
    }

    #[test]
    fn lan_only_extensions_register_only_from_local_networks() {
        let mut c = core();
        let mut e = ext("100", "aUthId100x", true);
        e.lan_only = true;
        c.set_extensions(vec![e]);
        // origin() is 192.0.2.50: not a local network by default
        let r = register_100(&mut c, origin(), 1);
        assert_eq!(r.status, 403);
        assert!(
            c.take_events()
                .iter()
                .any(|e| e.kind == event_kind::POLICY && e.reason == "lan_only")
        );
        let lan = Origin {
            source: "192.168.1.20:5060".parse().unwrap(),
            ..origin()
        };
        let r = register_100(&mut c, lan, 3);
        assert_eq!(r.status, 200);
    }

    /// `method` from extension 100 at `from`: unauthenticated, then answering the 407; the second reply
    /// (`authorize_call` for INVITE, as the call layer asks, `handle_request` otherwise).
    fn request_as_100(c: &mut PbxCore, method: &str, from: Origin, cseq: u32) -> Reply {
        let send = |c: &mut PbxCore, m: &Message| {
            if method == "INVITE" {
                c.authorize_call(m, from, now())
                    .err()
                    .unwrap_or(Reply::status(200))
            } else {
                c.handle_request(m, from, now())
            }
        };
        let r = send(c, &msg(method, "100", cseq, ""));
        assert_eq!(r.status, 407, "{method}: {r:?}");
        let auth = authorization("aUthId100x", PASSWORD, &nonce_of(&r), method, 1);
        let m = msg(
            method,
            "100",
            cseq + 1,
            &format!("Proxy-Authorization: {auth}\r\n"),
        );
        send(c, &m)
    }

    #[test]
    fn location_rules_hold_for_every_authenticated_request() {
        let mut c = core();
        let mut e = ext("100", "aUthId100x", true);
        e.lan_only = true;
        c.set_extensions(vec![e]);
        let lan = Origin {
            source: "192.168.1.20:5060".parse().unwrap(),
            ..origin()
        };
        for (i, method) in ["INVITE", "SUBSCRIBE", "MESSAGE", "REFER"]
            .into_iter()
            .enumerate()
        {
            let cseq = 10 * i as u32;
            let r = request_as_100(&mut c, method, origin(), cseq);
            assert_eq!(r.status, 403, "{method} from outside: {r:?}");
            let events = c.take_events();
            let refusal = events
                .iter()
                .find(|e| e.kind == event_kind::POLICY)
                .unwrap_or_else(|| panic!("no policy event for {method}: {events:?}"));
            assert_eq!(refusal.reason, "lan_only");
            assert!(refusal.detail.as_deref().unwrap_or("").contains(method));
            let r = request_as_100(&mut c, method, lan, cseq + 2);
            assert_ne!(r.status, 403, "{method} from the LAN: {r:?}");
            assert_ne!(r.status, 407, "{method} from the LAN: {r:?}");
        }
        // TLS required: an INVITE over UDP is refused, over TLS it passes.
        let mut e = ext("100", "aUthId100x", true);
        e.require_tls = true;
        c.set_extensions(vec![e]);
        assert_eq!(request_as_100(&mut c, "INVITE", lan, 100).status, 403);
        assert!(c.take_events().iter().any(|e| e.reason == "tls_required"));
        let tls = Origin {
            transport: "TLS",
            ..lan
        };
        assert_eq!(request_as_100(&mut c, "INVITE", tls, 102).status, 200);
    }

    #[test]
    fn location_rules_hold_inside_dialogs_too() {
        let mut c = core();
        let mut e = ext("100", "aUthId100x", true);
        e.lan_only = true;
        c.set_extensions(vec![e]);
        let r = c.in_dialog_location("100", "INVITE", origin(), now());
        assert_eq!(r.map(|r| r.status), Some(403));
        let events = c.take_events();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].reason, "lan_only");
        assert!(
            events[0]
                .detail
                .as_deref()
                .unwrap_or("")
                .contains("inside a dialog")
        );
        let lan = Origin {
            source: "192.168.1.20:5060".parse().unwrap(),
            ..origin()
        };
        assert_eq!(c.in_dialog_location("100", "BYE", lan, now()), None);
        assert_eq!(c.in_dialog_location("555", "BYE", origin(), now()), None);
    }

    #[test]
    fn remote_websocket_clients_can_be_blocked_per_extension() {
        let mut c = core();
        let mut e = ext("100", "aUthId100x", true);
        e.block_remote_ws = true;
        c.set_extensions(vec![e]);
        let ws = Origin {
            transport: "WSS",
            ..origin()
        };
        let r = register_100(&mut c, ws, 1);
        assert_eq!(r.status, 403);
        assert!(
            c.take_events()
                .iter()
                .any(|e| e.reason == "remote_ws_blocked")
        );
        // the same phone over plain UDP is not affected
        let r = register_100(&mut c, origin(), 3);
        assert_eq!(r.status, 200);
    }
}
