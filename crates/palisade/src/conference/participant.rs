//! One caller of a conference room: the PIN dialogue at the door (prompts paced at 20 ms, keys from RFC 4733
//! and SIP INFO, the PIN checked against the room's hash and the stored lockout), then its audio into the mix.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use media::dtmf::DtmfReceiver;
use media::g711::Law;
use media::packetizer::{FRAME_SAMPLES, RtpSender};
use media::rtp::RtpPacket;
use pbx::calls::AppStart;
use pbx::core::ConferencePinOutcome;
use pbx::office::conference::{Action, Door, Event};
use pbx::voicemail::lockout::WrongPin;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::{Conferences, JoinError, Joining};
use crate::service::AppEvent;
use crate::voicemail::Input;

/// A hash no PIN matches, checked when a room has none stored (same cost either way).
const NO_PIN: &str = "$argon2id$v=19$m=1024,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

struct Participant {
    conferences: Conferences,
    start: AppStart,
    room: String,
    law: Law,
    socket: Arc<UdpSocket>,
    relay: SocketAddr,
    sender: RtpSender,
    dtmf: DtmfReceiver,
    playing: Option<VecDeque<i16>>,
    max: usize,
    joined: bool,
}

pub(crate) async fn run(
    conferences: Conferences,
    start: AppStart,
    room: String,
    socket: UdpSocket,
    relay: SocketAddr,
    mut inputs: mpsc::UnboundedReceiver<Input>,
) {
    let law = Law::from_payload_type(start.codec.payload_type).unwrap_or(Law::Mu);
    let row = conferences.db().conference(&room).await;
    let (has_pin, max) = match &row {
        Ok(r) => (
            r.pin_hash.is_some(),
            usize::try_from(r.max_participants).unwrap_or(10),
        ),
        Err(e) => {
            tracing::error!(room, error = %e, "conference room not readable; caller hung up");
            let _ = conferences
                .events()
                .send(AppEvent::Hangup { call: start.call });
            return;
        }
    };
    let mut p = Participant {
        sender: RtpSender::new(
            start.codec.payload_type,
            rand::random(),
            rand::random(),
            rand::random(),
        ),
        conferences,
        room,
        law,
        socket: Arc::new(socket),
        relay,
        dtmf: DtmfReceiver::new(),
        playing: None,
        max,
        joined: false,
        start,
    };
    let mut door = Door::new(has_pin);
    let mut actions = door.handle(Event::Started, Instant::now());
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut buf = vec![0u8; 2048];
    loop {
        while !actions.is_empty() {
            for action in std::mem::take(&mut actions) {
                if let Some(event) = p.act(action).await {
                    actions.extend(door.handle(event, Instant::now()));
                }
            }
        }
        if door.is_done() {
            break;
        }
        tokio::select! {
            // At the door Palisade speaks (prompts or silence, keeping the relay's media timer and NATs alive);
            // in the room the mixing task does.
            _ = tick.tick(), if !p.joined => {
                if p.send_frame().await {
                    actions.extend(door.handle(Event::PlaybackFinished, Instant::now()));
                }
                if door.deadline().is_some_and(|d| Instant::now() >= d) {
                    actions.extend(door.handle(Event::Tick, Instant::now()));
                }
            }
            received = p.socket.recv_from(&mut buf) => {
                if let Ok((n, from)) = received
                    && from == p.relay
                    && let Some(digit) = p.on_rtp(&buf[..n])
                {
                    actions.extend(door.handle(Event::Digit(digit), Instant::now()));
                }
            }
            input = inputs.recv() => match input {
                Some(Input::Digit(d)) => actions.extend(door.handle(Event::Digit(d), Instant::now())),
                Some(Input::Refused) | Some(Input::Position(_)) => {}
                Some(Input::Stop) | None => break,
            },
        }
    }
    if p.joined {
        p.conferences.leave(&p.room, p.start.call);
    }
    if door.is_done() {
        let _ = p
            .conferences
            .events()
            .send(AppEvent::Hangup { call: p.start.call });
    }
}

