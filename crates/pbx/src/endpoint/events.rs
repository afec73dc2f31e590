//! What the endpoint asks of the edge: the work that needs I/O (opening relay sockets, running a media
//! application) is an event the edge carries out without the endpoint's lock, then answers with an input
//! ([`Endpoint::media_ready`], [`Endpoint::app_ready`]) — the endpoint itself never blocks on it.

use std::time::Instant;

use super::{Endpoint, Outbound};
use crate::calls::{AppStart, CallRecord, MediaError, MediaId};
use crate::model::SecurityEvent;
use crate::registrar::Change;

/// Most records kept waiting for the store while it is unreachable ([`Endpoint::requeue_records`]).
pub const MAX_REQUEUED_RECORDS: usize = 10_000;

/// One thing for the edge to do, in the order the endpoint decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Open relay ports (a session of two legs) for new call `call`; answer with [`Endpoint::media_ready`].
    AllocateMedia { call: u64 },
    /// Start the media application for `start.call`; answer with [`Endpoint::app_ready`].
    StartApp(AppStart),
    /// A key the caller of application `call` sent by SIP INFO.
    AppDigit { call: u64, digit: char },
    /// The call of application `call` ended: stop it (keeping a message being recorded).
    StopApp { call: u64 },
    /// Tell the caller of queue application `call` its position in the line.
    QueuePosition { call: u64, position: usize },
    /// The target application `call` asked to hand its caller to may not be reached (an attendant's choice).
    AppRefused { call: u64 },
}

/// Something that happened which must outlive the process: the store writer's input. Unlike [`Event`] nothing
/// waits for it, so the writer collects records in batches ([`Endpoint::poll_record`]) instead of being woken for
/// each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A registration was added, refreshed or removed (expired, unregistered, extension disabled).
    Binding(Change),
    /// A security decision of the PBX core (authentication, policy, voicemail PIN).
    Security(SecurityEvent),
    /// A decision of the guard: a ban, a throttle, an IP-list rule that expired.
    Guard(guard::GuardEvent),
    /// A call ended.
    Call(CallRecord),
    /// A caller left a call queue (answered, abandoned, timed out): for the queue statistics.
    QueueCall(crate::office::queues::Left),
    /// An agent logged in or out of a queue (a feature code).
    QueueAgent {
        queue: String,
        agent: String,
        logged_in: bool,
    },
}

impl Endpoint {
    /// The next record for the store, oldest first within each kind (guard decisions first, so a ban is written
    /// even when writing its event fails). Poll until `None` at each store flush.
    pub fn poll_record(&mut self) -> Option<Record> {
        if self.records_out.is_empty() {
            self.records_out.extend(
                self.guard
                    .take_events()
                    .into_iter()
                    .map(Record::Guard)
                    .chain(self.core.take_changes().into_iter().map(Record::Binding))
                    .chain(self.core.take_events().into_iter().map(Record::Security))
                    .chain(self.records.drain(..).map(Record::Call))
                    .chain(std::mem::take(&mut self.queue_records)),
            );
        }
        self.records_out.pop_front()
    }

    /// Puts back security events and registration changes the store could not write, ahead of newer ones (the
    /// core bounds how many it keeps).
    pub fn requeue(&mut self, events: Vec<SecurityEvent>, changes: Vec<Change>) {
        self.core.requeue(events, changes);
    }

    /// Puts back records the store could not write (the database is unreachable: issue 17), ahead of newer ones,
    /// so that a ban or a call record made meanwhile is written when it returns. Bounded: beyond
    /// [`MAX_REQUEUED_RECORDS`] the oldest are dropped and their number returned (for a log line); bans are
    /// still enforced in memory either way.
    pub fn requeue_records(&mut self, records: Vec<Record>) -> usize {
        for r in records.into_iter().rev() {
            self.records_out.push_front(r);
        }
        let excess = self.records_out.len().saturating_sub(MAX_REQUEUED_RECORDS);
        self.records_out.drain(..excess);
        excess
    }

    /// The next thing for the edge to do, if any. Poll until `None` after every input.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Whether [`Endpoint::poll_event`] has something (so the edge knows to wake the task that polls it).
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// The edge's answer to [`Event::AllocateMedia`]: the session it opened (registered with the endpoint's
    /// [`crate::calls::MediaControl`]) or why it could not. The call rings, or its caller gets 503.
    pub fn media_ready(
        &mut self,
        call: u64,
        allocated: Result<MediaId, MediaError>,
        now: Instant,
    ) -> Vec<Outbound> {
        let wall = self.clock.at(now);
        self.calls
            .media_ready(call, allocated, self.media.as_mut(), now, wall);
        let mut out = Vec::new();
        self.drain(now, &mut out);
        out
    }
}
