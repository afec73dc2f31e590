//! Resource limits applied to new calls and subscriptions (issue 12 item 3): the decisions are
//! [`crate::limits`]'s; this maps the calls in progress to extensions and trunks and records each refusal.

use std::net::IpAddr;
use std::time::SystemTime;

use crate::limits::{CallUse, LimitRefusal, ResourceLimits};
use crate::model::PolicyReason;
use crate::registrar::Origin;

use super::Endpoint;

impl Endpoint {
    /// New limits from the store (at start and after an admin change).
    pub fn set_resource_limits(&mut self, limits: ResourceLimits) {
        self.limits = limits;
    }

    /// Every call in progress as the limits see it: who placed it and which trunks it goes through.
    fn call_uses(&self) -> Vec<CallUse> {
        self.calls
            .usage()
            .into_iter()
            .map(|(caller, ips)| {
                let mut trunks: Vec<String> =
                    ips.into_iter().flat_map(|ip| self.trunks_at(ip)).collect();
                trunks.sort_unstable();
                trunks.dedup();
                CallUse {
                    caller_extension: caller.map(str::to_string),
                    trunks,
                }
            })
            .collect()
    }

    /// The trunks `ip` belongs to: one of their source addresses, or the address calls to them are sent to.
    fn trunks_at(&self, ip: IpAddr) -> Vec<String> {
        self.trunks
            .iter()
            .filter(|t| t.is_source(ip) || t.socket_addr().is_some_and(|a| a.ip() == ip))
            .map(|t| t.name.clone())
            .collect()
    }

    /// May extension `caller` place another call (`external`: through a trunk)? Emergency calls are never
    /// limited. A refusal is recorded as a policy event.
    pub(super) fn call_limit(
        &mut self,
        caller: &str,
        external: bool,
        dialed: &str,
        origin: Origin,
        wall: SystemTime,
    ) -> Option<LimitRefusal> {
        let refusal = self
            .limits
            .check_call(caller, external, &self.call_uses())?;
        let detail = format!("extension {caller} calling {dialed}: {}", refusal.phrase());
        self.core.policy_event(
            PolicyReason::Rule(refusal.reason_code()),
            origin,
            &detail,
            wall,
        );
        Some(refusal)
    }

    /// The trunks among `names` that can carry another call now, in order (all of them for an emergency call).
    pub(super) fn trunks_with_room(&self, names: &[String], emergency: bool) -> Vec<String> {
        if emergency {
            return names.to_vec();
        }
        let uses = self.call_uses();
        names
            .iter()
            .filter(|n| self.limits.trunk_has_room(n, &uses))
            .cloned()
            .collect()
    }

    /// Records that every trunk a call could take was full.
    pub(super) fn trunk_limit_event(&mut self, detail: &str, origin: Origin, wall: SystemTime) {
        self.core.policy_event(
            PolicyReason::Rule(LimitRefusal::TrunkCalls.reason_code()),
            origin,
            detail,
            wall,
        );
    }

    /// May `subscriber`, holding `current` subscriptions, add one? A refusal is recorded as a policy event.
    pub(super) fn subscription_limit(
        &mut self,
        subscriber: &str,
        current: usize,
        origin: Origin,
        wall: SystemTime,
    ) -> Option<LimitRefusal> {
        let refusal = self.limits.check_subscription(current)?;
        let detail = format!("extension {subscriber}: {}", refusal.phrase());
        self.core.policy_event(
            PolicyReason::Rule(refusal.reason_code()),
            origin,
            &detail,
            wall,
        );
        Some(refusal)
    }
}
