//! The service's side of voicemail: starting and stopping media applications for the call layer, acting on what
//! they report, and message-waiting indication (RFC 3842): SUBSCRIBE/NOTIFY dialogs for `message-summary`, and
//! unsolicited NOTIFYs to the registered phones of extensions that want them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::calls::{AppStart, Dialog};
use crate::core::unix_secs;
use crate::registrar::Origin;
use crate::voicemail::Counts;
use bytes::Bytes;
use sip::transaction::{Peer, ServerTxId};
use sip::{HeaderName, Message, ResponseBuilder};

use super::{Endpoint, Event, Outbound, unix_ms, unspecified};

/// What a media application reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppEvent {
    /// It is done: hang up the call.
    Hangup { call: u64 },
    /// A wrong PIN from `source` over `transport` (`locked_out`: the last allowed one).
    PinFailed {
        source: SocketAddr,
        transport: sip::Transport,
        mailbox: String,
        locked_out: bool,
    },
    /// `mailbox`'s PIN entry is locked until `until` (unix ms): `new` when a wrong PIN from `source` just locked
    /// it (the `lockouts`-th lockout), else a PIN entry refused because of it.
    PinLockout {
        source: SocketAddr,
        transport: sip::Transport,
        mailbox: String,
        until: i64,
        lockouts: u32,
        new: bool,
    },
    /// The right PIN in the unlock dialogue from `source`: lift `number`'s PIN protection.
    Unlocked {
        number: String,
        source: SocketAddr,
        transport: sip::Transport,
    },
    /// A mailbox's counts changed.
    MailboxChanged { mailbox: String, counts: Counts },
    /// The attendant answering `call` asks to hand the caller to `target`.
    AttendantRoute {
        call: u64,
        target: crate::office::attendant::Target,
    },
    /// A conference PIN decision at `room` for a caller from `source` (an authentication failure of the source,
    /// except a new lockout, which its own wrong PIN already counted).
    ConferencePin {
        source: SocketAddr,
        transport: sip::Transport,
        room: String,
        outcome: crate::core::ConferencePinOutcome,
    },
}

/// Subscriptions last at most this long unless refreshed.
const MAX_SUBSCRIPTION: u32 = 3600;
const MIN_SUBSCRIPTION: u32 = 60;
/// Subscriptions kept at most (a full table refuses new ones with 503).
const MAX_SUBSCRIPTIONS: usize = 20_000;

/// One `message-summary` subscription (Palisade is the notifier).
struct Subscription {
    mailbox: String,
    dialog: Dialog,
    peer: Peer,
    expires_at: Instant,
}

/// Message-waiting state: subscriptions and the last known counts per mailbox.
#[derive(Default)]
pub(super) struct Mwi {
    subscriptions: HashMap<(String, String, String), Subscription>,
    counts: HashMap<String, Counts>,
}

impl Endpoint {
    /// The edge runs media applications (the binary's voicemail tasks): calls that need one produce
    /// [`Event::StartApp`], answered with [`Endpoint::app_ready`]. Without it such calls fail at once (480).
    pub fn enable_apps(&mut self) {
        self.apps_enabled = true;
    }

    /// The media application of `call` (asked for by [`Event::StartApp`]) listens at `rtp`, or could not start:
    /// the caller is answered with it, or gets 480.
    pub fn app_ready(
        &mut self,
        call: u64,
        started: Result<SocketAddr, String>,
        now: Instant,
    ) -> Vec<Outbound> {
        let wall = self.clock.at(now);
        match started {
            Ok(addr) => self
                .calls
                .app_ready(call, addr, self.media.as_mut(), now, wall),
            Err(e) => {
                tracing::warn!(call, error = %e, "voicemail unavailable");
                self.calls.app_failed(call, self.media.as_mut(), wall);
            }
        }
        let mut out = Vec::new();
        self.drain(now, &mut out);
        out
    }

    /// Message counts from the store (at start and after admin changes); lamps whose state changed are updated.
    pub fn set_voicemail_counts(
        &mut self,
        counts: Vec<(String, Counts)>,
        now: Instant,
    ) -> Vec<Outbound> {
        let mut fresh: HashMap<String, Counts> = counts.into_iter().collect();
        let mut changed: Vec<String> = Vec::new();
        for (mailbox, old) in &self.mwi.counts {
            if fresh.get(mailbox).copied().unwrap_or_default() != *old {
                changed.push(mailbox.clone());
            }
        }
        for (mailbox, new) in &fresh {
            if !self.mwi.counts.contains_key(mailbox) && *new != Counts::default() {
                changed.push(mailbox.clone());
            }
        }
        fresh.retain(|_, c| *c != Counts::default());
        self.mwi.counts = fresh;
        let mut out = Vec::new();
        for mailbox in changed {
            self.notify_mailbox(&mailbox, now);
        }
        self.drain(now, &mut out);
        out
    }

