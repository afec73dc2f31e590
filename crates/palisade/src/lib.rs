//! Palisade's server: command line, configuration, TLS, the socket edge and the sans-IO SIP service it drives.
//! The `palisade` binary (main.rs) is a thin wrapper around [`server::run`].
#![forbid(unsafe_code)]

/// The version with the git revision it was built from (build.rs), e.g. "0.1.0 (3f2a9c1d0b7e)".
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("PALISADE_GIT_REV"),
    ")"
);

pub mod admin;
pub mod attendant;
pub mod audio_upload;
pub mod backup;
pub mod call_media;
pub mod cli;
pub mod cluster;
pub mod conference;
pub mod config;
pub mod console;
pub mod data_dir;
pub mod endpoint_events;
pub mod guard_store;
pub mod logging;
pub mod media;
pub mod metrics;
pub mod music;
pub mod notify;
pub mod prov;
pub mod recording;
pub mod server;
pub mod service;
pub mod state_log;
pub mod store_sync;
pub mod syslog;
pub mod tls;
pub mod tls_client;
pub mod tls_reload;
pub mod transport;
pub mod trunk_dns;
pub mod voicemail;
