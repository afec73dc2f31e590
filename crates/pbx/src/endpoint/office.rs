//! Calls to Palisade's own office numbers (conference rooms, auto attendants): an extension dialling one is
//! answered by the application, under its resource limits like any internal call; a DID can lead to an attendant.
//! An attendant's choices come back here ([`Endpoint::attendant_route`]) and are checked against what the caller
//! may reach: extensions that exist (and take external calls, for a caller from a trunk), mailboxes, rooms and
//! attendants — never the dialling policy, so never a trunk (an attendant is a classic toll-fraud path). Every
//! refusal is a policy event. The numbers come from the store ([`Endpoint::set_office`]).

use std::time::Instant;

use sip::Message;
use sip::transaction::{Peer, ServerTxId};

use crate::calls::{AppKind, Party, Resolved};
use crate::core::ExtensionAuth;
use crate::model::PolicyReason;
use crate::office::OfficeNumbers;
use crate::office::attendant::Target;
use crate::registrar::Origin;

use super::calls::{callee_party, caller_party};
use super::{Endpoint, Event, unspecified};

impl Endpoint {
    /// The conference rooms (and later other office applications) from the store.
    pub fn set_office(&mut self, office: OfficeNumbers) {
        self.office = office;
    }

    pub fn office(&self) -> &OfficeNumbers {
        &self.office
    }

    /// Answers `number` with its office application when it is one; false when it is not (route it as usual).
    pub(super) fn office_call(
        &mut self,
        tx: ServerTxId,
        request: &Message,
        peer: Peer,
        caller: &ExtensionAuth,
        number: &str,
        now: Instant,
    ) -> bool {
        let wall = self.clock.at(now);
        let kind = if let Some(room) = self.office.conference(number) {
            AppKind::Conference {
                room: room.number.clone(),
            }
        } else if let Some(entry) = self.office.attendant_by_number(number) {
            let open = self.core.office_open(wall);
            AppKind::Attendant {
                name: self.office.effective_attendant(entry, open),
            }
        } else {
            return false;
        };
        let origin = Origin {
            transport: peer.transport,
            source: peer.addr,
            local: unspecified(peer.addr),
        };
        if let Some(r) = self.call_limit(&caller.number, false, number, origin, wall) {
            let party = caller_party(caller, None);
            let reason = r.phrase();
            self.calls.refuse(
                tx,
                request,
                &party,
                number,
                r.status(),
                &reason,
                r.reason_code(),
                wall,
            );
            return true;
        }
        self.answer_with_app(tx, request, peer, caller, kind, now);
        true
    }
}

impl Endpoint {
    /// A call from a trunk to a DID answered by an attendant; false when `dialed` is not one (ring its extension).
    #[allow(clippy::too_many_arguments)] // one inbound call's inputs
    pub(super) fn office_trunk_call(
        &mut self,
        tx: ServerTxId,
        request: &Message,
        peer: Peer,
        trunk: &str,
        dialed: &str,
        caller: Party,
        now: Instant,
    ) -> bool {
        let Some(entry) = self.office.did_attendant(trunk, dialed) else {
            return false;
        };
        let wall = self.clock.at(now);
        let open = self.core.office_open(wall);
        let kind = AppKind::Attendant {
            name: self.office.effective_attendant(entry, open),
        };
        self.calls.invite_app(tx, request, peer, caller, kind, wall);
        true
    }

    /// The attendant answering `call` chose `target` for its caller: hand the caller on, or refuse (a policy
    /// event, and the attendant is told with [`Event::AppRefused`]).
    pub(super) fn attendant_route(&mut self, call: u64, target: Target, now: Instant) {
        let wall = self.clock.at(now);
        let Some(from_extension) = self.calls.app_caller_is_extension(call) else {
            return;
        };
        let handed_on = match &target {
            Target::Extension(number) => match self.core.extension(number).filter(|e| e.enabled) {
                Some(ext) if from_extension || !ext.restrictions.internal_only => {
                    let contacts = self.reachable_bindings(number, wall);
                    let resolved = Resolved::Extension {
                        party: callee_party(&ext),
                        contacts,
                    };
                    self.calls
                        .app_transfer(call, resolved, self.media.as_mut(), now, wall)
                }
                Some(_) => false,
                None => false,
            },
            Target::Voicemail(number) => {
                let has_box = self
                    .core
                    .extension(number)
                    .is_some_and(|e| e.enabled && e.voicemail);
                has_box
                    && self.calls.switch_app(
                        call,
                        AppKind::Deposit {
                            mailbox: number.clone(),
                        },
                        self.media.as_mut(),
                    )
            }
            Target::Conference(number) => {
                self.office.conference(number).is_some()
                    && self.calls.switch_app(
                        call,
                        AppKind::Conference {
                            room: number.clone(),
                        },
                        self.media.as_mut(),
                    )
            }
            Target::Attendant(name) => {
                self.office.attendants.contains_key(name)
                    && self.calls.switch_app(
                        call,
                        AppKind::Attendant { name: name.clone() },
                        self.media.as_mut(),
                    )
            }
            Target::Hangup => false,
        };
        if handed_on {
            tracing::info!(call, %target, "attendant: caller handed on");
            return;
        }
        let source = self.calls.app_caller_source(call);
        if let Some((addr, transport)) = source {
            let origin = Origin {
                transport,
                source: addr,
                local: unspecified(addr),
            };
            let who = if from_extension {
                "an extension"
            } else {
                "an outside caller"
            };
            let detail = format!(
                "attendant: {who} may not reach {target} (not an extension, mailbox, room or attendant it may call)"
            );
            self.core.policy_event(
                PolicyReason::Rule("attendant_target_refused"),
                origin,
                &detail,
                wall,
            );
        }
        tracing::info!(call, %target, "attendant: target refused");
        self.events.push_back(Event::AppRefused { call });
    }
}
