//! `palisade serve`: prepares the data directory and TLS, binds the listeners, runs the transport and timer
//! tasks, and waits for SIGTERM or SIGINT.

use std::io::Write;

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};
use tokio_rustls::TlsAcceptor;

use crate::config::{self, Config};
use store::Db;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use pbx::calls::{CallConfig, Calls, LocalAddrs};

use crate::call_media::RelayControl;
use crate::media::MediaRelay;
use crate::service::{Parts, Service, ServiceConfig, Transport, WallClock};
use crate::transport::bind::{self, Listener};
use crate::transport::{Edge, stream, udp, ws};
use crate::{data_dir, store_sync, tls, trunk_dns};

/// The line printed on stdout once every listener is up.
pub const READY_LINE: &str = "palisade ready";

pub async fn run(config: Config) -> anyhow::Result<()> {
    data_dir::prepare(&config.data_dir)?;

    let listeners = match &config.listen {
        Some(specs) => bind::bind_explicit(specs)?,
        None => bind::bind_defaults(&config::default_listeners())?,
    };
    // With a TLS listener, the certificate files are watched and reloaded without a restart (and on SIGHUP).
    let mut reloader = None;
    let mut tls_resolver = None;
    // WSS uses the same certificate as SIP over TLS.
    let sip_tls = listeners
        .iter()
        .any(|l| matches!(l.transport(), Transport::Tls | Transport::Wss));
    // The web console uses the same certificate (and the same reloads).
    let mut console_cert = None;
    let tls_acceptor = if sip_tls || !config.admin.listen.is_empty() {
        let (server, resolver) =
            tls::reloading_server_config(&config.tls, &config.data_dir, &config.domain)?;
        console_cert = Some(resolver.clone());
        reloader = Some(crate::tls_reload::spawn_reloader(resolver.clone()));
        tls_resolver = Some(resolver);
        sip_tls.then(|| TlsAcceptor::from(server))
    } else {
        None
    };

    // SIGHUP (`systemctl reload`) reloads the TLS certificate; extensions and settings from the database are
    // applied within a second anyway. Installed with or without TLS, so a reload never kills the server.
    let mut hup = signal(SignalKind::hangup()).context("cannot install the SIGHUP handler")?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            crate::notify::reloading();
            match tls_resolver.clone() {
                Some(r) => {
                    tracing::info!("SIGHUP received; reloading the TLS certificate");
                    // Failures are logged by reload(); the old certificate stays in use.
                    let _ = tokio::task::spawn_blocking(move || r.reload()).await;
                }
                None => tracing::info!("SIGHUP received; nothing to reload without a TLS listener"),
            }
            crate::notify::ready("reloaded");
        }
    });

    // Handlers first, so that a signal right after "ready" shuts down cleanly.
    let mut sigterm =
        signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
    let mut sigint =
        signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;

    let db = match &config.database {
        Some(url) => Db::open_url(url)
            .await
            .with_context(|| format!("cannot open the database {}", store::redact_url(url)))?,
        None => Db::open_in(&config.data_dir).await.with_context(|| {
            format!("cannot open the database in {}", config.data_dir.display())
        })?,
    };
    if let Some(url) = &config.database {
        tracing::info!(database = %store::redact_url(url), "store on PostgreSQL");
    }
    let clock = WallClock::now();
    let advertise = advertise_ip(&config, &listeners);
    // Several nodes on one PostgreSQL (cluster/): who this node is, so it restores only its own registrations.
    let cluster_me = match db.is_postgres() {
        true => Some(crate::cluster::node::identity(
            config.node.as_deref(),
            &listeners,
            advertise,
        )?),
        false => None,
    };
    let loaded = store_sync::load(
        &db,
        &config,
        clock.wall,
        cluster_me.as_ref().map(|m| m.name.as_str()),
    )
    .await?;
    // Loopback stays loopback (tests, a PBX behind a local proxy); otherwise listen on every address.
    let media_bind = if advertise.is_loopback() {
        advertise
    } else if advertise.is_ipv4() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    };
    let relay = MediaRelay::new(advertise, media_bind, config.calls.rtp_ports.clone()).map_err(
        |e| match e {
            crate::media::MediaError::Pool(e) => anyhow::anyhow!("invalid RTP port range: {e}"),
            e => anyhow::anyhow!("{e}"),
        },
    )?;
    tracing::info!(advertise = %advertise, ports = ?config.calls.rtp_ports, "media relay ready");
    let local = LocalAddrs {
        by_transport: listeners
            .iter()
            .map(|l| {
                let addr = l.local();
                let ip = if addr.ip().is_unspecified() {
                    advertise
                } else {
                    addr.ip()
                };
                (l.transport(), SocketAddr::new(ip, addr.port()))
            })
            .collect(),
        domain: loaded.domain.clone(),
    };
    let by_transport = local.by_transport.clone();
    let music = crate::music::MusicLibrary::default();
    let recordings =
        crate::recording::Recordings::new(db.clone(), crate::recording::root(&config.data_dir));
    let relay = RelayControl::new(relay)
        .with_music(music.clone())
        .with_recordings(recordings.clone());
    let calls = Calls::new(
        CallConfig {
            no_answer: config.calls.no_answer,
            max_duration: config.calls.max_duration,
            media_timeout: config.calls.media_timeout,
            voicemail_ring: config.calls.voicemail_ring,
            ..CallConfig::default()
        },
        local,
    );
    let mut service = Service::new(
        ServiceConfig {
            domain: loaded.domain.clone(),
            server_header: config.server_header.clone(),
            limits: config.limits.clone(),
        },
        Parts {
            core: loaded.core,
            guard: loaded.guard,
            calls,
            media: Box::new(relay.clone()),
        },
        clock,
    );
    // Trunk host names are resolved here, before the first call, and then by the trunk_dns task.
    // A digest `uri` may name this server by any address it listens on or advertises (sipp writes its target
    // address there): every listener's own address, the addresses Via and Contact say, and --advertise.
    let server_addresses: Vec<SocketAddr> = listeners
        .iter()
        .map(Listener::local)
        .chain(by_transport.iter().map(|(_, a)| *a))
        .chain([SocketAddr::new(advertise, 0)])
        .collect();
    service
        .core_mut()
        .set_server_names(&loaded.domain, server_addresses);
    service.set_local_addrs(by_transport);
    if cluster_me.is_some() {
        // A trunk is registered by the node holding its lease (cluster/trunk_lease.rs): none until then.
        service.set_held_trunks(Some(Default::default()), std::time::Instant::now());
    }
    service.apply_trunks(loaded.trunks.clone(), std::time::Instant::now());
    service.set_ring_groups(loaded.ring_groups.clone());
    let (codes, pickup) = loaded.office_features.clone();
    service.set_office_features(codes, pickup);
    let (queues, logged_out) = loaded.queues.clone();
    service.set_queues(queues, logged_out);
    service.set_resource_limits(loaded.limits.clone());
    let resolved = trunk_dns::resolve(&service.trunk_host_names()).await;
    service.set_resolved(resolved, std::time::Instant::now());
    let (app_events, app_events_rx) = tokio::sync::mpsc::unbounded_channel();
    let voicemail_root = crate::voicemail::files::root(&config.data_dir);
    sweep_voicemail_files(&db, &voicemail_root).await;
    let conferences = crate::conference::Conferences::new(db.clone(), app_events.clone());
    let apps = crate::voicemail::Apps::new(
        db.clone(),
        voicemail_root,
        media_bind,
        config.calls.voicemail_max_message,
        app_events,
    )
    .with_conferences(conferences.clone());
    service.enable_apps();
    service.set_office(crate::conference::office_numbers(&db).await?);
    let _ = service.set_voicemail_counts(db.voicemail_counts().await?, std::time::Instant::now());
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

    let metrics_handle = crate::metrics::install();
    if let Some(target) = config.syslog {
        crate::syslog::install(target, &store::settings::default_domain())
            .with_context(|| format!("cannot open a socket for syslog to {}", target.0))?;
    }
    let ops_sources = crate::metrics::status::Sources {
        edge: edge.clone(),
        relay: relay.relay().clone(),
        info: server_info(&config, (&loaded.domain, &loaded.realm), &listeners),
    };
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(me) = cluster_me {
        let joined = crate::cluster::node::join(&db, &me, &edge).await?;
        tasks.spawn(crate::cluster::node::run(
            db.clone(),
            me,
            edge.clone(),
            joined,
        ));
        tasks.spawn(crate::cluster::trunk_lease::run(db.clone(), edge.clone()));
    }
    tasks.spawn(crate::metrics::status::run_writer(
        ops_sources.clone(),
        config.data_dir.clone(),
    ));
    // /metrics, /health and /status: for the admin listener to mount, and served alone on --metrics-listen.
    let ops_router = crate::metrics::http::router(crate::metrics::http::OpsState {
        handle: metrics_handle,
        sources: ops_sources,
        db: db.clone(),
    });
    if let Some(addr) = config.metrics_listen {
        let access = crate::metrics::http::Access {
            allow: config.metrics_allow.clone(),
            token: config.metrics_token.clone(),
        };
        let serve = crate::metrics::http::serve(addr, access, ops_router.clone());
        tasks.spawn(serve.await?);
        tracing::info!(%addr, "metrics, health and status listening (HTTP)");
    }
    tasks.spawn(edge.clone().run_timers());
    tasks.spawn(run_app_events(edge.clone(), app_events_rx));
    tasks.spawn(crate::endpoint_events::run(edge.clone(), relay, apps));
    let cluster = crate::cluster::start(&db, &edge, &mut tasks);
    tasks.spawn(store_sync::run(
        db.clone(),
        edge.clone(),
        loaded.version,
        cluster,
    ));
    tasks.spawn(crate::conference::run(
        db.clone(),
        edge.clone(),
        conferences,
    ));
    tasks.spawn(crate::recording::run(
        db.clone(),
        recordings,
        crate::recording::root(&config.data_dir),
    ));
    tasks.spawn(crate::music::run(
        db.clone(),
        music,
        crate::music::root(&config.data_dir),
    ));
    tasks.spawn(trunk_dns::run(db.clone(), edge.clone()));
    tasks.spawn(crate::state_log::run(edge.clone()));
    if db.is_postgres() {
        // Palisade's backups copy the SQLite file; PostgreSQL has its own (pg_dump, base backups).
        tracing::info!(
            "scheduled backups are off with the store on PostgreSQL: back it up with pg_dump"
        );
    } else {
        tasks.spawn(crate::backup::run_scheduled(
            db.clone(),
            config.data_dir.clone(),
            config.backup.clone(),
        ));
    }
    // Provisioned phones are pointed at the first SIP listener of their transport.
    let stream_ports: Vec<(Transport, u16)> = listeners
        .iter()
        .map(|l| (l.transport(), l.local().port()))
        .collect();
    for l in listeners {
        tracing::info!(transport = %l.transport().name(), addr = %l.local(), "listening");
        match l {
            Listener::Udp(ep) => {
                tasks.spawn(udp::recv_loop(edge.clone(), ep));
            }
            Listener::Stream {
                transport,
                listener,
                ..
            } => {
                let tls = matches!(transport, Transport::Tls | Transport::Wss)
                    .then(|| tls_acceptor.clone())
                    .flatten();
                if transport.is_websocket() {
                    tasks.spawn(ws::accept_loop(edge.clone(), listener, tls));
                } else {
                    tasks.spawn(stream::accept_loop(edge.clone(), listener, tls));
                }
            }
        }
    }
    let prov_port = |t: Transport| {
        stream_ports
            .iter()
            .find(|(lt, _)| *lt == t)
            .map(|(_, p)| *p)
    };
    // The web console and REST API (console/): bound before "ready", so a port in use stops the start.
    let console_tasks = match console_cert {
        Some(cert) => {
            crate::console::start(
                &config.admin,
                config.data_dir.clone(),
                config.backup.dir.clone(),
                db.clone(),
                cert,
                crate::prov::ProvConfig {
                    domain: loaded.domain.clone(),
                    sip_tls_port: prov_port(Transport::Tls),
                    sip_tcp_port: prov_port(Transport::Tcp),
                    networks: config.admin.provisioning_networks.clone(),
                },
                crate::metrics::http::for_admin_listener(
                    ops_router.clone(),
                    config.metrics_token.clone(),
                ),
            )
            .await?
        }
        None => Vec::new(),
    };
    tracing::info!(domain = %config.domain, data = %config.data_dir.display(), "palisade ready");
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{READY_LINE}");
        let _ = out.flush();
    }

    crate::notify::ready("ready");

    tokio::select! {
        _ = sigterm.recv() => tracing::info!("SIGTERM received; shutting down"),
        _ = sigint.recv() => tracing::info!("SIGINT received; shutting down"),
    }
    crate::notify::stopping();
    unregister_trunks(&edge).await;
    for t in console_tasks {
        t.abort();
    }
    tasks.abort_all();
    if let Some(r) = reloader {
        r.abort();
    }
    // Registrations and security events are written behind; write what is pending before leaving.
    if let Err(e) = store_sync::flush(&db, &edge).await {
        tracing::error!(error = %e, "could not write pending registrations and events");
    }
    db.close().await;
    crate::metrics::status::remove(&config.data_dir);
    Ok(())
}

