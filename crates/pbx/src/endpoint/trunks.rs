//! The service's side of trunks: the configured trunks plus what their host names resolved to (resolved by the
//! async edge, [`crate::trunk_dns`], never on the packet path) give the trunks calls use; trunks with
//! registration on are registered through the transaction layer ([`crate::trunks::registration`]).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use crate::trunks::Trunk;
use crate::trunks::registration::{
    DEFAULT_EXPIRES, RegId, RegSend, RegState, RegStatus, RegTarget, Registrations,
};
use sip::Message;
use sip::transaction::{ClientTxId, Peer};
use sip::transport::canonical;

use super::{Endpoint, Outbound, Transport};

/// Host name -> the addresses it resolved to, in the resolver's order.
pub type Resolved = HashMap<String, Vec<IpAddr>>;

/// Trunk state kept by the service.
#[derive(Debug, Default)]
pub struct TrunkState {
    /// The trunks as stored (host names unresolved).
    configured: Vec<Trunk>,
    resolved: Resolved,
    /// Palisade's address per transport: Via and Contact of REGISTERs.
    local: Vec<(Transport, SocketAddr)>,
    regs: Registrations,
    /// Client transactions of REGISTERs, and the registration each belongs to.
    clients: HashMap<ClientTxId, RegId>,
    /// In a cluster, the trunks whose registration this node holds the lease of (cluster/trunk_lease.rs in the
    /// binary): only these are registered. `None`: one node, every trunk with registration on.
    held: Option<std::collections::BTreeSet<String>>,
}

impl TrunkState {
    fn local_for(&self, transport: Transport) -> Option<SocketAddr> {
        crate::calls::address_for(&self.local, transport)
    }
}

/// Where the trunks send from, for the guard (which never bans these by its counters): each trunk's source
/// networks, or when it has none its host's address(es) — exactly the addresses [`Trunk::is_source`] accepts.
fn trunk_source_nets(trunks: &[Trunk]) -> Vec<ipnet::IpNet> {
    trunks
        .iter()
        .flat_map(|t| {
            if t.sources.is_empty() {
                t.host_ip()
                    .into_iter()
                    .chain(t.addresses.iter().copied())
                    .map(ipnet::IpNet::from)
                    .collect()
            } else {
                t.sources.clone()
            }
        })
        .collect()
}

/// How to verify a trunk's TLS certificate when Palisade connects out to it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TlsPeer {
    /// A DNS name or an IP address: checked against the certificate and sent as SNI (names only).
    pub server_name: String,
    /// PEM CA certificate(s) to trust; `None`: the system roots.
    pub ca_file: Option<std::path::PathBuf>,
}

impl Endpoint {
    /// Palisade's address per transport, for the Contact of trunk registrations (the same addresses calls put in
    /// Via and Contact).
    pub fn set_local_addrs(&mut self, local: Vec<(Transport, SocketAddr)>) {
        self.trunk_state.local = local;
    }

    /// New trunks from the store: calls use them at once (host names with the addresses resolved so far; a new
    /// name is resolved by the edge within a second), registrations follow.
    pub fn apply_trunks(&mut self, trunks: Vec<Trunk>, now: Instant) {
        self.trunk_state.configured = trunks;
        self.refresh_trunks(now);
    }

    /// In a cluster: the trunks whose registration this node drives (it holds their lease); the others are
    /// registered by another node, and one this node lost is no longer refreshed here. `None`: every trunk.
    pub fn set_held_trunks(
        &mut self,
        held: Option<std::collections::BTreeSet<String>>,
        now: Instant,
    ) {
        if held != self.trunk_state.held {
            self.trunk_state.held = held;
            self.refresh_trunks(now);
        }
    }

    /// The trunks whose registration this node drives: `None` when it drives all of them (one node).
    pub fn held_trunks(&self) -> Option<&std::collections::BTreeSet<String>> {
        self.trunk_state.held.as_ref()
    }

