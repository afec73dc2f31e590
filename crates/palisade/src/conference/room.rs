//! One room's members and its mixing task: every 20 ms each member's next frame, the mix, and each member's
//! share (everyone but itself) encoded in its own G.711 law and sent to its call's relay.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use media::g711::Law;
use media::mixer::{Frame, Inbound, mix};
use media::packetizer::{FRAME_SAMPLES, RtpSender};
use store::conferences::ParticipantRow;
use tokio::net::UdpSocket;

use super::{Conferences, JoinError, Joining, lock};

struct Member {
    call: u64,
    position: i64,
    caller: String,
    joined_at: i64,
    inbound: Inbound,
    carry: Vec<i16>,
    law: Law,
    sender: RtpSender,
    socket: Arc<UdpSocket>,
    relay: std::net::SocketAddr,
}

#[derive(Default)]
pub(super) struct Room {
    members: Vec<Member>,
    next_position: i64,
    inputs: Vec<Option<Frame>>,
    outputs: Vec<Frame>,
}

impl Room {
    pub(super) fn add(&mut self, j: Joining) -> Result<i64, JoinError> {
        if self.members.len() >= j.max {
            return Err(JoinError::Full);
        }
        self.next_position += 1;
        let position = self.next_position;
        self.members.push(Member {
            call: j.call,
            position,
            caller: j.caller,
            joined_at: unix_ms(),
            inbound: Inbound::new(),
            carry: Vec::new(),
            law: j.law,
            sender: RtpSender::new(
                j.payload_type,
                rand::random(),
                rand::random(),
                rand::random(),
            ),
            socket: j.socket,
            relay: j.relay,
        });
        Ok(position)
    }

    pub(super) fn speak(&mut self, call: u64, samples: &[i16]) {
        if let Some(m) = self.members.iter_mut().find(|m| m.call == call) {
            m.inbound.push(samples, &mut m.carry);
        }
    }

    pub(super) fn remove(&mut self, call: u64) -> bool {
        let before = self.members.len();
        self.members.retain(|m| m.call != call);
        self.members.len() != before
    }

    /// Takes the member at `position` out of the mix; its call, to hang up.
    pub(super) fn take(&mut self, position: i64) -> Option<u64> {
        let i = self.members.iter().position(|m| m.position == position)?;
        Some(self.members.remove(i).call)
    }

    pub(super) fn set_muted(&mut self, position: i64, muted: bool) -> Option<u64> {
        if let Some(m) = self.members.iter_mut().find(|m| m.position == position) {
            m.inbound.muted = muted;
        }
        None
    }

    pub(super) fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub(super) fn rows(&self, room: &str) -> Vec<ParticipantRow> {
        self.members
            .iter()
            .map(|m| ParticipantRow {
                room: room.to_string(),
                position: m.position,
                caller: m.caller.clone(),
                joined_at: m.joined_at,
                muted: m.inbound.muted,
            })
            .collect()
    }

    /// One 20 ms tick: mix and send.
    fn tick(&mut self) {
        self.inputs.clear();
        for m in &mut self.members {
            self.inputs.push(m.inbound.pop());
        }
        mix(&self.inputs, &mut self.outputs);
        for (m, frame) in self.members.iter_mut().zip(&self.outputs) {
            let payload = m.law.encode_all(frame);
            let packet = m.sender.packet(&payload, FRAME_SAMPLES as u32, false);
            if let Err(e) = m.socket.try_send_to(&packet, m.relay) {
                tracing::trace!(error = %e, "conference RTP not sent");
            }
        }
    }
}

/// Mixes `state` every 20 ms until the room is empty.
pub(super) async fn mix_loop(conferences: Conferences, room: String, state: Arc<Mutex<Room>>) {
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    // Late ticks are caught up so the phones' jitter buffers see a steady stream.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    tracing::debug!(room, "conference room open");
    loop {
        tick.tick().await;
        let empty = {
            let mut r = lock(&state);
            r.tick();
            r.is_empty()
        };
        if empty && conferences.retire(&room, &state) {
            tracing::debug!(room, "conference room empty; closed");
            conferences.mark(&room);
            return;
        }
    }
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
