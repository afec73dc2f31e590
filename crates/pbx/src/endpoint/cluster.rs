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
    /// Replaces what this node knows of the cluster (the store synchronisation refreshes it about every second).
    pub fn set_cluster(&mut self, view: ClusterView) {
        self.cluster = view;
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
