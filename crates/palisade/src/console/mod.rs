//! The web console and REST API (issue 13), served over HTTPS on the admin listener.
//!
//! - [`listener`]: accepts connections, refuses sources outside `admin_networks` and banned sources before TLS,
//!   answers plain HTTP with a redirect to HTTPS, and serves the router over TLS with the SIP certificate.
//! - [`guard`]: console-login and API failures counted per source, and the console's own bans.
//! - [`sessions`]: console sessions (cookie, idle timeout, CSRF token, role).
//! - [`api`]: `/api/v1`, JSON with bearer tokens; [`openapi`] describes it.
//! - [`pages`]: the server-rendered console; [`live`]: the stream of what happens (SSE).
//!
//! Every change goes through the functions of [`crate::admin`], the same as the CLI's, and into the audit log.

pub mod api;
pub mod backups;
pub mod guard;
pub mod listener;
pub mod live;
pub mod media_api;
pub mod office_api;
pub mod openapi;
mod pages;
pub mod phones_api;
pub mod routing_api;
pub mod sessions;
pub mod totp;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use store::Db;

use crate::admin::accounts::Actor;
use crate::config::AdminListen;
use crate::tls_reload::ReloadingResolver;

/// What every handler shares.
pub struct Console {
    pub db: Db,
    pub data_dir: PathBuf,
    /// Where backups are written and listed (`[backup] dir`, default DATA/backups).
    pub backup_dir: PathBuf,
    pub sessions: sessions::Sessions,
    pub guard: guard::ConsoleGuard,
    pub live: live::Live,
    pub cert: Arc<ReloadingResolver>,
    /// Provisioning (`/prov/`): the SIP ports and domain phones are given, and who may fetch.
    pub prov: crate::prov::ProvConfig,
}

pub type State = Arc<Console>;

/// The client's address, attached to each request by the listener (the transport source: never a header).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

impl Peer {
    pub fn ip(&self) -> IpAddr {
        listener::canonical_ip(self.0.ip())
    }

    /// An audit actor for `who` at this address.
    pub fn actor(&self, who: String) -> Actor {
        Actor {
            name: who,
            source: self.ip().to_string(),
        }
    }
}

/// The SHA-256 (hex) of the client certificate the TLS peer presented, if any (phones with a vendor certificate).
#[derive(Debug, Clone)]
pub struct ClientCert(pub Option<String>);

/// Whether the source is in `admin_networks` (else it reached the listener through `provisioning_networks`
/// and may fetch only under /prov/).
#[derive(Debug, Clone, Copy)]
pub struct AdminAccess(pub bool);

/// A source banned while its connection was open (keep-alive) gets nothing more on it.
async fn refuse_banned(
    axum::extract::State(state): axum::extract::State<State>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let banned = req
        .extensions()
        .get::<Peer>()
        .is_some_and(|p| state.guard.is_banned(p.ip()));
    // A source that is only in provisioning_networks sees nothing but /prov/.
    let admin = req.extensions().get::<AdminAccess>().is_some_and(|a| a.0);
    if !admin && !req.uri().path().starts_with("/prov/") {
        return (
            axum::http::StatusCode::NOT_FOUND,
            [(axum::http::header::CONNECTION, "close")],
            "Not Found\n",
        )
            .into_response();
    }
    if banned {
        return (
            axum::http::StatusCode::FORBIDDEN,
            [(axum::http::header::CONNECTION, "close")],
            "",
        )
            .into_response();
    }
    next.run(req).await
}

/// Binds the admin listeners and serves the console, the API and `extra` (routes other parts of Palisade mount
/// on the admin listener, e.g. `/metrics` and `/health`: they sit behind the network and ban checks and TLS, and
/// do their own authentication if they need any). Returns the running tasks; none when the console is off.
pub async fn start(
    cfg: &AdminListen,
    data_dir: PathBuf,
    backup_dir: PathBuf,
    db: Db,
    cert: Arc<ReloadingResolver>,
    prov: crate::prov::ProvConfig,
    extra: Router,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    if cfg.listen.is_empty() {
        return Ok(Vec::new());
    }
    let state: State = Arc::new(Console {
        guard: guard::ConsoleGuard::load(&db).await?,
        sessions: sessions::Sessions::default(),
        live: live::Live::new(),
        db,
        data_dir,
        backup_dir,
        cert: cert.clone(),
        prov,
    });
    let app = Router::new()
        .merge(pages::router(state.clone()))
        .nest("/api/v1", api::router(state.clone()))
        .merge(crate::prov::http::router(state.clone()))
        .merge(extra)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            refuse_banned,
        ));
    let mut tasks = vec![
        tokio::spawn(guard::refresh_loop(state.clone())),
        tokio::spawn(guard::flush_loop(state.clone())),
        tokio::spawn(live::poll_loop(state.clone())),
    ];
    let tls = listener::acceptor(cert, cfg.client_certs)?;
    for addr in &cfg.listen {
        let l = match listener::bind(*addr) {
            Ok(l) => l,
            // The default [::]:8443 on a host without IPv6: the IPv4 listener serves.
            Err(e) if !cfg.explicit && addr.is_ipv6() => {
                tracing::warn!(error = %format!("{e:#}"), "web console: no IPv6 listener; continuing with IPv4");
                continue;
            }
            Err(e) => return Err(e),
        };
        tracing::info!(addr = %l.local_addr().map(|a| a.to_string()).unwrap_or_default(), "web console listening (https)");
        tasks.push(tokio::spawn(listener::accept_loop(
            l,
            tls.clone(),
            app.clone(),
            state.clone(),
            Arc::new(cfg.networks.clone()),
            Arc::new(state.prov.networks.clone()),
        )));
    }
    Ok(tasks)
}
