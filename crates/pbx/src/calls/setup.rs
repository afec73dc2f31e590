//! Call setup: a new INVITE is checked (callee, registrations, offer, SRTP policy), the relay is asked for ports
//! ([`CallOutput::AllocateMedia`]), and when they come ([`Calls::media_ready`]) the callee's phones ring.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use sip::transaction::{Peer, ServerTxId};
use sip::{HeaderName, Message};

use ::media::sdes::CryptoAttribute;

use super::{
    AppKind, Call, CallKeys, CallOutput, CallTimers, Calls, Dialog, Disposition, Diversion,
    ForwardReason, Handover, HungUpBy, Leg, MediaControl, MediaError, MediaId, Party, Response,
    State, Target, leg_crypto, new_tag, point_leg, sdp,
};
use crate::model::SrtpMode;
use crate::registrar::Binding;

/// A new call whose relay ports the edge is opening: what was decided before asking.
pub(super) struct AwaitingMedia {
    tx: ServerTxId,
    msg: Message,
    peer: Peer,
    caller: Party,
    callee: Party,
    contacts: Vec<Target>,
    failover: Vec<Target>,
    offer: Bytes,
    a_keys: Option<(CryptoAttribute, CryptoAttribute)>,
    /// The media application the call is for (the voicemail access number, the PIN unlock), if any.
    app: Option<AppKind>,
    /// A call to a ring group: its members step by step ([`super::hunt`]).
    pub(super) hunt: Option<super::hunt::Hunt>,
}

impl Calls {
    /// A new INVITE from an authenticated extension (`caller`) to `callee`, whose live registrations are
    /// `contacts`. Answers what it can at once (404/480/488/503) and otherwise starts ringing every contact.
    #[allow(clippy::too_many_arguments)] // one call's inputs: the request, its parties and where to reach them
    pub fn invite(
        &mut self,
        tx: ServerTxId,
        msg: &Message,
        peer: Peer,
        caller: Party,
        callee: Option<Party>,
        contacts: &[Binding],
        wall: SystemTime,
    ) {
        let targets = self.contact_targets(&caller.number, contacts);
        self.start(
            tx,
            msg,
            peer,
            caller,
            callee,
            targets,
            Vec::new(),
            None,
            wall,
        );
    }

    /// INVITE targets for an extension's registered contacts, calling from `from_user`.
    pub fn contact_targets(&self, from_user: &str, contacts: &[Binding]) -> Vec<Target> {
        contacts
            .iter()
            .map(|c| Target {
                request_uri: c.contact.clone(),
                to_uri: format!("<sip:{}@{}>", c.aor, self.local.domain),
                from_user: from_user.to_string(),
                source: c.source,
                transport: c.transport,
                credentials: None,
                is_trunk: false,
                // A hop to another cluster node is plain RTP between the nodes' relays; the node holding the
                // phone applies the extension's SRTP policy on its own leg.
                srtp: c.via_node.is_some().then_some(SrtpMode::Disabled),
            })
            .collect()
    }

