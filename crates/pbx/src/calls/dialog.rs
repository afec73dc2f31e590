//! One side of a call as a SIP dialog (RFC 3261 §12): identifiers, remote target, sequence numbers, and how to
//! write a request inside it.

use bytes::Bytes;
use sip::{HeaderName, Message, RequestBuilder};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    pub call_id: String,
    pub local_tag: String,
    /// `None` until the other side answered (UAC side, before a response with a To tag).
    pub remote_tag: Option<String>,
    /// Our address of record in this dialog, as a name-addr without tag (`"Alice" <sip:100@pbx>`).
    pub local_uri: String,
    /// The other side's, likewise.
    pub remote_uri: String,
    /// The other side's Contact URI: the Request-URI of our requests.
    pub remote_target: String,
    pub local_cseq: u32,
    pub remote_cseq: Option<u32>,
}

impl Dialog {
    /// The dialog Palisade holds as the UAS of an incoming INVITE.
    pub fn uas(invite: &Message, local_tag: String) -> Dialog {
        let call_id = invite
            .call_id()
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .unwrap_or_default();
        let (remote_uri, remote_tag) = match invite.from() {
            Ok(f) => (without_tag(&f), f.tag().map(str::to_string)),
            Err(_) => (String::new(), None),
        };
        let local_uri = invite.to().map(|t| without_tag(&t)).unwrap_or_default();
        let remote_target = invite
            .contacts()
            .filter_map(Result::ok)
            .find_map(|c| match c {
                sip::addr::Contact::Addr(a) => Some(a.uri.raw.to_string()),
                sip::addr::Contact::Star => None,
            })
            .or_else(|| invite.from().ok().map(|f| f.uri.raw.to_string()))
            .unwrap_or_default();
        Dialog {
            call_id,
            local_tag,
            remote_tag: Some(remote_tag.unwrap_or_default()),
            local_uri,
            remote_uri,
            remote_target,
            local_cseq: 0,
            remote_cseq: invite.cseq().ok().map(|c| c.seq),
        }
    }

    /// The dialog Palisade opens as the UAC of a new INVITE (CSeq 1 is the INVITE).
    pub fn uac(
        call_id: String,
        local_tag: String,
        local_uri: String,
        display_name: Option<String>,
        remote_uri: String,
        remote_target: String,
    ) -> Dialog {
        let local_uri = match display_name {
            Some(d) if !d.is_empty() => format!("\"{}\" {local_uri}", d.replace(['"', '\\'], "")),
            _ => local_uri,
        };
        Dialog {
            call_id,
            local_tag,
            remote_tag: None,
            local_uri,
            remote_uri,
            remote_target,
            local_cseq: 1,
            remote_cseq: None,
        }
    }

    /// (Call-ID, local tag, remote tag): how requests from the other side are matched to this dialog.
    pub fn key(&self) -> (String, String, String) {
        (
            self.call_id.clone(),
            self.local_tag.clone(),
            self.remote_tag.clone().unwrap_or_default(),
        )
    }

    /// A request inside the dialog, as the message the transaction layer sends (never parsed again). Fails only
    /// if Palisade wrote something unparsable, which the caller treats as a request it could not send.
    #[allow(clippy::too_many_arguments)] // the parts RFC 3261 §12.2.1.1 lists
    pub fn request(
        &self,
        method: &str,
        cseq: u32,
        via: &str,
        contact: &str,
        max_forwards: u8,
        extra: &[(HeaderName, String)],
        body: Option<(&str, Bytes)>,
    ) -> Result<Message, sip::ParseError> {
        let to = match &self.remote_tag {
            Some(tag) if !tag.is_empty() => format!("{};tag={tag}", self.remote_uri),
            _ => self.remote_uri.clone(),
        };
        let mut b = RequestBuilder::new(method, &self.remote_target)
            .header(HeaderName::Via, via)
            .header(HeaderName::MaxForwards, max_forwards.to_string())
            .header(
                HeaderName::From,
                format!("{};tag={}", self.local_uri, self.local_tag),
            )
            .header(HeaderName::To, to)
            .header(HeaderName::CallId, &self.call_id)
            .header(HeaderName::CSeq, format!("{cseq} {method}"));
        if !matches!(method, "ACK" | "BYE" | "CANCEL" | "INFO" | "MESSAGE") {
            b = b.header(HeaderName::Contact, contact);
        }
        for (name, value) in extra {
            b = b.header(*name, value);
        }
        if let Some((ct, body)) = body {
            b = b.body(ct, body);
        }
        b.build_message()
    }
}

/// A name-addr written back without its tag parameter.
fn without_tag(a: &sip::addr::NameAddr<'_>) -> String {
    let display = a
        .display_raw
        .map(|d| format!("{} ", String::from_utf8_lossy(d)))
        .unwrap_or_default();
    let mut params = String::new();
    for p in sip::text::params(a.params_raw()).filter_map(Result::ok) {
        if p.name.eq_ignore_ascii_case(b"tag") {
            continue;
        }
        params.push(';');
        params.push_str(&String::from_utf8_lossy(p.name));
        if let Some(v) = p.value {
            params.push('=');
            params.push_str(&String::from_utf8_lossy(v));
        }
    }
    format!("{display}<{}>{params}", a.uri.raw)
}
