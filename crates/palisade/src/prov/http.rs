//! `GET /prov/<token>/<file>`: the only route of provisioning. Every refusal is the same 404 (nothing tells an
//! unknown token from a wrong MAC or a closed window), a `provisioning_refused` security event, and — unless it
//! is an optional file the right phone asked for — a failure counted toward the source's console ban.

use std::net::IpAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State as AxState};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use pbx::auth::credentials::{Credentials, generate_password};
use pbx::model::SecurityEventKind;
use store::phones::{IssuedHashes, Phone, PhoneBinding};

use super::decide::{Bound, Decision, Fetch, PhoneState, Refusal, decide};
use super::model::{FileKind, Model};
use super::render::{Secrets, Settings, render};
use super::token;
use crate::console::{ClientCert, Peer, State};

/// The security event of a refused fetch.
pub const REFUSED_EVENT: SecurityEventKind = SecurityEventKind::ProvisioningRefused;
/// The security event of a fetch that carried credentials (and replaced the extension's password).
pub const CREDENTIALS_EVENT: SecurityEventKind = SecurityEventKind::ProvisioningCredentials;

/// How long the response carrying a new password waits, so the running server has loaded the new password
/// (it polls the database every 500 ms) before the phone can register with it.
const RELOAD_WAIT: Duration = Duration::from_millis(700);

pub fn router(state: State) -> Router {
    Router::new()
        .route("/prov", axum::routing::any(handle))
        .route("/prov/", axum::routing::any(handle))
        .route("/prov/{*rest}", axum::routing::any(handle))
        .with_state(state)
}

/// The one answer to every refused fetch.
fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        "Not Found\n",
    )
        .into_response()
}

/// What a fetch brought: where from, and what it showed.
struct Incoming {
    ip: IpAddr,
    path: String,
    method: Method,
    user_agent: Option<String>,
    cert: Option<String>,
    host: Option<String>,
}

async fn handle(AxState(state): AxState<State>, req: Request) -> Response {
    let Some(peer) = req.extensions().get::<Peer>().copied() else {
        return not_found();
    };
    // Everything is copied out of the request before the first await (a request body is not Sync).
    let incoming = {
        let header = |name| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.chars().take(200).collect::<String>())
        };
        Incoming {
            ip: peer.ip(),
            path: req.uri().path().to_string(),
            method: req.method().clone(),
            user_agent: header(header::USER_AGENT),
            cert: req
                .extensions()
                .get::<ClientCert>()
                .and_then(|c| c.0.clone()),
            host: header(header::HOST),
        }
    };
    match serve(&state, &incoming).await {
        Ok(res) => res,
        Err((why, counted)) => {
            refused(&state, &incoming, why, counted).await;
            not_found()
        }
    }
}

/// Records a refusal and counts it toward the source's console ban.
async fn refused(state: &State, incoming: &Incoming, why: &str, counted: bool) {
    let (ip, path) = (incoming.ip, incoming.path.as_str());
    // The token is a secret even when wrong (it may be a mistyped real one): the event keeps only its start.
    let shown: String = path
        .strip_prefix("/prov/")
        .map(|rest| {
            let (tok, file) = rest.split_once('/').unwrap_or((rest, ""));
            let tok: String = tok.chars().take(4).collect();
            format!("/prov/{tok}…/{}", file.chars().take(64).collect::<String>())
        })
        .unwrap_or_else(|| path.chars().take(64).collect());
    let ua: String = incoming
        .user_agent
        .as_deref()
        .unwrap_or("-")
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    let detail = format!("{shown} (User-Agent: {ua})");
    tracing::debug!(%ip, reason = why, path = %shown, "provisioning fetch refused");
    if counted {
        state
            .guard
            .fail_batched(&state.db, ip, REFUSED_EVENT, why, Some(detail))
            .await;
    } else {
        let _ = state
            .db
            .append_event(&store::SecurityEvent {
                at: crate::admin::time::now_ms(),
                kind: REFUSED_EVENT.as_str().into(),
                reason: why.into(),
                source: ip.to_string(),
                user: None,
                detail: Some(detail),
            })
            .await;
    }
}

