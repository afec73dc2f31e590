//! Digest authentication of a request (hardening step 1) and the location rules that follow it: one path for
//! every method, refusals that look alike to an attacker, and the security event that says which it was.

use super::*;
use crate::model::SecurityEventKind as Kind;

/// What authentication decided for one request: the only thing [`Authenticator`] answers, for REGISTER, for new
/// requests (INVITE, SUBSCRIBE, MESSAGE, …) and for requests inside a dialog alike. Every decision carries the
/// security event that says why; [`PbxCore`] records it and writes the reply.
#[derive(Debug)]
pub(super) enum AuthDecision {
    /// Right credentials for the claimed extension, from where that extension may be used.
    Accept {
        extension: Arc<ExtensionAuth>,
        event: Option<AuthEvent>,
    },
    /// A fresh challenge (401 or 407): no credentials, a stale nonce, or credentials refused for any reason. An
    /// attacker cannot tell which; only the event says.
    Challenge {
        challenge: ChallengeKind,
        stale: bool,
        event: AuthEvent,
    },
    /// Right credentials (or an established dialog) from a place the extension may not be used from: 403.
    Refuse {
        refusal: LocationRefusal,
        event: AuthEvent,
    },
}

/// The security event behind a decision, before it is stamped with time and source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct AuthEvent {
    pub(super) kind: SecurityEventKind,
    pub(super) reason: SecurityReason,
    pub(super) user: Option<String>,
    pub(super) detail: Option<String>,
}

impl AuthEvent {
    fn new(kind: SecurityEventKind, reason: impl Into<SecurityReason>, user: Option<&str>) -> Self {
        AuthEvent {
            kind,
            reason: reason.into(),
            user: user.map(str::to_string),
            detail: None,
        }
    }

    fn detail(mut self, detail: String) -> Self {
        self.detail = Some(detail);
        self
    }
}

/// What authentication reads from the core: the extension directory, the global algorithms and the local
/// networks.
pub(super) struct Directory<'a> {
    pub(super) by_auth_id: &'a HashMap<String, Arc<ExtensionAuth>>,
    pub(super) by_number: &'a HashMap<String, Arc<ExtensionAuth>>,
    pub(super) algorithms: &'a [Algorithm],
    pub(super) restrictions: &'a Restrictions,
}

/// Digest authentication (hardening step 1) and the location rules that follow it. It owns the verifier (nonces,
/// replay state) and decides; it records nothing and writes no reply.
pub(super) struct Authenticator {
    pub(super) verifier: DigestVerifier,
    realm: String,
}

impl Authenticator {
    pub(super) fn new(config: &CoreConfig, key: NonceKey) -> Result<Self, ConfigError> {
        Ok(Authenticator {
            verifier: DigestVerifier::new(verifier_config(config), key)?,
            realm: config.realm.clone(),
        })
    }

