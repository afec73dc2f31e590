//! The call layer's view of the media relay ([`pbx::calls::MediaControl`]) over the socket relay.
//!
//! Two halves share the open sessions: the endpoint's copy (inside the service, under the edge's lock) only
//! points, keys, measures and releases sessions — no sockets are bound there — while the edge's copy opens them
//! ([`RelayControl::open`], binding four sockets and starting a task) when the endpoint asks with
//! `Event::AllocateMedia`, outside the lock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use media::Remote;
use pbx::calls::{Answered, HoldMusic, Leg, MediaControl, MediaError, MediaId};

use crate::media::{MediaRelay, MediaSessionHandle};
use crate::music::MusicLibrary;
use crate::recording::{Pending, Recordings};

#[derive(Clone)]
pub struct RelayControl {
    relay: MediaRelay,
    sessions: Arc<Mutex<Sessions>>,
    music: MusicLibrary,
    recordings: Recordings,
}

#[derive(Default)]
struct Sessions {
    open: HashMap<u64, MediaSessionHandle>,
    /// Sessions being recorded: what their recording's row will say.
    recorded: HashMap<u64, Pending>,
    next: u64,
}

impl RelayControl {
    pub fn new(relay: MediaRelay) -> Self {
        RelayControl {
            relay,
            sessions: Arc::default(),
            music: MusicLibrary::default(),
            recordings: Recordings::default(),
        }
    }

    /// Calls of recorded extensions are recorded into `recordings` (none without it).
    pub fn with_recordings(mut self, recordings: Recordings) -> Self {
        self.recordings = recordings;
        self
    }

    /// Music on hold from `music` (the default melody only, without it).
    pub fn with_music(mut self, music: MusicLibrary) -> Self {
        self.music = music;
        self
    }

    /// The relay itself (its port pool, for metrics and status).
    pub fn relay(&self) -> &MediaRelay {
        &self.relay
    }

    fn sessions(&self) -> MutexGuard<'_, Sessions> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens a session (ports for both legs, their sockets, the relay task). Does I/O: never under the edge's
    /// lock.
    pub fn open(&self) -> Result<MediaId, MediaError> {
        let handle = self.relay.allocate().map_err(|e| match e {
            crate::media::MediaError::Pool(_) => MediaError::Exhausted,
            other => MediaError::Other(other.to_string()),
        })?;
        let mut sessions = self.sessions();
        sessions.next += 1;
        let id = sessions.next;
        sessions.open.insert(id, handle);
        Ok(MediaId(id))
    }

    /// Sessions open now (each holds two port pairs).
    pub fn open_sessions(&self) -> usize {
        self.sessions().open.len()
    }
}

fn leg(l: Leg) -> media::Leg {
    match l {
        Leg::A => media::Leg::A,
        Leg::B => media::Leg::B,
    }
}

impl MediaControl for RelayControl {
    fn local_port(&self, id: MediaId, l: Leg) -> Option<u16> {
        self.sessions().open.get(&id.0).map(|h| h.ports(leg(l)))
    }

    fn advertise_ip(&self) -> IpAddr {
        self.relay.advertise_ip()
    }

    fn set_remote(&mut self, id: MediaId, l: Leg, rtp: Remote, rtcp: Remote) {
        if let Some(h) = self.sessions().open.get(&id.0) {
            h.set_remote(leg(l), rtp, rtcp);
        }
    }

    fn idle_for(&self, id: MediaId, _now: Instant) -> Option<Duration> {
        self.sessions()
            .open
            .get(&id.0)
            .map(MediaSessionHandle::idle_for)
    }

    fn set_crypto(&mut self, id: MediaId, l: Leg, crypto: Option<media::LegCrypto>) {
        if let Some(h) = self.sessions().open.get(&id.0) {
            h.set_crypto(leg(l), crypto);
        }
    }

    fn set_music(&mut self, id: MediaId, l: Leg, music: Option<HoldMusic>) {
        let player = music.and_then(|m| {
            let law = media::g711::Law::from_payload_type(m.payload_type)?;
            let samples = self.music.resolve(m.holder.as_deref())?;
            let music = media::moh::Music {
                samples,
                law,
                payload_type: m.payload_type,
            };
            Some(media::moh::MusicPlayer::new(
                music,
                rand::random(),
                rand::random(),
                rand::random(),
                Instant::now(),
            ))
        });
        if let Some(h) = self.sessions().open.get(&id.0) {
            h.set_music(leg(l), player);
        }
    }

    fn answered(&mut self, id: MediaId, call: Answered) {
        let Some((recorder, notices)) = self.recordings.plan(&call) else {
            return;
        };
        let mut sessions = self.sessions();
        if let Some(h) = sessions.open.get(&id.0) {
            tracing::info!(caller = %call.caller, callee = %call.callee, always = recorder.is_recording(), "call recording armed");
            h.set_recording(recorder, notices);
            let started_at = crate::recording::unix_ms();
            sessions.recorded.insert(id.0, Pending { call, started_at });
        }
    }

    fn release(&mut self, id: MediaId) {
        // Dropping the handle stops its task; the sockets close and the ports go back to the pool. Taken out of
        // the table first so the drop does not happen under its lock.
        let (handle, pending) = {
            let mut sessions = self.sessions();
            (sessions.open.remove(&id.0), sessions.recorded.remove(&id.0))
        };
        if let (Some(h), Some(pending)) = (&handle, pending)
            && let Some(recorder) = h.take_recording()
        {
            self.recordings.save(pending, recorder);
        }
        drop(handle);
    }
}
