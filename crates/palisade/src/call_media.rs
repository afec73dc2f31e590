//! The call layer's view of the media relay ([`pbx::calls::MediaControl`]) over the socket relay.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use media::Remote;
use pbx::calls::{Leg, MediaControl, MediaError, MediaId};

use crate::media::{MediaRelay, MediaSessionHandle};

pub struct RelayControl {
    relay: MediaRelay,
    sessions: HashMap<u64, MediaSessionHandle>,
    next: u64,
}

impl RelayControl {
    pub fn new(relay: MediaRelay) -> Self {
        RelayControl {
            relay,
            sessions: HashMap::new(),
            next: 0,
        }
    }

    /// Sessions open now (each holds two port pairs).
    pub fn open_sessions(&self) -> usize {
        self.sessions.len()
    }
}

fn leg(l: Leg) -> media::Leg {
    match l {
        Leg::A => media::Leg::A,
        Leg::B => media::Leg::B,
    }
}

impl MediaControl for RelayControl {
    fn allocate(&mut self) -> Result<MediaId, MediaError> {
        let handle = self.relay.allocate().map_err(|e| match e {
            crate::media::MediaError::Pool(_) => MediaError::Exhausted,
            other => MediaError::Other(other.to_string()),
        })?;
        self.next += 1;
        self.sessions.insert(self.next, handle);
        Ok(MediaId(self.next))
    }

    fn local_port(&self, id: MediaId, l: Leg) -> Option<u16> {
        self.sessions.get(&id.0).map(|h| h.ports(leg(l)))
    }

    fn advertise_ip(&self) -> IpAddr {
        self.relay.advertise_ip()
    }

    fn set_remote(&mut self, id: MediaId, l: Leg, rtp: Remote, rtcp: Remote) {
        if let Some(h) = self.sessions.get(&id.0) {
            h.set_remote(leg(l), rtp, rtcp);
        }
    }

    fn idle_for(&self, id: MediaId, _now: Instant) -> Option<Duration> {
        self.sessions.get(&id.0).map(MediaSessionHandle::idle_for)
    }

    fn set_crypto(&mut self, id: MediaId, l: Leg, crypto: Option<media::LegCrypto>) {
        if let Some(h) = self.sessions.get(&id.0) {
            h.set_crypto(leg(l), crypto);
        }
    }

    fn release(&mut self, id: MediaId) {
        // Dropping the handle stops its task; the sockets close and the ports go back to the pool.
        self.sessions.remove(&id.0);
    }
}
