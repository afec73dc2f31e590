//! One voicemail call: RTP in and out every 20 ms, the dialogue, and the store.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use media::dtmf::DtmfReceiver;
use media::g711::Law;
use media::packetizer::{FRAME_SAMPLES, RtpSender};
use media::rtp::RtpPacket;
use pbx::calls::{AppKind, AppStart};
use pbx::voicemail::ivr::{Action, Clip, Event, Ivr, MessageRef, Mode, RecordingKind};
use pbx::voicemail::lockout::WrongPin;
use store::VoicemailNew;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::{Input, Shared, shared_audio};
use crate::service::AppEvent;

/// Messages shorter than this are a hang-up at the beep, not a message.
const MIN_MESSAGE: Duration = Duration::from_millis(1000);
/// The tone before recording.
const BEEP_HZ: f32 = 1000.0;
const BEEP_MS: u32 = 400;

/// Whose mailbox the dialogue works on.
fn mailbox_of(start: &AppStart) -> String {
    match &start.kind {
        AppKind::Deposit { mailbox } | AppKind::Access { mailbox } => mailbox.clone(),
        // Not voicemail's (Apps::start hands queues, conferences and attendants to their own tasks); the caller's
        // own box, harmlessly.
        AppKind::Unlock { .. }
        | AppKind::Queue { .. }
        | AppKind::Conference { .. }
        | AppKind::Attendant { .. } => start.caller.clone(),
    }
}

struct Session {
    shared: Arc<Shared>,
    start: AppStart,
    mailbox: String,
    law: Law,
    socket: UdpSocket,
    relay: SocketAddr,
    sender: RtpSender,
    dtmf: DtmfReceiver,
    playing: Option<VecDeque<i16>>,
    recording: Option<(RecordingKind, Vec<i16>, usize)>,
    greeting_file: Option<String>,
}

pub(super) async fn run(
    shared: Arc<Shared>,
    start: AppStart,
    socket: UdpSocket,
    relay: SocketAddr,
    mut inputs: mpsc::UnboundedReceiver<Input>,
) {
    let law = Law::from_payload_type(start.codec.payload_type).unwrap_or(Law::Mu);
    let mailbox = mailbox_of(&start);
    let mut session = Session {
        sender: RtpSender::new(
            start.codec.payload_type,
            rand::random(),
            rand::random(),
            rand::random(),
        ),
        shared,
        mailbox,
        law,
        socket,
        relay,
        dtmf: DtmfReceiver::new(),
        playing: None,
        recording: None,
        greeting_file: None,
        start,
    };
    let mode = session.mode().await;
    tracing::debug!(
        call = session.start.call,
        ?mode,
        "voicemail session started"
    );
    let mut ivr = Ivr::new(mode);
    let mut actions = ivr.handle(Event::Started, Instant::now());
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    // Late ticks are caught up, so prompts keep real time (the phone's jitter buffer absorbs a burst).
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut buf = vec![0u8; 2048];
    loop {
        // Everything the dialogue asked for is done before the next input is looked at: a hang-up must not
        // overtake a PIN result (a wrong PIN still counts, a right one still unlocks).
        while !actions.is_empty() {
            for action in std::mem::take(&mut actions) {
                if let Some(event) = session.act(action).await {
                    actions.extend(ivr.handle(event, Instant::now()));
                }
            }
        }
        if ivr.is_done() && session.playing.is_none() {
            break;
        }
        tokio::select! {
            _ = tick.tick() => {
                if session.send_frame().await {
                    actions.extend(ivr.handle(Event::PlaybackFinished, Instant::now()));
                }
                if ivr.deadline().is_some_and(|d| Instant::now() >= d) {
                    actions.extend(ivr.handle(Event::Tick, Instant::now()));
                }
            }
            received = session.socket.recv_from(&mut buf) => {
                if let Ok((n, from)) = received
                    && from == session.relay
                {
                    for event in session.on_rtp(&buf[..n]) {
                        actions.extend(ivr.handle(event, Instant::now()));
                    }
                }
            }
            input = inputs.recv() => match input {
                Some(Input::Digit(d)) => actions.extend(ivr.handle(Event::Digit(d), Instant::now())),
                Some(Input::Position(_)) | Some(Input::Refused) => {}
                // The caller hung up (or the call was ended): keep a message being recorded.
                Some(Input::Stop) | None => {
                    if let Some((RecordingKind::Message, samples, _)) = session.recording.take() {
                        session.save_message(samples).await;
                    }
                    return;
                }
            },
        }
    }
    let _ = session.shared.events.send(AppEvent::Hangup {
        call: session.start.call,
    });
}

