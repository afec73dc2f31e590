//! The timer queue shared by all transactions: one ordered set of (deadline, transaction, timer), so the earliest
//! deadline is the first entry and cancelling is an exact removal (no stale entries pile up).

use std::collections::BTreeSet;
use std::time::Instant;

/// RFC 3261 §17 timers, plus two of our own (`Trying100`, `Abandon`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum TimerKind {
    /// INVITE client: retransmit the request.
    A,
    /// INVITE client: give up waiting for any response.
    B,
    /// INVITE client: a provisional response came but no final one (Timer C of §16.6, applied to every INVITE
    /// client transaction so none can live forever).
    C,
    /// INVITE client: wait for response retransmissions in Completed.
    D,
    /// INVITE client (RFC 6026): wait for 2xx retransmissions in Accepted.
    M,
    /// Non-INVITE client: retransmit the request.
    E,
    /// Non-INVITE client: give up.
    F,
    /// Non-INVITE client: wait for response retransmissions in Completed.
    K,
    /// INVITE server: retransmit the final non-2xx response.
    G,
    /// INVITE server: give up waiting for the ACK.
    H,
    /// INVITE server: absorb ACK retransmissions in Confirmed.
    I,
    /// Non-INVITE server: absorb request retransmissions in Completed.
    J,
    /// INVITE server (RFC 6026): absorb INVITE retransmissions in Accepted.
    L,
    /// INVITE server: send 100 Trying if the TU has not answered yet.
    Trying100,
    /// Server: the TU never gave a final response; give up so the transaction cannot live forever.
    Abandon,
}

/// The timers one transaction has armed (at most three at a time).
#[derive(Debug, Default)]
pub(crate) struct Armed(Vec<(TimerKind, Instant)>);

#[derive(Debug, Default)]
pub(crate) struct TimerQueue {
    set: BTreeSet<(Instant, u64, TimerKind)>,
}

impl TimerQueue {
    /// Arms `kind` for transaction `id` at `at`, replacing an earlier arming of the same timer.
    pub(crate) fn arm(&mut self, armed: &mut Armed, id: u64, kind: TimerKind, at: Instant) {
        self.cancel(armed, id, kind);
        armed.0.push((kind, at));
        self.set.insert((at, id, kind));
    }

    pub(crate) fn cancel(&mut self, armed: &mut Armed, id: u64, kind: TimerKind) {
        if let Some(pos) = armed.0.iter().position(|(k, _)| *k == kind) {
            let (_, at) = armed.0.swap_remove(pos);
            self.set.remove(&(at, id, kind));
        }
    }

    pub(crate) fn cancel_all(&mut self, armed: &mut Armed, id: u64) {
        for (kind, at) in armed.0.drain(..) {
            self.set.remove(&(at, id, kind));
        }
    }

    /// Removes and returns the earliest timer due at or before `now`. The caller must also forget it in the
    /// transaction's [`Armed`] (see [`TimerQueue::fired`]).
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(u64, TimerKind)> {
        let &(at, id, kind) = self.set.first()?;
        if at > now {
            return None;
        }
        self.set.pop_first();
        Some((id, kind))
    }

    /// Forgets a timer that [`TimerQueue::pop_due`] returned.
    pub(crate) fn fired(armed: &mut Armed, kind: TimerKind) {
        armed.0.retain(|(k, _)| *k != kind);
    }

    pub(crate) fn next(&self) -> Option<Instant> {
        self.set.first().map(|(at, _, _)| *at)
    }

    pub(crate) fn len(&self) -> usize {
        self.set.len()
    }
}