/// The facts `palisade status` and `/status` report that do not change while the server runs.
fn server_info(
    config: &Config,
    (domain, realm): (&str, &str),
    listeners: &[Listener],
) -> crate::metrics::status::ServerInfo {
    let tls = listeners
        .iter()
        .any(|l| matches!(l.transport(), Transport::Tls | Transport::Wss));
    let tls_cert = tls.then(|| match &config.tls {
        config::TlsSource::Files { cert, .. } => cert.clone(),
        config::TlsSource::SelfSigned => tls::self_signed_paths(&config.data_dir).0,
    });
    crate::metrics::status::ServerInfo {
        pid: std::process::id(),
        version: crate::VERSION.to_string(),
        started_at: crate::metrics::status::unix_secs(std::time::SystemTime::now()),
        domain: domain.to_string(),
        realm: realm.to_string(),
        data_dir: config.data_dir.display().to_string(),
        listeners: listeners
            .iter()
            .map(|l| format!("{}:{}", l.transport().name(), l.local()))
            .collect(),
        metrics_listen: config.metrics_listen.map(|a| a.to_string()),
        tls_cert,
    }
}

/// The address phones reach Palisade at: `--advertise`, else the first listener bound to a specific address,
/// else 127.0.0.1 (with a warning: phones elsewhere need `--advertise`).
fn advertise_ip(config: &Config, listeners: &[Listener]) -> IpAddr {
    if let Some(ip) = config.calls.advertise {
        return ip;
    }
    if let Some(l) = listeners.iter().find(|l| !l.local().ip().is_unspecified()) {
        return l.local().ip();
    }
    tracing::warn!(
        "listening on all addresses without --advertise: SDP and Contact will say 127.0.0.1, so only \
        local phones can call; set --advertise to the address phones reach"
    );
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}

