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
    /// What kind of decision, e.g. "auth_failure", "ban", "challenge" (see [`event_kind`]).
    pub kind: String,
    /// The reason code, e.g. "wrong_password", "unknown_user".
    pub reason: String,
    /// The transport source address.
    pub source: String,
    /// The user named in the request, if any (attacker-controlled).
    pub user: Option<String>,
    pub detail: Option<String>,
}

/// Event kinds, as stored (`palisade events --kind …`).
pub mod event_kind {
    pub const CHALLENGE: &str = "auth_challenge";
    pub const SUCCESS: &str = "auth_success";
    pub const FAILURE: &str = "auth_failure";
    /// A request refused by a per-extension rule (e.g. TLS required) after its credentials were checked.
    pub const POLICY: &str = "policy_refusal";
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
