//! The vocabulary the PBX logic shares with its edges (the store, the admin CLI, the service): plain data with no
//! I/O and no database derives. The `store` crate maps these to and from its columns.

/// An extension's (or trunk's) SDES-SRTP policy (RFC 4568 keys travel in the SDP, so they are only offered and
/// accepted in SIP over TLS). Stored as the lower-case name ([`SrtpMode::as_str`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SrtpMode {
    /// Plain RTP only: an SRTP offer is answered with plain RTP (or refused if the phone insists).
    Disabled,
    /// SRTP when the phone offers it over TLS; plain RTP otherwise. The default: phones on UDP keep working and
    /// phones on TLS get encrypted media.
    #[default]
    Enabled,
    /// "Exclusively secure": only SRTP over TLS is accepted; a plain-RTP offer is answered with 488 and the
    /// extension is never sent plain RTP.
    Enforced,
}

/// A value that is not an SRTP mode; the message lists the allowed values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid SRTP mode '{}': expected disabled, enabled or enforced", .0.escape_debug())]
pub struct InvalidSrtpMode(pub String);

impl SrtpMode {
    /// Every mode, in the order shown to operators.
    pub const ALL: [SrtpMode; 3] = [SrtpMode::Disabled, SrtpMode::Enabled, SrtpMode::Enforced];

    /// The stored (and command-line) name.
    pub fn as_str(self) -> &'static str {
        match self {
            SrtpMode::Disabled => "disabled",
            SrtpMode::Enabled => "enabled",
            SrtpMode::Enforced => "enforced",
        }
    }

    /// Parses a mode name (case-insensitive, surrounding spaces ignored); the error lists the allowed values.
    pub fn parse(value: &str) -> Result<SrtpMode, InvalidSrtpMode> {
        let v = value.trim();
        SrtpMode::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(v))
            .ok_or_else(|| InvalidSrtpMode(value.to_string()))
    }

    /// The mode whose stored name is exactly `value` (as a column holds it), without [`SrtpMode::parse`]'s leniency.
    pub fn from_stored(value: &str) -> Result<SrtpMode, InvalidSrtpMode> {
        SrtpMode::ALL
            .into_iter()
            .find(|m| m.as_str() == value)
            .ok_or_else(|| InvalidSrtpMode(value.to_string()))
    }
}

impl std::fmt::Display for SrtpMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for SrtpMode {
    type Err = InvalidSrtpMode;
    fn from_str(s: &str) -> Result<SrtpMode, InvalidSrtpMode> {
        SrtpMode::parse(s)
    }
}

/// Decoding a stored column (exact names only).
impl TryFrom<String> for SrtpMode {
    type Error = InvalidSrtpMode;
    fn try_from(s: String) -> Result<SrtpMode, InvalidSrtpMode> {
        SrtpMode::from_stored(&s)
    }
}

/// A security decision to record (the event log; docs/architecture.md, principle 6: one decision, one event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityEvent {
    /// Unix milliseconds.
    pub at: i64,
    /// What kind of decision: [`SecurityEventKind::as_str`] (text, as the store's column and the event stream carry
    /// it; the typed form is how the PBX decides).
    pub kind: String,
    /// The reason code, e.g. "wrong_password", "unknown_user" ([`SecurityReason::as_str`] for the PBX's own).
    pub reason: String,
    /// The transport source address.
    pub source: String,
    /// The user named in the request, if any (attacker-controlled).
    pub user: Option<String>,
    pub detail: Option<String>,
}

/// What kind of security decision an event records. Stored, streamed and filtered on (`palisade events --kind …`)
/// as [`Self::as_str`]; the store's column text is exactly these names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecurityEventKind {
    /// A 401/407 went out: no credentials yet, or a stale nonce.
    AuthChallenge,
    /// Right credentials (and a PIN unlock).
    AuthSuccess,
    /// Wrong, unknown, disabled, replayed or misused credentials; a wrong or locked voicemail PIN.
    AuthFailure,
    /// A request refused by a rule after its credentials were checked (location rules, call policy, limits).
    PolicyRefusal,
    /// The guard (or an admin) blocked an address.
    Ban,
    /// An admin lifted a block.
    Unban,
    /// The guard dropped a flooding source for a while.
    Throttle,
    /// A temporary block or allow rule expired.
    BanExpired,
    AllowExpired,
    /// A failed login to the web console or an API request without a valid token.
    ConsoleAuthFailure,
    /// A source blocked from the web console and API (not from SIP) after repeated failures.
    ConsoleBan,
    /// A provisioning fetch refused (unknown token, wrong device, closed window): counted toward the console ban.
    ProvisioningRefused,
    /// A phone fetched its provisioning file with fresh credentials.
    ProvisioningCredentials,
    /// Console failure events counted but not stored (too many within one batch).
    ConsoleEventsDropped,
}