    /// What the trunks' host names resolve to now (names missing did not resolve).
    pub fn set_resolved(&mut self, resolved: Resolved, now: Instant) {
        if resolved != self.trunk_state.resolved {
            self.trunk_state.resolved = resolved;
            self.refresh_trunks(now);
        }
    }

    /// How to verify the TLS peer at `dest` when Palisade opens a connection to it: the TLS trunk whose resolved
    /// address that is (its CA file and server name). `None` for any other address: Palisade connects out over
    /// TLS only to its trunks (phones connect to it).
    pub fn tls_peer(&self, dest: SocketAddr) -> Option<TlsPeer> {
        let dest = canonical(dest);
        self.trunks
            .iter()
            .filter(|t| t.transport == Transport::Tls)
            .find(|t| t.socket_addr().map(canonical) == Some(dest))
            .map(|t| TlsPeer {
                server_name: t.tls_server_name().to_string(),
                ca_file: t.tls.ca_file.clone(),
            })
    }

    /// The host names (with ports) of the configured trunks that need DNS, sorted, without duplicates.
    pub fn trunk_host_names(&self) -> Vec<(String, u16)> {
        let mut names: Vec<(String, u16)> = self
            .trunk_state
            .configured
            .iter()
            .filter(|t| t.host_ip().is_none())
            .map(|t| (t.host.clone(), t.port))
            .collect();
        names.sort();
        names.dedup_by(|a, b| a.0 == b.0);
        names
    }

    /// How each trunk registration stands (trunks with registration on but no credentials included, as failed).
    pub fn trunk_status(&self, now: Instant) -> Vec<RegStatus> {
        let wall = self.clock.at(now);
        let mut out = self.trunk_state.regs.status(now, wall);
        for t in &self.trunk_state.configured {
            if t.register && (t.username.is_none() || t.password.is_none()) {
                out.push(RegStatus {
                    trunk: t.name.clone(),
                    state: RegState::Failed,
                    registered_until: None,
                    last_error: Some(
                        "registration is on but the trunk has no username and password (set them with \
                         `palisade trunk set NAME --username USER --password-stdin`)"
                            .into(),
                    ),
                    next_attempt: None,
                });
            }
        }
        out
    }

    /// The trunks calls use: host names with their addresses (an address family Palisade sends from first),
    /// and the registrations wanted.
    fn refresh_trunks(&mut self, now: Instant) {
        let st = &self.trunk_state;
        let effective: Vec<Trunk> = st
            .configured
            .iter()
            .cloned()
            .map(|mut t| {
                if t.host_ip().is_none() {
                    let usable: Vec<IpAddr> = st
                        .local_for(t.transport)
                        .map(|a| a.ip())
                        .into_iter()
                        .collect();
                    let found = st.resolved.get(&t.host).cloned().unwrap_or_default();
                    t.addresses = crate::trunks::prefer_families(found, &usable);
                }
                t
            })
            .collect();
        let wanted: Vec<RegTarget> = effective
            .iter()
            .filter(|t| t.register)
            .filter(|t| st.held.as_ref().is_none_or(|h| h.contains(&t.name)))
            .filter_map(|t| {
                Some(RegTarget {
                    trunk: t.name.clone(),
                    host: t.host.clone(),
                    port: t.port,
                    transport: t.transport,
                    username: t.username.clone()?,
                    auth_user: t.auth_user.clone(),
                    password: t.password.clone()?,
                    dest: t.socket_addr(),
                    contact: st.local_for(t.transport),
                    expires: DEFAULT_EXPIRES,
                })
            })
            .collect();
        self.guard.set_trunk_sources(trunk_source_nets(&effective));
        self.set_trunks(effective);
        self.trunk_state.regs.sync(&wanted, now);
    }

    /// At shutdown: unregisters (Expires: 0) every trunk the provider holds a binding for, so it stops sending
    /// calls to a PBX that is gone. Returns what to send; [`Endpoint::trunks_unregistering`] says when it is over.
    pub fn unregister_trunks(&mut self, now: Instant) -> Vec<Outbound> {
        self.trunk_state.regs.sync(&[], now);
        self.trunk_timeout(now);
        let mut out = Vec::new();
        self.drain(now, &mut out);
        out
    }

