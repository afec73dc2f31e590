//! `palisade serve`: prepares the data directory and TLS, binds the listeners, runs the transport and timer
//! tasks, and waits for SIGTERM or SIGINT.

use std::io::Write;

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};
use tokio_rustls::TlsAcceptor;

use crate::config::{self, Config, transport_name};
use pbx::store::Db;

use crate::service::{Service, ServiceConfig, Transport, WallClock};
use crate::transport::bind::{self, Listener};
use crate::transport::{Edge, stream, udp};
use crate::{data_dir, store_sync, tls};

/// The line printed on stdout once every listener is up.
pub const READY_LINE: &str = "palisade ready";

pub async fn run(config: Config) -> anyhow::Result<()> {
    data_dir::prepare(&config.data_dir)?;

    let listeners = match &config.listen {
        Some(specs) => bind::bind_explicit(specs)?,
        None => bind::bind_defaults(&config::default_listeners())?,
    };
    let tls_acceptor = if listeners.iter().any(|l| l.transport() == Transport::Tls) {
        let server = tls::server_config(&config.tls, &config.data_dir, &config.domain)?;
        Some(TlsAcceptor::from(server))
    } else {
        None
    };

    // Handlers first, so that a signal right after "ready" shuts down cleanly.
    let mut sigterm =
        signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
    let mut sigint =
        signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;

    let db = Db::open_in(&config.data_dir)
        .await
        .with_context(|| format!("cannot open the database in {}", config.data_dir.display()))?;
    let clock = WallClock::now();
    let loaded = store_sync::load(&db, &config, clock.wall).await?;
    let service = Service::new(
        ServiceConfig {
            domain: loaded.domain.clone(),
            server_header: config.server_header.clone(),
            limits: config.limits.clone(),
        },
        loaded.core,
        loaded.guard,
        clock,
    );
    let udp_endpoints = listeners
        .iter()
        .filter_map(|l| match l {
            Listener::Udp(ep) => Some(ep.clone()),
            Listener::Stream { .. } => None,
        })
        .collect();
    let edge = Edge::new(
        service,
        udp_endpoints,
        config.limits.clone(),
        config.transport_limits.clone(),
    );

    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(edge.clone().run_timers());
    tasks.spawn(store_sync::run(db.clone(), edge.clone(), loaded.version));
    for l in listeners {
        tracing::info!(transport = %transport_name(l.transport()), addr = %l.local(), "listening");
        match l {
            Listener::Udp(ep) => {
                tasks.spawn(udp::recv_loop(edge.clone(), ep));
            }
            Listener::Stream {
                transport,
                listener,
                ..
            } => {
                let tls = (transport == Transport::Tls)
                    .then(|| tls_acceptor.clone())
                    .flatten();
                tasks.spawn(stream::accept_loop(edge.clone(), listener, tls));
            }
        }
    }
    tracing::info!(domain = %config.domain, data = %config.data_dir.display(), "palisade ready");
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{READY_LINE}");
        let _ = out.flush();
    }

    tokio::select! {
        _ = sigterm.recv() => tracing::info!("SIGTERM received; shutting down"),
        _ = sigint.recv() => tracing::info!("SIGINT received; shutting down"),
    }
    tasks.abort_all();
    // Registrations and security events are written behind; write what is pending before leaving.
    if let Err(e) = store_sync::flush(&db, &edge).await {
        tracing::error!(error = %e, "could not write pending registrations and events");
    }
    db.close().await;
    Ok(())
}
