//! Operations endpoints: Prometheus metrics, a health check for load balancers and the server's status, as one
//! `axum::Router` ([`http::router`]) that the admin listener mounts, or that `--metrics-listen` serves alone.
//!
//! Counters on the hot paths are atomics ([`counters`]); everything else is read when scraped. Labels never
//! carry call IDs, user names or addresses (docs/operations.md lists every metric).

pub mod counters;
pub mod http;
pub mod process;
pub mod status;
pub mod status_command;

use std::sync::OnceLock;

use ::metrics::{describe_counter, describe_gauge, describe_histogram, gauge};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use counters::Direction;

/// The store write latency histogram.
pub const STORE_WRITE_SECONDS: &str = "palisade_store_write_seconds";
/// Security decisions by kind and reason code.
pub const SECURITY_EVENTS: &str = "palisade_security_events_total";
/// Failed authentications by reason.
pub const AUTH_FAILURES: &str = "palisade_auth_failures_total";
/// Ended calls by disposition.
pub const CALLS_ENDED: &str = "palisade_calls_ended_total";

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder once (later calls return the same handle); `None` if another recorder
/// was installed first.
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(STORE_WRITE_SECONDS.to_string()),
                    &[
                        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                    ],
                )
                .ok()?;
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            ::metrics::set_global_recorder(recorder).ok()?;
            describe();
            Some(handle)
        })
        .clone()
}

fn describe() {
    describe_counter!(
        "palisade_sip_requests_total",
        "SIP requests by direction (in, out) and method (unknown methods count as other)"
    );
    describe_counter!(
        "palisade_sip_responses_total",
        "SIP responses by direction (in, out) and status code"
    );
    describe_counter!(
        "palisade_guard_dropped_total",
        "Packets the anti-hacking guard dropped before parsing (blacklisted or throttled sources)"
    );
    describe_counter!(
        "palisade_relay_packets_total",
        "Media relay packets received on relay ports (in) and forwarded to the other leg (out)"
    );
    describe_counter!(
        "palisade_relay_bytes_total",
        "Media relay bytes received (in) and forwarded (out)"
    );
    describe_counter!(
        SECURITY_EVENTS,
        "Security decisions by kind (challenge, auth_failure, ban, throttle, policy refusal, ...) and reason code"
    );
    describe_counter!(AUTH_FAILURES, "Failed authentications by reason code");
    describe_counter!(
        CALLS_ENDED,
        "Ended calls and call attempts by disposition; its rate is calls per second"
    );
    describe_gauge!("palisade_registrations", "Contacts registered now");
    describe_gauge!("palisade_calls_active", "Calls in progress");
    describe_gauge!(
        "palisade_connections",
        "Open TCP, TLS and WebSocket connections"
    );
    describe_gauge!(
        "palisade_transactions",
        "SIP transactions in progress by side (server, client)"
    );
    describe_gauge!(
        "palisade_bans_active",
        "Automatic bans in force (manual entries are in palisade_ip_rules)"
    );
    describe_gauge!(
        "palisade_ip_rules",
        "Blacklist and whitelist entries, manual and automatic"
    );
    describe_gauge!(
        "palisade_relay_ports_in_use",
        "Media relay UDP ports in use"
    );
    describe_gauge!(
        "palisade_relay_ports_configured",
        "Media relay UDP ports configured"
    );
    describe_gauge!(
        "palisade_certificate_expiry_seconds",
        "Unix time the TLS certificate expires"
    );
    describe_gauge!(
        "palisade_build_info",
        "Always 1; the version label says which build runs"
    );
    describe_gauge!(
        "palisade_start_time_seconds",
        "Unix time the server started"
    );
    describe_histogram!(
        STORE_WRITE_SECONDS,
        ::metrics::Unit::Seconds,
        "Time to write one batch of registrations, security events and call records to the database"
    );
    describe_counter!(
        "process_cpu_seconds_total",
        ::metrics::Unit::Seconds,
        "User and system CPU time spent"
    );
    describe_gauge!(
        "process_resident_memory_bytes",
        ::metrics::Unit::Bytes,
        "Resident memory size"
    );
    describe_gauge!(
        "process_virtual_memory_bytes",
        ::metrics::Unit::Bytes,
        "Virtual memory size"
    );
    describe_gauge!("process_open_fds", "Open file descriptors");
    describe_gauge!("process_threads", "Operating system threads");
}

