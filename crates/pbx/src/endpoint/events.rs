//! What the endpoint asks of the edge: the work that needs I/O (opening relay sockets, running a media
//! application) is an event the edge carries out without the endpoint's lock, then answers with an input
//! ([`Endpoint::media_ready`], [`Endpoint::app_ready`]) — the endpoint itself never blocks on it.

use std::time::Instant;

use super::{Endpoint, Outbound};
use crate::calls::{AppStart, MediaError, MediaId};

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
}

impl Endpoint {
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
