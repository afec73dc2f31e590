//! Client transactions: INVITE (§17.1.1, RFC 6026 §8.4) and non-INVITE (§17.1.2).

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::layer::{Shared, Step};
use super::timer::{Armed, TimerKind};
use super::{ClientKey, ClientState, ClientTxId, Peer, TuEvent, TxId};
use crate::builder::ack_for_non_2xx;
use crate::message::Message;
use crate::method::Method;

#[derive(Debug)]
pub(crate) struct ClientTx {
    pub(crate) id: u64,
    pub(crate) key: ClientKey,
    pub(crate) invite: bool,
    pub(crate) request: Message,
    wire: Bytes,
    pub(crate) peer: Peer,
    pub(crate) state: ClientState,
    /// Current retransmission interval (timers A and E).
    interval: Duration,
    /// The ACK we sent for a non-2xx final response, resent for each retransmission of it.
    ack: Option<Bytes>,
    /// A CANCEL requested while still Calling: (its id, the CANCEL), sent on the first provisional response.
    pub(crate) deferred_cancel: Option<(u64, ClientKey, Message)>,
    pub(crate) cancel_requested: bool,
    pub(crate) armed: Armed,
}

impl ClientTx {
    /// Sends `request` and arms the first timers.
    pub(crate) fn start(
        id: u64,
        key: ClientKey,
        request: Message,
        peer: Peer,
        sh: &mut Shared,
        now: Instant,
    ) -> Self {
        let invite = request.method() == Some(Method::Invite);
        let t1 = sh.cfg.timers.t1;
        let mut tx = ClientTx {
            id,
            key,
            invite,
            wire: request.wire(),
            request,
            peer,
            state: if invite {
                ClientState::Calling
            } else {
                ClientState::Trying
            },
            interval: t1,
            ack: None,
            deferred_cancel: None,
            cancel_requested: false,
            armed: Armed::default(),
        };
        sh.transmit(peer, tx.wire.clone(), tx.txid());
        let (retransmit, give_up) = if invite {
            (TimerKind::A, TimerKind::B)
        } else {
            (TimerKind::E, TimerKind::F)
        };
        if !peer.transport.is_reliable() {
            tx.arm(sh, now, retransmit, t1);
        }
        let limit = sh.cfg.timers.t1_x64();
        tx.arm(sh, now, give_up, limit);
        tx
    }

    pub(crate) fn txid(&self) -> TxId {
        TxId::Client(ClientTxId(self.id))
    }

    fn arm(&mut self, sh: &mut Shared, now: Instant, kind: TimerKind, after: Duration) {
        sh.timers.arm(&mut self.armed, self.id, kind, now + after);
    }

    fn cancel_timers(&mut self, sh: &mut Shared, kinds: &[TimerKind]) {
        for &k in kinds {
            sh.timers.cancel(&mut self.armed, self.id, k);
        }
    }

    fn to_tu(&self, sh: &mut Shared, response: Message) {
        sh.event(TuEvent::Response {
            tx: ClientTxId(self.id),
            response,
        });
    }

    /// Waits `after` in a state that only absorbs retransmissions, or terminates at once on reliable transports.
    fn linger(&mut self, sh: &mut Shared, now: Instant, kind: TimerKind, after: Duration) -> Step {
        if self.peer.transport.is_reliable() {
            return Step::Terminate;
        }
        self.arm(sh, now, kind, after);
        Step::Stay
    }

    pub(crate) fn on_response(&mut self, response: Message, sh: &mut Shared, now: Instant) -> Step {
        let status = response.status().unwrap_or(0);
        if self.invite {
            self.invite_response(status, response, sh, now)
        } else {
            self.other_response(status, response, sh, now)
        }
    }

    fn invite_response(
        &mut self,
        status: u16,
        response: Message,
        sh: &mut Shared,
        now: Instant,
    ) -> Step {
        use ClientState::*;
        match (self.state, status) {
            (Calling | Proceeding, 100..=199) => {
                self.cancel_timers(sh, &[TimerKind::A, TimerKind::B]);
                let c = sh.cfg.timers.timer_c;
                self.arm(sh, now, TimerKind::C, c);
                self.state = Proceeding;
                self.to_tu(sh, response);
                Step::Stay
            }
            (Calling | Proceeding, 200..=299) => {
                self.cancel_timers(sh, &[TimerKind::A, TimerKind::B, TimerKind::C]);
                self.state = Accepted;
                self.to_tu(sh, response);
                let m = sh.cfg.timers.t1_x64();
                self.arm(sh, now, TimerKind::M, m);
                Step::Stay
            }
            (Calling | Proceeding, 300..) => {
                self.cancel_timers(sh, &[TimerKind::A, TimerKind::B, TimerKind::C]);
                self.state = Completed;
                self.ack = ack_for_non_2xx(&self.request, &response);
                if let Some(ack) = &self.ack {
                    sh.transmit(self.peer, ack.clone(), self.txid());
                }
                self.to_tu(sh, response);
                let d = sh.cfg.timers.timer_d;
                self.linger(sh, now, TimerKind::D, d)
            }
            (Accepted, 200..=299) => {
                self.to_tu(sh, response);
                Step::Stay
            }
            (Completed, 300..) => {
                if let Some(ack) = &self.ack {
                    sh.transmit(self.peer, ack.clone(), self.txid());
                }
                Step::Stay
            }
            _ => Step::Stay,
        }
    }

    fn other_response(
        &mut self,
        status: u16,
        response: Message,
        sh: &mut Shared,
        now: Instant,
    ) -> Step {
        use ClientState::*;
        match (self.state, status) {
            (Trying | Proceeding, 100..=199) => {
                self.state = Proceeding;
                self.to_tu(sh, response);
                Step::Stay
            }
            (Trying | Proceeding, 200..) => {
                self.cancel_timers(sh, &[TimerKind::E, TimerKind::F]);
                self.state = Completed;
                self.to_tu(sh, response);
                let k = sh.cfg.timers.t4;
                self.linger(sh, now, TimerKind::K, k)
            }
            _ => Step::Stay,
        }
    }

    pub(crate) fn on_timer(&mut self, kind: TimerKind, sh: &mut Shared, now: Instant) -> Step {
        use ClientState::*;
        match (kind, self.state) {
            (TimerKind::A, Calling) => {
                sh.transmit(self.peer, self.wire.clone(), self.txid());
                self.interval = self.interval.saturating_mul(2);
                self.arm(sh, now, TimerKind::A, self.interval);
                Step::Stay
            }
            (TimerKind::E, Trying | Proceeding) => {
                sh.transmit(self.peer, self.wire.clone(), self.txid());
                let t2 = sh.cfg.timers.t2;
                self.interval = if self.state == Trying {
                    self.interval.saturating_mul(2).min(t2)
                } else {
                    t2
                };
                self.arm(sh, now, TimerKind::E, self.interval);
                Step::Stay
            }
            (TimerKind::B, Calling)
            | (TimerKind::C, Proceeding)
            | (TimerKind::F, Trying | Proceeding) => {
                sh.event(TuEvent::Timeout { tx: self.txid() });
                Step::Terminate
            }
            (TimerKind::D, Completed) | (TimerKind::K, Completed) | (TimerKind::M, Accepted) => {
                Step::Terminate
            }
            _ => Step::Stay,
        }
    }
}