    /// A call out through trunks: `targets` are the trunks in failover order (the first is rung; the next is
    /// tried when it fails with a timeout or a server error).
    #[allow(clippy::too_many_arguments)]
    pub fn invite_trunk(
        &mut self,
        tx: ServerTxId,
        msg: &Message,
        peer: Peer,
        caller: Party,
        dialed: &str,
        mut targets: Vec<Target>,
        wall: SystemTime,
    ) {
        let callee = Party {
            number: dialed.to_string(),
            srtp: SrtpMode::Disabled,
            ..Party::default()
        };
        let rest = if targets.len() > 1 {
            targets.split_off(1)
        } else {
            Vec::new()
        };
        self.start(
            tx,
            msg,
            peer,
            caller,
            Some(callee),
            targets,
            rest,
            None,
            wall,
        );
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn start(
        &mut self,
        tx: ServerTxId,
        msg: &Message,
        peer: Peer,
        caller: Party,
        callee: Option<Party>,
        contacts: Vec<Target>,
        failover: Vec<Target>,
        app: Option<AppKind>,
        wall: SystemTime,
    ) {
        let Some(callee) = callee else {
            self.respond(tx, 404, None);
            self.record_unconnected(msg, &caller, "", Disposition::NotFound, "404", wall);
            return;
        };
        // An unreachable callee may still forward the call or take a message.
        let elsewhere = callee.voicemail
            || callee.forward.always.is_some()
            || callee.forward.no_answer.is_some();
        if contacts.is_empty() && !elsewhere {
            self.respond(tx, 480, None);
            self.record_unconnected(
                msg,
                &caller,
                &callee.number,
                Disposition::Unavailable,
                "not_registered",
                wall,
            );
            return;
        }
        if self.calls.len() + self.awaiting_media.len() >= self.max_calls {
            self.respond(tx, 503, None);
            return;
        }
        // Palisade relays media and does not transcode, so it needs the offer up front (no late offer).
        let offer = msg.body_bytes();
        let is_sdp = msg
            .content_type()
            .and_then(Result::ok)
            .is_some_and(|ct| ct.is("application", "sdp"));
        if offer.is_empty() || !is_sdp || !sdp::has_audio(&offer) {
            self.outputs.push(CallOutput::Respond(Response {
                tx,
                status: 488,
                reason: Some("Not Acceptable Here (an SDP offer is required)".into()),
                to_tag: None,
                headers: vec![(
                    HeaderName::Warning,
                    "399 palisade \"SDP offer required\"".into(),
                )],
                body: None,
            }));
            return;
        }
        // SRTP on the caller's leg (hardening step 6): keys travel only over TLS, and the extension's policy
        // decides whether SRTP is refused, taken when offered, or required.
        let a_tls = matches!(
            peer.transport,
            sip::transaction::Transport::Tls | sip::transaction::Transport::Wss
        );
        let security = sdp::security(&offer);
        let offered = security.savp || !security.crypto.is_empty();
        let a_keys = match (caller.srtp, offered, a_tls) {
            (SrtpMode::Enforced, false, _) => {
                self.refuse_488(tx, "SRTP is required for this extension");
                return;
            }
            (SrtpMode::Enforced, true, false) => {
                self.refuse_488(tx, "SRTP keys are only exchanged over TLS");
                return;
            }
            (SrtpMode::Enabled, true, false) if security.savp => {
                self.refuse_488(tx, "SRTP keys are only exchanged over TLS");
                return;
            }
            (SrtpMode::Disabled, true, _) if security.savp => {
                self.refuse_488(tx, "SRTP is disabled for this extension");
                return;
            }
            (SrtpMode::Enabled | SrtpMode::Enforced, true, true) => {
                match ::media::sdes::choose(security.crypto.iter().map(String::as_str)) {
                    Some(theirs) => {
                        let ours = theirs.answer();
                        Some((theirs, ours))
                    }
                    None => {
                        self.refuse_488(tx, "no acceptable SRTP crypto suite");
                        return;
                    }
                }
            }
            _ => None,
        };
        // The relay's ports are the edge's to open (sockets, a task): ask for them and carry on in
        // `media_ready` with everything decided so far.
        let id = self.alloc_id();
        self.awaiting_media.insert(
            id,
            AwaitingMedia {
                tx,
                msg: msg.clone(),
                peer,
                caller,
                callee,
                contacts,
                failover,
                offer,
                a_keys,
                app,
                hunt: None,
            },
        );
        self.by_invite.insert(tx, id);
        self.outputs.push(CallOutput::AllocateMedia { call: id });
    }

    /// The relay's answer to [`CallOutput::AllocateMedia`] for `id`: the call starts ringing (or forwards, or
    /// goes to voicemail), or the caller gets 503 when no ports were free.
    pub fn media_ready(
        &mut self,
        id: u64,
        allocated: Result<MediaId, MediaError>,
        media: &mut dyn MediaControl,
        now: Instant,
        wall: SystemTime,
    ) {
        let Some(setup) = self.awaiting_media.remove(&id) else {
            // The caller cancelled meanwhile: the ports are not needed.
            if let Ok(media_id) = allocated {
                media.release(media_id);
            }
            return;
        };
        self.by_invite.remove(&setup.tx);
        let (tx, app) = (setup.tx, setup.app.clone());
        self.open(id, setup, allocated, media, now, wall);
        // A call for a media application has no contacts, so `open` diverted it (if it could) to a mailbox: make
        // it the application asked for.
        let Some(kind) = app else {
            return;
        };
        if self.by_invite.get(&tx) == Some(&id) {
            for o in self.outputs.iter_mut() {
                if let CallOutput::StartApp(start) = o
                    && start.call == id
                {
                    start.kind = kind.clone();
                }
            }
            if let Some(call) = self.calls.get_mut(&id) {
                call.diversion.app = Some(kind);
            }
        }
    }

    /// A call whose relay ports were asked for: rings the callee's contacts (forwards, diverts), or 503.
    fn open(
        &mut self,
        id: u64,
        setup: AwaitingMedia,
        allocated: Result<MediaId, MediaError>,
        media: &mut dyn MediaControl,
        now: Instant,
        wall: SystemTime,
    ) {
        let AwaitingMedia {
            tx,
            msg,
            peer,
            caller,
            callee,
            contacts,
            failover,
            offer,
            a_keys,
            app: _,
            hunt,
        } = setup;
        let msg = &msg;
        let media_id = match allocated {
            Ok(id) => id,
            Err(e) => {
                tracing::warn!(error = %e, "no media ports for a new call");
                self.outputs.push(CallOutput::Respond(Response {
                    tx,
                    status: 503,
                    reason: Some("Service Unavailable (no media ports)".into()),
                    to_tag: None,
                    headers: vec![(HeaderName::RetryAfter, "5".into())],
                    body: None,
                }));
                return;
            }
        };
        point_leg(
            media,
            &self.local,
            media_id,
            Leg::A,
            &offer,
            peer.addr,
            &caller,
        );
        if let Some((theirs, ours)) = &a_keys {
            media.set_crypto(media_id, Leg::A, leg_crypto(theirs, ours));
        }
        let (callee_is_extension, callee_number) = (callee.extension, callee.number.clone());
        let a = Dialog::uas(msg, new_tag());
        let session_deadline = self.session_timer(msg).map(|se| {
            (
                now + Duration::from_secs(u64::from(se)),
                Duration::from_secs(u64::from(se)),
            )
        });
        let mut call = Call {
            call_id_a: a.call_id.clone(),
            caller,
            callee,
            state: State::Ringing,
            invite_tx: tx,
            a,
            a_peer: peer,
            offer: offer.clone(),
            b: None,
            branches: Vec::new(),
            media: media_id,
            started_at: wall,
            answered_at: None,
            timers: CallTimers {
                ringing_deadline: now + self.config.no_answer,
                ends_at: now + self.config.max_duration,
                session_deadline,
                retransmit_2xx: None,
                joined_2xx: None,
            },
            relayed: BTreeMap::new(),
            sent: [None, None],
            failures: Vec::new(),
            keys: CallKeys {
                secure: [a_keys.is_some(), false],
                a_keys,
                pending_rx: [None, None],
                pending_offer: [Vec::new(), Vec::new()],
            },
            failover: Vec::new(),
            b_port: None,
            advertise: media.advertise_ip(),
            max_forwards: 70,
            diversion: Diversion {
                app: None,
                app_sdp: None,
                chain: if callee_is_extension {
                    vec![callee_number]
                } else {
                    Vec::new()
                },
                hops: 0,
                pending: None,
            },
            retired: Vec::new(),
            handover: Handover::default(),
            answers: [None, None],
            hunt,
        };
        call.timers.ringing_deadline = now + self.ring_time(&call.callee);
        self.respond(tx, 100, None);
        let max_forwards = msg
            .max_forwards()
            .ok()
            .flatten()
            .unwrap_or(70)
            .saturating_sub(1);
        let b_port = media.local_port(media_id, Leg::B);
        let advertise = media.advertise_ip();
        call.failover = failover;
        call.b_port = b_port;
        call.max_forwards = max_forwards;
        // Forward always: the callee's phones do not ring at all.
        if let Some(target) = call.callee.forward.always.clone() {
            self.by_invite.insert(tx, id);
            self.calls.insert(id, call);
            self.forward(id, ForwardReason::Always, target, media, wall);
            return;
        }
        if call.hunt.is_some() {
            // A ring group: its first step rings (`contacts` are that step's phones).
            self.ring_hunt_step(&mut call, id, now);
        } else {
            for contact in contacts {
                self.ring(
                    &mut call,
                    id,
                    contact,
                    &offer,
                    b_port,
                    advertise,
                    max_forwards,
                    now,
                );
            }
        }
        if call.branches.is_empty()
            && !call.callee.voicemail
            && call.callee.forward.no_answer.is_none()
        {
            media.release(media_id);
            self.respond(tx, 480, None);
            return;
        }
        let unreachable = call.branches.is_empty();
        self.by_invite.insert(tx, id);
        self.calls.insert(id, call);
        if unreachable && !self.divert_unanswered(id, 480, "not_registered", media, now, wall) {
            let tag = self.calls.get(&id).map(|c| c.a.local_tag.clone());
            self.respond(tx, 480, tag.as_deref());
            self.finish(
                id,
                Disposition::Unavailable,
                HungUpBy::System,
                "not_registered",
                media,
                wall,
            );
        }
    }

    /// A call Palisade answers itself with a media application (the voicemail access number, the PIN unlock).
    pub fn invite_app(
        &mut self,
        tx: ServerTxId,
        msg: &Message,
        peer: Peer,
        caller: Party,
        kind: AppKind,
        wall: SystemTime,
    ) {
        let callee = Party {
            number: match &kind {
                AppKind::Access { mailbox } | AppKind::Deposit { mailbox } => mailbox.clone(),
                AppKind::Unlock { .. } => "unlock".into(),
                AppKind::Queue { queue, .. } => queue.clone(),
                AppKind::Conference { room } => room.clone(),
                AppKind::Attendant { name } => name.clone(),
            },
            srtp: SrtpMode::Disabled,
            voicemail: true,
            ..Party::default()
        };
        let (contacts, failover) = (Vec::new(), Vec::new());
        let app = Some(kind);
        self.start(
            tx,
            msg,
            peer,
            caller,
            Some(callee),
            contacts,
            failover,
            app,
            wall,
        );
    }

    /// A CANCEL of an INVITE whose relay ports are still being opened: 487 now, the ports released when they come.
    pub(super) fn cancel_awaiting_media(&mut self, invite: ServerTxId, wall: SystemTime) -> bool {
        let Some(&id) = self.by_invite.get(&invite) else {
            return false;
        };
        let Some(setup) = self.awaiting_media.remove(&id) else {
            return false;
        };
        self.by_invite.remove(&invite);
        self.respond(invite, 487, None);
        self.record_unconnected(
            &setup.msg,
            &setup.caller,
            &setup.callee.number,
            Disposition::Cancelled,
            "cancel",
            wall,
        );
        true
    }
}
