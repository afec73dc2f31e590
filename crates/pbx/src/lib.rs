//! The PBX core: what Palisade does with SIP once a message is valid. Knows nothing of sockets or the database
//! (sans-IO: no tokio, no sqlx; the `store` crate depends on this one, never the reverse).
#![forbid(unsafe_code)]

pub mod auth;
pub mod calls;
pub mod cluster;
pub mod core;
pub mod endpoint;
pub mod limits;
pub mod model;
pub mod office;
pub mod policy;
pub mod registrar;
pub mod restrictions;
pub mod trunks;
pub mod voicemail;
