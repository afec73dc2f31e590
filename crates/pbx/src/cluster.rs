//! Several nodes on one database (issue 17, docs/cluster.md), the sans-IO part: which other nodes are alive, which
//! extensions are registered through them, and the internal hop that forwards a call to the node holding the
//! phone's flow (its NAT binding or TCP/TLS connection).
//!
//! A hop is an ordinary INVITE from node A to node B's SIP address whose Request-URI carries the parameter
//! `palisade-hop=NODE~UNIX_SECS~HMAC`, the HMAC-SHA256 over (node, time, callee) under the cluster secret kept in
//! the database. B accepts it only when all of these hold: the transport source address is a live node's address
//! (never a header), the node named is that node, the time is within [`HOP_MAX_AGE_SECS`], and the HMAC matches.
//! Then B rings its own registrations of the callee without applying the caller's policy again (A did, once).

use std::collections::HashMap;
use std::net::SocketAddr;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::registrar::Binding;

/// The Request-URI parameter that marks an internal hop.
pub const HOP_PARAM: &str = "palisade-hop";

/// How far a hop's time may be from the receiving node's clock (both ways): nodes keep their clocks in step (NTP).
pub const HOP_MAX_AGE_SECS: u64 = 30;

/// How long a hop binding is offered for: it is recomputed from the database every second, so this only needs
/// to outlast one call setup.
const HOP_BINDING_SECS: u64 = 60;

type HmacSha256 = Hmac<Sha256>;

/// A node name: 1–64 of `A-Z a-z 0-9 . _ -` (it travels in a URI parameter and names a database row).
pub fn valid_node_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Why a hop was refused (its reason is the security event's detail).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HopRefusal {
    #[error("internal hop from {0}, which is not a live cluster node")]
    NotFromNode(std::net::IpAddr),
    #[error("internal hop with a malformed token")]
    Malformed,
    #[error("internal hop naming node {named} but sent from node {actual}'s address")]
    WrongNode { named: String, actual: String },
    #[error("internal hop signed {0} s away from this node's clock")]
    Stale(u64),
    #[error("internal hop with a wrong signature")]
    BadSignature,
}

/// The secret hops are signed with (shared by every node through the database).
#[derive(Clone)]
pub struct HopKey(Vec<u8>);

impl std::fmt::Debug for HopKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HopKey(…)")
    }
}

impl HopKey {
    pub fn new(secret: &[u8]) -> Self {
        HopKey(secret.to_vec())
    }

    fn mac(&self, node: &str, secs: u64, callee: &str) -> HmacSha256 {
        // An HMAC takes a key of any length; new_from_slice cannot fail for it.
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| <HmacSha256 as KeyInit>::new(&Default::default()));
        mac.update(b"palisade-hop-v1\0");
        mac.update(node.as_bytes());
        mac.update(b"\0");
        mac.update(secs.to_string().as_bytes());
        mac.update(b"\0");
        mac.update(callee.as_bytes());
        mac
    }

    /// The token for a hop by `node` to `callee` at `secs` (unix seconds).
    pub fn sign(&self, node: &str, secs: u64, callee: &str) -> String {
        let tag = self.mac(node, secs, callee).finalize().into_bytes();
        let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        format!("{node}~{secs}~{hex}")
    }

    /// Checks a token's time and signature for `callee`; returns the node it names.
    pub fn verify<'t>(
        &self,
        token: &'t str,
        callee: &str,
        now_secs: u64,
    ) -> Result<&'t str, HopRefusal> {
        let mut parts = token.split('~');
        let (Some(node), Some(secs), Some(hex), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(HopRefusal::Malformed);
        };
        let secs: u64 = secs.parse().map_err(|_| HopRefusal::Malformed)?;
        let tag = decode_hex(hex).ok_or(HopRefusal::Malformed)?;
        if !valid_node_name(node) {
            return Err(HopRefusal::Malformed);
        }
        let skew = now_secs.abs_diff(secs);
        if skew > HOP_MAX_AGE_SECS {
            return Err(HopRefusal::Stale(skew));
        }
        self.mac(node, secs, callee)
            .verify_slice(&tag)
            .map_err(|_| HopRefusal::BadSignature)?;
        Ok(node)
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Another live node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerNode {
    pub name: String,
    /// Its SIP address for internal hops (UDP).
    pub addr: SocketAddr,
}

