//! The endpoint's side of a cluster (crate::cluster, docs/cluster.md): calls for phones registered through another
//! node go there by an internal hop; a hop received from another node rings this node's own registrations.

use std::time::{Instant, SystemTime};

use sip::transaction::{Peer, ServerTxId};
use sip::{Message, ResponseBuilder};

use crate::calls::Party;
use crate::cluster::{ClusterView, HOP_PARAM, HopCheck, HopRefusal};
use crate::core::unix_secs;
use crate::model::{PolicyReason, SrtpMode};
use crate::registrar::{Binding, Origin};

use super::calls::{dialled_number, display_name_of};
use super::{Endpoint, unix_ms, unspecified};

/// The reason code of the security event for a refused internal hop.
pub const HOP_REFUSED: &str = "cluster_hop_refused";

impl Endpoint {
    /// Replaces what this node knows of the cluster (cluster/node.rs in the binary refreshes it every second).
    /// The live peers' addresses are exempt from the guard's counters, like trunks'.
    pub fn set_cluster(&mut self, view: ClusterView, now: Instant) {
        let peers_changed = view.peers() != self.cluster.peers();
        self.cluster = view;
        if peers_changed {
            self.refresh_trunks(now);
        }
    }

    /// The live peers' addresses, for the guard's exemptions.
    pub(super) fn cluster_peer_nets(&self) -> Vec<ipnet::IpNet> {
        self.cluster
            .peers()
            .iter()
            .map(|p| ipnet::IpNet::from(p.addr.ip()))
            .collect()
    }

    pub fn cluster(&self) -> &ClusterView {
        &self.cluster
    }

    /// Where `number` can be rung from here: this node's registrations, then one internal hop per other live node
    /// holding one of its registrations.
    pub(super) fn reachable_bindings(&self, number: &str, wall: SystemTime) -> Vec<Binding> {
        let now = unix_secs(wall);
        let mut contacts: Vec<Binding> = self
            .core
            .registrar()
            .lookup(number, now)
            .into_iter()
            .cloned()
            .collect();
        contacts.extend(self.cluster.hop_bindings(number, now));
        contacts
    }

    /// Handles a new INVITE if it is an internal hop: refused (403, a security event; from a stranger also an
    /// authentication failure of its source) unless it is authentic, else its callee's phones registered here are
    /// rung. False for an ordinary INVITE.
    pub(super) fn hop_invite(
        &mut self,
        tx: ServerTxId,
        request: &Message,
        peer: Peer,
        now: Instant,
    ) -> bool {
        let Some(Ok(uri)) = request.request_uri() else {
            return false;
        };
        let token = uri.param(HOP_PARAM).map(Option::unwrap_or_default);
        let callee = uri.user.unwrap_or_default().to_string();
        let wall = self.clock.at(now);
        match self
            .cluster
            .check_hop(token, &callee, peer.addr, unix_secs(wall))
        {
            HopCheck::NotAHop => false,
            HopCheck::Refused(why) => {
                let origin = Origin {
                    transport: peer.transport,
                    source: peer.addr,
                    local: unspecified(peer.addr),
                };
                self.core.policy_event(
                    PolicyReason::Rule(HOP_REFUSED),
                    origin,
                    &why.to_string(),
                    wall,
                );
                // A stranger's forgery counts toward its ban; a peer's address is not banned for a bad token (a
                // spoofed UDP source could otherwise get a node banned by the others).
                if matches!(why, HopRefusal::NotFromNode(_)) {
                    self.guard.on_auth_failure(peer.addr.ip(), unix_ms(wall));
                }
                tracing::warn!(source = %peer.addr, reason = %why, "internal hop refused");
                let b = ResponseBuilder::with_reason(request, 403, "Forbidden");
                let bytes = self.finish(b, peer, None);
                if let Err(e) = self.transactions.respond_once(tx, bytes, now) {
                    tracing::warn!(error = %e, "could not refuse an internal hop");
                }
                true
            }
            HopCheck::FromPeer(node) => {
                self.peer_invite(tx, request, peer, &node, now);
                true
            }
        }
    }

