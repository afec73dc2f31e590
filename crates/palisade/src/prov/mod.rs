//! Desk-phone and softphone provisioning over HTTPS (issue 14), served on the console's listener under
//! `/prov/<token>/<file>`.
//!
//! - [`model`]: the models, their file names, MAC addresses (pure).
//! - [`decide`]: may a fetch be served, bind, carry the credentials — or why not (pure, time passed in).
//! - [`render`]: each vendor's file (pure).
//! - [`http`]: the handler: looks the token up, asks [`decide`], rotates the password, answers.
//! - [`token`]: URL tokens and the phone's own admin password.

pub mod decide;
pub mod http;
pub mod model;
pub mod render;
pub mod token;

/// What the provisioning handler needs to know about the running server.
#[derive(Debug, Clone, Default)]
pub struct ProvConfig {
    /// The SIP domain.
    pub domain: String,
    /// Port of the first SIP-over-TLS listener, if there is one (then phones are provisioned for TLS + SRTP).
    pub sip_tls_port: Option<u16>,
    /// Port of the first SIP-over-TCP listener (for a server without TLS).
    pub sip_tcp_port: Option<u16>,
    /// Sources allowed to fetch under /prov/ (`provisioning_networks`, default `admin_networks`).
    pub networks: Vec<ipnet::IpNet>,
}
