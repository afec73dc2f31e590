//! Voicemail's audio edge: one task per call answered by a media application. It speaks G.711 RTP with the
//! call's relay (which handles the caller's SRTP, latching and ports), plays prompts and messages paced at 20 ms,
//! records, takes keys from RFC 4733 events (and SIP INFO, which the service forwards), and drives the sans-IO
//! dialogue [`pbx::voicemail::ivr::Ivr`]. What the service must do (hang up, count a wrong PIN, lift PIN
//! protection, light message-waiting lamps) goes back as [`AppEvent`]s.

pub mod files;
pub mod queue_music;
mod session;
pub mod shared_audio;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pbx::calls::AppStart;
use store::Db;
use tokio::sync::mpsc;

use crate::service::AppEvent;

/// What every application task shares.
struct Shared {
    db: Db,
    /// `DATA/voicemail`.
    root: PathBuf,
    /// The address the applications bind to and reach the relay at (loopback when the relay listens on every
    /// address: the audio never leaves the machine).
    ip: IpAddr,
    max_message: Duration,
    events: mpsc::UnboundedSender<AppEvent>,
}

/// Inputs of one application task (voicemail's, a conference caller's).
pub(crate) enum Input {
    Digit(char),
    /// A queue's caller is told its position (`queue_music.rs`).
    Position(usize),
    /// The endpoint refused the target the application asked to hand its caller to.
    Refused,
    Stop,
}

/// Starts and stops application tasks when the endpoint asks (`Event::StartApp`, `AppDigit`, `StopApp`).
pub struct Apps {
    shared: Arc<Shared>,
    running: HashMap<u64, mpsc::UnboundedSender<Input>>,
    /// Conference rooms (their callers are application tasks too).
    conferences: Option<crate::conference::Conferences>,
    /// `DATA/attendant`: attendants' greetings.
    attendant_root: PathBuf,
}

impl Apps {
    /// `relay_bind` is where the media relay's sockets are bound.
    pub fn new(
        db: Db,
        root: PathBuf,
        relay_bind: IpAddr,
        max_message: Duration,
        events: mpsc::UnboundedSender<AppEvent>,
    ) -> Self {
        // DATA/voicemail → DATA/attendant.
        let attendant_root = root
            .parent()
            .map_or_else(|| PathBuf::from("attendant"), crate::attendant::root);
        let ip = match relay_bind {
            IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        Apps {
            shared: Arc::new(Shared {
                db,
                root,
                ip,
                max_message,
                events,
            }),
            attendant_root,
            running: HashMap::new(),
            conferences: None,
        }
    }

    /// Calls to conference rooms join these rooms.
    pub fn with_conferences(mut self, conferences: crate::conference::Conferences) -> Self {
        self.conferences = Some(conferences);
        self
    }
}

impl Apps {
    /// Starts the application for `start.call`; returns the address its audio comes from. Binds a socket and
    /// spawns a task: never under the edge's lock.
    pub fn start(&mut self, start: AppStart) -> Result<SocketAddr, String> {
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|_| "media applications need a tokio runtime".to_string())?;
        let std_socket = std::net::UdpSocket::bind(SocketAddr::new(self.shared.ip, 0))
            .map_err(|e| format!("cannot bind a voicemail media socket: {e}"))?;
        std_socket
            .set_nonblocking(true)
            .map_err(|e| format!("cannot set up the voicemail media socket: {e}"))?;
        let local = std_socket
            .local_addr()
            .map_err(|e| format!("voicemail media socket: {e}"))?;
        let socket = {
            let _guard = handle.enter();
            tokio::net::UdpSocket::from_std(std_socket)
                .map_err(|e| format!("voicemail media socket: {e}"))?
        };
        let (tx, rx) = mpsc::unbounded_channel();
        self.running.retain(|_, t| !t.is_closed());
        self.running.insert(start.call, tx);
        let relay = SocketAddr::new(self.shared.ip, start.relay_port);
        if let pbx::calls::AppKind::Queue { music, .. } = &start.kind {
            let music = music.clone();
            handle.spawn(queue_music::run(
                self.shared.clone(),
                start,
                music,
                socket,
                relay,
                rx,
            ));
            return Ok(local);
        }
        if let pbx::calls::AppKind::Attendant { name } = &start.kind {
            let name = name.clone();
            let attendant = crate::attendant::Context {
                db: self.shared.db.clone(),
                root: self.attendant_root.clone(),
                events: self.shared.events.clone(),
            };
            handle.spawn(crate::attendant::run(
                attendant, start, name, socket, relay, rx,
            ));
            return Ok(local);
        }
        if let pbx::calls::AppKind::Conference { room } = &start.kind {
            let conferences = self
                .conferences
                .clone()
                .ok_or_else(|| "conference rooms are not running".to_string())?;
            let room = room.clone();
            handle.spawn(crate::conference::run_participant(
                conferences,
                start,
                room,
                socket,
                relay,
                rx,
            ));
            return Ok(local);
        }
        handle.spawn(session::run(self.shared.clone(), start, socket, relay, rx));
        Ok(local)
    }

    /// A key the caller sent by SIP INFO.
    pub fn digit(&mut self, call: u64, digit: char) {
        if let Some(tx) = self.running.get(&call) {
            let _ = tx.send(Input::Digit(digit));
        }
    }

    /// A queue's caller moved to `position` in the line.
    pub fn position(&mut self, call: u64, position: usize) {
        if let Some(tx) = self.running.get(&call) {
            let _ = tx.send(Input::Position(position));
        }
    }

    /// The endpoint refused an application's hand-over (an attendant's choice).
    pub fn refused(&mut self, call: u64) {
        if let Some(tx) = self.running.get(&call) {
            let _ = tx.send(Input::Refused);
        }
    }

    /// The call ended.
    pub fn stop(&mut self, call: u64) {
        if let Some(tx) = self.running.remove(&call) {
            let _ = tx.send(Input::Stop);
        }
    }
}