/// What this node knows of the cluster, refreshed from the database about every second. The default (no key) is
/// a single node: no hops are offered and none are accepted.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    this_node: String,
    key: Option<HopKey>,
    peers: Vec<PeerNode>,
    /// Extension number → indexes into `peers` of the nodes holding one of its registrations.
    remote: HashMap<String, Vec<usize>>,
}

/// What a received INVITE is, for the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HopCheck {
    /// No hop parameter (or not a cluster): an ordinary request.
    NotAHop,
    /// An authenticated hop from this node.
    FromPeer(String),
    Refused(HopRefusal),
}

impl ClusterView {
    /// A cluster view: this node's name, the secret, the live peers and `(extension, peer name)` pairs of
    /// registrations they hold (pairs naming an unknown peer are ignored).
    pub fn new(
        this_node: &str,
        key: HopKey,
        peers: Vec<PeerNode>,
        remote: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        let mut by_aor: HashMap<String, Vec<usize>> = HashMap::new();
        for (aor, node) in remote {
            if let Some(i) = peers.iter().position(|p| p.name == node) {
                let list = by_aor.entry(aor).or_default();
                if !list.contains(&i) {
                    list.push(i);
                }
            }
        }
        ClusterView {
            this_node: this_node.to_string(),
            key: Some(key),
            peers,
            remote: by_aor,
        }
    }

    /// True when this node is part of a cluster (it has the secret).
    pub fn is_cluster(&self) -> bool {
        self.key.is_some()
    }

    pub fn this_node(&self) -> &str {
        &self.this_node
    }

    pub fn peers(&self) -> &[PeerNode] {
        &self.peers
    }

    /// One binding per live node holding a registration of `aor`: ringing it sends a signed hop to that node.
    pub fn hop_bindings(&self, aor: &str, now_secs: u64) -> Vec<Binding> {
        let (Some(key), Some(peers)) = (&self.key, self.remote.get(aor)) else {
            return Vec::new();
        };
        peers
            .iter()
            .filter_map(|&i| self.peers.get(i))
            .map(|p| {
                let token = key.sign(&self.this_node, now_secs, aor);
                Binding {
                    aor: aor.to_string(),
                    contact: format!("sip:{aor}@{};{HOP_PARAM}={token}", p.addr),
                    transport: sip::Transport::Udp,
                    source: p.addr,
                    local: SocketAddr::from(([0, 0, 0, 0], 0)),
                    expires_at: now_secs + HOP_BINDING_SECS,
                    call_id: String::new(),
                    cseq: 0,
                    q: None,
                    user_agent: None,
                    via_node: Some(p.name.clone()),
                }
            })
            .collect()
    }

