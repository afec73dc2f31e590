//! The auto attendant's audio edge: one task per call it answers, on a loopback socket toward the call's relay
//! (like voicemail's). It plays the greeting (an uploaded WAV under `DATA/attendant/`), takes keys from RFC 4733
//! and SIP INFO, runs the sans-IO menu ([`pbx::office::attendant::Menu`]) and asks the endpoint to hand the caller
//! on ([`AppEvent::AttendantRoute`]); while the target rings the caller hears a ring-back tone.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use media::dtmf::DtmfReceiver;
use media::g711::Law;
use media::packetizer::{FRAME_SAMPLES, RtpSender};
use media::rtp::RtpPacket;
use pbx::calls::AppStart;
use pbx::office::attendant::{Action, Event, Menu, MenuConfig, Target};
use store::Db;
use store::attendants::AttendantRow;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::service::AppEvent;
use crate::voicemail::Input;

/// The attendant directory inside the data directory.
pub fn root(data_dir: &Path) -> PathBuf {
    data_dir.join("attendant")
}

/// What an attendant task needs.
pub(crate) struct Context {
    pub db: Db,
    pub root: PathBuf,
    pub events: mpsc::UnboundedSender<AppEvent>,
}

/// The stored `KEY=TARGET;…` options as a map; errors name the bad entry.
pub fn parse_options(text: &str) -> Result<std::collections::BTreeMap<char, Target>, String> {
    let mut out = std::collections::BTreeMap::new();
    for entry in text.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let (key, target) = entry
            .split_once('=')
            .ok_or_else(|| format!("option `{entry}`: expected KEY=TARGET, e.g. 1=ext:210"))?;
        let mut keys = key.chars();
        let key = match (keys.next(), keys.next()) {
            (Some(k), None) if k.is_ascii_digit() || k == '*' || k == '#' => k,
            _ => return Err(format!("option `{entry}`: the key is one of 0-9, * or #")),
        };
        let target: Target = target.parse()?;
        if out.insert(key, target).is_some() {
            return Err(format!("option key {key} is given twice"));
        }
    }
    Ok(out)
}

/// The menu of a stored attendant.
pub fn menu_config(row: &AttendantRow) -> Result<MenuConfig, String> {
    Ok(MenuConfig {
        options: parse_options(&row.options)?,
        timeout: Duration::from_secs(u64::try_from(row.timeout_seconds).unwrap_or(10)),
        on_timeout: row.on_timeout.parse()?,
        on_invalid: row.on_invalid.parse()?,
        dial_by_extension: row.dial_by_extension,
    })
}

/// The ring-back tone while a target rings (440 + 480 Hz, 2 s on, 4 s off: the North American cadence, which
/// callers everywhere recognise).
fn ringback() -> Vec<i16> {
    let a = media::tone::sine(440.0, 2000, 3000);
    let b = media::tone::sine(480.0, 2000, 3000);
    let mut out: Vec<i16> = a
        .iter()
        .zip(&b)
        .map(|(x, y)| x.saturating_add(*y))
        .collect();
    out.extend(media::tone::silence(4000));
    out
}

struct Task {
    ctx: Context,
    start: AppStart,
    law: Law,
    socket: UdpSocket,
    relay: SocketAddr,
    sender: RtpSender,
    dtmf: DtmfReceiver,
    greeting: Vec<i16>,
    playing: Option<VecDeque<i16>>,
    /// Ring-back looping while the endpoint hands the caller on.
    ringing: bool,
}

