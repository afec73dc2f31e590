//! Digest authentication of a request (hardening step 1) and the location rules that follow it: one path for
//! every method, refusals that look alike to an attacker, and the security event that says which it was.

use super::*;

impl PbxCore {
    /// Checks the credentials in `header` (Authorization for REGISTER, Proxy-Authorization otherwise).
    /// `claimed` is the extension the request is about (To user for REGISTER, From user otherwise); it only
    /// chooses the algorithms to challenge with when that extension has its own setting.
    pub(super) fn authenticate(
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
    pub(super) fn refuse(
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

    pub(super) fn event(
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
}

/// A per-extension rule about where the extension may be used, broken by a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LocationRefusal {
    /// `--lan-only`: from outside the local networks.
    LanOnly,
    /// `--block-remote-ws`: over WebSocket from outside the local networks.
    RemoteWebSocket,
    /// `--require-tls`: over a transport without TLS.
    TlsRequired,
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

impl LocationRefusal {
    pub(super) fn reason_code(self) -> &'static str {
        match self {
            LocationRefusal::LanOnly => "lan_only",
            LocationRefusal::RemoteWebSocket => "remote_ws_blocked",
            LocationRefusal::TlsRequired => "tls_required",
        }
    }

    pub(super) fn phrase(self) -> &'static str {
        match self {
            LocationRefusal::LanOnly => "Forbidden (only from the local network)",
            LocationRefusal::RemoteWebSocket => {
                "Forbidden (WebSocket clients only from the local network)"
            }
            LocationRefusal::TlsRequired => "Forbidden (TLS required)",
        }
    }
}