    /// Asks the edge to start the application the call layer asked for ([`Endpoint::app_ready`] answers); without
    /// applications in this process the call fails at once.
    pub(super) fn start_app(&mut self, start: AppStart, now: Instant) {
        if self.apps_enabled {
            self.events.push_back(Event::StartApp(start));
            return;
        }
        tracing::warn!(
            call = start.call,
            "voicemail unavailable: no media applications in this process"
        );
        self.calls
            .app_failed(start.call, self.media.as_mut(), self.clock.at(now));
    }

    /// Acts on a media application's report; returns what to send.
    pub fn on_app_event(&mut self, event: AppEvent, now: Instant) -> Vec<Outbound> {
        let wall = self.clock.at(now);
        match event {
            AppEvent::Hangup { call } => self.calls.app_hangup(call, self.media.as_mut(), wall),
            AppEvent::PinFailed {
                source,
                transport,
                mailbox,
                locked_out,
            } => {
                // A wrong PIN is a failed authentication of the source, toward its ban (hardening step 2).
                self.guard.on_auth_failure(source.ip(), unix_ms(wall));
                let origin = Origin {
                    transport,
                    source,
                    local: unspecified(source),
                };
                self.core
                    .voicemail_pin_failure(&mailbox, origin, locked_out, wall);
                if locked_out {
                    tracing::warn!(%source, mailbox, "voicemail: three wrong PINs, call ended");
                }
            }
            AppEvent::PinLockout {
                source,
                transport,
                mailbox,
                until,
                lockouts,
                new,
            } => {
                let origin = Origin {
                    transport,
                    source,
                    local: unspecified(source),
                };
                if !new {
                    // A PIN offered while locked is still a guess: it counts toward the source's ban.
                    self.guard.on_auth_failure(source.ip(), unix_ms(wall));
                }
                self.core
                    .voicemail_pin_lockout(&mailbox, origin, until, lockouts, new, wall);
                if new {
                    tracing::warn!(%source, mailbox, until, lockouts, "voicemail: mailbox PIN entry locked");
                }
            }
            AppEvent::Unlocked {
                number,
                source,
                transport,
            } => {
                let until = self.core.unlock_pin(&number, wall);
                let origin = Origin {
                    transport,
                    source,
                    local: unspecified(source),
                };
                self.core.pin_unlock_event(&number, origin, until, wall);
                tracing::info!(extension = %number, until = unix_secs(until), "PIN protection lifted");
            }
            AppEvent::AttendantRoute { call, target } => self.attendant_route(call, target, now),
            AppEvent::ConferencePin {
                source,
                transport,
                room,
                outcome,
            } => {
                if !matches!(outcome, crate::core::ConferencePinOutcome::LockedNow { .. }) {
                    self.guard.on_auth_failure(source.ip(), unix_ms(wall));
                }
                let origin = Origin {
                    transport,
                    source,
                    local: unspecified(source),
                };
                self.core.conference_pin_event(&room, origin, outcome, wall);
                tracing::warn!(%source, room, ?outcome, "conference PIN");
            }
            AppEvent::MailboxChanged { mailbox, counts } => {
                let old = self.mwi.counts.get(&mailbox).copied().unwrap_or_default();
                if counts == Counts::default() {
                    self.mwi.counts.remove(&mailbox);
                } else {
                    self.mwi.counts.insert(mailbox.clone(), counts);
                }
                if old != counts {
                    self.notify_mailbox(&mailbox, now);
                }
            }
        }
        let mut out = Vec::new();
        self.drain(now, &mut out);
        out
    }