    /// Whether unregistrations started by [`Endpoint::unregister_trunks`] are still going on.
    pub fn trunks_unregistering(&self) -> bool {
        !self.trunk_state.regs.is_empty()
    }

    /// When a registration timer is due.
    pub(super) fn trunk_poll_timeout(&self) -> Option<Instant> {
        self.trunk_state.regs.poll_timeout()
    }

    /// Sends the REGISTERs that are due.
    pub(super) fn trunk_timeout(&mut self, now: Instant) {
        let sends = self.trunk_state.regs.handle_timeout(now);
        self.send_registers(sends, now);
    }

    /// A response in client transaction `tx`; false when it is not a REGISTER's.
    pub(super) fn trunk_response(&mut self, tx: ClientTxId, msg: &Message, now: Instant) -> bool {
        let Some(id) = self.trunk_state.clients.get(&tx).copied() else {
            return false;
        };
        let wall = self.clock.at(now);
        if let Some(next) = self.trunk_state.regs.on_response(id, msg, now, wall) {
            self.send_registers(vec![next], now);
        }
        true
    }

    /// Client transaction `tx` timed out or could not be sent; false when it is not a REGISTER's.
    pub(super) fn trunk_failed(&mut self, tx: ClientTxId, now: Instant) -> bool {
        let Some(id) = self.trunk_state.clients.get(&tx).copied() else {
            return false;
        };
        self.trunk_state.regs.on_failure(id, now);
        true
    }

    /// The edge could not open a connection to `dest` over `transport` (`reason` says why, e.g. a certificate
    /// that did not verify): the trunk registrations waiting on it fail now, with that reason for `trunk show`.
    pub fn connect_failed(
        &mut self,
        transport: Transport,
        dest: SocketAddr,
        reason: &str,
        now: Instant,
    ) {
        if !matches!(transport, Transport::Tls | Transport::Tcp) {
            return;
        }
        let failed = self
            .trunk_state
            .regs
            .on_connect_failure(dest, transport, reason, now);
        // Their transactions would time out later and must not fail the next attempt.
        self.trunk_state
            .clients
            .retain(|_, id| !failed.contains(id));
    }

    /// Client transaction `tx` is over.
    pub(super) fn trunk_terminated(&mut self, tx: ClientTxId) {
        self.trunk_state.clients.remove(&tx);
    }