type Refused = (&'static str, bool);

async fn serve(state: &State, incoming: &Incoming) -> Result<Response, Refused> {
    let (ip, method) = (incoming.ip, &incoming.method);
    let (user_agent, cert, host) = (
        incoming.user_agent.as_deref(),
        incoming.cert.as_deref(),
        incoming.host.as_deref(),
    );
    if !crate::console::listener::allowed(&state.prov.networks, ip) {
        return Err(("outside_provisioning_networks", true));
    }
    if *method != Method::GET && *method != Method::HEAD {
        return Err(("method", true));
    }
    let rest = incoming.path.strip_prefix("/prov/").unwrap_or("");
    let (tok, file) = rest.split_once('/').unwrap_or((rest, ""));
    if !token::plausible(tok) || file.contains('/') {
        return Err((Refusal::UnknownToken.as_str(), true));
    }
    let phone = state
        .db
        .phone_by_token_hash(&token::token_hash(tok))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "provisioning: cannot read the phones");
            ("store_error", false)
        })?;
    let source = ip.to_string();
    let now = crate::admin::time::now_ms();
    let fetch = Fetch {
        file,
        user_agent,
        cert_sha256: cert,
        source: &source,
        now,
    };
    let model = phone.as_ref().and_then(|p| Model::parse(&p.model));
    let view = phone
        .as_ref()
        .zip(model)
        .map(|(p, model)| state_of(p, model));
    let (kind, credentials, bind) = match decide(view.as_ref(), &fetch) {
        Decision::Refuse { why, counted } => return Err((why.as_str(), counted)),
        // A HEAD carries no body: it must not spend the window's one credentials response.
        Decision::Serve { kind, .. } if *method == Method::HEAD => (kind, false, false),
        Decision::Serve {
            kind,
            credentials,
            bind,
        } => (kind, credentials, bind),
    };
    let (Some(phone), Some(model)) = (phone, model) else {
        return Err((Refusal::UnknownToken.as_str(), true));
    };
    let base_url = format!(
        "https://{}/prov/{tok}/",
        host.filter(|h| valid_host(h)).unwrap_or("localhost")
    );
    let binding = PhoneBinding {
        mac: phone.mac.clone(),
        cert_sha256: cert.map(str::to_string),
        source,
        user_agent: user_agent.map(str::to_string),
    };
    let plan = Plan {
        phone: &phone,
        model,
        kind: &kind,
        credentials,
        bind,
        binding: &binding,
        base_url: &base_url,
        now,
    };
    let body = build(state, &plan, host)
        .await
        .map_err(|e| {
            tracing::error!(error = %format!("{e:#}"), phone = %phone.id, "provisioning: cannot build the file");
            ("server_error", false)
        })?;
    let mut res = (
        StatusCode::OK,
        [(header::CACHE_CONTROL, "no-store")],
        if *method == Method::HEAD {
            String::new()
        } else {
            body
        },
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(model.content_type(&kind)) {
        res.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    Ok(res)
}

fn state_of(p: &Phone, model: Model) -> PhoneState<'_> {
    PhoneState {
        model,
        mac: p.mac.as_deref(),
        window_expires_at: p.window_expires_at,
        credentials_served: p.credentials_at.is_some(),
        bound: p.bound_at.map(|_| Bound {
            cert_sha256: p.bound_cert_sha256.as_deref(),
            source: p.bound_source.as_deref().unwrap_or(""),
        }),
    }
}

/// What to serve, as decided.
struct Plan<'a> {
    phone: &'a Phone,
    model: Model,
    kind: &'a FileKind,
    /// Generate and store a new SIP password and put it in this response.
    credentials: bool,
    /// Bind the phone to `binding` with the credentials.
    bind: bool,
    binding: &'a PhoneBinding,
    base_url: &'a str,
    now: i64,
}