impl SecurityEventKind {
    /// Every kind, for parsing stored text.
    pub const ALL: [SecurityEventKind; 14] = [
        SecurityEventKind::AuthChallenge,
        SecurityEventKind::AuthSuccess,
        SecurityEventKind::AuthFailure,
        SecurityEventKind::PolicyRefusal,
        SecurityEventKind::Ban,
        SecurityEventKind::Unban,
        SecurityEventKind::Throttle,
        SecurityEventKind::BanExpired,
        SecurityEventKind::AllowExpired,
        SecurityEventKind::ConsoleAuthFailure,
        SecurityEventKind::ConsoleBan,
        SecurityEventKind::ProvisioningRefused,
        SecurityEventKind::ProvisioningCredentials,
        SecurityEventKind::ConsoleEventsDropped,
    ];

    /// The kind a stored or streamed name stands for (exact names only); `None` for text Palisade never writes.
    pub fn from_stored(s: &str) -> Option<SecurityEventKind> {
        SecurityEventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// A failed authentication, SIP or console.
    pub fn is_auth_failure(self) -> bool {
        matches!(
            self,
            SecurityEventKind::AuthFailure
                | SecurityEventKind::ConsoleAuthFailure
                | SecurityEventKind::ProvisioningRefused
        )
    }

    /// An address blocked, from SIP or from the console.
    pub fn is_ban(self) -> bool {
        matches!(self, SecurityEventKind::Ban | SecurityEventKind::ConsoleBan)
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            SecurityEventKind::AuthChallenge => "auth_challenge",
            SecurityEventKind::AuthSuccess => "auth_success",
            SecurityEventKind::AuthFailure => "auth_failure",
            SecurityEventKind::PolicyRefusal => "policy_refusal",
            SecurityEventKind::Ban => "ban",
            SecurityEventKind::Unban => "unban",
            SecurityEventKind::Throttle => "throttle",
            SecurityEventKind::BanExpired => "ban_expired",
            SecurityEventKind::AllowExpired => "allow_expired",
            SecurityEventKind::ConsoleAuthFailure => "console_auth_failure",
            SecurityEventKind::ConsoleBan => "console_ban",
            SecurityEventKind::ProvisioningRefused => "provisioning_refused",
            SecurityEventKind::ProvisioningCredentials => "provisioning_credentials",
            SecurityEventKind::ConsoleEventsDropped => "console_events_dropped",
        }
    }
}

/// Why the PBX core decided what a security event records. Stored as [`Self::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecurityReason {
    Auth(AuthReason),
    /// A per-extension rule about where it may be used.
    Location(LocationRefusal),
    Policy(PolicyReason),
    /// Why a console login or API request failed authentication.
    Console(ConsoleAuthReason),
}

impl From<AuthReason> for SecurityReason {
    fn from(r: AuthReason) -> Self {
        SecurityReason::Auth(r)
    }
}

impl From<LocationRefusal> for SecurityReason {
    fn from(r: LocationRefusal) -> Self {
        SecurityReason::Location(r)
    }
}

impl From<PolicyReason> for SecurityReason {
    fn from(r: PolicyReason) -> Self {
        SecurityReason::Policy(r)
    }
}

impl From<ConsoleAuthReason> for SecurityReason {
    fn from(r: ConsoleAuthReason) -> Self {
        SecurityReason::Console(r)
    }
}

impl SecurityReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityReason::Auth(r) => r.as_str(),
            SecurityReason::Location(r) => r.as_str(),
            SecurityReason::Policy(r) => r.as_str(),
            SecurityReason::Console(r) => r.as_str(),
        }
    }
}

