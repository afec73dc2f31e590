//! Voicemail: PINs ([`pin`]), the spoken dialogue ([`ivr`]) and message-waiting indication bodies (RFC 3842).
//! Storage is in the `store` crate; the audio edge (RTP, WAV files) is in the binary.

pub mod ivr;
pub mod lockout;
pub mod pin;

use std::time::Duration;

pub use crate::model::Counts;

/// Voicemail settings of the PBX.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoicemailConfig {
    /// Unanswered calls to an extension with voicemail go to its mailbox after this long.
    pub ring_time: Duration,
    /// The longest message a caller may leave.
    pub max_message: Duration,
}

impl Default for VoicemailConfig {
    fn default() -> Self {
        VoicemailConfig {
            ring_time: Duration::from_secs(20),
            max_message: Duration::from_secs(120),
        }
    }
}

/// The `application/simple-message-summary` body of a message-waiting NOTIFY (RFC 3842 §5.2).
pub fn message_summary(account: &str, counts: Counts) -> String {
    format!(
        "Messages-Waiting: {}\r\nMessage-Account: {account}\r\nVoice-Message: {}/{} (0/0)\r\n",
        if counts.new > 0 { "yes" } else { "no" },
        counts.new,
        counts.old
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_follows_rfc_3842() {
        let body = message_summary("sip:1001@pbx.test", Counts { new: 2, old: 5 });
        assert_eq!(
            body,
            "Messages-Waiting: yes\r\nMessage-Account: sip:1001@pbx.test\r\nVoice-Message: 2/5 (0/0)\r\n"
        );
        let body = message_summary("sip:1001@pbx.test", Counts { new: 0, old: 1 });
        assert!(body.starts_with("Messages-Waiting: no\r\n"));
    }
}
