//! How calls end: CANCEL, a leg that failed, BYE, refusals, and the call record each end leaves.

use super::*;

impl Calls {
    pub(super) fn refuse_488(&mut self, tx: ServerTxId, reason: &str) {
        self.outputs.push(CallOutput::Respond(Response {
            tx,
            status: 488,
            reason: Some(format!("Not Acceptable Here ({reason})")),
            to_tag: None,
            headers: vec![(HeaderName::Warning, format!("399 palisade \"{reason}\""))],
            body: None,
        }));
    }

    /// The caller cancelled its INVITE (transaction `invite`): 487 to it, CANCEL to every branch.
    /// Returns false if no ringing call belongs to that transaction.
    pub fn cancel(
        &mut self,
        invite: ServerTxId,
        media: &mut dyn MediaControl,
        wall: SystemTime,
    ) -> bool {
        if self.cancel_awaiting_media(invite, wall) {
            return true;
        }
        let Some(&id) = self.by_invite.get(&invite) else {
            return false;
        };
        let Some(call) = self.calls.get_mut(&id) else {
            return false;
        };
        if !matches!(
            call.state,
            State::Ringing | State::Diverting | State::Forwarding
        ) {
            return false;
        }
        let tag = call.a.local_tag.clone();
        for b in call
            .branches
            .iter_mut()
            .filter(|b| b.final_status.is_none())
        {
            b.cancelled = true;
            self.outputs.push(CallOutput::Cancel {
                leg: LegKey {
                    call: id,
                    request: b.request_id,
                },
            });
        }
        self.respond(invite, 487, Some(&tag));
        self.finish(
            id,
            Disposition::Cancelled,
            HungUpBy::Caller,
            "cancel",
            media,
            wall,
        );
        true
    }

    /// A client transaction of `leg` timed out or could not be sent.
    pub fn leg_failed(
        &mut self,
        leg: LegKey,
        media: &mut dyn MediaControl,
        now: Instant,
        wall: SystemTime,
    ) {
        let Some(call) = self.calls.get_mut(&leg.call) else {
            return;
        };
        if let Some(relayed) = call.relayed.remove(&leg.request) {
            let tag = call.dialog(relayed.from).local_tag.clone();
            self.respond(relayed.tx, 408, Some(&tag));
            self.resume(leg.call, media);
            return;
        }
        if call
            .handover
            .resume
            .as_ref()
            .is_some_and(|r| r.request == leg.request)
        {
            self.resume_failed(leg.call, 408);
            return;
        }
        if call.handover.transfer.as_ref().is_some_and(|t| {
            t.branches
                .iter()
                .any(|b| b.request_id == leg.request && b.final_status.is_none())
        }) {
            self.transfer_branch_final(leg.call, leg.request, 408, media, now, wall);
            return;
        }
        if let Some(b) = call
            .branches
            .iter_mut()
            .find(|b| b.request_id == leg.request && b.final_status.is_none())
        {
            b.final_status = Some(408);
            call.failures.push(408);
            let all_done = call.branches.iter().all(|b| b.final_status.is_some());
            if all_done && call.state == State::Ringing && !call.failover.is_empty() {
                self.fail_over(leg.call, now);
                return;
            }
            if all_done
                && call.state == State::Ringing
                && self.divert_unanswered(leg.call, 480, "timeout", media, now, wall)
            {
                return;
            }
            let Some(call) = self.calls.get_mut(&leg.call) else {
                return;
            };
            if all_done && call.state == State::Ringing {
                let (tx, tag) = (call.invite_tx, call.a.local_tag.clone());
                self.respond(tx, 480, Some(&tag));
                self.finish(
                    leg.call,
                    Disposition::Unavailable,
                    HungUpBy::System,
                    "timeout",
                    media,
                    wall,
                );
            }
        }
        let _ = now;
    }

