//! The PBX core: what Palisade does with SIP once a message is valid. Knows nothing of sockets.
#![forbid(unsafe_code)]

pub mod auth;
pub mod calls;
pub mod core;
pub mod limits;
pub mod policy;
pub mod registrar;
pub mod restrictions;
pub mod store;
pub mod trunks;
pub mod voicemail;