    /// Checks the credentials in `header` (Authorization for REGISTER, Proxy-Authorization otherwise).
    /// `claimed` is the extension the request is about (To user for REGISTER, From user otherwise); it only
    /// chooses the algorithms to challenge with when that extension has its own setting.
    pub(super) fn decide(
        &mut self,
        msg: &Message,
        header: HeaderName,
        claimed: &str,
        origin: Origin,
        directory: &Directory<'_>,
        now: SystemTime,
    ) -> AuthDecision {
        let challenge = ChallengeKind {
            // REGISTER carries Authorization and is challenged 401; everything else 407 (RFC 3261 §22).
            proxy: header != HeaderName::Authorization,
            algorithms: directory
                .by_number
                .get(claimed)
                .and_then(|e| e.algorithms.clone())
                .unwrap_or_else(|| directory.algorithms.to_vec()),
        };
        let challenge_with = |challenge, event| AuthDecision::Challenge {
            challenge,
            stale: false,
            event,
        };

        // A phone may carry credentials for several realms; only ours count.
        let credentials = msg
            .header_values(header)
            .filter_map(|v| std::str::from_utf8(sip::text::trim(v)).ok())
            .find(|v| {
                DigestAuthorization::parse(v)
                    .map(|a| a.realm == self.realm)
                    .unwrap_or(true)
            });
        let Some(credentials) = credentials else {
            let event = AuthEvent::new(Kind::AuthChallenge, AuthReason::NoCredentials, None);
            return challenge_with(challenge, event);
        };
        let method = msg.method_str().unwrap_or_default().to_string();
        let uri = msg
            .request_uri_raw()
            .and_then(|u| std::str::from_utf8(u).ok())
            .unwrap_or_default()
            .to_string();
        let by_auth_id = directory.by_auth_id;
        let lookup = |user: &str| {
            by_auth_id.get(user).map(|e| Credentials {
                disabled: !e.enabled,
                ..e.credentials.clone()
            })
        };
        let source = origin.source.ip();
        // A REGISTER is answered without a server transaction (pbx::endpoint), so its retransmission reaches
        // here again: the verifier recognises it by its bytes instead of calling its nonce count a replay.
        let outcome = if msg.method() == Some(sip::Method::Register) {
            let fingerprint = request_fingerprint(msg.bytes());
            self.verifier.verify_request(
                credentials,
                &method,
                &uri,
                fingerprint,
                lookup,
                now,
                source,
            )
        } else {
            self.verifier
                .verify(credentials, &method, &uri, lookup, now, source)
        };
        let username = match outcome {
            AuthOutcome::Ok { username } => username,
            AuthOutcome::Stale => {
                return AuthDecision::Challenge {
                    challenge,
                    stale: true,
                    event: AuthEvent::new(Kind::AuthChallenge, AuthReason::StaleNonce, None),
                };
            }
            AuthOutcome::Fail { reason, username } => {
                let event =
                    AuthEvent::new(Kind::AuthFailure, auth_reason(&reason), username.as_deref());
                return challenge_with(challenge, event);
            }
        };
        let failure =
            |reason: AuthReason| AuthEvent::new(Kind::AuthFailure, reason, Some(&username));
        let Some(ext) = by_auth_id.get(&username).cloned() else {
            // The directory changed between lookup and now; treat as unknown.
            return challenge_with(challenge, failure(AuthReason::UnknownUser));
        };
        let used = DigestAuthorization::parse(credentials)
            .map(|a| a.algorithm)
            .ok();
        let allowed = ext.algorithms.as_deref().unwrap_or(directory.algorithms);
        if used.is_none_or(|a| !allowed.contains(&a)) {
            return challenge_with(challenge, failure(AuthReason::AlgorithmNotAllowed));
        }
        if ext.number != claimed {
            // Valid credentials of one extension used for another: refused exactly like a wrong password, so
            // the answer confirms nothing about the password.
            let detail = format!("credentials of {} used for {claimed}", ext.number);
            return challenge_with(challenge, failure(AuthReason::AorMismatch).detail(detail));
        }
        // Where an extension may be used (LAN only, TLS only, no remote WebSocket) holds for every request its
        // credentials authenticate — REGISTER, INVITE, SUBSCRIBE, MESSAGE, REFER … — not only for registration.
        // Right credentials from the wrong place are a policy decision: 403 and a policy event, not an
        // authentication failure (it does not count toward a ban).
        let local = directory.restrictions.is_local(origin.source.ip());
        if let Some(refusal) = location_refusal(&ext, origin, local) {
            let detail = format!(
                "extension {} {} over {} from {}",
                ext.number,
                msg.method_str().unwrap_or("request"),
                origin.transport,
                origin.source.ip()
            );
            let event =
                AuthEvent::new(Kind::PolicyRefusal, refusal, Some(&username)).detail(detail);
            return AuthDecision::Refuse { refusal, event };
        }
        AuthDecision::Accept {
            extension: ext,
            event: Some(AuthEvent::new(
                Kind::AuthSuccess,
                AuthReason::Ok,
                Some(&username),
            )),
        }
    }

    /// A request inside a dialog of extension `ext` is not authenticated again, but the extension's location
    /// rules (`--lan-only`, `--require-tls`, `--block-remote-ws`) still hold for it.
    pub(super) fn decide_in_dialog(
        ext: Arc<ExtensionAuth>,
        method: &str,
        origin: Origin,
        local: bool,
    ) -> AuthDecision {
        match location_refusal(&ext, origin, local) {
            Some(refusal) => {
                let detail = format!(
                    "extension {} {method} inside a dialog over {} from {}",
                    ext.number,
                    origin.transport,
                    origin.source.ip()
                );
                let event =
                    AuthEvent::new(Kind::PolicyRefusal, refusal, Some(&ext.auth_id)).detail(detail);
                AuthDecision::Refuse { refusal, event }
            }
            None => AuthDecision::Accept {
                extension: ext,
                event: None,
            },
        }
    }