pub(crate) async fn run(
    ctx: Context,
    start: AppStart,
    name: String,
    socket: UdpSocket,
    relay: SocketAddr,
    mut inputs: mpsc::UnboundedReceiver<Input>,
) {
    let row = ctx.db.attendant(&name).await;
    let config = match row
        .as_ref()
        .map_err(|e| e.to_string())
        .and_then(menu_config)
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(attendant = name, error = %e, "attendant not usable; caller hung up");
            let _ = ctx.events.send(AppEvent::Hangup { call: start.call });
            return;
        }
    };
    let greeting = match &row {
        Ok(r) => read_greeting(&ctx.root, &r.greeting).await,
        Err(_) => Vec::new(),
    };
    let law = Law::from_payload_type(start.codec.payload_type).unwrap_or(Law::Mu);
    let mut t = Task {
        sender: RtpSender::new(
            start.codec.payload_type,
            rand::random(),
            rand::random(),
            rand::random(),
        ),
        ctx,
        start,
        law,
        socket,
        relay,
        dtmf: DtmfReceiver::new(),
        greeting,
        playing: None,
        ringing: false,
    };
    tracing::info!(call = t.start.call, attendant = name, caller = %t.start.caller, "attendant answered");
    let mut menu = Menu::new(config);
    let mut actions = menu.handle(Event::Started, Instant::now());
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut buf = vec![0u8; 2048];
    loop {
        for action in std::mem::take(&mut actions) {
            t.act(action);
        }
        if menu.is_done() {
            let _ = t.ctx.events.send(AppEvent::Hangup { call: t.start.call });
            return;
        }
        tokio::select! {
            _ = tick.tick() => {
                if t.send_frame().await {
                    actions.extend(menu.handle(Event::PlaybackFinished, Instant::now()));
                }
                if menu.deadline().is_some_and(|d| Instant::now() >= d) {
                    actions.extend(menu.handle(Event::Tick, Instant::now()));
                }
            }
            received = t.socket.recv_from(&mut buf) => {
                if let Ok((n, from)) = received
                    && from == t.relay
                    && let Some(d) = t.key(&buf[..n])
                {
                    actions.extend(menu.handle(Event::Digit(d), Instant::now()));
                }
            }
            input = inputs.recv() => match input {
                Some(Input::Digit(d)) => actions.extend(menu.handle(Event::Digit(d), Instant::now())),
                Some(Input::Refused) => {
                    t.ringing = false;
                    actions.extend(menu.handle(Event::Refused, Instant::now()));
                }
                // Queue positions are not an attendant's.
                Some(Input::Position(_)) => {}
                // Handed on (the target answered, or another application took over), or the caller hung up.
                Some(Input::Stop) | None => return,
            },
        }
    }
}

impl Task {
    fn act(&mut self, action: Action) {
        match action {
            Action::PlayGreeting(prompts) => {
                let mut audio: VecDeque<i16> = prompts.iter().flat_map(|p| p.samples()).collect();
                audio.extend(self.greeting.iter().copied());
                self.playing = Some(audio);
            }
            Action::Play(prompts) => {
                self.playing = Some(prompts.iter().flat_map(|p| p.samples()).collect());
            }
            Action::StopPlaying => self.playing = None,
            Action::Route(target) => {
                tracing::info!(call = self.start.call, %target, "attendant: caller chose");
                self.ringing = true;
                let _ = self.ctx.events.send(AppEvent::AttendantRoute {
                    call: self.start.call,
                    target,
                });
            }
            Action::Hangup => {}
        }
    }

    /// The next 20 ms (the greeting, prompts, ring-back or silence); true when a playback just ran out.
    async fn send_frame(&mut self) -> bool {
        if self.ringing && self.playing.is_none() {
            self.playing = Some(ringback().into());
        }
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
                finished = !self.ringing;
            }
        }
        let payload = self.law.encode_all(&frame);
        let packet = self.sender.packet(&payload, FRAME_SAMPLES as u32, false);
        let _ = self.socket.send_to(&packet, self.relay).await;
        finished
    }

    fn key(&mut self, datagram: &[u8]) -> Option<char> {
        let packet = RtpPacket::parse(datagram).ok()?;
        if Some(packet.payload_type()) != self.start.codec.dtmf_payload_type {
            return None;
        }
        self.dtmf.on_packet(packet.timestamp(), packet.payload())
    }
}

async fn read_greeting(root: &Path, name: &str) -> Vec<i16> {
    let (root, owned) = (root.to_path_buf(), name.to_string());
    match tokio::task::spawn_blocking(move || crate::voicemail::files::read_wav(&root, &owned))
        .await
    {
        Ok(Ok(samples)) => samples,
        Ok(Err(e)) => {
            tracing::error!(file = name, error = %e, "cannot read an attendant greeting; playing none");
            Vec::new()
        }
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_with_clear_errors() {
        let o = parse_options("1=ext:210; 2=voicemail:201;0=ext:200").expect("parses");
        assert_eq!(o.len(), 3);
        assert_eq!(o[&'1'], Target::Extension("210".into()));
        assert_eq!(parse_options("").expect("empty").len(), 0);
        for (bad, says) in [
            ("1", "KEY=TARGET"),
            ("12=ext:1", "key is one of"),
            ("1=ext:1;1=ext:2", "twice"),
            ("1=trunk:x", "unknown target kind"),
        ] {
            let e = parse_options(bad).expect_err(bad);
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
