//! Palisade's SIP engine: zero-copy message parsing, URIs, typed header views, builders, request validation,
//! stream framing and the RFC 3261 transaction layer. Sans-IO: no sockets and no clocks in here.
#![forbid(unsafe_code)]

pub mod addr;
pub mod builder;
pub mod cseq;
pub mod digest;
pub mod error;
pub mod framing;
pub mod header;
pub mod limits;
pub mod media_type;
pub mod message;
pub mod method;
pub mod text;
pub mod transaction;
pub mod transport;
pub mod uri;
pub mod validate;
pub mod via;

pub use builder::{RequestBuilder, ResponseBuilder, reason_phrase};
pub use error::{ErrorKind, ParseError};
pub use header::HeaderName;
pub use limits::Limits;
pub use message::{Framing, Message};
pub use method::Method;
pub use transport::Transport;