/// Brings every scraped value up to date and renders the Prometheus text format.
pub fn render(handle: &PrometheusHandle, sources: &status::Sources) -> String {
    let dir = |d: Direction| match d {
        Direction::In => "in",
        Direction::Out => "out",
    };
    for (d, method, v) in counters::SIP.requests() {
        ::metrics::counter!("palisade_sip_requests_total", "direction" => dir(d), "method" => method)
            .absolute(v);
    }
    for (d, code, v) in counters::SIP.responses() {
        ::metrics::counter!("palisade_sip_responses_total", "direction" => dir(d), "code" => code.to_string())
            .absolute(v);
    }
    let relay = &counters::RELAY;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    ::metrics::counter!("palisade_relay_packets_total", "direction" => "in")
        .absolute(load(&relay.packets_in));
    ::metrics::counter!("palisade_relay_packets_total", "direction" => "out")
        .absolute(load(&relay.packets_out));
    ::metrics::counter!("palisade_relay_bytes_total", "direction" => "in")
        .absolute(load(&relay.bytes_in));
    ::metrics::counter!("palisade_relay_bytes_total", "direction" => "out")
        .absolute(load(&relay.bytes_out));
    let stats = sources.edge.with_service(|s| s.stats());
    ::metrics::counter!("palisade_guard_dropped_total").absolute(stats.guard_dropped);

    let snapshot = sources.snapshot();
    let c = &snapshot.counts;
    gauge!("palisade_registrations").set(c.registrations as f64);
    gauge!("palisade_calls_active").set(c.calls_active as f64);
    gauge!("palisade_connections").set(c.connections as f64);
    gauge!("palisade_transactions", "side" => "server").set(c.server_transactions as f64);
    gauge!("palisade_transactions", "side" => "client").set(c.client_transactions as f64);
    gauge!("palisade_bans_active").set(c.bans_auto as f64);
    gauge!("palisade_ip_rules").set(c.ip_rules as f64);
    gauge!("palisade_relay_ports_in_use").set(c.relay_ports_in_use as f64);
    gauge!("palisade_relay_ports_configured").set(c.relay_ports_total as f64);
    if let Some(cert) = &snapshot.certificate {
        gauge!("palisade_certificate_expiry_seconds").set(cert.not_after as f64);
    }
    gauge!("palisade_build_info", "version" => crate::VERSION).set(1.0);
    gauge!("palisade_start_time_seconds").set(snapshot.info.started_at as f64);

    let p = process::read();
    ::metrics::counter!("process_cpu_seconds_total").absolute(p.cpu_seconds as u64);
    gauge!("process_resident_memory_bytes").set(p.resident_bytes as f64);
    gauge!("process_virtual_memory_bytes").set(p.virtual_bytes as f64);
    gauge!("process_open_fds").set(p.open_fds as f64);
    gauge!("process_threads").set(p.threads as f64);
    handle.run_upkeep();
    handle.render()
}

/// Counts the security events and call records one store flush wrote (called by `store_sync::flush`).
pub fn count_flushed(events: &[store::SecurityEvent], records: &[store::CdrRow]) {
    for e in events {
        ::metrics::counter!(SECURITY_EVENTS, "kind" => e.kind.clone(), "reason" => e.reason.clone()).increment(1);
        if e.kind == pbx::model::event_kind::FAILURE {
            ::metrics::counter!(AUTH_FAILURES, "reason" => e.reason.clone()).increment(1);
        }
    }
    for r in records {
        ::metrics::counter!(CALLS_ENDED, "disposition" => r.disposition.clone()).increment(1);
    }
}