    /// Sends BYE on `side` of an established call (no-op if that side has no dialog yet).
    pub(super) fn send_bye(&mut self, id: u64, side: Leg, _media: &mut dyn MediaControl) {
        let local = self.local.clone();
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if (side == Leg::B && call.b.is_none()) || call.handover.gone[idx(side)] {
            return;
        }
        let peer = call.peer(side);
        let transport = peer.transport;
        let Some(via_addr) = local.address_for(transport) else {
            return;
        };
        let dialog = call.dialog_mut(side);
        if dialog.remote_tag.is_none() {
            return;
        }
        dialog.local_cseq += 1;
        let seq = dialog.local_cseq;
        let Some(bye) = built(bodyless(dialog, "BYE", seq, transport, via_addr)) else {
            return;
        };
        self.outputs.push(CallOutput::SendRequest {
            leg: LegKey {
                call: id,
                request: u64::MAX - 1,
            },
            request: bye,
            peer,
        });
    }

    /// Removes a call: releases its media, forgets its dialogs, emits its record.
    pub(super) fn finish(
        &mut self,
        id: u64,
        disposition: Disposition,
        by: HungUpBy,
        reason: &str,
        media: &mut dyn MediaControl,
        wall: SystemTime,
    ) {
        let Some(call) = self.calls.remove(&id) else {
            return;
        };
        self.unpark(id);
        if call.diversion.app.is_some() {
            self.outputs.push(CallOutput::StopApp { call: id });
        }
        // A transfer target still ringing is cancelled.
        for b in call
            .handover
            .transfer
            .iter()
            .flat_map(|t| t.branches.iter())
            .filter(|b| b.final_status.is_none())
        {
            self.outputs.push(CallOutput::Cancel {
                leg: LegKey {
                    call: id,
                    request: b.request_id,
                },
            });
        }
        media.release(call.media);
        self.by_invite.remove(&call.invite_tx);
        self.dialogs.remove(&call.a.key());
        if let Some(b) = &call.b {
            self.dialogs.remove(&b.dialog.key());
        }
        for key in &call.handover.detached {
            self.detached.remove(key);
        }
        let disposition = if call.answered_at.is_some() {
            Disposition::Answered
        } else {
            disposition
        };
        let (caller, callee) = call.record_parties();
        self.outputs.push(CallOutput::Record(CallRecord {
            call_id: call.call_id_a,
            caller,
            callee,
            started_at: call.started_at,
            answered_at: call.answered_at,
            ended_at: wall,
            disposition,
            hung_up_by: by,
            reason: reason.to_string(),
        }));
    }

    /// Refuses a new INVITE before any ringing (call policy) and records the attempt.
    #[allow(clippy::too_many_arguments)] // the refusal and what its record needs
    pub fn refuse(
        &mut self,
        tx: ServerTxId,
        msg: &Message,
        caller: &Party,
        dialed: &str,
        status: u16,
        reason: &str,
        code: &str,
        wall: SystemTime,
    ) {
        // The reason code also travels in a Warning header (RFC 3261 §20.43), for phones that do not show the
        // reason phrase.
        let warning = format!("399 palisade \"{}\"", code.replace('"', ""));
        self.outputs.push(CallOutput::Respond(Response {
            tx,
            status,
            reason: Some(reason.to_string()),
            to_tag: None,
            headers: vec![(HeaderName::Warning, warning)],
            body: None,
        }));
        let disposition = if status == 404 {
            Disposition::NotFound
        } else {
            Disposition::Failed
        };
        self.record_unconnected(msg, caller, dialed, disposition, code, wall);
    }

    pub(super) fn record_unconnected(
        &mut self,
        msg: &Message,
        caller: &Party,
        callee: &str,
        disposition: Disposition,
        reason: &str,
        wall: SystemTime,
    ) {
        let callee = if callee.is_empty() {
            msg.request_uri()
                .and_then(Result::ok)
                .and_then(|u| u.user)
                .unwrap_or("")
                .to_string()
        } else {
            callee.to_string()
        };
        self.outputs.push(CallOutput::Record(CallRecord {
            call_id: msg
                .call_id()
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .unwrap_or_default(),
            caller: caller.number.clone(),
            callee,
            started_at: wall,
            answered_at: None,
            ended_at: wall,
            disposition,
            hung_up_by: HungUpBy::System,
            reason: reason.to_string(),
        }));
    }
}
