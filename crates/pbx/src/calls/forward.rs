//! Call forwarding and the routing of a forwarded (or transferred) leg.
//!
//! The call layer cannot route: only the service has the registrar, the trunks and the call policy. When a call
//! must go somewhere else — a forward of the callee, or a transfer by REFER — the call layer emits
//! [`super::CallOutput::Forward`]; the service routes the target *as the forwarding (or transferring) extension*
//! with the same policy as direct dialling, and answers with [`super::Calls::forward_to`] and a [`Resolved`].
//! The call layer keeps the chain of extensions the call went through, so a forward never loops and never goes
//! more than [`MAX_HOPS`] hops.

use std::time::{Instant, SystemTime};

use sip::HeaderName;

use crate::model::SrtpMode;
use crate::registrar::Binding;

use super::transfer::PendingTransfer;
use super::{
    CallOutput, CallRecord, Calls, Disposition, HungUpBy, MediaControl, Party, Response, State,
    Target, contact_header,
};

/// Most forwards one call follows (a chain A → B → C → … stops here with 482 Loop Detected).
pub const MAX_HOPS: usize = 5;

/// Longest forward target accepted, in characters.
pub const MAX_TARGET_LEN: usize = 32;

pub use crate::model::Forwarding;

/// Why a call leaves for another number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardReason {
    Always,
    Busy,
    NoAnswer,
    /// No phone of the callee is registered (the no-answer forward applies).
    Unavailable,
    /// A blind transfer (REFER) by the extension in the call.
    Transfer,
}

impl ForwardReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ForwardReason::Always => "always",
            ForwardReason::Busy => "busy",
            ForwardReason::NoAnswer => "no_answer",
            ForwardReason::Unavailable => "unavailable",
            ForwardReason::Transfer => "transfer",
        }
    }
}

/// Where the service routed a forward or transfer target, as the forwarding extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// Another extension, with its live registrations.
    Extension {
        party: Party,
        contacts: Vec<Binding>,
    },
    /// Out through trunks, in failover order; `number` is the number as dialled (for the call record).
    External {
        number: String,
        targets: Vec<Target>,
    },
    /// The park number (a transfer there parks the call): the slots in order and how long a call may wait.
    Park {
        slots: Vec<String>,
        timeout: std::time::Duration,
    },
    /// Refused (call policy, no route, no trunk): the status, reason phrase and reason code the caller (or the
    /// transferor) gets, as for direct dialling.
    Refused {
        status: u16,
        reason: String,
        code: String,
    },
}

/// What a call waits for the service to route.
#[derive(Debug)]
pub(super) enum Pending {
    /// The callee's forward.
    Forward(ForwardReason),
    /// The target of a REFER.
    Transfer(PendingTransfer),
}

impl Calls {
    /// Sends the call elsewhere: the current branches are retired and the service is asked to route `target` as
    /// the callee (the forwarding extension) would dial it. The caller hears 181 Call Is Being Forwarded.
    pub(super) fn forward(
        &mut self,
        id: u64,
        reason: ForwardReason,
        target: String,
        media: &mut dyn MediaControl,
        wall: SystemTime,
    ) {
        let Some(from) = self.calls.get(&id).map(|c| c.callee.number.clone()) else {
            return;
        };
        self.forward_as(id, reason, target, from, media, wall);
    }

    /// [`Self::forward`], with `target` routed as extension `from` would dial it (a ring group's fallback is
    /// routed as its caller).
    pub(super) fn forward_as(
        &mut self,
        id: u64,
        reason: ForwardReason,
        target: String,
        from: String,
        media: &mut dyn MediaControl,
        wall: SystemTime,
    ) {
        let local = self.local.clone();
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        call.diversion.hops += 1;
        if call.diversion.hops > MAX_HOPS {
            self.forward_loop(id, media, wall);
            return;
        }
        let old = std::mem::take(&mut call.branches);
        call.retired.extend(old);
        call.failures.clear();
        call.failover.clear();
        call.state = State::Forwarding;
        call.diversion.pending = Some(Pending::Forward(reason));
        tracing::debug!(call = id, from = %call.callee.number, %target, reason = reason.as_str(), "forwarding");
        self.outputs.push(CallOutput::Respond(Response {
            tx: call.invite_tx,
            status: 181,
            reason: None,
            to_tag: Some(call.a.local_tag.clone()),
            headers: contact_header(&local, &call.a_peer).into_iter().collect(),
            body: None,
        }));
        self.outputs.push(CallOutput::Forward {
            call: id,
            from,
            target,
            reason,
            source: call.a_peer,
        });
    }

