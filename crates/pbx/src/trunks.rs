//! SIP trunks: the providers Palisade connects external calls through.
//!
//! A trunk is trusted by the transport source address of its requests (`sources`), never by what they claim; its
//! digest credentials are answered only in response to a challenge on a request Palisade itself sent to it.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

pub mod registration;

/// One provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trunk {
    pub name: String,
    /// Host name or IP address of the provider's SIP server.
    pub host: String,
    pub port: u16,
    /// UDP, TCP or TLS: what requests to the provider leave by (the store accepts no other for a trunk).
    pub transport: sip::Transport,
    /// Digest credentials for the provider's challenges (and registration), if it uses them.
    pub username: Option<String>,
    pub password: Option<String>,
    /// Register to the provider (for providers that route calls to a registered contact).
    pub register: bool,
    /// Addresses the provider sends calls from: only these may send calls in as this trunk. Empty: the addresses
    /// of `host` (the IP itself, or what the name resolves to); never everyone.
    pub sources: Vec<IpNet>,
    /// The number presented as caller for outbound calls (From user), if the provider wants one.
    pub caller_id: Option<String>,
    /// Inbound numbers (DIDs) and the extension each rings.
    pub dids: Vec<(String, String)>,
    /// What a host name resolved to, preferred address first (filled in by the binary, which resolves names off
    /// the packet path; empty for IP hosts and names that do not resolve).
    pub addresses: Vec<IpAddr>,
    /// The digest username when the provider's differs from `username` (the user of From/To).
    pub auth_user: Option<String>,
    /// How the provider's TLS certificate is checked (transport TLS only).
    pub tls: TrunkTls,
    /// SRTP toward the provider.
    pub srtp: crate::model::SrtpMode,
}

/// How the provider's certificate is verified on an outgoing TLS connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrunkTls {
    /// PEM file of the CA certificate(s) to trust instead of the system roots.
    pub ca_file: Option<std::path::PathBuf>,
    /// The name the certificate must carry and the SNI sent; `None`: the trunk's host.
    pub server_name: Option<String>,
}

impl Trunk {
    /// The digest username: the auth user when set, else the username.
    pub fn digest_user(&self) -> Option<&str> {
        self.auth_user.as_deref().or(self.username.as_deref())
    }

    /// The name the provider's TLS certificate must carry (and the SNI): the configured server name, else the
    /// host (a DNS name or an IP address).
    pub fn tls_server_name(&self) -> &str {
        self.tls.server_name.as_deref().unwrap_or(&self.host)
    }

    /// The host as an IP address, if it is one.
    pub fn host_ip(&self) -> Option<IpAddr> {
        self.host.parse::<IpAddr>().ok()
    }

