//! The live stream: calls starting and ending, registrations coming and going, security events and bans, as
//! Server-Sent Events. One task reads what the server writes to the database (new security events, the set of
//! calls in progress, the registrations) once a second and broadcasts the differences; each SSE client
//! subscribes. A slow client skips what it missed rather than holding memory.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::Serialize;
use tokio::sync::broadcast;

use super::State;

/// Messages buffered per client before it starts skipping.
const BUFFER: usize = 1024;
/// How often the database is read.
const POLL: Duration = Duration::from_secs(1);
/// Events read per poll at most (a flood is summarised by the counts, not replayed row by row).
const MAX_EVENTS_PER_POLL: u32 = 200;

/// One thing that happened.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveEvent {
    CallStarted {
        call_id: String,
        caller: String,
        callee: String,
    },
    CallEnded {
        call_id: String,
    },
    Registered {
        extension: String,
        contact: String,
        source: String,
    },
    Unregistered {
        extension: String,
        contact: String,
    },
    Security {
        id: i64,
        at: i64,
        kind: String,
        reason: String,
        source: String,
        user: Option<String>,
    },
    /// Counts after any change: calls in progress, registered extensions.
    Status {
        calls: usize,
        registered: usize,
    },
}

pub struct Live {
    tx: broadcast::Sender<LiveEvent>,
}

impl Default for Live {
    fn default() -> Self {
        Self::new()
    }
}

impl Live {
    pub fn new() -> Live {
        Live {
            tx: broadcast::channel(BUFFER).0,
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.tx.subscribe()
    }

    /// Clients subscribed now.
    pub fn watchers(&self) -> usize {
        self.tx.receiver_count()
    }

    pub fn send(&self, e: LiveEvent) {
        let _ = self.tx.send(e);
    }
}

/// What was seen at the last poll.
#[derive(Debug, Default)]
struct Seen {
    last_event: i64,
    calls: BTreeSet<(String, String, String)>,
    bindings: BTreeSet<(String, String, String)>,
}

/// Reads the database once a second and broadcasts what changed.
pub async fn poll_loop(state: State) {
    let mut seen = Seen {
        last_event: state
            .db
            .list_events_page(None, None, None, 1)
            .await
            .ok()
            .and_then(|v| v.first().map(|e| e.id))
            .unwrap_or(0),
        ..Seen::default()
    };
    let mut first = true;
    loop {
        // Nobody watching: read nothing; the next watcher's first poll takes a fresh baseline without replaying.
        if state.live.watchers() == 0 {
            first = true;
        } else {
            if let Err(e) = poll_once(&state, &mut seen, first).await {
                tracing::debug!(error = %e, "live stream: cannot read the database");
            }
            first = false;
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn poll_once(state: &State, seen: &mut Seen, first: bool) -> anyhow::Result<()> {
    let db = &state.db;
    let mut events = db
        .list_events_page(None, None, None, MAX_EVENTS_PER_POLL)
        .await?;
    events.retain(|e| e.id > seen.last_event);
    events.reverse();
    for e in events {
        seen.last_event = seen.last_event.max(e.id);
        if first {
            continue;
        }
        state.live.send(LiveEvent::Security {
            id: e.id,
            at: e.at,
            kind: e.kind,
            reason: e.reason,
            source: e.source,
            user: e.user,
        });
    }
    let calls: BTreeSet<(String, String, String)> = db
        .list_active_calls()
        .await?
        .into_iter()
        .map(|c| (c.call.call_id, c.call.caller, c.call.callee))
        .collect();
    let now_s = crate::admin::time::now_ms() / 1000;
    let bindings: BTreeSet<(String, String, String)> = db
        .list_bindings()
        .await?
        .into_iter()
        .filter(|b| b.expires_at > now_s)
        .map(|b| (b.aor, b.contact_uri, b.source_addr))
        .collect();
    let changed = calls != seen.calls || bindings != seen.bindings;
    if !first {
        for (call_id, caller, callee) in calls.difference(&seen.calls) {
            state.live.send(LiveEvent::CallStarted {
                call_id: call_id.clone(),
                caller: caller.clone(),
                callee: callee.clone(),
            });
        }
        for (call_id, _, _) in seen.calls.difference(&calls) {
            state.live.send(LiveEvent::CallEnded {
                call_id: call_id.clone(),
            });
        }
        for (extension, contact, source) in bindings.difference(&seen.bindings) {
            state.live.send(LiveEvent::Registered {
                extension: extension.clone(),
                contact: contact.clone(),
                source: source.clone(),
            });
        }
        for (extension, contact, _) in seen.bindings.difference(&bindings) {
            state.live.send(LiveEvent::Unregistered {
                extension: extension.clone(),
                contact: contact.clone(),
            });
        }
    }
    if changed || first {
        let registered: BTreeSet<&String> = bindings.iter().map(|b| &b.0).collect();
        state.live.send(LiveEvent::Status {
            calls: calls.len(),
            registered: registered.len(),
        });
    }
    seen.calls = calls;
    seen.bindings = bindings;
    Ok(())
}

/// The SSE response: one `data:` JSON object per event, named by its type.
pub fn stream(state: &State) -> Sse<impl Stream<Item = Result<Event, Infallible>> + use<>> {
    let rx = state.live.subscribe();
    let s = futures_util::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(e) => {
                    let name = match &e {
                        LiveEvent::CallStarted { .. } => "call_started",
                        LiveEvent::CallEnded { .. } => "call_ended",
                        LiveEvent::Registered { .. } => "registered",
                        LiveEvent::Unregistered { .. } => "unregistered",
                        LiveEvent::Security { .. } => "security",
                        LiveEvent::Status { .. } => "status",
                    };
                    let data = serde_json::to_string(&e).unwrap_or_else(|_| "{}".into());
                    return Some((Ok(Event::default().event(name).data(data)), rx));
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(s).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