    /// The service routed the target of [`CallOutput::Forward`] for call `id`: ring it, or refuse as direct
    /// dialling would. Ignored when the call no longer waits for it (it was cancelled meanwhile).
    pub fn forward_to(
        &mut self,
        id: u64,
        resolved: Resolved,
        media: &mut dyn MediaControl,
        now: Instant,
        wall: SystemTime,
    ) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        match call.diversion.pending.take() {
            Some(Pending::Forward(reason)) if call.state == State::Forwarding => {
                self.forward_resolved(id, reason, resolved, media, now, wall);
            }
            Some(Pending::Transfer(pending)) => {
                self.transfer_resolved(id, pending, resolved, media, now, wall);
            }
            _ => {}
        }
    }

    fn forward_resolved(
        &mut self,
        id: u64,
        reason: ForwardReason,
        resolved: Resolved,
        media: &mut dyn MediaControl,
        now: Instant,
        wall: SystemTime,
    ) {
        match resolved {
            Resolved::Refused {
                status,
                reason: phrase,
                code,
            } => {
                self.end_with_warning(id, status, &phrase, &code, media, wall);
            }
            Resolved::Park { .. } => {
                self.end_with_warning(
                    id,
                    403,
                    "Forbidden (the park number takes transfers only)",
                    "not_forwardable",
                    media,
                    wall,
                );
            }
            Resolved::Extension { party, contacts } => {
                let Some(call) = self.calls.get(&id) else {
                    return;
                };
                if call.diversion.chain.contains(&party.number) {
                    self.forward_loop(id, media, wall);
                    return;
                }
                let caller = call.caller.number.clone();
                self.record_forward(id, reason, &party.number, wall);
                let targets = self.contact_targets(&caller, &contacts);
                let Some(call) = self.calls.get_mut(&id) else {
                    return;
                };
                call.diversion.chain.push(party.number.clone());
                call.callee = party;
                // The new callee forwards everything too: follow it (the chain stops loops).
                if let Some(next) = call.callee.forward.always.clone() {
                    self.forward(id, ForwardReason::Always, next, media, wall);
                    return;
                }
                self.ring_forwarded(id, targets, Vec::new(), media, now, wall);
            }
            Resolved::External {
                number,
                mut targets,
            } => {
                self.record_forward(id, reason, &number, wall);
                let Some(call) = self.calls.get_mut(&id) else {
                    return;
                };
                call.callee = Party {
                    number,
                    srtp: SrtpMode::Disabled,
                    ..Party::default()
                };
                let rest = if targets.len() > 1 {
                    targets.split_off(1)
                } else {
                    Vec::new()
                };
                self.ring_forwarded(id, targets, rest, media, now, wall);
            }
        }
    }

    /// Rings the forward target (its contacts, or the first trunk with the others to fail over to).
    fn ring_forwarded(
        &mut self,
        id: u64,
        targets: Vec<Target>,
        failover: Vec<Target>,
        media: &mut dyn MediaControl,
        now: Instant,
        wall: SystemTime,
    ) {
        let Some(mut call) = self.calls.remove(&id) else {
            return;
        };
        call.state = State::Ringing;
        call.failover = failover;
        call.timers.ringing_deadline = now + self.ring_time(&call.callee);
        let (offer, b_port, advertise, max_forwards) = (
            call.offer.clone(),
            call.b_port,
            call.advertise,
            call.max_forwards,
        );
        for target in targets {
            self.ring(
                &mut call,
                id,
                target,
                &offer,
                b_port,
                advertise,
                max_forwards,
                now,
            );
        }
        let unreachable = call.branches.is_empty();
        let (tx, tag) = (call.invite_tx, call.a.local_tag.clone());
        self.calls.insert(id, call);
        if unreachable && !self.divert_unanswered(id, 480, "not_registered", media, now, wall) {
            self.respond(tx, 480, Some(&tag));
            self.finish(
                id,
                Disposition::Unavailable,
                HungUpBy::System,
                "not_registered",
                media,
                wall,
            );
        }
    }

    /// A forward chain that comes back to an extension already in it, or is too long: 482 Loop Detected.
    fn forward_loop(&mut self, id: u64, media: &mut dyn MediaControl, wall: SystemTime) {
        self.end_with_warning(
            id,
            482,
            "Loop Detected (call forwarding loop)",
            "forward_loop",
            media,
            wall,
        );
    }

    /// Ends a call not yet answered with `status` and a Warning carrying the reason code (as [`Calls::refuse`]).
    fn end_with_warning(
        &mut self,
        id: u64,
        status: u16,
        phrase: &str,
        code: &str,
        media: &mut dyn MediaControl,
        wall: SystemTime,
    ) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        self.outputs.push(CallOutput::Respond(Response {
            tx: call.invite_tx,
            status,
            reason: Some(phrase.to_string()),
            to_tag: Some(call.a.local_tag.clone()),
            headers: vec![(HeaderName::Warning, warning(code))],
            body: None,
        }));
        let disposition = if status == 404 {
            Disposition::NotFound
        } else {
            Disposition::Failed
        };
        self.finish(id, disposition, HungUpBy::System, code, media, wall);
    }

    /// The record of the part of a call before it was forwarded: caller → the forwarding extension, with why and
    /// where it went (e.g. `forward_busy:0049301234`).
    fn record_forward(&mut self, id: u64, reason: ForwardReason, to: &str, wall: SystemTime) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let disposition = match reason {
            ForwardReason::Busy => Disposition::Busy,
            ForwardReason::NoAnswer => Disposition::NoAnswer,
            ForwardReason::Always | ForwardReason::Unavailable | ForwardReason::Transfer => {
                Disposition::Unavailable
            }
        };
        self.outputs.push(CallOutput::Record(CallRecord {
            call_id: call.call_id_a.clone(),
            caller: call.caller.number.clone(),
            callee: call.callee.number.clone(),
            started_at: call.started_at,
            answered_at: None,
            ended_at: wall,
            disposition,
            hung_up_by: HungUpBy::System,
            reason: format!("forward_{}:{to}", reason.as_str()),
        }));
    }
}