    /// SUBSCRIBE: `message-summary` for the subscriber's own mailbox, after digest authentication (407).
    pub(super) fn on_subscribe(
        &mut self,
        tx: ServerTxId,
        request: &Message,
        peer: Peer,
        now: Instant,
    ) {
        let event_ok = request
            .header_str(HeaderName::Event)
            .and_then(|e| e.split(';').next())
            .is_some_and(|e| e.trim().eq_ignore_ascii_case("message-summary"));
        if !event_ok {
            let b = ResponseBuilder::with_reason(request, 489, "Bad Event (only message-summary)")
                .header_named("Allow-Events", "message-summary");
            self.respond_once(tx, b, peer, now);
            return;
        }
        let expires = request
            .header_str(HeaderName::Expires)
            .and_then(|v| v.trim().parse::<u32>().ok())
            .unwrap_or(MAX_SUBSCRIPTION);
        let expires = if expires == 0 {
            0
        } else {
            expires.clamp(MIN_SUBSCRIPTION, MAX_SUBSCRIPTION)
        };
        // A refresh (or an unsubscribe) inside an existing subscription.
        if request.to().is_ok_and(|t| t.tag().is_some()) {
            let key = dialog_key(request);
            let Some(mailbox) = key
                .as_ref()
                .and_then(|k| self.mwi.subscriptions.get(k))
                .map(|s| s.mailbox.clone())
            else {
                self.respond_once(tx, ResponseBuilder::new(request, 481), peer, now);
                return;
            };
            // The subscriber's location rules hold for its refreshes too (they would move its NOTIFYs).
            let origin = Origin {
                transport: peer.transport,
                source: peer.addr,
                local: unspecified(peer.addr),
            };
            let wall = self.clock.at(now);
            if let Some(reply) = self
                .core
                .in_dialog_location(&mailbox, "SUBSCRIBE", origin, wall)
            {
                let phrase = reply.reason.unwrap_or_else(|| "Forbidden".into());
                let b = ResponseBuilder::with_reason(request, reply.status, &phrase);
                self.respond_once(tx, b, peer, now);
                return;
            }
            let Some(sub) = key.as_ref().and_then(|k| self.mwi.subscriptions.get_mut(k)) else {
                self.respond_once(tx, ResponseBuilder::new(request, 481), peer, now);
                return;
            };
            sub.expires_at = now + Duration::from_secs(u64::from(expires));
            sub.peer = peer;
            let tag = sub.dialog.local_tag.clone();
            let b =
                ResponseBuilder::new(request, 200).header(HeaderName::Expires, expires.to_string());
            let bytes = self.finish(b, peer, Some(&tag));
            let _ = self.transactions.respond(tx, bytes, now);
            if let Some(key) = key {
                self.notify_subscription(&key, expires, now);
                if expires == 0 {
                    self.mwi.subscriptions.remove(&key);
                }
            }
            return;
        }
        let Some(subscriber) = self.authorize_new_dialog(tx, request, peer, now) else {
            return;
        };
        let mailbox = super::calls::dialled_number(request);
        if mailbox != subscriber.number {
            let b = ResponseBuilder::with_reason(request, 403, "Forbidden (only your own mailbox)");
            self.respond_once(tx, b, peer, now);
            return;
        }
        // One extension holds at most max_subscriptions_per_extension live subscriptions (issue 12 item 3).
        let held = self
            .mwi
            .subscriptions
            .values()
            .filter(|s| s.mailbox == subscriber.number && s.expires_at > now)
            .count();
        let origin = Origin {
            transport: peer.transport,
            source: peer.addr,
            local: unspecified(peer.addr),
        };
        if let Some(r) =
            self.subscription_limit(&subscriber.number, held, origin, self.clock.at(now))
        {
            let warning = format!("399 palisade \"{}\"", r.reason_code());
            let b = ResponseBuilder::with_reason(request, r.status(), &r.phrase())
                .header(HeaderName::Warning, warning);
            self.respond_once(tx, b, peer, now);
            return;
        }
        if self.mwi.subscriptions.len() >= MAX_SUBSCRIPTIONS {
            self.mwi.subscriptions.retain(|_, s| s.expires_at > now);
            if self.mwi.subscriptions.len() >= MAX_SUBSCRIPTIONS {
                let b = ResponseBuilder::new(request, 503).header(HeaderName::RetryAfter, "60");
                self.respond_once(tx, b, peer, now);
                return;
            }
        }
        let tag = format!("{:016x}", rand::random::<u64>());
        let dialog = Dialog::uas(request, tag.clone());
        let mut b =
            ResponseBuilder::new(request, 200).header(HeaderName::Expires, expires.to_string());
        if let Some(contact) = self.calls.contact_for(&peer) {
            b = b.header(HeaderName::Contact, contact);
        }
        let bytes = self.finish(b, peer, Some(&tag));
        if let Err(e) = self.transactions.respond(tx, bytes, now) {
            tracing::debug!(error = %e, "SUBSCRIBE not answered");
            return;
        }
        let key = dialog.key();
        self.mwi.subscriptions.insert(
            key.clone(),
            Subscription {
                mailbox,
                dialog,
                peer,
                expires_at: now + Duration::from_secs(u64::from(expires)),
            },
        );
        // RFC 6665 §4.2.1: a NOTIFY with the current state right after the 200.
        self.notify_subscription(&key, expires, now);
        if expires == 0 {
            self.mwi.subscriptions.remove(&key);
        }
    }

