//! The call timers: ringing without answer, the longest call, media silence, session refresh (RFC 4028), 2xx
//! retransmission until the ACK (RFC 3261 §13.3.1.4), a held transferee's resume.

use super::*;

/// The 2xx to the caller's INVITE, sent again until its ACK arrives (RFC 3261 §13.3.1.4). The one place that holds
/// both the schedule and the bytes: the endpoint builds the 2xx and gives it back with [`Calls::answer_sent`].
#[derive(Debug, Clone)]
pub(super) struct Retransmission {
    next_at: Instant,
    interval: Duration,
    give_up_at: Instant,
    /// The 2xx as sent; `None` until the endpoint reported it (then only the give-up runs).
    response: Option<Bytes>,
}

impl Retransmission {
    /// The schedule of a 2xx sent at `now`: T1, doubling up to T2, given up after 64·T1.
    pub(super) fn start(now: Instant) -> Self {
        Retransmission {
            next_at: now + T1,
            interval: T1,
            give_up_at: now + T1 * 64,
            response: None,
        }
    }

    /// What is due at `now`: nothing, the 2xx again (`Some(None)` while its bytes are not known yet: the schedule
    /// still advances), or giving up (`Err`: no ACK after 64·T1, the peer is gone).
    fn due(&mut self, now: Instant) -> Result<Option<Option<Bytes>>, ()> {
        if now < self.next_at {
            return Ok(None);
        }
        if now >= self.give_up_at {
            return Err(());
        }
        self.interval = (self.interval * 2).min(T2);
        self.next_at = now + self.interval;
        Ok(Some(self.response.clone()))
    }
}

/// A 2xx Palisade sent to a phone that joined an existing call by a new INVITE — a pickup (`*8`, `**201`), a
/// park retrieval, a call pulled with Replaces — retransmitted until that phone's ACK like the caller's 2xx.
#[derive(Debug, Clone)]
pub(super) struct JoinedAnswer {
    /// The joining INVITE's server transaction, and the leg the phone took.
    pub(super) tx: ServerTxId,
    pub(super) leg: Leg,
    pub(super) retransmission: Retransmission,
}

impl JoinedAnswer {
    pub(super) fn start(tx: ServerTxId, leg: Leg, now: Instant) -> Self {
        JoinedAnswer {
            tx,
            leg,
            retransmission: Retransmission::start(now),
        }
    }
}

impl Calls {
    /// The endpoint sent `response`, a 2xx in server transaction `tx`: kept for retransmission if `tx` is the
    /// INVITE of a call waiting for its ACK (a 2xx to a re-INVITE is not retransmitted by Palisade).
    pub fn answer_sent(&mut self, tx: ServerTxId, response: Bytes) {
        let caller = self
            .calls
            .values_mut()
            .filter(|c| c.invite_tx == tx)
            .find_map(|c| c.timers.retransmit_2xx.as_mut());
        if let Some(r) = caller {
            r.response = Some(response);
            return;
        }
        if let Some(j) = self
            .calls
            .values_mut()
            .find_map(|c| c.timers.joined_2xx.as_mut().filter(|j| j.tx == tx))
        {
            j.retransmission.response = Some(response);
        }
    }

    /// Runs the call timers: no answer, 2xx retransmission, session timer, maximum length, media timeout.
    pub fn handle_timeout(&mut self, media: &mut dyn MediaControl, now: Instant, wall: SystemTime) {
        self.park_timeouts(now);
        let ids: Vec<u64> = self.calls.keys().copied().collect();
        for id in ids {
            if self
                .calls
                .get(&id)
                .is_some_and(|c| c.handover.transfer.is_some())
            {
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
            if call.state == State::Ringing && now >= call.timers.ringing_deadline {
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
                if self.divert_unanswered(id, 480, "no_answer", media, now, wall) {
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
            let caller = call.timers.retransmit_2xx.as_mut().map(|r| r.due(now));
            let joined = call
                .timers
                .joined_2xx
                .as_mut()
                .map(|j| (j.tx, j.retransmission.due(now)));
            if matches!(caller, Some(Err(()))) || matches!(joined, Some((_, Err(())))) {
                // No ACK after 64·T1: the phone answered is gone. End the call on both sides.
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
            if let Some(Ok(Some(Some(response)))) = caller {
                let tx = call.invite_tx;
                self.outputs.push(CallOutput::Retransmit { tx, response });
            }
            if let Some((tx, Ok(Some(Some(response))))) = joined {
                self.outputs.push(CallOutput::Retransmit { tx, response });
            }
            let call = self.calls.get_mut(&id).expect("present");
            let session_expired = call.timers.session_deadline.is_some_and(|(d, _)| now >= d);
            let idle = media
                .idle_for(call.media, now)
                .is_some_and(|i| i >= self.config.media_timeout);
            let reason = if now >= call.timers.ends_at {
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
        let park = self.next_park_deadline();
        let calls = self
            .calls
            .values()
            .flat_map(|c| {
                let ringing = (c.state == State::Ringing).then_some(c.timers.ringing_deadline);
                let retransmit = c.timers.retransmit_2xx.as_ref().map(|r| r.next_at);
                let joined = c
                    .timers
                    .joined_2xx
                    .as_ref()
                    .map(|j| j.retransmission.next_at);
                let silent = c
                    .branches
                    .iter()
                    .filter(|b| b.final_status.is_none())
                    .filter_map(|b| b.silent_deadline)
                    .min();
                let session = c.timers.session_deadline.map(|(d, _)| d);
                let transfer = c
                    .handover
                    .transfer
                    .as_ref()
                    .and_then(transfer::Transfer::next_deadline);
                [
                    ringing,
                    retransmit,
                    joined,
                    session,
                    silent,
                    transfer,
                    Some(c.timers.ends_at),
                ]
                .into_iter()
                .flatten()
            })
            .min();
        calls.into_iter().chain(park).min()
    }
}