    fn send_registers(&mut self, sends: Vec<RegSend>, now: Instant) {
        for s in sends {
            let peer = Peer {
                addr: s.dest,
                transport: s.transport,
                connection: None,
            };
            match self.transactions.send_request(s.request, peer, now) {
                Ok(client) => {
                    self.trunk_state.clients.insert(client, s.id);
                }
                Err(e) => {
                    tracing::warn!(error = %e, dest = %s.dest, "REGISTER to a trunk not sent");
                    self.trunk_state.regs.on_failure(s.id, now);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::Inbound;
    use sip::{Framing, HeaderName, ResponseBuilder};
    use std::time::Duration;

    fn trunk(host: &str) -> Trunk {
        Trunk {
            name: "carrier".into(),
            host: host.into(),
            port: 5070,
            transport: Transport::Udp,
            username: Some("acct".into()),
            password: Some("secret".into()),
            register: true,
            sources: Vec::new(),
            caller_id: None,
            dids: Vec::new(),
            addresses: Vec::new(),
            auth_user: None,
            tls: Default::default(),
            srtp: Default::default(),
        }
    }

    fn service() -> Endpoint {
        let mut s = Endpoint::for_tests();
        s.set_local_addrs(vec![(Transport::Udp, "127.0.0.1:5060".parse().unwrap())]);
        s
    }

    fn reply(
        out: &crate::endpoint::Outbound,
        status: u16,
        extra: &[(HeaderName, &str)],
    ) -> Inbound {
        let req =
            Message::parse(out.data.clone(), Framing::Datagram, &sip::Limits::default()).unwrap();
        let mut b = ResponseBuilder::new(&req, status).to_tag("p1".to_string());
        for (n, v) in extra {
            b = b.header(*n, v);
        }
        Inbound {
            transport: Transport::Udp,
            source: out.dest,
            local: "127.0.0.1:5060".parse().unwrap(),
            conn: None,
            data: b.build(),
        }
    }

    #[test]
    fn tls_peers_are_the_tls_trunks_addresses_only() {
        let mut s = service();
        let now = Instant::now();
        let mut tls = trunk("198.51.100.10");
        tls.transport = Transport::Tls;
        tls.tls.ca_file = Some("/etc/palisade/provider-ca.pem".into());
        let mut named = trunk("sip.carrier.test");
        named.name = "named".into();
        named.transport = Transport::Tls;
        named.tls.server_name = Some("edge.carrier.test".into());
        let mut plain = trunk("198.51.100.20");
        plain.name = "plain".into();
        s.apply_trunks(vec![tls, named, plain], now);
        let peer = s.tls_peer("198.51.100.10:5070".parse().unwrap()).unwrap();
        assert_eq!(peer.server_name, "198.51.100.10");
        assert_eq!(
            peer.ca_file.as_deref(),
            Some(std::path::Path::new("/etc/palisade/provider-ca.pem"))
        );
        // a name trunk: found by what its name resolved to, verified for its configured server name
        let mut resolved = Resolved::new();
        resolved.insert(
            "sip.carrier.test".into(),
            vec!["203.0.113.7".parse().unwrap()],
        );
        s.set_resolved(resolved, now);
        let peer = s
            .tls_peer("[::ffff:203.0.113.7]:5070".parse().unwrap())
            .unwrap();
        assert_eq!(peer.server_name, "edge.carrier.test");
        assert_eq!(peer.ca_file, None, "the system roots");
        // not a TLS trunk, another port, anyone else: no outgoing TLS connection
        assert!(s.tls_peer("198.51.100.20:5070".parse().unwrap()).is_none());
        assert!(s.tls_peer("198.51.100.10:5061".parse().unwrap()).is_none());
        assert!(s.tls_peer("192.0.2.99:5061".parse().unwrap()).is_none());
    }

    #[test]
    fn host_names_resolve_into_targets_sources_and_registrations() {
        let mut s = service();
        let now = Instant::now();
        s.apply_trunks(vec![trunk("sip.carrier.test")], now);
        assert_eq!(
            s.trunk_host_names(),
            vec![("sip.carrier.test".to_string(), 5070)]
        );
        // Not resolved: no target, trusts no one, registration waits (failed: does not resolve).
        assert!(s.trunks[0].socket_addr().is_none());
        assert!(crate::trunks::trunk_of(&s.trunks, "127.0.0.5".parse().unwrap()).is_none());
        assert!(s.handle_timeout(now).is_empty());
        assert_eq!(s.trunk_status(now)[0].state, RegState::Failed);

        let mut r = Resolved::new();
        r.insert(
            "sip.carrier.test".into(),
            vec!["::1".parse().unwrap(), "127.0.0.5".parse().unwrap()],
        );
        s.set_resolved(r, now);
        // The IPv4 address first: Palisade sends UDP from 127.0.0.1.
        assert_eq!(
            s.trunks[0].socket_addr(),
            Some("127.0.0.5:5070".parse().unwrap())
        );
        assert_eq!(
            crate::trunks::trunk_of(&s.trunks, "127.0.0.5".parse().unwrap())
                .map(|t| t.name.as_str()),
            Some("carrier")
        );
        let later = now + Duration::from_secs(31);
        let out = s.handle_timeout(later);
        assert_eq!(out.len(), 1, "the retry registers to the resolved address");
        assert_eq!(out[0].dest, "127.0.0.5:5070".parse().unwrap());
        let text = String::from_utf8_lossy(&out[0].data).into_owned();
        assert!(
            text.starts_with("REGISTER sip:sip.carrier.test:5070 SIP/2.0\r\n"),
            "{text}"
        );
        assert!(
            text.contains("\r\nContact: <sip:127.0.0.1:5060>\r\n"),
            "{text}"
        );

        // 401, answered once; 200 with Expires 60: registered.
        let challenge = reply(
            &out[0],
            401,
            &[(
                HeaderName::WwwAuthenticate,
                "Digest realm=\"c\", nonce=\"n\"",
            )],
        );
        let out2 = s.handle_inbound(challenge, later);
        assert_eq!(out2.len(), 1);
        let text2 = String::from_utf8_lossy(&out2[0].data).into_owned();
        assert!(
            text2.contains("Authorization: Digest username=\"acct\""),
            "{text2}"
        );
        let ok = reply(&out2[0], 200, &[(HeaderName::Expires, "60")]);
        assert!(s.handle_inbound(ok, later).is_empty());
        let st = &s.trunk_status(later)[0];
        assert_eq!(
            (st.state, st.last_error.as_deref()),
            (RegState::Registered, None)
        );
        assert!(s.poll_timeout().is_some());

        // Registration turned off: unregistered with Expires 0.
        let mut off = trunk("sip.carrier.test");
        off.register = false;
        s.apply_trunks(vec![off], later);
        let out3 = s.handle_timeout(later);
        assert_eq!(out3.len(), 1);
        assert!(String::from_utf8_lossy(&out3[0].data).contains("\r\nExpires: 0\r\n"));
    }

    #[test]
    fn the_guard_learns_trunk_sources_as_trunks_and_their_dns_change() {
        let mut s = service();
        let now = Instant::now();
        let nets = |s: &mut Endpoint| -> Vec<String> {
            s.guard_mut()
                .trunk_sources()
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        s.apply_trunks(vec![trunk("sip.carrier.test")], now);
        assert!(nets(&mut s).is_empty(), "unresolved: no source yet");
        let mut r = Resolved::new();
        r.insert(
            "sip.carrier.test".into(),
            vec!["127.0.0.5".parse().unwrap()],
        );
        s.set_resolved(r.clone(), now);
        assert_eq!(nets(&mut s), ["127.0.0.5/32"]);
        r.insert(
            "sip.carrier.test".into(),
            vec!["127.0.0.6".parse().unwrap()],
        );
        s.set_resolved(r, now);
        assert_eq!(nets(&mut s), ["127.0.0.6/32"], "DNS change followed");
        let mut with_sources = trunk("127.0.0.7");
        with_sources.sources = vec!["192.0.2.0/28".parse().unwrap()];
        s.apply_trunks(vec![with_sources, trunk("127.0.0.8")], now);
        assert_eq!(nets(&mut s), ["127.0.0.8/32", "192.0.2.0/28"]);
        s.apply_trunks(Vec::new(), now);
        assert!(nets(&mut s).is_empty(), "trunk removed");
    }

    #[test]
    fn in_a_cluster_only_the_trunks_this_node_holds_are_registered() {
        let is_register = |out: &[Outbound]| {
            out.iter().any(|o| {
                o.data.starts_with(b"REGISTER ") && o.dest == "127.0.0.5:5070".parse().unwrap()
            })
        };
        let mut s = service();
        let now = Instant::now();
        s.set_held_trunks(Some(Default::default()), now);
        s.apply_trunks(vec![trunk("127.0.0.5")], now);
        assert!(
            !is_register(&s.handle_timeout(now)),
            "another node holds it"
        );
        s.set_held_trunks(Some(["carrier".to_string()].into()), now);
        assert!(
            is_register(&s.handle_timeout(now)),
            "this node took the lease"
        );
    }

    #[test]
    fn registration_without_credentials_is_reported() {
        let mut s = service();
        let mut t = trunk("127.0.0.5");
        t.password = None;
        s.apply_trunks(vec![t], Instant::now());
        assert!(s.handle_timeout(Instant::now()).is_empty());
        let st = s.trunk_status(Instant::now());
        assert_eq!(st.len(), 1);
        assert!(st[0].last_error.as_deref().unwrap().contains("--password"));
    }
}
