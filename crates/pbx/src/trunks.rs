//! SIP trunks: the providers Palisade connects external calls through.
//!
//! A trunk is trusted by the transport source address of its requests (`sources`), never by what they claim; its
//! digest credentials are answered only in response to a challenge on a request Palisade itself sent to it.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

/// One provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trunk {
    pub name: String,
    /// Host name or IP address of the provider's SIP server.
    pub host: String,
    pub port: u16,
    /// `UDP`, `TCP` or `TLS`.
    pub transport: String,
    /// Digest credentials for the provider's challenges (and registration), if it uses them.
    pub username: Option<String>,
    pub password: Option<String>,
    /// Register to the provider (for providers that route calls to a registered contact).
    pub register: bool,
    /// Addresses the provider sends calls from: only these may send calls in as this trunk.
    pub sources: Vec<IpNet>,
    /// The number presented as caller for outbound calls (From user), if the provider wants one.
    pub caller_id: Option<String>,
    /// Inbound numbers (DIDs) and the extension each rings.
    pub dids: Vec<(String, String)>,
}

impl Trunk {
    /// The address requests to the provider are sent to, when `host` is an IP address (host names need DNS,
    /// which the binary resolves).
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        self.host
            .parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, self.port))
    }

    /// Whether a request from `ip` comes from this trunk.
    pub fn is_source(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.sources.iter().any(|n| n.contains(&ip))
    }

    /// The extension an inbound call to `number` rings.
    pub fn extension_for(&self, number: &str) -> Option<&str> {
        let number = number.trim_start_matches('+');
        self.dids
            .iter()
            .find(|(did, _)| did.trim_start_matches('+') == number)
            .map(|(_, ext)| ext.as_str())
    }
}

/// The trunk a request from `ip` belongs to, if any.
pub fn trunk_of(trunks: &[Trunk], ip: IpAddr) -> Option<&Trunk> {
    trunks.iter().find(|t| t.is_source(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trunk() -> Trunk {
        Trunk {
            name: "carrier".into(),
            host: "198.51.100.10".into(),
            port: 5060,
            transport: "UDP".into(),
            username: Some("acct".into()),
            password: Some("secret".into()),
            register: false,
            sources: vec!["198.51.100.0/28".parse().unwrap()],
            caller_id: Some("+4930123456".into()),
            dids: vec![
                ("+4930123456".into(), "201".into()),
                ("4930123457".into(), "202".into()),
            ],
        }
    }

    #[test]
    fn sources_and_dids() {
        let t = trunk();
        assert!(t.is_source("198.51.100.3".parse().unwrap()));
        assert!(t.is_source("::ffff:198.51.100.3".parse().unwrap()));
        assert!(!t.is_source("198.51.100.20".parse().unwrap()));
        assert_eq!(t.extension_for("4930123456"), Some("201"));
        assert_eq!(t.extension_for("+4930123457"), Some("202"));
        assert_eq!(t.extension_for("999"), None);
        assert_eq!(t.socket_addr(), Some("198.51.100.10:5060".parse().unwrap()));
        assert!(trunk_of(&[t], "203.0.113.1".parse().unwrap()).is_none());
    }
}