    /// An authenticated hop from `node`: the caller's policy was applied there, so this node only rings the
    /// callee's phones registered here (never hopping again), and leaves voicemail and forwards to that node.
    fn peer_invite(
        &mut self,
        tx: ServerTxId,
        request: &Message,
        peer: Peer,
        node: &str,
        now: Instant,
    ) {
        let wall = self.clock.at(now);
        let number = dialled_number(request);
        let caller = Party {
            number: request
                .from()
                .ok()
                .and_then(|f| f.uri.user.map(str::to_string))
                .unwrap_or_default(),
            display_name: display_name_of(request),
            // Plain RTP between the nodes' relays.
            srtp: SrtpMode::Disabled,
            ..Party::default()
        };
        let Some(ext) = self.core.extension(&number).filter(|e| e.enabled) else {
            self.calls.refuse(
                tx,
                request,
                &caller,
                &number,
                404,
                "Not Found",
                "unknown_extension",
                wall,
            );
            return;
        };
        let callee = Party {
            number: ext.number.clone(),
            srtp: ext.srtp,
            extension: true,
            ..Party::default()
        };
        let contacts: Vec<Binding> = self
            .core
            .registrar()
            .lookup(&number, unix_secs(wall))
            .into_iter()
            .cloned()
            .collect();
        tracing::info!(from_node = %node, extension = %number, contacts = contacts.len(), "internal hop");
        self.calls
            .invite(tx, request, peer, caller, Some(callee), &contacts, wall);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Credentials, NonceKey};
    use crate::calls::{CallConfig, Calls, LocalAddrs};
    use crate::cluster::{HopKey, PeerNode};
    use crate::core::{CoreConfig, ExtensionAuth, PbxCore};
    use crate::endpoint::harness::FakeMedia;
    use crate::endpoint::{Event, Inbound, Outbound, Parts, ServiceConfig, WallClock};
    use bytes::Bytes;
    use sip::Transport;
    use std::net::SocketAddr;
    use std::time::{Duration, UNIX_EPOCH};

    const NOW_SECS: u64 = 1_800_000_000;
    const NODE_B: &str = "10.0.0.2:5060";
    const NODE_A: &str = "10.0.0.1:5060";
    const PHONE: &str = "192.0.2.20:5062";

    /// Node b: extension 202 registered here (a phone at PHONE); its view says node a is live and (stale data,
    /// or a second phone) also holds a registration of 202.
    fn node_b(start: Instant) -> (Endpoint, FakeMedia) {
        let mut core = PbxCore::new(CoreConfig::new("pbx.test"), NonceKey::from_bytes([3; 32]))
            .expect("static configuration");
        core.set_extensions(vec![ExtensionAuth::new(
            "202",
            "auth202",
            Credentials::from_password("auth202", "pbx.test", "Passw0rd-202"),
        )]);
        let wall = UNIX_EPOCH + Duration::from_secs(NOW_SECS);
        core.restore_bindings(
            vec![Binding {
                aor: "202".into(),
                contact: format!("sip:202@{PHONE}"),
                transport: Transport::Udp,
                source: PHONE.parse().unwrap(),
                local: NODE_B.parse().unwrap(),
                expires_at: NOW_SECS + 3600,
                call_id: "reg".into(),
                cseq: 1,
                q: None,
                user_agent: None,
                via_node: None,
            }],
            wall,
        );
        let local: SocketAddr = NODE_B.parse().unwrap();
        let media = FakeMedia::default();
        let mut parts = Parts::for_tests(core);
        parts.media = Box::new(media.clone());
        parts.calls = Calls::new(
            CallConfig::default(),
            LocalAddrs {
                by_transport: vec![(Transport::Udp, local)],
                domain: "pbx.test".into(),
            },
        );
        let mut ep = Endpoint::new(
            ServiceConfig {
                domain: "pbx.test".into(),
                server_header: None,
                limits: sip::Limits::default(),
            },
            parts,
            WallClock { mono: start, wall },
        );
        ep.set_local_addrs(vec![(Transport::Udp, local)]);
        let peer = PeerNode {
            name: "a".into(),
            addr: NODE_A.parse().unwrap(),
        };
        ep.set_cluster(
            ClusterView::new(
                "b",
                HopKey::new(b"secret"),
                vec![peer],
                [("202".to_string(), "a".to_string())],
            ),
            start,
        );
        (ep, media)
    }