    /// The 401/407 that carries a fresh challenge.
    fn challenge_reply(
        &mut self,
        challenge: &ChallengeKind,
        stale: bool,
        origin: Origin,
        now: SystemTime,
    ) -> Reply {
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
}

impl PbxCore {
    /// Authenticates `msg` for `claimed` (see [`Authenticator::decide`]): the extension, or the reply to send.
    pub(super) fn authenticate(
        &mut self,
        msg: &Message,
        header: HeaderName,
        claimed: &str,
        origin: Origin,
        now: SystemTime,
    ) -> Result<Arc<ExtensionAuth>, Reply> {
        let directory = Directory {
            by_auth_id: &self.by_auth_id,
            by_number: &self.by_number,
            algorithms: &self.config.algorithms,
            restrictions: &self.restrictions,
        };
        let decision = self
            .authenticator
            .decide(msg, header, claimed, origin, &directory, now);
        self.apply(decision, origin, now)
    }

    /// Carries out a decision: records its event (which also feeds the guard), then the extension or the reply.
    pub(super) fn apply(
        &mut self,
        decision: AuthDecision,
        origin: Origin,
        now: SystemTime,
    ) -> Result<Arc<ExtensionAuth>, Reply> {
        match decision {
            AuthDecision::Accept { extension, event } => {
                if let Some(event) = event {
                    self.record(event, origin, now);
                }
                Ok(extension)
            }
            AuthDecision::Challenge {
                challenge,
                stale,
                event,
            } => {
                self.record(event, origin, now);
                Err(self
                    .authenticator
                    .challenge_reply(&challenge, stale, origin, now))
            }
            AuthDecision::Refuse { refusal, event } => {
                self.record(event, origin, now);
                Err(Reply::status(403).reason(refusal.phrase()))
            }
        }
    }

    fn record(&mut self, e: AuthEvent, origin: Origin, now: SystemTime) {
        self.event(e.kind, e.reason, origin, e.user.as_deref(), e.detail, now);
    }

    pub(super) fn event(
        &mut self,
        kind: SecurityEventKind,
        reason: impl Into<SecurityReason>,
        origin: Origin,
        user: Option<&str>,
        detail: Option<String>,
        now: SystemTime,
    ) {
        self.signal = match kind {
            Kind::AuthChallenge => AuthSignal::Challenged,
            Kind::AuthSuccess => AuthSignal::Succeeded,
            Kind::AuthFailure => AuthSignal::Failed,
            _ => self.signal,
        };
        if self.events.len() >= MAX_PENDING_EVENTS {
            self.events_dropped += 1;
            return;
        }
        // The event leaves the core as text: the store's columns and the event stream carry these names.
        self.events.push(SecurityEvent {
            at: unix_millis(now),
            kind: kind.as_str().to_string(),
            reason: reason.into().as_str().to_string(),
            source: origin.source.to_string(),
            user: user.map(str::to_string),
            detail,
        });
    }
}

/// Which of `ext`'s location rules a request arriving at `origin` breaks, if any (`local`: the source is on one of
/// the local networks).
pub(super) fn location_refusal(
    ext: &ExtensionAuth,
    origin: Origin,
    local: bool,
) -> Option<LocationRefusal> {
    if ext.lan_only && !local {
        Some(LocationRefusal::LanOnly)
    } else if ext.block_remote_ws && origin.transport.is_websocket() && !local {
        Some(LocationRefusal::RemoteWebSocket)
    } else if ext.require_tls && !origin.transport.is_secure() {
        Some(LocationRefusal::TlsRequired)
    } else {
        None
    }
}

pub(super) fn verifier_config(config: &CoreConfig) -> VerifierConfig {
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

/// The event reason of a failed authentication.
pub fn auth_reason(reason: &FailReason) -> AuthReason {
    match reason {
        FailReason::UnknownUser => AuthReason::UnknownUser,
        FailReason::WrongPassword => AuthReason::WrongPassword,
        FailReason::Disabled => AuthReason::Disabled,
        FailReason::NoHa1ForAlgorithm => AuthReason::NoHa1ForAlgorithm,
        FailReason::BadNonce => AuthReason::BadNonce,
        FailReason::Replay => AuthReason::Replay,
        FailReason::AlgorithmNotOffered(_) => AuthReason::AlgorithmNotOffered,
        FailReason::QopRequired => AuthReason::QopRequired,
        FailReason::Malformed(_) => AuthReason::MalformedCredentials,
        FailReason::UnsupportedScheme => AuthReason::UnsupportedScheme,
        FailReason::RealmMismatch => AuthReason::RealmMismatch,
        FailReason::UriMismatch => AuthReason::UriMismatch,
    }
}

/// The first 16 bytes of the SHA-256 of a request: a retransmission has the same, another request (a changed
/// Contact, branch or CSeq) cannot be made to have it.
fn request_fingerprint(bytes: &[u8]) -> crate::auth::replay::RequestFingerprint {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(bytes);
    let mut f = [0u8; 16];
    f.copy_from_slice(&digest[..16]);
    f
}