/// The reasons of console and API authentication failures ([`SecurityEventKind::ConsoleAuthFailure`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConsoleAuthReason {
    /// An API request without a bearer token.
    NoToken,
    /// A bearer token that is unknown, revoked or expired.
    BadToken,
    UnknownAccount,
    WrongPassword,
    /// A wrong authenticator (TOTP) code.
    WrongCode,
    /// An authenticator code already used once.
    CodeReused,
}

impl ConsoleAuthReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsoleAuthReason::NoToken => "no_token",
            ConsoleAuthReason::BadToken => "bad_token",
            ConsoleAuthReason::UnknownAccount => "unknown_account",
            ConsoleAuthReason::WrongPassword => "wrong_password",
            ConsoleAuthReason::WrongCode => "wrong_code",
            ConsoleAuthReason::CodeReused => "code_reused",
        }
    }
}

/// The reasons of authentication events (digest, voicemail PIN, PIN unlock).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthReason {
    Ok,
    NoCredentials,
    StaleNonce,
    UnknownUser,
    WrongPassword,
    Disabled,
    NoHa1ForAlgorithm,
    BadNonce,
    Replay,
    AlgorithmNotOffered,
    QopRequired,
    MalformedCredentials,
    UnsupportedScheme,
    RealmMismatch,
    UriMismatch,
    /// The extension's own algorithm list does not include the one used.
    AlgorithmNotAllowed,
    /// Credentials of one extension used for another.
    AorMismatch,
    VoicemailPinWrong,
    VoicemailLockedOut,
    VoicemailPinLockout,
    VoicemailMailboxLocked,
    PinUnlock,
    /// A wrong conference-room PIN.
    ConferencePinWrong,
    /// The last allowed wrong conference PIN in a call: the call ended.
    ConferenceLockedOut,
    /// Too many wrong PINs for a room across calls: its PIN entry locked.
    ConferencePinLockout,
    /// A PIN offered while the room's PIN entry is locked.
    ConferenceLocked,
}

impl AuthReason {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthReason::Ok => "ok",
            AuthReason::NoCredentials => "no_credentials",
            AuthReason::StaleNonce => "stale_nonce",
            AuthReason::UnknownUser => "unknown_user",
            AuthReason::WrongPassword => "wrong_password",
            AuthReason::Disabled => "disabled",
            AuthReason::NoHa1ForAlgorithm => "no_ha1_for_algorithm",
            AuthReason::BadNonce => "bad_nonce",
            AuthReason::Replay => "replay",
            AuthReason::AlgorithmNotOffered => "algorithm_not_offered",
            AuthReason::QopRequired => "qop_required",
            AuthReason::MalformedCredentials => "malformed_credentials",
            AuthReason::UnsupportedScheme => "unsupported_scheme",
            AuthReason::RealmMismatch => "realm_mismatch",
            AuthReason::UriMismatch => "uri_mismatch",
            AuthReason::AlgorithmNotAllowed => "algorithm_not_allowed",
            AuthReason::AorMismatch => "aor_mismatch",
            AuthReason::VoicemailPinWrong => "voicemail_pin_wrong",
            AuthReason::VoicemailLockedOut => "voicemail_locked_out",
            AuthReason::VoicemailPinLockout => "voicemail_pin_lockout",
            AuthReason::VoicemailMailboxLocked => "voicemail_mailbox_locked",
            AuthReason::PinUnlock => "pin_unlock",
            AuthReason::ConferencePinWrong => "conference_pin_wrong",
            AuthReason::ConferenceLockedOut => "conference_locked_out",
            AuthReason::ConferencePinLockout => "conference_pin_lockout",
            AuthReason::ConferenceLocked => "conference_locked",
        }
    }
}

/// A per-extension rule about where the extension may be used, broken by a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LocationRefusal {
    /// `--lan-only`: from outside the local networks.
    LanOnly,
    /// `--block-remote-ws`: over WebSocket from outside the local networks.
    RemoteWebSocket,
    /// `--require-tls`: over a transport without TLS.
    TlsRequired,
}

