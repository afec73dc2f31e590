//! Carries out what the endpoint asks of the edge (`Service::poll_event`): opening a call's relay sockets and
//! running voicemail tasks. This is I/O (sockets bound, tasks spawned), so it happens here, outside the service's
//! lock, and the result goes back as an input (`media_ready`, `app_ready`). One task handles the events in the
//! order the endpoint produced them, so a `StopApp` never overtakes the `StartApp` of the same call.

use std::sync::Arc;
use std::time::Instant;

use crate::call_media::RelayControl;
use crate::service::Event;
use crate::transport::Edge;
use crate::voicemail::Apps;

pub async fn run(edge: Arc<Edge>, relay: RelayControl, mut apps: Apps) {
    loop {
        edge.events_ready().await;
        while let Some(event) = edge.with_service(|s| s.poll_event()) {
            let out = match event {
                Event::AllocateMedia { call } => {
                    let opened = relay.open();
                    edge.with_service(|s| s.media_ready(call, opened, Instant::now()))
                }
                Event::StartApp(start) => {
                    let call = start.call;
                    let started = apps.start(start);
                    edge.with_service(|s| s.app_ready(call, started, Instant::now()))
                }
                Event::AppDigit { call, digit } => {
                    apps.digit(call, digit);
                    Vec::new()
                }
                Event::StopApp { call } => {
                    apps.stop(call);
                    Vec::new()
                }
                Event::QueuePosition { call, position } => {
                    apps.position(call, position);
                    Vec::new()
                }
                Event::AppRefused { call } => {
                    apps.refused(call);
                    Vec::new()
                }
            };
            edge.wake_timers();
            edge.dispatch(out);
        }
    }
}