    fn hop_invite(from: SocketAddr, token: &str) -> String {
        let body = format!(
            "v=0\r\no=- 1 1 IN IP4 {0}\r\ns=-\r\nc=IN IP4 {0}\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n",
            from.ip()
        );
        format!(
            "INVITE sip:202@{NODE_B};palisade-hop={token} SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bKhop1\r\n\
             Max-Forwards: 70\r\nFrom: <sip:201@pbx.test>;tag=a1\r\nTo: <sip:202@pbx.test>\r\n\
             Call-ID: hop1@{from}\r\nCSeq: 1 INVITE\r\nContact: <sip:201@{from}>\r\n\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    /// Delivers one datagram and plays the edge's part (relay sessions); returns everything sent.
    fn deliver(
        ep: &mut Endpoint,
        media: &FakeMedia,
        from: SocketAddr,
        text: String,
        now: Instant,
    ) -> Vec<Outbound> {
        let mut out = ep.handle_inbound(
            Inbound {
                transport: Transport::Udp,
                source: from,
                local: NODE_B.parse().unwrap(),
                conn: None,
                data: Bytes::from(text),
            },
            now,
        );
        while let Some(event) = ep.poll_event() {
            if let Event::AllocateMedia { call } = event {
                out.extend(ep.media_ready(call, media.allocate(), now));
            }
        }
        out
    }

    fn requests_to(out: &[Outbound], dest: &str) -> usize {
        let dest: SocketAddr = dest.parse().unwrap();
        out.iter()
            .filter(|o| o.dest == dest && o.data.starts_with(b"INVITE "))
            .count()
    }

    fn statuses_to(out: &[Outbound], dest: &str) -> Vec<String> {
        let dest: SocketAddr = dest.parse().unwrap();
        out.iter()
            .filter(|o| o.dest == dest && o.data.starts_with(b"SIP/2.0 "))
            .map(|o| String::from_utf8_lossy(&o.data[8..11]).into_owned())
            .collect()
    }

    #[test]
    fn an_authentic_hop_rings_this_nodes_phone_and_never_hops_back() {
        let start = Instant::now();
        let (mut ep, media) = node_b(start);
        let token = HopKey::new(b"secret").sign("a", NOW_SECS, "202");
        let from_a: SocketAddr = NODE_A.parse().unwrap();
        let out = deliver(&mut ep, &media, from_a, hop_invite(from_a, &token), start);
        assert_eq!(
            requests_to(&out, PHONE),
            1,
            "the phone is rung on its own flow"
        );
        assert_eq!(
            requests_to(&out, NODE_A),
            0,
            "no hop back to the node it came from"
        );
        assert!(!statuses_to(&out, NODE_A).contains(&"403".to_string()));
    }

    #[test]
    fn a_hop_from_a_stranger_is_refused_even_with_the_real_secret() {
        let start = Instant::now();
        let (mut ep, media) = node_b(start);
        let token = HopKey::new(b"secret").sign("a", NOW_SECS, "202");
        let stranger: SocketAddr = "198.51.100.7:5060".parse().unwrap();
        let out = deliver(
            &mut ep,
            &media,
            stranger,
            hop_invite(stranger, &token),
            start,
        );
        assert_eq!(statuses_to(&out, "198.51.100.7:5060"), ["403"]);
        assert_eq!(requests_to(&out, PHONE), 0);
        // A forged token from the peer's own address is refused too.
        let forged = HopKey::new(b"guess").sign("a", NOW_SECS, "202");
        let from_a: SocketAddr = NODE_A.parse().unwrap();
        let out = deliver(&mut ep, &media, from_a, hop_invite(from_a, &forged), start);
        assert_eq!(statuses_to(&out, NODE_A), ["403"]);
        assert_eq!(requests_to(&out, PHONE), 0);
    }

    #[test]
    fn live_peers_are_exempt_from_the_guard_like_trunks() {
        let mut e = Endpoint::for_tests();
        let now = Instant::now();
        let peer = PeerNode {
            name: "b".into(),
            addr: "10.0.0.2:5060".parse().unwrap(),
        };
        e.set_cluster(
            ClusterView::new("a", HopKey::new(b"s"), vec![peer], []),
            now,
        );
        let exempt: Vec<String> = e
            .guard_mut()
            .trunk_sources()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(exempt, ["10.0.0.2/32"]);
        e.set_cluster(ClusterView::new("a", HopKey::new(b"s"), vec![], []), now);
        assert!(
            e.guard_mut().trunk_sources().is_empty(),
            "a stale peer is not"
        );
    }
}
