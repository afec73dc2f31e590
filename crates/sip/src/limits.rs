//! Hard limits applied while parsing. Every one bounds memory or CPU an attacker can make us spend.

/// Parser limits. The defaults accept every legitimate message seen from phones and trunks (the largest RFC 4475
/// message is 3.5 KB) while keeping one message's cost small.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest message (start line + headers + body) in bytes; a larger one is answered 513 or dropped.
    pub max_message_size: usize,
    /// Most header fields in one message.
    pub max_headers: usize,
    /// Longest single header field, continuation lines included.
    pub max_header_line: usize,
    /// Largest body.
    pub max_body_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_size: 65_535,
            max_headers: 128,
            max_header_line: 8_192,
            max_body_size: 60_000,
        }
    }
}
