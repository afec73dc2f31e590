//! A caller waiting in a call queue: its call is answered by a media application playing the queue's music
//! ([`AppKind::Queue`]); the endpoint offers it to agents ([`Calls::queue_offer`]: their phones ring while the
//! music goes on), withdraws an offer nobody answered, and at the end of the wait sends it to the fallback or hangs
//! up. When an agent answers, the agent takes the callee's place at the relay and the music stops
//! ([`CallOutput::QueueOffered`] tells the endpoint either way).

use super::*;

impl Calls {
    /// A call to queue `queue`: answered by the queue's music (`music`: `default` or a WAV file).
    #[allow(clippy::too_many_arguments)] // the INVITE, its caller, and the queue
    pub fn invite_queue(
        &mut self,
        tx: ServerTxId,
        msg: &Message,
        peer: Peer,
        caller: Party,
        queue: &str,
        music: &str,
        wall: SystemTime,
    ) {
        let kind = AppKind::Queue {
            queue: queue.to_string(),
            music: music.to_string(),
        };
        self.invite_app(tx, msg, peer, caller, kind, wall);
    }

    /// Rings `agent`'s phones (`targets`) for waiting call `id`, or for the fallback when `final_attempt` (a
    /// failure then ends the call). False when nothing could be rung (the caller waits on).
    #[allow(clippy::too_many_arguments)]
    pub fn queue_offer(
        &mut self,
        id: u64,
        agent: Party,
        targets: Vec<Target>,
        ring: Duration,
        final_attempt: bool,
        media: &mut dyn MediaControl,
        now: Instant,
    ) -> bool {
        let Some(call) = self
            .calls
            .get_mut(&id)
            .filter(|c| c.handover.transfer.is_none() && c.diversion.app.is_some())
        else {
            return false;
        };
        let offer = call.offer.clone();
        let offer = sdp::sendrecv(&offer).unwrap_or(offer);
        let port = media.local_port(call.media, Leg::B);
        let advertise = media.advertise_ip();
        let display_name = call.caller.display_name.clone();
        let srtp = agent.srtp;
        let mut t = transfer::Transfer::returning(
            Leg::B,
            agent,
            now + ring,
            offer.clone(),
            port,
            advertise,
            display_name.clone(),
        );
        t.keep_on_failure = !final_attempt;
        t.callee_from_answer = true;
        call.handover.transfer = Some(t);
        let mut branches = Vec::new();
        for target in targets {
            let from = OutgoingFrom {
                display_name: display_name.clone(),
                srtp: target.srtp.unwrap_or(srtp),
            };
            if let Some(b) = self.new_branch(id, target, &offer, port, advertise, 70, from, now) {
                branches.push(b);
            }
        }
        let rung = !branches.is_empty();
        if let Some(call) = self.calls.get_mut(&id) {
            match call.handover.transfer.as_mut() {
                Some(t) if rung => t.branches = branches,
                _ => call.handover.transfer = None,
            }
        }
        rung
    }

    /// Stops ringing the agents offered call `id` (their time ran out, or the caller's wait did); it waits on.
    pub fn queue_withdraw(&mut self, id: u64) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(t) = call.handover.transfer.take_if(|t| t.keep_on_failure) else {
            return;
        };
        for b in t.branches {
            if b.final_status.is_none() {
                self.outputs.push(CallOutput::Cancel {
                    leg: LegKey {
                        call: id,
                        request: b.request_id,
                    },
                });
            }
            call.retired.push(b);
        }
    }

    /// A waiting call with nowhere to go: its music stops and the caller is hung up.
    pub fn queue_hang_up(&mut self, id: u64, media: &mut dyn MediaControl, wall: SystemTime) {
        self.queue_withdraw(id);
        if self
            .calls
            .get(&id)
            .is_some_and(|c| c.diversion.app.is_some())
        {
            self.send_bye(id, Leg::A, media);
            self.finish(
                id,
                Disposition::Answered,
                HungUpBy::System,
                "queue_timeout",
                media,
                wall,
            );
        }
    }
}

/// A transfer target answered call `id` (`call`): if a media application answered the caller until now (a
/// queue's music), it stops; for a queue, the agent whose phone answered (`branch`) becomes the target and the
/// endpoint is told ([`CallOutput::QueueOffered`]) before the application stops.
pub(super) fn app_connected(
    call: &mut Call,
    id: u64,
    target: &mut Party,
    branch: &Branch,
    outputs: &mut Vec<CallOutput>,
) {
    let Some(app) = call.diversion.app.take() else {
        return;
    };
    call.diversion.app_sdp = None;
    if let AppKind::Queue { .. } = app {
        // Several agents may have rung: the one whose phone answered takes the call.
        if let Some(user) = uri_user(&branch.dialog.remote_uri) {
            target.number = user;
        }
        outputs.push(CallOutput::QueueOffered {
            call: id,
            agent: Some(target.number.clone()),
        });
    }
    outputs.push(CallOutput::StopApp { call: id });
}

/// The user part of a name-addr's SIP URI (`<sip:201@pbx>` → `201`).
pub(super) fn uri_user(name_addr: &str) -> Option<String> {
    let uri = name_addr.split('<').nth(1)?.split('>').next()?;
    let rest = uri
        .strip_prefix("sip:")
        .or_else(|| uri.strip_prefix("sips:"))?;
    let user = rest.split('@').next()?;
    (rest.contains('@') && !user.is_empty()).then(|| user.to_string())
}
