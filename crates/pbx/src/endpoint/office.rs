//! Calls to Palisade's own office numbers (conference rooms): an extension dialling one is answered by the
//! application, under its resource limits like any internal call. The numbers come from the store
//! ([`Endpoint::set_office`]).

use std::time::Instant;

use sip::Message;
use sip::transaction::{Peer, ServerTxId};

use crate::calls::AppKind;
use crate::core::ExtensionAuth;
use crate::office::OfficeNumbers;
use crate::registrar::Origin;

use super::calls::caller_party;
use super::{Endpoint, unspecified};

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
        let Some(room) = self.office.conference(number) else {
            return false;
        };
        let kind = AppKind::Conference {
            room: room.number.clone(),
        };
        let wall = self.clock.at(now);
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