    /// Classifies an INVITE whose Request-URI parameter `palisade-hop` is `token` (`None`: absent), for `callee`,
    /// received from `source`.
    pub fn check_hop(
        &self,
        token: Option<&str>,
        callee: &str,
        source: SocketAddr,
        now_secs: u64,
    ) -> HopCheck {
        let (Some(token), Some(key)) = (token, &self.key) else {
            return HopCheck::NotAHop;
        };
        // The transport source first: a request from anywhere else is refused whatever it carries.
        let Some(peer) = self.peers.iter().find(|p| p.addr.ip() == source.ip()) else {
            return HopCheck::Refused(HopRefusal::NotFromNode(source.ip()));
        };
        match key.verify(token, callee, now_secs) {
            Ok(named) if named == peer.name => HopCheck::FromPeer(peer.name.clone()),
            Ok(named) => HopCheck::Refused(HopRefusal::WrongNode {
                named: named.to_string(),
                actual: peer.name.clone(),
            }),
            Err(e) => HopCheck::Refused(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(this: &str) -> ClusterView {
        ClusterView::new(
            this,
            HopKey::new(b"secret"),
            vec![
                PeerNode {
                    name: "b".into(),
                    addr: "10.0.0.2:5060".parse().unwrap(),
                },
                PeerNode {
                    name: "c".into(),
                    addr: "10.0.0.3:5060".parse().unwrap(),
                },
            ],
            [
                ("202".to_string(), "b".to_string()),
                ("202".to_string(), "b".to_string()),
                ("203".to_string(), "c".to_string()),
                ("204".to_string(), "gone".to_string()),
            ],
        )
    }

    fn token_of(b: &Binding) -> String {
        b.contact
            .split_once(&format!("{HOP_PARAM}="))
            .unwrap()
            .1
            .to_string()
    }

    #[test]
    fn node_names_are_uri_and_row_safe() {
        assert!(valid_node_name("pbx-1.example_a"));
        for bad in ["", "a b", "a;b", "a~b", "é", &"x".repeat(65)] {
            assert!(!valid_node_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_registration_on_a_peer_becomes_one_signed_hop_binding() {
        let a = view("a");
        let hops = a.hop_bindings("202", 1_000);
        assert_eq!(hops.len(), 1, "one per node, not per registration");
        assert_eq!(hops[0].source, "10.0.0.2:5060".parse().unwrap());
        assert_eq!(hops[0].via_node.as_deref(), Some("b"));
        assert!(
            hops[0]
                .contact
                .starts_with("sip:202@10.0.0.2:5060;palisade-hop=a~1000~")
        );
        assert!(a.hop_bindings("204", 1_000).is_empty(), "unknown node");
        assert!(a.hop_bindings("201", 1_000).is_empty());
        assert!(ClusterView::default().hop_bindings("202", 1_000).is_empty());
    }

    #[test]
    fn the_receiving_node_accepts_only_a_signed_hop_from_the_node_it_names() {
        // Node b receives from a (at 10.0.0.1).
        let b = ClusterView::new(
            "b",
            HopKey::new(b"secret"),
            vec![PeerNode {
                name: "a".into(),
                addr: "10.0.0.1:5060".parse().unwrap(),
            }],
            [],
        );
        let token = token_of(&view("a").hop_bindings("202", 1_000)[0]);
        let from_a: SocketAddr = "10.0.0.1:5060".parse().unwrap();
        assert_eq!(
            b.check_hop(Some(&token), "202", from_a, 1_010),
            HopCheck::FromPeer("a".into())
        );
        assert_eq!(b.check_hop(None, "202", from_a, 1_010), HopCheck::NotAHop);
        // From the internet, even with a valid token.
        let outsider: SocketAddr = "198.51.100.7:5060".parse().unwrap();
        assert!(matches!(
            b.check_hop(Some(&token), "202", outsider, 1_010),
            HopCheck::Refused(HopRefusal::NotFromNode(_))
        ));
        // Replayed for another callee, too old, tampered, or signed with another secret.
        assert_eq!(
            b.check_hop(Some(&token), "203", from_a, 1_010),
            HopCheck::Refused(HopRefusal::BadSignature)
        );
        assert_eq!(
            b.check_hop(Some(&token), "202", from_a, 1_031),
            HopCheck::Refused(HopRefusal::Stale(31))
        );
        let forged = HopKey::new(b"guess").sign("a", 1_000, "202");
        assert_eq!(
            b.check_hop(Some(&forged), "202", from_a, 1_000),
            HopCheck::Refused(HopRefusal::BadSignature)
        );
        for bad in ["", "a~1000", "a~x~00", "a~1000~zz", "a~1000~00~extra"] {
            assert_eq!(
                b.check_hop(Some(bad), "202", from_a, 1_000),
                HopCheck::Refused(HopRefusal::Malformed),
                "{bad:?}"
            );
        }
        // Signed by a, naming c: refused (the source decides which node it is).
        let as_c = HopKey::new(b"secret").sign("c", 1_000, "202");
        assert!(matches!(
            b.check_hop(Some(&as_c), "202", from_a, 1_000),
            HopCheck::Refused(HopRefusal::WrongNode { .. })
        ));
        // A single node accepts no hop at all (it is an ordinary request there).
        assert_eq!(
            ClusterView::default().check_hop(Some(&token), "202", from_a, 1_000),
            HopCheck::NotAHop
        );
    }
}
