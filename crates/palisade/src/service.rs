//! The SIP endpoint as the binary sees it. The endpoint itself is sans-IO and lives in `pbx::endpoint`; this module
//! keeps the names the binary (and the console and operations code) use for it.

pub use pbx::endpoint::*;

/// The endpoint under the name the binary has always used for it.
pub type Service = pbx::endpoint::Endpoint;
