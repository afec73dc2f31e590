//! Where a call goes: the call policy for direct dialling, forwards and transfers alike, and its refusals as
//! policy events.

use super::*;

impl PbxCore {
    /// Authenticates a new INVITE (Proxy-Authorization, 407): the calling extension, or the reply to send.
    pub fn authorize_call(
        &mut self,
        msg: &Message,
        origin: Origin,
        now: SystemTime,
    ) -> Result<Arc<ExtensionAuth>, Reply> {
        self.signal = AuthSignal::None;
        let claimed = msg
            .from()
            .ok()
            .and_then(|f| f.uri.user.map(str::to_string))
            .unwrap_or_default();
        self.authenticate(msg, HeaderName::ProxyAuthorization, &claimed, origin, now)
            .map_err(|mut reply| {
                reply.auth = self.signal;
                reply
            })
    }

    /// Where a call from `caller` to `dialed` goes now (extension, outbound, emergency, PIN unlock, or refused).
    /// A refusal is recorded as a policy event.
    pub fn route_call(
        &mut self,
        caller: &ExtensionAuth,
        dialed: &str,
        origin: Origin,
        now: SystemTime,
    ) -> Route {
        self.route_as(caller, dialed, None, origin, now)
    }

    /// Where a forwarded or transferred leg goes: routed exactly as if `caller` (the forwarding or transferring
    /// extension) dialled `dialed`, with the same refusals and events; `why` (e.g. "forward busy from 101") is
    /// written in front of the refusal event's detail.
    pub fn route_forward(
        &mut self,
        caller: &ExtensionAuth,
        dialed: &str,
        why: &str,
        origin: Origin,
        now: SystemTime,
    ) -> Route {
        self.route_as(caller, dialed, Some(why), origin, now)
    }

    pub(super) fn route_as(
        &mut self,
        caller: &ExtensionAuth,
        dialed: &str,
        why: Option<&str>,
        origin: Origin,
        now: SystemTime,
    ) -> Route {
        let by_number = &self.by_number;
        let route = self.restrictions.route(
            &caller.restrictions,
            dialed,
            |n| by_number.contains_key(n),
            now,
        );
        if let Route::Refused(r) = &route {
            let detail = match (r, self.restrictions.not_configured()) {
                (Refusal::CountryNotAllowed(_), Some(why)) => format!("{dialed}: {why}"),
                _ => format!("{dialed}: {r}"),
            };
            let detail = match why {
                Some(why) => format!("{why}: {detail}"),
                None => detail,
            };
            self.event(
                SecurityEventKind::PolicyRefusal,
                PolicyReason::Rule(r.reason_code()),
                origin,
                Some(&caller.auth_id),
                Some(detail),
                now,
            );
        }
        route
    }

    /// Whether `number` is an emergency number or the voicemail access number: nothing configured by an
    /// operator (a ring group, …) may take it over.
    pub fn is_service_number(&self, number: &str) -> bool {
        self.restrictions.is_service_number(number)
    }

    /// Records a policy refusal decided outside the core (e.g. an inbound trunk call to an internal-only
    /// extension).
    pub fn policy_event(
        &mut self,
        reason: PolicyReason,
        origin: Origin,
        detail: &str,
        now: SystemTime,
    ) {
        self.event(
            SecurityEventKind::PolicyRefusal,
            reason,
            origin,
            None,
            Some(detail.to_string()),
            now,
        );
    }

    /// A request inside a dialog of extension `number` (not re-authenticated) breaks one of its location rules
    /// (`--lan-only`, `--require-tls`, `--block-remote-ws`): the 403 to send, after a policy event. `None`: it
    /// may go on.
    pub fn in_dialog_location(
        &mut self,
        number: &str,
        method: &str,
        origin: Origin,
        now: SystemTime,
    ) -> Option<Reply> {
        let ext = self.by_number.get(number).cloned()?;
        let local = self.restrictions.is_local(origin.source.ip());
        let decision = Authenticator::decide_in_dialog(ext, method, origin, local);
        self.apply(decision, origin, now).err()
    }
}
