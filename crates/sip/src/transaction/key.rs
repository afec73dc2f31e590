//! Transaction matching keys (RFC 3261 §17.1.3 and §17.2.3).

use crate::addr::AddrError;
use crate::cseq::CSeqError;
use crate::header::HeaderName;
use crate::message::Message;
use crate::text;
use crate::via::{MAGIC_COOKIE, ViaError};

/// Why a message cannot be matched to a transaction. The TU answers such a request 400 (or drops it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("expected a request")]
    NotARequest,
    #[error("expected a response")]
    NotAResponse,
    #[error("top Via: {0}")]
    Via(ViaError),
    #[error("top Via has no branch")]
    MissingBranch,
    #[error("CSeq: {0}")]
    CSeq(CSeqError),
    #[error("CSeq method does not match the request method")]
    CSeqMismatch,
    #[error("no Call-ID header")]
    MissingCallId,
    #[error("From: {0}")]
    From(AddrError),
    #[error("To: {0}")]
    To(AddrError),
}

/// Identifies a server transaction: what a request (or its retransmission, its ACK) is matched by.
///
/// With an RFC 3261 branch (`z9hG4bK` followed by at least one more character) the key is branch + sent-by +
/// method, ACK counting as INVITE. Otherwise (RFC 2543 peers, and RFC 4475's `badbranch`, whose branch is the
/// bare cookie) it is Request-URI + From tag + Call-ID + CSeq number + top Via + method, plus the To tag for
/// non-INVITE requests. The To tag is left out for INVITE so that the ACK to a non-2xx (which carries the tag of
/// our response) matches; that is a slight relaxation of §17.2.3.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerKey(Inner);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Inner {
    Branch {
        branch: Box<str>,
        sent_by: Box<str>,
        method: Box<str>,
    },
    Legacy(Box<Legacy>),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Legacy {
    request_uri: Box<[u8]>,
    to_tag: Option<Box<str>>,
    from_tag: Option<Box<str>>,
    call_id: Box<[u8]>,
    cseq: u32,
    top_via: Box<[u8]>,
    method: Box<str>,
}

/// True when `branch` can be trusted as a transaction identifier: the magic cookie plus something unique.
pub fn is_rfc3261_branch(branch: &str) -> bool {
    branch.len() > MAGIC_COOKIE.len() && branch.starts_with(MAGIC_COOKIE)
}

/// ACK belongs to the INVITE transaction; every other method is its own.
fn normalize(method: &str) -> &str {
    if method == "ACK" { "INVITE" } else { method }
}

impl ServerKey {
    /// The key of the server transaction `req` belongs to (for ACK: the INVITE transaction it acknowledges).
    pub fn from_request(req: &Message) -> Result<ServerKey, KeyError> {
        let method = req.method_str().ok_or(KeyError::NotARequest)?;
        let cseq = req.cseq().map_err(KeyError::CSeq)?;
        if cseq.method_text != method {
            return Err(KeyError::CSeqMismatch);
        }
        let via = req.top_via().map_err(KeyError::Via)?;
        let method = normalize(method);
        if let Some(branch) = via.branch().filter(|b| is_rfc3261_branch(b)) {
            return Ok(ServerKey(Inner::Branch {
                branch: branch.into(),
                sent_by: via.sent_by.to_ascii_lowercase().into(),
                method: method.into(),
            }));
        }
        let top_via = req
            .header_elements(HeaderName::Via)
            .next()
            .and_then(Result::ok)
            .map(text::trim)
            .ok_or(KeyError::Via(ViaError::Missing))?;
        let from = req.from().map_err(KeyError::From)?;
        let to = req.to().map_err(KeyError::To)?;
        let to_tag = if method == "INVITE" {
            None
        } else {
            to.tag().map(Into::into)
        };
        Ok(ServerKey(Inner::Legacy(Box::new(Legacy {
            request_uri: req.request_uri_raw().ok_or(KeyError::NotARequest)?.into(),
            to_tag,
            from_tag: from.tag().map(Into::into),
            call_id: req.call_id().ok_or(KeyError::MissingCallId)?.into(),
            cseq: cseq.seq,
            top_via: top_via.into(),
            method: method.into(),
        }))))
    }

    /// For a CANCEL's key: the key of the INVITE transaction it cancels (§9.2).
    pub fn cancelled_invite(&self) -> ServerKey {
        match &self.0 {
            Inner::Branch {
                branch, sent_by, ..
            } => ServerKey(Inner::Branch {
                branch: branch.clone(),
                sent_by: sent_by.clone(),
                method: "INVITE".into(),
            }),
            Inner::Legacy(l) => {
                let mut l = l.clone();
                l.method = "INVITE".into();
                l.to_tag = None;
                ServerKey(Inner::Legacy(l))
            }
        }
    }

    /// True when the key came from an RFC 3261 branch rather than the RFC 2543 fallback.
    pub fn is_rfc3261(&self) -> bool {
        matches!(self.0, Inner::Branch { .. })
    }
}

/// Identifies a client transaction: the branch we put in the top Via plus the CSeq method (§17.1.3), so a CANCEL
/// (same branch as its INVITE) is a transaction of its own.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientKey {
    branch: Box<str>,
    method: Box<str>,
}

impl ClientKey {
    /// The key of a request we are about to send.
    pub fn from_request(req: &Message) -> Result<ClientKey, KeyError> {
        let method = req.method_str().ok_or(KeyError::NotARequest)?;
        let via = req.top_via().map_err(KeyError::Via)?;
        let branch = via
            .branch()
            .filter(|b| !b.is_empty())
            .ok_or(KeyError::MissingBranch)?;
        Ok(ClientKey {
            branch: branch.into(),
            method: method.into(),
        })
    }

    /// The key of the client transaction a response belongs to.
    pub fn from_response(resp: &Message) -> Result<ClientKey, KeyError> {
        if !resp.is_response() {
            return Err(KeyError::NotAResponse);
        }
        let cseq = resp.cseq().map_err(KeyError::CSeq)?;
        let via = resp.top_via().map_err(KeyError::Via)?;
        let branch = via
            .branch()
            .filter(|b| !b.is_empty())
            .ok_or(KeyError::MissingBranch)?;
        Ok(ClientKey {
            branch: branch.into(),
            method: cseq.method_text.into(),
        })
    }

    pub fn branch(&self) -> &str {
        &self.branch
    }

    pub fn method(&self) -> &str {
        &self.method
    }
}