impl Participant {
    async fn act(&mut self, action: Action) -> Option<Event> {
        match action {
            Action::Play(prompts) => {
                self.playing = Some(prompts.iter().flat_map(|p| p.samples()).collect());
                None
            }
            Action::CheckPin(pin) => Some(self.check_pin(pin).await),
            Action::Join => {
                let joining = Joining {
                    call: self.start.call,
                    caller: self.start.caller.clone(),
                    law: self.law,
                    payload_type: self.start.codec.payload_type,
                    socket: self.socket.clone(),
                    relay: self.relay,
                    max: self.max,
                };
                match self.conferences.join(&self.room, joining) {
                    Ok(position) => {
                        tracing::info!(room = %self.room, position, caller = %self.start.caller, "joined the conference");
                        self.joined = true;
                        None
                    }
                    Err(JoinError::Full) => Some(Event::RoomFull),
                }
            }
            Action::PinFailed => None,
            Action::LockedOut => {
                self.pin_event(ConferencePinOutcome::Wrong { call_ended: true });
                None
            }
            Action::Hangup => None,
        }
    }

    fn pin_event(&self, outcome: ConferencePinOutcome) {
        let _ = self.conferences.events().send(AppEvent::ConferencePin {
            source: self.start.source,
            transport: self.start.transport,
            room: self.room.clone(),
            outcome,
        });
    }

    /// The room's lockout first (a locked room checks no PIN, the right one included), then the hash; wrong
    /// PINs are counted in the store across calls, with the voicemail PIN lockout's settings.
    async fn check_pin(&self, pin: String) -> Event {
        let db = self.conferences.db();
        let now = unix_ms();
        let state = db
            .conference_lock_state(&self.room)
            .await
            .unwrap_or_else(|e| {
                tracing::error!(room = %self.room, error = %e, "cannot read the conference lockout");
                pbx::voicemail::lockout::PinLockState {
                    locked_until: i64::MAX,
                    ..Default::default()
                }
            });
        if let Some(until) = state.locked(now) {
            self.pin_event(ConferencePinOutcome::Refused { until });
            return Event::Locked {
                after_wrong_pin: false,
            };
        }
        let hash = db
            .conference(&self.room)
            .await
            .ok()
            .and_then(|r| r.pin_hash)
            .unwrap_or_else(|| NO_PIN.to_string());
        let matches = tokio::task::spawn_blocking(move || pbx::voicemail::pin::verify(&pin, &hash))
            .await
            .unwrap_or(false);
        if matches {
            if state != Default::default() {
                let _ = db.clear_conference_lockout(&self.room).await;
            }
            return Event::PinChecked(true);
        }
        let settings = match db.policy_settings().await {
            Ok(p) => p.pin_lockout(),
            Err(_) => Default::default(),
        };
        match db
            .record_wrong_conference_pin(&self.room, settings, now)
            .await
        {
            Ok(WrongPin::LockedOut { until, lockouts }) => {
                self.pin_event(ConferencePinOutcome::Wrong { call_ended: false });
                self.pin_event(ConferencePinOutcome::LockedNow { until, lockouts });
                Event::Locked {
                    after_wrong_pin: true,
                }
            }
            Ok(WrongPin::Counted { .. }) | Err(_) => {
                self.pin_event(ConferencePinOutcome::Wrong { call_ended: false });
                Event::PinChecked(false)
            }
        }
    }

    /// The next 20 ms at the door; true when a playback just ran out.
    async fn send_frame(&mut self) -> bool {
        let mut frame = [0i16; FRAME_SAMPLES];
        let mut finished = false;
        if let Some(queue) = &mut self.playing {
            for s in frame.iter_mut() {
                match queue.pop_front() {
                    Some(v) => *s = v,
                    None => break,
                }
            }
            if queue.is_empty() {
                self.playing = None;
                finished = true;
            }
        }
        let payload = self.law.encode_all(&frame);
        let packet = self.sender.packet(&payload, FRAME_SAMPLES as u32, false);
        let _ = self.socket.send_to(&packet, self.relay).await;
        finished
    }

    /// Audio into the room once joined; keys at the door.
    fn on_rtp(&mut self, datagram: &[u8]) -> Option<char> {
        let packet = RtpPacket::parse(datagram).ok()?;
        let pt = packet.payload_type();
        if Some(pt) == self.start.codec.dtmf_payload_type {
            let digit = self.dtmf.on_packet(packet.timestamp(), packet.payload());
            return digit.filter(|_| !self.joined);
        }
        if self.joined && pt == self.start.codec.payload_type {
            let samples = self.law.decode_all(packet.payload());
            self.conferences
                .speak(&self.room, self.start.call, &samples);
        }
        None
    }
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