impl Session {
    /// The dialogue's mode, with what it needs from the store.
    async fn mode(&mut self) -> Mode {
        let db = &self.shared.db;
        match &self.start.kind {
            AppKind::Deposit { .. } => {
                let stored = db
                    .mailbox_counts(&self.mailbox)
                    .await
                    .map_or(0, |c| i64::from(c.total()));
                if stored >= store::voicemail::MAX_MESSAGES {
                    tracing::warn!(mailbox = %self.mailbox, stored, "mailbox full; caller told so");
                    return Mode::Full;
                }
                self.greeting_file = db
                    .mailbox(&self.mailbox)
                    .await
                    .ok()
                    .flatten()
                    .and_then(|m| m.greeting);
                Mode::Deposit {
                    own_greeting: self.greeting_file.is_some(),
                    max_message: self.shared.max_message,
                }
            }
            AppKind::Access { .. } => {
                let messages = db
                    .list_voicemail_messages(&self.mailbox)
                    .await
                    .unwrap_or_else(|e| {
                        tracing::error!(mailbox = %self.mailbox, error = %e, "cannot list voicemail messages");
                        Vec::new()
                    })
                    .into_iter()
                    .map(|m| MessageRef {
                        id: m.id,
                        new: m.is_new,
                    })
                    .collect();
                Mode::Access { messages }
            }
            AppKind::Unlock { pin } => Mode::Unlock {
                pin: pin.clone().filter(|p| !p.is_empty()),
            },
            // Queues, conferences and attendants run their own applications; never started here. Ask for a PIN
            // that unlocks nothing rather than panic.
            AppKind::Queue { .. } | AppKind::Conference { .. } | AppKind::Attendant { .. } => {
                Mode::Unlock { pin: None }
            }
        }
    }

    /// Carries out one action; some produce an event for the dialogue at once.
    async fn act(&mut self, action: Action) -> Option<Event> {
        match action {
            Action::Play(clips) => {
                let mut audio = VecDeque::new();
                for clip in clips {
                    audio.extend(self.clip_samples(clip).await);
                }
                self.playing = Some(audio);
                None
            }
            Action::Record { kind, max } => {
                let max_samples = usize::try_from(max.as_millis() * 8).unwrap_or(usize::MAX);
                self.recording = Some((kind, Vec::new(), max_samples));
                None
            }
            Action::FinishRecording { kind, keep } => {
                let samples = self.recording.take().map(|(_, s, _)| s).unwrap_or_default();
                if keep {
                    match kind {
                        RecordingKind::Message => self.save_message(samples).await,
                        RecordingKind::Greeting => self.save_greeting(samples).await,
                    }
                }
                None
            }
            Action::CheckPin(pin) => {
                let event = self.check_pin(pin).await;
                tracing::debug!(call = self.start.call, ?event, "voicemail PIN checked");
                Some(event)
            }
            Action::PinFailed => {
                let _ = self.shared.events.send(AppEvent::PinFailed {
                    source: self.start.source,
                    transport: self.start.transport,
                    mailbox: self.mailbox.clone(),
                    locked_out: false,
                });
                None
            }
            Action::LockedOut => {
                let _ = self.shared.events.send(AppEvent::PinFailed {
                    source: self.start.source,
                    transport: self.start.transport,
                    mailbox: self.mailbox.clone(),
                    locked_out: true,
                });
                None
            }
            Action::MarkRead(id) => {
                if let Err(e) = self.shared.db.mark_voicemail_read(&self.mailbox, id).await {
                    tracing::error!(mailbox = %self.mailbox, id, error = %e, "cannot mark a message read");
                }
                self.mailbox_changed().await;
                None
            }
            Action::Delete(id) => {
                match self
                    .shared
                    .db
                    .delete_voicemail_message(&self.mailbox, id)
                    .await
                {
                    Ok(file) => {
                        shared_audio::remove(&self.shared.db, &self.shared.root, &file).await
                    }
                    Err(e) => {
                        tracing::error!(mailbox = %self.mailbox, id, error = %e, "cannot delete a message")
                    }
                }
                self.mailbox_changed().await;
                None
            }
            Action::Unlock => {
                let _ = self.shared.events.send(AppEvent::Unlocked {
                    number: self.start.caller.clone(),
                    source: self.start.source,
                    transport: self.start.transport,
                });
                None
            }
            Action::Hangup => None,
        }
    }