/// The file's text; with `credentials`, a new SIP password whose hashes replace the extension's (and the
/// binding, with `bind`) in one transaction before the text is returned.
async fn build(state: &State, plan: &Plan<'_>, host: Option<&str>) -> anyhow::Result<String> {
    let Plan {
        phone,
        model,
        kind,
        credentials,
        bind,
        binding,
        base_url,
        now,
    } = *plan;
    let db = &state.db;
    let ext = db.get_extension(&phone.extension).await?;
    let realm = match db.realm().await? {
        Some(r) => r,
        None => ext.realm.clone(),
    };
    let policy = db.policy_settings().await?;
    let timezone = policy.effective_timezone();
    let utc_offset_minutes = jiff::tz::TimeZone::get(&timezone)
        .map(|tz| tz.to_offset(jiff::Timestamp::now()).seconds() / 60)
        .unwrap_or(0);
    let ca_pem = tokio::fs::read_to_string(state.cert.cert_path())
        .await
        .unwrap_or_default();
    let tls = state.prov.sip_tls_port.is_some();
    let server_port = state
        .prov
        .sip_tls_port
        .or(state.prov.sip_tcp_port)
        .unwrap_or(5060);
    let server_host = host
        .filter(|h| valid_host(h))
        .map(host_only)
        .unwrap_or(&state.prov.domain)
        .to_string();
    let mut sip_password = None;
    if credentials {
        let len = db.credential_length().await?;
        let password = generate_password(len, &ext.number, &ext.auth_id)?;
        let creds = Credentials::from_password(&ext.auth_id, &realm, &password);
        let (Some(ha1_md5), Some(ha1_sha256)) = (creds.ha1_md5, creds.ha1_sha256) else {
            anyhow::bail!("password hashes missing");
        };
        let hashes = IssuedHashes {
            ha1_md5,
            ha1_sha256,
            realm: realm.clone(),
        };
        let issued = db
            .issue_phone_credentials(&phone.id, bind.then_some(binding), &hashes, now)
            .await?;
        if issued {
            let _ = db
                .append_event(&store::SecurityEvent {
                    at: now,
                    kind: CREDENTIALS_EVENT.as_str().into(),
                    reason: "served".into(),
                    source: binding.source.clone(),
                    user: Some(ext.number.clone()),
                    detail: Some(format!(
                        "phone {} ({}) fetched its credentials; extension {}'s password was replaced",
                        phone.id, phone.model, ext.number
                    )),
                })
                .await;
            tokio::time::sleep(RELOAD_WAIT).await;
            sip_password = Some(password);
        }
    } else {
        let _ = db.note_phone_fetch(&phone.id, now).await;
    }
    let display_name = ext
        .display_name
        .clone()
        .unwrap_or_else(|| ext.number.clone());
    let srtp = tls && ext.srtp != store::SrtpMode::Disabled;
    let settings = Settings {
        model,
        mac: phone.mac.as_deref(),
        base_url,
        extension: &ext.number,
        display_name: &display_name,
        auth_id: &ext.auth_id,
        secrets: sip_password.as_deref().map(|pw| Secrets {
            sip_password: pw,
            admin_password: &phone.admin_password,
        }),
        domain: &state.prov.domain,
        realm: &realm,
        server_host: &server_host,
        server_port,
        tls,
        srtp,
        voicemail_number: &policy.voicemail_number,
        timezone: &timezone,
        utc_offset_minutes,
        ca_pem: &ca_pem,
    };
    Ok(render(&settings, kind))
}

/// A Host header fit to echo: host name or address characters and an optional port.
fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 255
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

/// `host:port`, `[v6]:port`, `host` → the host part.
fn host_only(h: &str) -> &str {
    if let Some(rest) = h.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match h.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            host
        }
        _ => h,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_headers_give_their_host() {
        assert_eq!(host_only("pbx.lan:8443"), "pbx.lan");
        assert_eq!(host_only("[::1]:8443"), "::1");
        assert_eq!(host_only("127.0.0.1"), "127.0.0.1");
        assert!(!valid_host("evil/x"));
    }
}
