//! Why a message was refused, and what to answer.

use crate::message::Message;

/// What was wrong with a message. Each kind maps to the SIP status Palisade answers with and a reason phrase
/// that names the problem (the reason travels in the response and in the security event).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    #[error("message larger than {limit} bytes")]
    MessageTooLarge { limit: usize },
    #[error("body larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("more than {limit} header fields")]
    TooManyHeaders { limit: usize },
    #[error("header field longer than {limit} bytes")]
    HeaderTooLong { limit: usize },
    #[error("empty message")]
    Empty,
    #[error("message ends before the blank line that closes its headers")]
    Truncated,
    #[error("malformed start line: {0}")]
    BadStartLine(&'static str),
    #[error("unsupported SIP version")]
    BadVersion,
    #[error("malformed header line")]
    BadHeaderLine,
    #[error("malformed {header} header: {reason}")]
    BadHeader {
        header: &'static str,
        reason: &'static str,
    },
    #[error("Content-Length larger than the message")]
    ContentLengthTooLarge,
    #[error("Content-Length missing on a stream transport")]
    ContentLengthMissing,
}

impl ErrorKind {
    /// The status code RFC 3261 asks for, when the message can be answered at all.
    pub fn status(&self) -> u16 {
        match self {
            ErrorKind::MessageTooLarge { .. } => 513,
            ErrorKind::BodyTooLarge { .. } => 413,
            ErrorKind::BadVersion => 505,
            _ => 400,
        }
    }
}

/// A refused message: the reason, and when the header section could be indexed, the partly parsed message so
/// that a response can still be built from its Via, From, To, Call-ID and CSeq.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind}")]
pub struct ParseError {
    pub kind: ErrorKind,
    partial: Option<Box<Message>>,
}

impl ParseError {
    pub(crate) fn new(kind: ErrorKind) -> Self {
        ParseError {
            kind,
            partial: None,
        }
    }

    pub(crate) fn with_partial(kind: ErrorKind, partial: Message) -> Self {
        ParseError {
            kind,
            partial: Some(Box::new(partial)),
        }
    }

    /// The message as far as it could be read (start line and the header fields before the problem).
    pub fn partial(&self) -> Option<&Message> {
        self.partial.as_deref()
    }
}
