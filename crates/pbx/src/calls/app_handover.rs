//! A media application hands its caller on (the auto attendant's choices): to an extension — rung like a blind
//! transfer whose transferor (the application) has already left, so the caller keeps its relay port and hears the
//! application until the target answers — or to another application on the same call (voicemail, a conference
//! room, another attendant). The endpoint decides what the caller may reach before calling these.

use super::transfer::PendingTransfer;
use super::*;

impl Calls {
    /// Whether the caller of application call `id` is one of this PBX's extensions (false: it came in through a
    /// trunk); `None` when no application answers `id`.
    pub fn app_caller_is_extension(&self, id: u64) -> Option<bool> {
        let call = self.calls.get(&id)?;
        call.diversion.app.as_ref()?;
        Some(call.caller.extension)
    }

    /// The number of application call `id`'s caller (an extension's, or an outside caller's as it came in).
    pub fn app_caller_number(&self, id: u64) -> Option<&str> {
        let call = self.calls.get(&id)?;
        call.diversion.app.as_ref()?;
        Some(call.caller.number.as_str())
    }

    /// The signalling source and transport of application call `id`'s caller (for events).
    pub fn app_caller_source(&self, id: u64) -> Option<(SocketAddr, sip::Transport)> {
        let call = self.calls.get(&id)?;
        Some((call.a_peer.addr, call.a_peer.transport))
    }

    /// Rings `resolved` (an extension) for the caller of application call `id`. False when the call has no
    /// application or is already being handed on.
    pub fn app_transfer(
        &mut self,
        id: u64,
        resolved: Resolved,
        media: &mut dyn MediaControl,
        now: Instant,
        wall: SystemTime,
    ) -> bool {
        let Some(call) = self.calls.get_mut(&id) else {
            return false;
        };
        if call.diversion.app.is_none() || call.handover.transfer.is_some() {
            return false;
        }
        let pending = PendingTransfer::by_app(call.caller.number.clone());
        self.transfer_resolved(id, pending, resolved, media, now, wall);
        self.calls
            .get(&id)
            .is_some_and(|c| c.handover.transfer.is_some())
    }

    /// Replaces the application answering call `id` with `kind` (the caller stays connected; the new
    /// application's address arrives with [`Calls::app_ready`]). False without an application.
    pub fn switch_app(&mut self, id: u64, kind: AppKind, media: &mut dyn MediaControl) -> bool {
        let Some(call) = self.calls.get_mut(&id) else {
            return false;
        };
        if call.diversion.app.is_none() || call.handover.transfer.is_some() {
            return false;
        }
        let usable = sdp::app_codec(&call.offer).zip(media.local_port(call.media, Leg::B));
        let Some((codec, relay_port)) = usable else {
            return false;
        };
        call.diversion.app = Some(kind.clone());
        let start = AppStart {
            call: id,
            kind,
            caller: call.caller.number.clone(),
            caller_name: call.caller.display_name.clone(),
            source: call.a_peer.addr,
            transport: call.a_peer.transport,
            codec,
            relay_port,
        };
        self.outputs.push(CallOutput::StopApp { call: id });
        self.outputs.push(CallOutput::StartApp(start));
        true
    }
}