    async fn clip_samples(&self, clip: Clip) -> Vec<i16> {
        match clip {
            Clip::Prompt(p) => p.samples(),
            Clip::Beep => {
                let mut s = media::tone::sine(BEEP_HZ, BEEP_MS, 8000);
                s.extend(media::tone::silence(100));
                s
            }
            Clip::Message(id) => match self.shared.db.voicemail_message(&self.mailbox, id).await {
                Ok(m) => self.read_file(&m.file).await,
                Err(e) => {
                    tracing::error!(mailbox = %self.mailbox, id, error = %e, "cannot find a message");
                    Vec::new()
                }
            },
            Clip::Greeting => match &self.greeting_file {
                Some(file) => self.read_file(file).await,
                None => media::prompts::Prompt::GreetingDefault.samples(),
            },
        }
    }

    async fn read_file(&self, name: &str) -> Vec<i16> {
        match shared_audio::load(&self.shared.db, &self.shared.root, name).await {
            Ok(samples) => samples,
            Err(e) => {
                tracing::error!(error = %e, "cannot read a voicemail file");
                Vec::new()
            }
        }
    }

    /// Sends the next 20 ms of audio (silence when nothing plays, which keeps the relay's media timer and NATs
    /// alive). True when a playback just ran out.
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
        if let Err(e) = self.socket.send_to(&packet, self.relay).await {
            tracing::debug!(error = %e, "voicemail RTP not sent");
        }
        finished
    }

    /// Audio to record and keys from the caller.
    fn on_rtp(&mut self, datagram: &[u8]) -> Vec<Event> {
        let Ok(packet) = RtpPacket::parse(datagram) else {
            return Vec::new();
        };
        let pt = packet.payload_type();
        let mut events = Vec::new();
        if Some(pt) == self.start.codec.dtmf_payload_type {
            if let Some(d) = self.dtmf.on_packet(packet.timestamp(), packet.payload()) {
                events.push(Event::Digit(d));
            }
        } else if pt == self.start.codec.payload_type
            && let Some((_, samples, max)) = &mut self.recording
        {
            samples.extend(self.law.decode_all(packet.payload()));
            if samples.len() >= *max {
                samples.truncate(*max);
                events.push(Event::RecordingFull);
            }
        }
        events
    }

    /// Checks a PIN against the mailbox's lockout first (a locked mailbox checks no PIN, the right one
    /// included), then its hash; the outcome is counted in the store, across calls (see
    /// [`pbx::voicemail::lockout`]).
    async fn check_pin(&self, pin: String) -> Event {
        let db = &self.shared.db;
        let now = unix_ms();
        let state = db.pin_lock_state(&self.mailbox).await.unwrap_or_else(|e| {
            // Fail closed: without the count, treat the mailbox as locked for this try.
            tracing::error!(mailbox = %self.mailbox, error = %e, "cannot read the PIN lockout");
            pbx::voicemail::lockout::PinLockState {
                locked_until: i64::MAX,
                ..Default::default()
            }
        });
        if let Some(until) = state.locked(now) {
            self.lockout_event(until, state.lockouts, false);
            return Event::MailboxLocked {
                after_wrong_pin: false,
            };
        }
        if self.pin_matches(pin).await {
            if state != Default::default()
                && let Err(e) = db.clear_pin_lockout(&self.mailbox).await
            {
                tracing::error!(mailbox = %self.mailbox, error = %e, "cannot reset the PIN failure count");
            }
            return Event::PinChecked(true);
        }
        let settings = match db.policy_settings().await {
            Ok(p) => p.pin_lockout(),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the PIN lockout settings; using the defaults");
                Default::default()
            }
        };
        match db.record_wrong_pin(&self.mailbox, settings, now).await {
            Ok(WrongPin::Counted { .. }) => Event::PinChecked(false),
            Ok(WrongPin::LockedOut { until, lockouts }) => {
                self.lockout_event(until, lockouts, true);
                Event::MailboxLocked {
                    after_wrong_pin: true,
                }
            }
            Err(e) => {
                tracing::error!(mailbox = %self.mailbox, error = %e, "cannot count a wrong PIN");
                Event::PinChecked(false)
            }
        }
    }

    /// Reports a lockout (`new`: this wrong PIN caused it) or a PIN entry refused because of one.
    fn lockout_event(&self, until: i64, lockouts: u32, new: bool) {
        let _ = self.shared.events.send(AppEvent::PinLockout {
            source: self.start.source,
            transport: self.start.transport,
            mailbox: self.mailbox.clone(),
            until,
            lockouts,
            new,
        });
    }

    async fn pin_matches(&self, pin: String) -> bool {
        let hash = match self.shared.db.mailbox(&self.mailbox).await {
            Ok(Some(m)) => m.pin_hash,
            Ok(None) => None,
            Err(e) => {
                tracing::error!(mailbox = %self.mailbox, error = %e, "cannot read the mailbox");
                None
            }
        };
        // A mailbox without a PIN cannot be opened; the check still costs the same to the caller.
        let hash = hash.unwrap_or_else(|| "$argon2id$v=19$m=1024,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into());
        tokio::task::spawn_blocking(move || pbx::voicemail::pin::verify(&pin, &hash))
            .await
            .unwrap_or(false)
    }

    async fn save_message(&self, samples: Vec<i16>) {
        let duration_ms = media::wav::duration_ms(samples.len());
        if duration_ms < MIN_MESSAGE.as_millis() as u64 {
            tracing::info!(mailbox = %self.mailbox, duration_ms, "message too short; not kept");
            return;
        }
        let now_ms = unix_ms();
        let file = format!("{}/{}-{}.wav", self.mailbox, now_ms, self.start.call);
        let written = shared_audio::save(&self.shared.db, &self.shared.root, &file, samples).await;
        if let Err(e) = written {
            tracing::error!(mailbox = %self.mailbox, error = %e, "cannot write a voicemail message; message lost");
            return;
        }
        let new = VoicemailNew {
            mailbox: self.mailbox.clone(),
            caller: self.start.caller.clone(),
            caller_name: self.start.caller_name.clone(),
            received_at: now_ms,
            duration_ms: i64::try_from(duration_ms).unwrap_or(i64::MAX),
            file: file.clone(),
        };
        match self.shared.db.add_voicemail_message(&new).await {
            Ok(id) => {
                tracing::info!(mailbox = %self.mailbox, id, duration_ms, caller = %self.start.caller, "voicemail message saved");
                self.mailbox_changed().await;
            }
            Err(e) => {
                tracing::error!(mailbox = %self.mailbox, error = %e, "cannot record a voicemail message");
                shared_audio::remove(&self.shared.db, &self.shared.root, &file).await;
            }
        }
    }

    async fn save_greeting(&self, samples: Vec<i16>) {
        if samples.len() < FRAME_SAMPLES * 25 {
            return;
        }
        let file = format!("{}/greeting-{}.wav", self.mailbox, unix_ms());
        let written = shared_audio::save(&self.shared.db, &self.shared.root, &file, samples).await;
        if let Err(e) = written {
            tracing::error!(mailbox = %self.mailbox, error = %e, "cannot write a greeting");
            return;
        }
        match self
            .shared
            .db
            .set_greeting(&self.mailbox, Some(&file))
            .await
        {
            Ok(Some(old)) => shared_audio::remove(&self.shared.db, &self.shared.root, &old).await,
            Ok(None) => {}
            Err(e) => {
                tracing::error!(mailbox = %self.mailbox, error = %e, "cannot record the greeting");
                shared_audio::remove(&self.shared.db, &self.shared.root, &file).await;
            }
        }
    }

    /// Tells the service the new counts (for message-waiting NOTIFYs).
    async fn mailbox_changed(&self) {
        match self.shared.db.mailbox_counts(&self.mailbox).await {
            Ok(counts) => {
                let _ = self.shared.events.send(AppEvent::MailboxChanged {
                    mailbox: self.mailbox.clone(),
                    counts,
                });
            }
            Err(e) => tracing::error!(mailbox = %self.mailbox, error = %e, "cannot count messages"),
        }
    }
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
