//! Server transactions: INVITE (§17.2.1, RFC 6026 §8.5–8.7) and non-INVITE (§17.2.2).

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::layer::{Shared, Step};
use super::timer::{Armed, TimerKind};
use super::{Peer, RespondError, ServerKey, ServerState, ServerTxId, TuEvent, TxId};
use crate::builder::ResponseBuilder;
use crate::message::Message;
use crate::method::Method;

#[derive(Debug)]
pub(crate) struct ServerTx {
    pub(crate) id: u64,
    pub(crate) key: ServerKey,
    pub(crate) invite: bool,
    pub(crate) request: Message,
    pub(crate) peer: Peer,
    pub(crate) state: ServerState,
    /// The last response sent, resent when the request is retransmitted (and by timer G).
    last: Option<Bytes>,
    /// Current timer G interval.
    interval: Duration,
    pub(crate) armed: Armed,
}

/// The status code of an encoded response: `SIP/2.0 NNN`.
pub(crate) fn status_of(bytes: &[u8]) -> Option<u16> {
    let rest = bytes.strip_prefix(b"SIP/2.0 ")?;
    let digits = rest.get(..3)?;
    if !digits.iter().all(u8::is_ascii_digit) || rest.get(3).is_some_and(|&b| b != b' ') {
        return None;
    }
    let n = digits
        .iter()
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    (100..=699).contains(&n).then_some(n)
}

impl ServerTx {
    pub(crate) fn start(
        id: u64,
        key: ServerKey,
        request: Message,
        peer: Peer,
        sh: &mut Shared,
        now: Instant,
    ) -> Self {
        let invite = request.method() == Some(Method::Invite);
        let mut tx = ServerTx {
            id,
            key,
            invite,
            request,
            peer,
            state: if invite {
                ServerState::Proceeding
            } else {
                ServerState::Trying
            },
            last: None,
            interval: sh.cfg.timers.t1,
            armed: Armed::default(),
        };
        let limit = if invite {
            sh.cfg.timers.invite_server_limit
        } else {
            sh.cfg.timers.t1_x64()
        };
        tx.arm(sh, now, TimerKind::Abandon, limit);
        if invite {
            match sh.cfg.timers.trying_delay {
                Some(d) if d.is_zero() => tx.send_trying(sh),
                Some(d) => tx.arm(sh, now, TimerKind::Trying100, d),
                None => {}
            }
        }
        tx
    }

    pub(crate) fn txid(&self) -> TxId {
        TxId::Server(ServerTxId(self.id))
    }

    fn arm(&mut self, sh: &mut Shared, now: Instant, kind: TimerKind, after: Duration) {
        sh.timers.arm(&mut self.armed, self.id, kind, now + after);
    }

    fn cancel_timers(&mut self, sh: &mut Shared, kinds: &[TimerKind]) {
        for &k in kinds {
            sh.timers.cancel(&mut self.armed, self.id, k);
        }
    }

    fn send(&mut self, sh: &mut Shared, bytes: Bytes) {
        sh.transmit(self.peer, bytes.clone(), self.txid());
        self.last = Some(bytes);
    }

    fn resend_last(&self, sh: &mut Shared) {
        if let Some(last) = &self.last {
            sh.transmit(self.peer, last.clone(), self.txid());
        }
    }

    fn send_trying(&mut self, sh: &mut Shared) {
        let trying = ResponseBuilder::new(&self.request, 100)
            .received_from(self.peer.addr)
            .build();
        self.send(sh, trying);
    }

    fn linger(&mut self, sh: &mut Shared, now: Instant, kind: TimerKind, after: Duration) -> Step {
        if self.peer.transport.is_reliable() {
            return Step::Terminate;
        }
        self.arm(sh, now, kind, after);
        Step::Stay
    }

    /// The request arrived again.
    pub(crate) fn on_retransmission(&mut self, sh: &mut Shared) {
        match self.state {
            ServerState::Proceeding if self.invite && self.last.is_none() => {
                // The client is retransmitting and the TU is still thinking: stop the retransmissions now.
                self.cancel_timers(sh, &[TimerKind::Trying100]);
                self.send_trying(sh);
            }
            ServerState::Proceeding | ServerState::Completed => self.resend_last(sh),
            ServerState::Trying | ServerState::Confirmed | ServerState::Accepted => {}
        }
    }