impl LocationRefusal {
    pub fn as_str(self) -> &'static str {
        match self {
            LocationRefusal::LanOnly => "lan_only",
            LocationRefusal::RemoteWebSocket => "remote_ws_blocked",
            LocationRefusal::TlsRequired => "tls_required",
        }
    }

    /// The reason phrase of the 403.
    pub fn phrase(self) -> &'static str {
        match self {
            LocationRefusal::LanOnly => "Forbidden (only from the local network)",
            LocationRefusal::RemoteWebSocket => {
                "Forbidden (WebSocket clients only from the local network)"
            }
            LocationRefusal::TlsRequired => "Forbidden (TLS required)",
        }
    }
}

/// The reasons of call-policy events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyReason {
    /// An inbound trunk call to an internal-only extension.
    InternalOnly,
    /// An in-dialog request from another address than the leg's signalling.
    InDialogForeignSource,
    /// A CANCEL from another address than its INVITE.
    CancelForeignSource,
    /// A refusal typed where it is decided (the dialling policy's `Refusal`, a limit's `LimitRefusal`): its code.
    Rule(&'static str),
}

impl PolicyReason {
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyReason::InternalOnly => "internal_only",
            PolicyReason::InDialogForeignSource => "in_dialog_foreign_source",
            PolicyReason::CancelForeignSource => "cancel_foreign_source",
            PolicyReason::Rule(code) => code,
        }
    }
}

/// Event kinds as stored, for code that compares stored text (the typed form is [`SecurityEventKind`]).
pub mod event_kind {
    use super::SecurityEventKind;

    pub const CHALLENGE: &str = SecurityEventKind::AuthChallenge.as_str();
    pub const SUCCESS: &str = SecurityEventKind::AuthSuccess.as_str();
    pub const FAILURE: &str = SecurityEventKind::AuthFailure.as_str();
    pub const POLICY: &str = SecurityEventKind::PolicyRefusal.as_str();
}

/// New and old message counts of one mailbox (for message-waiting indication).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub new: u32,
    pub old: u32,
}

impl Counts {
    /// Every message, new or old.
    pub fn total(self) -> u32 {
        self.new.saturating_add(self.old)
    }
}

/// An extension's call forwards: the number for each case, `None` when off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Forwarding {
    /// Every call, before ringing.
    pub always: Option<String>,
    /// Every phone answered busy (486/600) or declined (603).
    pub busy: Option<String>,
    /// Nobody answered before the ring time, or no phone is registered.
    pub no_answer: Option<String>,
}

impl Forwarding {
    pub fn is_empty(&self) -> bool {
        self.always.is_none() && self.busy.is_none() && self.no_answer.is_none()
    }
}

#[cfg(test)]
mod security_vocabulary_tests {
    use super::*;

    /// The names are the store's column text and the event stream's: changing one would split history.
    #[test]
    fn kinds_and_reasons_keep_their_stored_names() {
        assert_eq!(SecurityEventKind::AuthFailure.as_str(), "auth_failure");
        assert_eq!(SecurityEventKind::PolicyRefusal.as_str(), "policy_refusal");
        assert_eq!(event_kind::CHALLENGE, "auth_challenge");
        assert_eq!(
            SecurityEventKind::ConsoleAuthFailure.as_str(),
            "console_auth_failure"
        );
        assert_eq!(SecurityEventKind::ConsoleBan.as_str(), "console_ban");
        for k in SecurityEventKind::ALL {
            assert_eq!(SecurityEventKind::from_stored(k.as_str()), Some(k));
        }
        assert_eq!(SecurityEventKind::from_stored("Ban"), None);
        let reasons: Vec<SecurityReason> = vec![
            AuthReason::WrongPassword.into(),
            AuthReason::MalformedCredentials.into(),
            LocationRefusal::RemoteWebSocket.into(),
            PolicyReason::CancelForeignSource.into(),
            PolicyReason::Rule("country_not_allowed").into(),
            ConsoleAuthReason::CodeReused.into(),
        ];
        let names: Vec<&str> = reasons.into_iter().map(SecurityReason::as_str).collect();
        assert_eq!(
            names,
            [
                "wrong_password",
                "malformed_credentials",
                "remote_ws_blocked",
                "cancel_foreign_source",
                "country_not_allowed",
                "code_reused"
            ]
        );
    }
}