/// Carries media applications' reports (hang up, wrong PIN, unlock, new counts) into the service.
async fn run_app_events(
    edge: std::sync::Arc<Edge>,
    mut events: tokio::sync::mpsc::UnboundedReceiver<crate::service::AppEvent>,
) {
    while let Some(event) = events.recv().await {
        let out = edge.with_service(|s| s.on_app_event(event, std::time::Instant::now()));
        edge.wake_timers();
        edge.dispatch(out);
    }
}

/// Unregisters the trunks registered to their providers (Expires: 0, a challenge answered as usual), waiting at
/// most two seconds: the sockets and timers still run meanwhile.
async fn unregister_trunks(edge: &std::sync::Arc<Edge>) {
    let out = edge.with_service(|s| s.unregister_trunks(std::time::Instant::now()));
    if out.is_empty() {
        return;
    }
    tracing::info!("unregistering trunks");
    edge.wake_timers();
    edge.dispatch(out);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while std::time::Instant::now() < deadline && edge.with_service(|s| s.trunks_unregistering()) {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Removes voicemail files no row names (a crash between writing a file and recording it).
async fn sweep_voicemail_files(db: &Db, root: &std::path::Path) {
    match db.voicemail_files().await {
        Ok(names) => {
            let known = names.into_iter().collect();
            let removed = crate::voicemail::files::sweep(root, &known);
            if removed > 0 {
                tracing::info!(removed, "removed voicemail files left without a record");
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot list voicemail files; none removed"),
    }
}
