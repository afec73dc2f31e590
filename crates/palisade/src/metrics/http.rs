//! The HTTP side: `GET /metrics` (Prometheus text format), `GET /health` (200 when the server can take calls,
//! 503 otherwise; for load balancers) and `GET /status` (the status snapshot as JSON).
//!
//! [`router`] is what the admin listener mounts. [`serve`] runs it alone on `--metrics-listen`, plain HTTP, and
//! answers 403 to any source outside loopback and the configured `metrics_allow` networks, and 401 to a request
//! without the `metrics_token` bearer token when one is configured (`/health` excepted: load balancers).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ipnet::IpNet;
use metrics_exporter_prometheus::PrometheusHandle;
use store::Db;

use super::status::Sources;

/// How long the health check waits for the database.
const HEALTH_DB_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct OpsState {
    pub handle: Option<PrometheusHandle>,
    pub sources: Sources,
    pub db: Db,
}

/// The operations routes, for mounting on any listener.
pub fn router(state: OpsState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/status", get(status))
        .with_state(state)
}

async fn metrics(State(state): State<OpsState>) -> Response {
    let Some(handle) = state.handle.clone() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder not installed\n",
        )
            .into_response();
    };
    let sources = state.sources.clone();
    // Reading /proc and the service lock is quick, but not async: keep it off the reactor.
    match tokio::task::spawn_blocking(move || super::render(&handle, &sources)).await {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn health(State(state): State<OpsState>) -> Response {
    let db = tokio::time::timeout(HEALTH_DB_TIMEOUT, state.db.current_version()).await;
    let (code, status, detail) = match db {
        Ok(Ok(_)) => (StatusCode::OK, "ok", None),
        Ok(Err(e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            Some(format!("database: {e}")),
        ),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            Some("database: no answer within 2 s".to_string()),
        ),
    };
    let body = serde_json::json!({ "status": status, "version": crate::VERSION, "detail": detail });
    (code, axum::Json(body)).into_response()
}

async fn status(State(state): State<OpsState>) -> Response {
    let sources = state.sources.clone();
    match tokio::task::spawn_blocking(move || sources.snapshot()).await {
        Ok(s) => axum::Json(s).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Whether `ip` may use the standalone listener: loopback always, else only inside `allow`.
pub fn allowed(ip: std::net::IpAddr, allow: &[IpNet]) -> bool {
    let ip = match ip {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map(std::net::IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    ip.is_loopback() || allow.iter().any(|n| n.contains(&ip))
}

/// Who may use the standalone listener.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// Networks besides loopback (`metrics_allow`).
    pub allow: Vec<IpNet>,
    /// A bearer token every request but `/health` must carry (`metrics_token`), if set.
    pub token: Option<String>,
}

/// Whether an `Authorization` header value carries `token` as a bearer token (compared in constant time).
pub fn bearer_matches(header: Option<&str>, token: &str) -> bool {
    let Some(given) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
        return false;
    };
    let (a, b) = (given.trim().as_bytes(), token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn only_allowed(
    State(access): State<std::sync::Arc<Access>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    if !allowed(peer.ip(), &access.allow) {
        tracing::debug!(%peer, "metrics listener: source not allowed");
        return (
            StatusCode::FORBIDDEN,
            "forbidden: add this network to metrics_allow in palisade.toml\n",
        )
            .into_response();
    }
    token_required(access.token.as_deref(), request, next).await
}

/// 401 to a request without the `metrics_token` bearer token, when one is configured (`/health` excepted).
async fn token_required(token: Option<&str>, request: Request, next: Next) -> Response {
    if let Some(token) = token
        && request.uri().path() != "/health"
    {
        let header = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if !bearer_matches(header, token) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "unauthorized: send Authorization: Bearer <metrics_token>\n",
            )
                .into_response();
        }
    }
    next.run(request).await
}

/// The routes as the admin listener mounts them: that listener already refuses sources outside
/// `admin_networks`, so only the `metrics_token` (when set) is checked here.
pub fn for_admin_listener(router: Router, token: Option<String>) -> Router {
    let token = std::sync::Arc::new(token);
    router.layer(middleware::from_fn(move |request: Request, next: Next| {
        let token = token.clone();
        async move { token_required(token.as_deref(), request, next).await }
    }))
}

/// Binds `addr` (failing at start, with the reason, if it cannot) and returns the task serving `router` there.
pub async fn serve(
    addr: SocketAddr,
    access: Access,
    router: Router,
) -> anyhow::Result<impl std::future::Future<Output = ()>> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for metrics (metrics_listen)"))?;
    let app = router.layer(middleware::from_fn_with_state(
        std::sync::Arc::new(access),
        only_allowed,
    ));
    Ok(async move {
        if let Err(e) = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        {
            tracing::error!(error = %e, "metrics listener stopped");
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens() {
        assert!(bearer_matches(Some("Bearer s3cret"), "s3cret"));
        assert!(!bearer_matches(Some("Bearer s3cre"), "s3cret"));
        assert!(!bearer_matches(Some("Bearer s3creT"), "s3cret"));
        assert!(!bearer_matches(Some("Basic s3cret"), "s3cret"));
        assert!(!bearer_matches(None, "s3cret"));
    }

    #[test]
    fn loopback_always_others_only_when_configured() {
        let lan: IpNet = "10.0.0.0/8".parse().unwrap();
        assert!(allowed("127.0.0.1".parse().unwrap(), &[]));
        assert!(allowed("::1".parse().unwrap(), &[]));
        assert!(allowed("::ffff:127.0.0.1".parse().unwrap(), &[]));
        assert!(!allowed("10.1.2.3".parse().unwrap(), &[]));
        assert!(allowed("10.1.2.3".parse().unwrap(), &[lan]));
        assert!(allowed("::ffff:10.1.2.3".parse().unwrap(), &[lan]));
        assert!(!allowed("192.0.2.1".parse().unwrap(), &[lan]));
    }
}