    /// An ACK matched this (INVITE) transaction.
    pub(crate) fn on_ack(
        &mut self,
        ack: Message,
        peer: Peer,
        sh: &mut Shared,
        now: Instant,
    ) -> Step {
        match self.state {
            ServerState::Completed => {
                self.cancel_timers(sh, &[TimerKind::G, TimerKind::H]);
                self.state = ServerState::Confirmed;
                let i = sh.cfg.timers.t4;
                self.linger(sh, now, TimerKind::I, i)
            }
            ServerState::Accepted => {
                sh.event(TuEvent::Ack {
                    request: ack,
                    peer,
                    invite: Some(ServerTxId(self.id)),
                });
                Step::Stay
            }
            // Confirmed: a retransmitted ACK, absorbed. Proceeding: nothing to acknowledge yet, dropped.
            _ => Step::Stay,
        }
    }

    /// The TU sends a response.
    pub(crate) fn respond(
        &mut self,
        bytes: Bytes,
        sh: &mut Shared,
        now: Instant,
    ) -> Result<Step, RespondError> {
        let status = status_of(&bytes).ok_or(RespondError::NotAResponse)?;
        let t = sh.cfg.timers.clone();
        use ServerState::*;
        match (self.invite, self.state, status) {
            (true, Proceeding, 100..=199) => {
                self.cancel_timers(sh, &[TimerKind::Trying100]);
                self.send(sh, bytes);
                Ok(Step::Stay)
            }
            (true, Proceeding, 200..=299) => {
                self.cancel_timers(sh, &[TimerKind::Trying100, TimerKind::Abandon]);
                self.send(sh, bytes);
                self.state = Accepted;
                self.arm(sh, now, TimerKind::L, t.t1_x64());
                Ok(Step::Stay)
            }
            (true, Proceeding, _) => {
                self.cancel_timers(sh, &[TimerKind::Trying100, TimerKind::Abandon]);
                self.send(sh, bytes);
                self.state = Completed;
                if !self.peer.transport.is_reliable() {
                    self.interval = t.t1;
                    self.arm(sh, now, TimerKind::G, t.t1);
                }
                self.arm(sh, now, TimerKind::H, t.t1_x64());
                Ok(Step::Stay)
            }
            (true, Accepted, 200..=299) => {
                // RFC 6026 §8.6: the TU retransmits its 2xx through the transaction.
                sh.transmit(self.peer, bytes, self.txid());
                Ok(Step::Stay)
            }
            (false, Trying | Proceeding, 100..=199) => {
                self.send(sh, bytes);
                self.state = Proceeding;
                Ok(Step::Stay)
            }
            (false, Trying | Proceeding, _) => {
                self.cancel_timers(sh, &[TimerKind::Abandon]);
                self.send(sh, bytes);
                self.state = Completed;
                Ok(self.linger(sh, now, TimerKind::J, t.t1_x64()))
            }
            _ => Err(RespondError::WrongState),
        }
    }

    pub(crate) fn on_timer(&mut self, kind: TimerKind, sh: &mut Shared, now: Instant) -> Step {
        use ServerState::*;
        match (kind, self.state) {
            (TimerKind::G, Completed) => {
                self.resend_last(sh);
                self.interval = self.interval.saturating_mul(2).min(sh.cfg.timers.t2);
                self.arm(sh, now, TimerKind::G, self.interval);
                Step::Stay
            }
            (TimerKind::H, Completed) | (TimerKind::Abandon, Trying | Proceeding) => {
                sh.event(TuEvent::Timeout { tx: self.txid() });
                Step::Terminate
            }
            (TimerKind::I, Confirmed) | (TimerKind::J, Completed) | (TimerKind::L, Accepted) => {
                Step::Terminate
            }
            (TimerKind::Trying100, Proceeding) if self.last.is_none() => {
                self.send_trying(sh);
                Step::Stay
            }
            _ => Step::Stay,
        }
    }
}