/// The Warning header value that carries a reason code (RFC 3261 §20.43).
pub(super) fn warning(code: &str) -> String {
    format!("399 palisade \"{}\"", code.replace('"', ""))
}

/// Checks a forward target as configured by an operator: 1 to [`MAX_TARGET_LEN`] digits, optionally after a
/// leading `+`, and not the extension's own number. The policy decides at call time whether it may be called.
pub fn validate_target(own_number: &str, target: &str) -> Result<(), String> {
    let digits = target.strip_prefix('+').unwrap_or(target);
    if digits.is_empty()
        || target.len() > MAX_TARGET_LEN
        || !digits.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(format!(
            "forward target must be a number of 1 to {MAX_TARGET_LEN} digits (optionally starting with +), got '{}'",
            target.escape_debug()
        ));
    }
    if target == own_number {
        return Err(format!("extension {own_number} cannot forward to itself"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_numbers_and_never_the_extension_itself() {
        assert!(validate_target("101", "102").is_ok());
        assert!(validate_target("101", "+4930123456").is_ok());
        assert!(validate_target("101", "00441234567890").is_ok());
        assert!(validate_target("101", "101").is_err());
        for bad in ["", "+", "12a", "sip:102@x", "1 2", &"9".repeat(33)] {
            assert!(validate_target("101", bad).is_err(), "{bad:?}");
        }
    }
}