    /// The address requests to the provider are sent to: the host if it is an IP address, else the first
    /// address its name resolved to (`None` while it resolves to nothing).
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        self.host_ip()
            .or_else(|| self.addresses.first().copied())
            .map(|ip| SocketAddr::new(ip, self.port))
    }

    /// Whether a request from `ip` comes from this trunk: from one of its source networks, or, when it has
    /// none, from the host's own address(es). A trunk without sources whose name resolves to nothing trusts
    /// no one.
    pub fn is_source(&self, ip: IpAddr) -> bool {
        let ip = unmapped(ip);
        if self.sources.is_empty() {
            return self.host_ip().map(unmapped) == Some(ip)
                || self.addresses.iter().any(|a| unmapped(*a) == ip);
        }
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

/// IPv4-mapped IPv6 addresses as IPv4.
fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Orders resolved `addresses` for sending: those of a family in `usable` (the families Palisade can send
/// from) first, keeping the resolver's order otherwise.
pub fn prefer_families(mut addresses: Vec<IpAddr>, usable: &[IpAddr]) -> Vec<IpAddr> {
    addresses.sort_by_key(|a| !usable.iter().any(|u| u.is_ipv4() == a.is_ipv4()));
    addresses.dedup();
    addresses
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
            transport: sip::Transport::Udp,
            username: Some("acct".into()),
            password: Some("secret".into()),
            register: false,
            sources: vec!["198.51.100.0/28".parse().unwrap()],
            caller_id: Some("+4930123456".into()),
            dids: vec![
                ("+4930123456".into(), "201".into()),
                ("4930123457".into(), "202".into()),
            ],
            addresses: Vec::new(),
            auth_user: None,
            tls: Default::default(),
            srtp: Default::default(),
        }
    }

    #[test]
    fn host_names_use_resolved_addresses_and_empty_sources_trust_only_the_host() {
        let mut t = trunk();
        t.host = "sip.carrier.test".into();
        assert_eq!(t.socket_addr(), None, "not resolved yet: no target");
        t.addresses = vec![
            "198.51.100.10".parse().unwrap(),
            "198.51.100.11".parse().unwrap(),
        ];
        assert_eq!(t.socket_addr(), Some("198.51.100.10:5060".parse().unwrap()));
        // With sources, only the sources count (not the host).
        t.sources = vec!["203.0.113.0/28".parse().unwrap()];
        assert!(!t.is_source("198.51.100.10".parse().unwrap()));
        assert!(t.is_source("203.0.113.2".parse().unwrap()));
        // Without sources: exactly the resolved addresses.
        t.sources.clear();
        assert!(t.is_source("198.51.100.11".parse().unwrap()));
        assert!(t.is_source("::ffff:198.51.100.10".parse().unwrap()));
        assert!(!t.is_source("198.51.100.12".parse().unwrap()));
        t.addresses.clear();
        assert!(
            !t.is_source("198.51.100.10".parse().unwrap()),
            "resolves to nothing: trusts no one"
        );
        assert!(!t.is_source("0.0.0.0".parse().unwrap()));
        // An IP host without sources trusts that address.
        t.host = "198.51.100.20".into();
        assert!(t.is_source("198.51.100.20".parse().unwrap()));
        assert!(!t.is_source("198.51.100.21".parse().unwrap()));
    }

    #[test]
    fn usable_families_first() {
        let v6: IpAddr = "::1".parse().unwrap();
        let v4: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(prefer_families(vec![v6, v4], &[v4]), vec![v4, v6]);
        assert_eq!(prefer_families(vec![v6, v4], &[v6]), vec![v6, v4]);
        assert_eq!(prefer_families(vec![v6, v4, v4], &[]), vec![v6, v4]);
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

/// A provider's digest challenge (`WWW-Authenticate` / `Proxy-Authenticate`), as far as answering it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkChallenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    pub algorithm: sip::digest::Algorithm,
    /// `qop` offers `auth` (else the RFC 2069 form is used, as the provider asks).
    pub qop_auth: bool,
}

/// Parses a Digest challenge; `None` for another scheme or a challenge without realm or nonce.
pub fn parse_challenge(value: &str) -> Option<TrunkChallenge> {
    let value = value.trim();
    let (scheme, params) = value.split_once(char::is_whitespace)?;
    if !scheme.eq_ignore_ascii_case("Digest") {
        return None;
    }
    let (mut realm, mut nonce, mut opaque, mut algorithm, mut qop) = (None, None, None, None, None);
    for item in sip::text::split_commas(params.as_bytes()).filter_map(Result::ok) {
        let item = std::str::from_utf8(item).ok()?;
        let Some((name, v)) = item.split_once('=') else {
            continue;
        };
        let v = sip::text::unquote(sip::text::trim(v.as_bytes()));
        let v = String::from_utf8_lossy(&v).into_owned();
        match name.trim().to_ascii_lowercase().as_str() {
            "realm" => realm = Some(v),
            "nonce" => nonce = Some(v),
            "opaque" => opaque = Some(v),
            "algorithm" => algorithm = Some(v),
            "qop" => qop = Some(v),
            _ => {}
        }
    }
    let algorithm = match algorithm {
        Some(a) => sip::digest::Algorithm::parse(&a).ok()?,
        None => sip::digest::Algorithm::Md5,
    };
    Some(TrunkChallenge {
        realm: realm?,
        nonce: nonce?,
        opaque,
        algorithm,
        qop_auth: qop.is_some_and(|q| q.split(',').any(|o| o.trim().eq_ignore_ascii_case("auth"))),
    })
}

/// The `Authorization` / `Proxy-Authorization` value answering `challenge` for `method` on `uri`.
pub fn answer_challenge(
    challenge: &TrunkChallenge,
    user: &str,
    password: &str,
    method: &str,
    uri: &str,
) -> String {
    use sip::digest::{Qop, ha1, response};
    let h = ha1(challenge.algorithm, user, &challenge.realm, password);
    let cnonce = format!("{:016x}", rand::random::<u64>());
    let nc = "00000001";
    let qop = challenge.qop_auth.then_some(Qop::Auth);
    let r = response(
        challenge.algorithm,
        &h,
        &challenge.nonce,
        nc,
        &cnonce,
        qop,
        method,
        uri,
    );
    let mut v = format!(
        "Digest username=\"{user}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", response=\"{r}\", algorithm={}",
        challenge.realm, challenge.nonce, challenge.algorithm
    );
    if challenge.qop_auth {
        v.push_str(&format!(", qop=auth, nc={nc}, cnonce=\"{cnonce}\""));
    }
    if let Some(o) = &challenge.opaque {
        v.push_str(&format!(", opaque=\"{o}\""));
    }
    v
}

#[cfg(test)]
mod challenge_tests {
    use super::*;

    #[test]
    fn challenge_round_trip_against_our_own_verifier_format() {
        let c = parse_challenge("Digest realm=\"carrier.example\", nonce=\"abc123\", algorithm=MD5, qop=\"auth,auth-int\", opaque=\"xyz\"").unwrap();
        assert_eq!(
            (c.realm.as_str(), c.nonce.as_str(), c.qop_auth),
            ("carrier.example", "abc123", true)
        );
        let v = answer_challenge(
            &c,
            "acct",
            "secret",
            "INVITE",
            "sip:4930123@carrier.example",
        );
        let parsed = sip::digest::DigestAuthorization::parse(&v).unwrap();
        let ha1 = sip::digest::ha1(
            sip::digest::Algorithm::Md5,
            "acct",
            "carrier.example",
            "secret",
        );
        assert_eq!(parsed.expected_response(&ha1, "INVITE"), parsed.response);
        assert!(parse_challenge("Basic realm=\"x\"").is_none());
        assert!(parse_challenge("Digest nonce=\"n\"").is_none());
    }
}
