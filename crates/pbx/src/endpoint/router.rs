//! Where a routed number goes, shared by direct dialling ([`Endpoint::on_invite`]), forwards and transfers
//! ([`Endpoint::resolve_forward`]): the policy's [`Route`] decides, and this turns it into something a call can
//! ring — an extension with its registrations, or the trunks with room for one more call — or a refusal with its
//! status, phrase and reason code. One mapping, so a forward never reaches what direct dialling would not.

use std::time::SystemTime;

use crate::calls::{Party, Target};
use crate::policy::Refusal;
use crate::registrar::{Binding, Origin};

use super::Endpoint;
use super::calls::callee_party;

/// A call the policy refused, or that cannot be placed: answered with `status` and `reason`, recorded with `code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Refused {
    pub status: u16,
    pub reason: String,
    pub code: &'static str,
}

impl Refused {
    /// The policy's refusal as the caller hears it.
    pub fn policy(r: &Refusal) -> Refused {
        let status = r.status();
        Refused {
            status,
            reason: format!("{} ({r})", sip::reason_phrase(status)),
            code: r.reason_code(),
        }
    }
}

impl Endpoint {
    /// The INVITE targets for `number` through the named trunks, in order. A trunk whose host name resolved to
    /// nothing (service/trunks.rs) is skipped with a warning: the call fails over to the next.
    pub(super) fn trunk_targets(
        &self,
        names: &[String],
        number: &str,
        caller: &str,
    ) -> Vec<Target> {
        names
            .iter()
            .filter_map(|name| self.trunks.iter().find(|t| &t.name == name))
            .filter_map(|t| {
                let Some(addr) = t.socket_addr() else {
                    tracing::warn!(trunk = %t.name, host = %t.host, "trunk host does not resolve; skipped");
                    return None;
                };
                Some(Target {
                    request_uri: format!("sip:{number}@{}:{}", t.host, t.port),
                    to_uri: format!("<sip:{number}@{}>", t.host),
                    from_user: t.caller_id.clone().unwrap_or_else(|| caller.to_string()),
                    source: addr,
                    transport: t.transport,
                    credentials: t
                        .digest_user()
                        .map(String::from)
                        .zip(t.password.clone()),
                    is_trunk: true,
                    srtp: Some(t.srtp),
                })
            })
            .collect()
    }

    /// An enabled extension as a callee, with its live registrations; `None` when there is no such extension.
    pub(super) fn extension_destination(
        &self,
        number: &str,
        wall: SystemTime,
    ) -> Option<(Party, Vec<Binding>)> {
        let ext = self.core.extension(number).filter(|e| e.enabled)?;
        Some((callee_party(&ext), self.reachable_bindings(number, wall)))
    }

    /// The trunks of an outbound route that have room for one more call (all of them for an emergency call), as
    /// INVITE targets for `out_number` from `caller`, in failover order. When every trunk is at its call limit the
    /// refusal is recorded as a policy event (`context` says whose call it was).
    #[allow(clippy::too_many_arguments)] // one routing decision's inputs
    pub(super) fn trunk_destination(
        &mut self,
        trunks: &[String],
        out_number: &str,
        caller: &str,
        emergency: bool,
        context: &str,
        origin: Origin,
        wall: SystemTime,
    ) -> Result<Vec<Target>, Refused> {
        let with_room = self.trunks_with_room(trunks, emergency);
        let targets = self.trunk_targets(&with_room, out_number, caller);
        if with_room.is_empty() && !trunks.is_empty() {
            let detail = format!("{context}: trunks {} at their call limit", trunks.join(","));
            self.trunk_limit_event(&detail, origin, wall);
            let r = crate::limits::LimitRefusal::TrunkCalls;
            return Err(Refused {
                status: r.status(),
                reason: r.phrase(),
                code: r.reason_code(),
            });
        }
        if targets.is_empty() {
            return Err(Refused {
                status: 503,
                reason: "Endpoint Unavailable (no trunk is available for this number)".into(),
                code: "no_trunk",
            });
        }
        Ok(targets)
    }
}
