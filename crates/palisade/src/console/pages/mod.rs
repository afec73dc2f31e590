//! The console's pages: server-rendered HTML (askama templates in `templates/`, CSS and a small script in
//! `static/`, all compiled in), plain forms, no JavaScript framework. Every page needs a session; every form
//! carries the session's CSRF token and every change needs the admin role.

mod account;
mod backups;
mod config;
mod extensions;
mod media;
mod monitor;
mod office;
mod phones;
pub use phones::request_host;
mod routing;

use askama::Template;
use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use store::admin::Role;

use super::sessions::{Session, same_secret};
use super::{Peer, State};

pub use config::{cert_json, trunk_views};

pub fn router(state: State) -> Router {
    Router::new()
        .merge(account::routes())
        .merge(monitor::routes())
        .merge(extensions::routes())
        .merge(phones::routes())
        .merge(config::routes())
        .merge(backups::routes())
        .merge(routing::routes())
        .merge(office::routes())
        .merge(media::routes())
        .route("/static/app.css", get(css))
        .route("/static/app.js", get(js))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            require_session,
        ))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

async fn css() -> Response {
    static_file(
        "text/css; charset=utf-8",
        include_str!("../../../static/app.css"),
    )
}

async fn js() -> Response {
    static_file(
        "text/javascript; charset=utf-8",
        include_str!("../../../static/app.js"),
    )
}

fn static_file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// Before any handler (and before its form is even parsed): no session, no page. Only the login, the logout, the
/// 2FA enrolment (which checks the session itself) and the static files are open.
async fn require_session(
    axum::extract::State(s): axum::extract::State<State>,
    req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path();
    let open =
        matches!(path, "/login" | "/logout" | "/account/2fa") || path.starts_with("/static/");
    if !open
        && s.sessions
            .from_headers(req.headers(), s.guard.settings().idle)
            .is_none()
    {
        return Redirect::to("/login").into_response();
    }
    next.run(req).await
}