    fn respond_once(&mut self, tx: ServerTxId, b: ResponseBuilder<'_>, peer: Peer, now: Instant) {
        let bytes = self.finish(b, peer, None);
        if let Err(e) = self.transactions.respond_once(tx, bytes, now) {
            tracing::debug!(error = %e, "SUBSCRIBE refusal not sent");
        }
    }

    fn summary(&self, mailbox: &str) -> Bytes {
        let counts = self.mwi.counts.get(mailbox).copied().unwrap_or_default();
        let account = format!("sip:{mailbox}@{}", self.calls.domain());
        Bytes::from(crate::voicemail::message_summary(&account, counts))
    }

    /// Sends the current state in one subscription (`expires` 0: its last NOTIFY).
    fn notify_subscription(&mut self, key: &(String, String, String), expires: u32, now: Instant) {
        let body = match self.mwi.subscriptions.get(key) {
            Some(sub) => self.summary(&sub.mailbox),
            None => return,
        };
        let Some(sub) = self.mwi.subscriptions.get_mut(key) else {
            return;
        };
        sub.dialog.local_cseq += 1;
        let state = if expires == 0 {
            "terminated;reason=timeout".to_string()
        } else {
            format!("active;expires={expires}")
        };
        let request = self.calls.dialog_request(
            &sub.dialog,
            "NOTIFY",
            sub.dialog.local_cseq,
            &sub.peer,
            &[
                (HeaderName::Event, "message-summary".into()),
                (HeaderName::SubscriptionState, state),
            ],
            Some(("application/simple-message-summary", body)),
        );
        let peer = sub.peer;
        if let Some(request) = request {
            self.send_notify(request, peer, now);
        }
    }

    /// New counts for `mailbox`: NOTIFY its live subscriptions, and its registered phones when it wants
    /// unsolicited indications.
    fn notify_mailbox(&mut self, mailbox: &str, now: Instant) {
        self.mwi.subscriptions.retain(|_, s| s.expires_at > now);
        let keys: Vec<_> = self
            .mwi
            .subscriptions
            .iter()
            .filter(|(_, s)| s.mailbox == mailbox)
            .map(|(k, s)| {
                let left = s.expires_at.saturating_duration_since(now).as_secs();
                (
                    k.clone(),
                    u32::try_from(left.max(1)).unwrap_or(MAX_SUBSCRIPTION),
                )
            })
            .collect();
        for (key, left) in keys {
            self.notify_subscription(&key, left, now);
        }
        let unsolicited = self
            .core
            .extension(mailbox)
            .is_some_and(|e| e.mwi_unsolicited && e.enabled);
        if !unsolicited {
            return;
        }
        let wall = self.clock.at(now);
        let contacts: Vec<_> = self
            .core
            .registrar()
            .lookup(mailbox, unix_secs(wall))
            .into_iter()
            .cloned()
            .collect();
        let body = self.summary(mailbox);
        let domain = self.calls.domain().to_string();
        for c in contacts {
            let dialog = Dialog::uac(
                format!("{:016x}@{domain}", rand::random::<u64>()),
                format!("{:016x}", rand::random::<u64>()),
                format!("<sip:{mailbox}@{domain}>"),
                None,
                format!("<sip:{mailbox}@{domain}>"),
                c.contact.clone(),
            );
            let peer = Peer::new(c.source, c.transport);
            let request = self.calls.dialog_request(
                &dialog,
                "NOTIFY",
                1,
                &peer,
                &[
                    (HeaderName::Event, "message-summary".into()),
                    (HeaderName::SubscriptionState, "active".into()),
                ],
                Some(("application/simple-message-summary", body.clone())),
            );
            if let Some(request) = request {
                self.send_notify(request, peer, now);
            }
        }
    }

    fn send_notify(&mut self, request: Message, peer: Peer, now: Instant) {
        if let Err(e) = self.transactions.send_request(request, peer, now) {
            tracing::debug!(error = %e, "message-waiting NOTIFY not sent");
        }
    }
}

/// (Call-ID, our tag, their tag) of an in-dialog request.
fn dialog_key(msg: &Message) -> Option<(String, String, String)> {
    let call_id = String::from_utf8_lossy(msg.call_id()?).into_owned();
    let local = msg.to().ok()?.tag()?.to_string();
    let remote = msg.from().ok()?.tag().unwrap_or_default().to_string();
    Some((call_id, local, remote))
}
