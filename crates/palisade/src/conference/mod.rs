//! Conference rooms' audio edge. Each caller is a media application task (like voicemail's) on a loopback socket
//! toward its call's relay, which keeps that caller's SRTP, latching and ports. At the door it runs the PIN
//! dialogue ([`pbx::office::conference::Door`]); once in, its decoded audio goes into the room's jitter queues and
//! a room task mixes every 20 ms ([`media::mixer`]): each participant hears everyone else.
//!
//! [`run`] keeps the endpoint's list of rooms in step with the store, applies the CLI's mute/kick requests and
//! writes who is in each room (`palisade conference participants`).

mod participant;
mod room;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use store::Db;
use store::conferences::ConferenceAction;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::service::AppEvent;
use crate::transport::Edge;

pub(crate) use participant::run as run_participant;
use room::Room;

/// Every room with someone in it.
#[derive(Clone)]
pub struct Conferences {
    inner: Arc<Shared>,
}

struct Shared {
    db: Db,
    events: mpsc::UnboundedSender<AppEvent>,
    rooms: Mutex<HashMap<String, Arc<Mutex<Room>>>>,
    /// Rooms whose participant list changed since it was last written.
    dirty: Mutex<HashSet<String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Why a caller could not join.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum JoinError {
    Full,
}

/// What a participant brings into the room.
pub(crate) struct Joining {
    pub call: u64,
    pub caller: String,
    pub law: media::g711::Law,
    pub payload_type: u8,
    pub socket: Arc<UdpSocket>,
    pub relay: SocketAddr,
    pub max: usize,
}

impl Conferences {
    pub fn new(db: Db, events: mpsc::UnboundedSender<AppEvent>) -> Self {
        Conferences {
            inner: Arc::new(Shared {
                db,
                events,
                rooms: Mutex::new(HashMap::new()),
                dirty: Mutex::new(HashSet::new()),
            }),
        }
    }

    pub(crate) fn db(&self) -> &Db {
        &self.inner.db
    }

    pub(crate) fn events(&self) -> &mpsc::UnboundedSender<AppEvent> {
        &self.inner.events
    }

    fn mark(&self, room: &str) {
        lock(&self.inner.dirty).insert(room.to_string());
    }

    /// Adds a caller to `room`'s mix (starting the room's mixing task for the first one); returns its position.
    pub(crate) fn join(&self, room: &str, joining: Joining) -> Result<i64, JoinError> {
        let mut rooms = lock(&self.inner.rooms);
        let entry = rooms.entry(room.to_string()).or_insert_with(|| {
            let state = Arc::new(Mutex::new(Room::default()));
            tokio::spawn(room::mix_loop(
                self.clone(),
                room.to_string(),
                state.clone(),
            ));
            state
        });
        let position = lock(entry).add(joining)?;
        drop(rooms);
        self.mark(room);
        Ok(position)
    }

    /// Feeds audio a participant sent.
    pub(crate) fn speak(&self, room: &str, call: u64, samples: &[i16]) {
        if let Some(state) = lock(&self.inner.rooms).get(room) {
            lock(state).speak(call, samples);
        }
    }

    /// A participant left (hung up, or was kicked).
    pub(crate) fn leave(&self, room: &str, call: u64) {
        if let Some(state) = lock(&self.inner.rooms).get(room)
            && lock(state).remove(call)
        {
            self.mark(room);
        }
    }

    /// A room's mixing task found it empty: forget it (unless someone joined meanwhile).
    fn retire(&self, room: &str, state: &Arc<Mutex<Room>>) -> bool {
        let mut rooms = lock(&self.inner.rooms);
        if lock(state).is_empty() {
            rooms.remove(room);
            true
        } else {
            false
        }
    }

    /// Applies an administrator's request.
    fn apply(&self, room: &str, position: i64, action: ConferenceAction) {
        let Some(state) = lock(&self.inner.rooms).get(room).cloned() else {
            return;
        };
        let kicked = {
            let mut room_state = lock(&state);
            match action {
                ConferenceAction::Mute => room_state.set_muted(position, true),
                ConferenceAction::Unmute => room_state.set_muted(position, false),
                ConferenceAction::Kick => room_state.take(position),
            }
        };
        self.mark(room);
        if let Some(call) = kicked {
            tracing::info!(room, position, call, "conference participant kicked");
            let _ = self.inner.events.send(AppEvent::Hangup { call });
        }
    }

    async fn write_dirty(&self) {
        let dirty: Vec<String> = lock(&self.inner.dirty).drain().collect();
        for room in dirty {
            let rows = lock(&self.inner.rooms)
                .get(&room)
                .map(|s| lock(s).rows(&room))
                .unwrap_or_default();
            if let Err(e) = self
                .inner
                .db
                .set_conference_participants(&room, &rows)
                .await
            {
                tracing::warn!(room, error = %e, "cannot write the conference participants; will retry");
                self.mark(&room);
            }
        }
    }
}

/// The numbers the endpoint routes to Palisade's own applications (conference rooms, attendants and the DIDs
/// they answer), from the store.
pub async fn office_numbers(db: &Db) -> anyhow::Result<pbx::office::OfficeNumbers> {
    let rooms = db.list_conferences().await?;
    let attendants = db
        .list_attendants()
        .await?
        .into_iter()
        .map(|a| {
            let entry = pbx::office::AttendantEntry {
                name: a.name.clone(),
                number: a.number,
                after_hours: a.after_hours,
            };
            (a.name, entry)
        })
        .collect();
    let did_attendants = db
        .list_did_attendants()
        .await?
        .into_iter()
        .map(|d| (d.number, (d.trunk, d.attendant)))
        .collect();
    // DIDs leading to a ring group or queue; a row whose target no longer parses is skipped (logged).
    let did_targets = db
        .list_did_targets()
        .await?
        .into_iter()
        .filter_map(|d| match d.target.parse::<pbx::office::attendant::Target>() {
            Ok(t) => Some((d.number, (d.trunk, t))),
            Err(e) => {
                tracing::warn!(did = %d.number, error = %e, "DID target not understood; skipped");
                None
            }
        })
        .collect();
    Ok(pbx::office::OfficeNumbers {
        attendants,
        did_attendants,
        did_targets,
        conferences: rooms
            .into_iter()
            .map(|r| {
                let room = pbx::office::Room {
                    number: r.number.clone(),
                    has_pin: r.pin_hash.is_some(),
                    max_participants: u32::try_from(r.max_participants).unwrap_or(10),
                };
                (r.number, room)
            })
            .collect(),
    })
}

/// Keeps the endpoint's rooms in step with the store (each configuration change), applies mute/kick requests
/// and writes the participant lists, every half second.
pub async fn run(db: Db, edge: Arc<Edge>, conferences: Conferences) {
    if let Err(e) = db.clear_conference_participants().await {
        tracing::warn!(error = %e, "cannot clear the conference participants of the last run");
    }
    let mut seen = None;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Ok(version) = db.current_version().await
            && seen != Some(version)
        {
            match office_numbers(&db).await {
                Ok(numbers) => {
                    edge.with_service(|s| s.set_office(numbers));
                    seen = Some(version);
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot load the conference rooms; will retry")
                }
            }
        }
        match db.take_conference_actions().await {
            Ok(actions) => {
                for (room, position, action) in actions {
                    conferences.apply(&room, position, action);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the conference requests; will retry"),
        }
        conferences.write_dirty().await;
    }
}

/// The address application sockets bind to (loopback when the relay listens on every address).
pub fn app_ip(relay_bind: IpAddr) -> IpAddr {
    match relay_bind {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    }
}