/// Headers on every console response: no framing, no sniffing, no referrer, nothing from elsewhere, HTTPS only.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    for (name, value) in [
        (
            "content-security-policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
             frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("strict-transport-security", "max-age=31536000"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// What the layout shows: who is logged in, the page's place in the menu, messages.
#[derive(Debug, Default, Clone)]
pub struct Nav {
    pub account: String,
    pub role: String,
    pub csrf: String,
    pub current: &'static str,
    pub messages: Vec<String>,
    pub errors: Vec<String>,
}

impl Nav {
    pub fn new(s: &Session, current: &'static str) -> Nav {
        Nav {
            account: s.account.clone(),
            role: s.role.as_str().into(),
            csrf: s.csrf.clone(),
            current,
            ..Nav::default()
        }
    }
}

pub fn render(t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "console template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

// The Err of these is the response handlers return as it is: boxing it would only be unboxed at once.
/// The request's session, or the answer to give instead: the login page, or the 2FA enrolment while the account
/// has none.
#[allow(clippy::result_large_err)]
pub fn session(s: &State, headers: &HeaderMap) -> Result<Session, Response> {
    let Some(sess) = s.sessions.from_headers(headers, s.guard.settings().idle) else {
        return Err(Redirect::to("/login").into_response());
    };
    if sess.needs_totp {
        return Err(Redirect::to("/account/2fa").into_response());
    }
    Ok(sess)
}

/// For a change: the session's role must be admin and the form's CSRF token must be the session's.
#[allow(clippy::result_large_err)]
pub fn may_change(sess: &Session, csrf: &str) -> Result<(), Response> {
    if !same_secret(csrf, &sess.csrf) {
        return Err((
            StatusCode::FORBIDDEN,
            "The form's security token is missing or stale: reload the page and try again.",
        )
            .into_response());
    }
    if sess.role != Role::Admin {
        return Err((
            StatusCode::FORBIDDEN,
            "This account has the viewer role: it may look but not change anything.",
        )
            .into_response());
    }
    Ok(())
}

/// The audit actor of a console session.
pub fn actor(sess: &Session, peer: &Peer) -> crate::admin::accounts::Actor {
    peer.actor(format!("admin:{}", sess.account))
}

/// What a console change reports for the audit log and the page: action, target, before, after, and the message
/// shown to the administrator.
pub type AuditedChange = (
    String,
    String,
    Option<serde_json::Value>,
    Option<serde_json::Value>,
    String,
);

/// Runs a form's change for an admin with a valid CSRF token, audits it, and answers with the section's page
/// (`render`) carrying the outcome: its message, or 400 with the CLI's error when refused.
pub async fn audited_change<F, P>(
    s: &State,
    peer: &Peer,
    headers: &HeaderMap,
    csrf: &str,
    section: &'static str,
    render: P,
    run: F,
) -> Response
where
    F: AsyncFnOnce(&State) -> anyhow::Result<AuditedChange>,
    P: AsyncFnOnce(&State, &Session, Nav) -> Response,
{
    let sess = match session(s, headers) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if let Err(r) = may_change(&sess, csrf) {
        return r;
    }
    let mut nav = Nav::new(&sess, section);
    let done = async {
        let (action, target, before, after, message) = run(s).await?;
        crate::admin::accounts::audit(
            &s.db,
            &actor(&sess, peer),
            &action,
            Some(&target),
            before,
            after,
        )
        .await?;
        anyhow::Ok(message)
    }
    .await;
    let failed = done.is_err();
    match done {
        Ok(m) => nav.messages.push(m),
        Err(e) => nav.errors.push(format!("{e:#}")),
    }
    let page = render(s, &sess, nav).await;
    if failed {
        (StatusCode::BAD_REQUEST, page).into_response()
    } else {
        page
    }
}

/// A form in a generic page.
#[derive(Debug, Clone)]
pub struct Form {
    pub method: &'static str,
    pub action: String,
    pub heading: String,
    pub submit: String,
    pub fields: Vec<Field>,
}

#[derive(Debug, Clone)]
pub struct Field {
    pub name: &'static str,
    pub label: &'static str,
    /// text, number, password, select, checkbox, date…
    pub kind: &'static str,
    pub value: String,
    pub options: Vec<String>,
    pub required: bool,
}

impl Field {
    pub fn text(name: &'static str, label: &'static str, value: impl Into<String>) -> Field {
        Field {
            name,
            label,
            kind: "text",
            value: value.into(),
            options: Vec::new(),
            required: false,
        }
    }

    pub fn required(mut self) -> Field {
        self.required = true;
        self
    }

    pub fn select(name: &'static str, label: &'static str, options: &[&str], value: &str) -> Field {
        Field {
            kind: "select",
            options: options.iter().map(|o| o.to_string()).collect(),
            ..Field::text(name, label, value)
        }
    }

    pub fn checkbox(name: &'static str, label: &'static str, on: bool) -> Field {
        Field {
            kind: "checkbox",
            ..Field::text(name, label, if on { "on" } else { "" })
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Table {
    pub heading: String,
    pub columns: Vec<&'static str>,
    pub rows: Vec<Row>,
    pub empty: String,
    pub has_actions: bool,
    /// (text, href) below the table, e.g. the next page.
    pub links: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default)]
pub struct Row {
    pub cells: Vec<Cell>,
    pub actions: Vec<Action>,
}

#[derive(Debug, Clone)]
pub struct Cell {
    pub text: String,
    pub link: Option<String>,
    /// A WAV to play in the page (voicemail).
    pub audio: Option<String>,
}

impl From<String> for Cell {
    fn from(text: String) -> Cell {
        Cell {
            text,
            link: None,
            audio: None,
        }
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Cell {
        Cell::from(text.to_string())
    }
}

/// A POST button in a row; `confirm` non-empty asks first.
#[derive(Debug, Clone)]
pub struct Action {
    pub url: String,
    pub label: &'static str,
    pub confirm: String,
    pub hidden: Vec<(&'static str, String)>,
}

#[derive(Template)]
#[template(path = "table.html")]
pub struct TablePage {
    pub title: String,
    pub nav: Nav,
    pub intro: Vec<String>,
    pub forms: Vec<Form>,
    pub tables: Vec<Table>,
}

impl TablePage {
    pub fn new(title: impl Into<String>, nav: Nav) -> TablePage {
        TablePage {
            title: title.into(),
            nav,
            intro: Vec::new(),
            forms: Vec::new(),
            tables: Vec::new(),
        }
    }
}

/// A value or "-".
pub fn or_dash(v: Option<&str>) -> String {
    match v {
        Some(s) if !s.is_empty() => s.to_string(),
        _ => "-".into(),
    }
}

/// Percent-encodes a path segment or query value.
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// An SVG QR code of `text` (server-side: no script, no external service).
pub fn qr_svg(text: &str) -> String {
    match qrcode::QrCode::new(text.as_bytes()) {
        Ok(code) => code
            .render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(200, 200)
            .quiet_zone(true)
            .build(),
        Err(_) => String::new(),
    }
}

/// A page answering a failed change: the CLI's message on the page it came from.
pub fn error_page(title: &str, nav: Nav, message: String, back: &str) -> Response {
    let mut nav = nav;
    nav.errors.push(message);
    let mut page = TablePage::new(title, nav);
    page.tables.push(Table {
        links: vec![("Back".into(), back.into())],
        ..Table::default()
    });
    (StatusCode::BAD_REQUEST, render(&page)).into_response()
}
