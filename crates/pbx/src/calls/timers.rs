//! The call timers: ringing without answer, the longest call, media silence, session refresh (RFC 4028), 2xx
//! retransmission until the ACK (RFC 3261 §13.3.1.4), a held transferee's resume.

use super::*;

impl Calls {
    /// Runs the call timers: no answer, 2xx retransmission, session timer, maximum length, media timeout.
    pub fn handle_timeout(&mut self, media: &mut dyn MediaControl, now: Instant, wall: SystemTime) {
        let ids: Vec<u64> = self.calls.keys().copied().collect();
        for id in ids {
            if self.calls.get(&id).is_some_and(|c| c.transfer.is_some()) {
                self.transfer_timeout(id, media, now, wall);
            }
            let Some(call) = self.calls.get_mut(&id) else {
                continue;
            };
            let silent: Vec<u64> = call
                .branches
                .iter()
                .filter(|b| b.final_status.is_none() && b.silent_deadline.is_some_and(|d| now >= d))
                .map(|b| b.request_id)
                .collect();
            if call.state == State::Ringing && !silent.is_empty() {
                for request in silent {
                    // Stop retransmitting to a provider that does not answer; then the next trunk.
                    self.outputs.push(CallOutput::Cancel {
                        leg: LegKey { call: id, request },
                    });
                    self.leg_failed(LegKey { call: id, request }, media, now, wall);
                }
                continue;
            }
            let Some(call) = self.calls.get_mut(&id) else {
                continue;
            };
            if call.state == State::Ringing && now >= call.ringing_deadline {
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
                if self.divert_unanswered(id, 480, "no_answer", media, wall) {
                    continue;
                }
                let Some(call) = self.calls.get_mut(&id) else {
                    continue;
                };
                let tx = call.invite_tx;
                self.respond(tx, 480, Some(&tag));
                self.finish(
                    id,
                    Disposition::NoAnswer,
                    HungUpBy::System,
                    "no_answer",
                    media,
                    wall,
                );
                continue;
            }
            if let Some((at, interval, give_up)) = call.retransmit_2xx.as_mut()
                && now >= *at
            {
                if now >= *give_up {
                    // No ACK after 64·T1: the caller is gone. End the call on both sides.
                    self.send_bye(id, Leg::B, media);
                    self.send_bye(id, Leg::A, media);
                    self.finish(
                        id,
                        Disposition::Failed,
                        HungUpBy::System,
                        "no_ack",
                        media,
                        wall,
                    );
                    continue;
                }
                *interval = (*interval * 2).min(T2);
                *at = now + *interval;
                let tx = call.invite_tx;
                self.outputs.push(CallOutput::Retransmit { tx });
            }
            let call = self.calls.get_mut(&id).expect("present");
            let session_expired = call.session_deadline.is_some_and(|(d, _)| now >= d);
            let idle = media
                .idle_for(call.media, now)
                .is_some_and(|i| i >= self.config.media_timeout);
            let reason = if now >= call.ends_at {
                Some("max_duration")
            } else if session_expired {
                Some("session_timer")
            } else if call.state == State::Confirmed && idle {
                Some("media_timeout")
            } else {
                None
            };
            if let Some(reason) = reason {
                self.send_bye(id, Leg::A, media);
                self.send_bye(id, Leg::B, media);
                self.finish(
                    id,
                    Disposition::Answered,
                    HungUpBy::System,
                    reason,
                    media,
                    wall,
                );
            }
        }
    }

    /// When [`Self::handle_timeout`] should next run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.calls
            .values()
            .flat_map(|c| {
                let ringing = (c.state == State::Ringing).then_some(c.ringing_deadline);
                let retransmit = c.retransmit_2xx.as_ref().map(|(at, _, _)| *at);
                let silent = c
                    .branches
                    .iter()
                    .filter(|b| b.final_status.is_none())
                    .filter_map(|b| b.silent_deadline)
                    .min();
                let session = c.session_deadline.map(|(d, _)| d);
                let transfer = c
                    .transfer
                    .as_ref()
                    .and_then(transfer::Transfer::next_deadline);
                [
                    ringing,
                    retransmit,
                    session,
                    silent,
                    transfer,
                    Some(c.ends_at),
                ]
                .into_iter()
                .flatten()
            })
            .min()
    }
}
