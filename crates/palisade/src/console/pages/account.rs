//! Logging in and out, two-factor enrolment, and the settings page (certificate, accounts, tokens).

use askama::Template;
use axum::Router;
use axum::extract::{Extension, Form as AxForm, State as AxState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::{
    Action, Cell, Field, Form, Nav, Row, Table, TablePage, actor, may_change, render, session,
};
use crate::admin::accounts::{self, AccountView, TokenView};
use crate::admin::time::now_ms;
use crate::console::sessions::{
    self, COOKIE, clear_cookie, cookie, random_id, same_secret, set_cookie,
};
use crate::console::{Peer, State, totp};
use pbx::model::ConsoleAuthReason;

/// The pre-session cookie that ties the login form to the browser that loaded it (login CSRF).
const LOGIN_COOKIE: &str = "__Host-palisade-login";

pub fn routes() -> Router<State> {
    Router::new()
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/account/2fa", get(totp_form).post(totp_confirm))
        .route("/settings", get(settings))
        .route("/settings/accounts", post(add_account))
        .route("/settings/accounts/remove", post(remove_account))
        .route(
            "/settings/accounts/reset-password",
            post(reset_account_password),
        )
        .route("/settings/tokens", post(create_token))
        .route("/settings/tokens/revoke", post(revoke_token))
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    title: String,
    nav: Nav,
    login_csrf: String,
}

fn login_page(status: StatusCode, error: Option<&str>) -> Response {
    let token = random_id();
    let mut nav = Nav::default();
    nav.errors.extend(error.map(str::to_string));
    let page = LoginPage {
        title: "Log in".into(),
        nav,
        login_csrf: token.clone(),
    };
    let mut res = (status, render(&page)).into_response();
    if let Ok(v) = set_cookie(LOGIN_COOKIE, &token).parse() {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

async fn login_form(AxState(s): AxState<State>, headers: HeaderMap) -> Response {
    if s.sessions
        .from_headers(&headers, s.guard.settings().idle)
        .is_some()
    {
        return Redirect::to("/").into_response();
    }
    login_page(StatusCode::OK, None)
}

#[derive(Deserialize)]
struct LoginForm {
    csrf: String,
    name: String,
    password: String,
    #[serde(default)]
    code: String,
}

/// A valid Argon2id hash of a random password: verified against for unknown accounts, so an unknown name costs
/// the same time as a wrong password.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| accounts::hash_password(&random_id()).unwrap_or_default())
}

async fn login(
    AxState(s): AxState<State>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    AxForm(f): AxForm<LoginForm>,
) -> Response {
    let tied = cookie(&headers, LOGIN_COOKIE).is_some_and(|c| same_secret(&c, &f.csrf));
    if !tied {
        return login_page(
            StatusCode::FORBIDDEN,
            Some("The login form expired or came from elsewhere: try again."),
        );
    }
    let ip = peer.ip();
    let account = s.db.admin(&f.name).await.ok().flatten();
    let phc = account
        .as_ref()
        .map(|a| a.password_hash.clone())
        .unwrap_or_else(|| dummy_hash().to_string());
    let password = f.password.clone();
    let password_ok =
        tokio::task::spawn_blocking(move || accounts::verify_password(&password, &phc))
            .await
            .unwrap_or(false);
    let failure = match &account {
        None => Some(ConsoleAuthReason::UnknownAccount),
        Some(_) if !password_ok => Some(ConsoleAuthReason::WrongPassword),
        Some(a) => match &a.totp_secret {
            None => None,
            Some(secret) => {
                let key = totp::decode_secret(secret).unwrap_or_default();
                let now = (now_ms() / 1000) as u64;
                match totp::verify(&key, &f.code, now) {
                    Some(step) if s.sessions.use_totp_step(&a.name, step) => None,
                    Some(_) => Some(ConsoleAuthReason::CodeReused),
                    None => Some(ConsoleAuthReason::WrongCode),
                }
            }
        },
    };
    if let Some(reason) = failure {
        s.guard.fail(&s.db, ip, Some(&f.name), reason).await;
        return login_page(
            StatusCode::UNAUTHORIZED,
            Some("Wrong account, password or authenticator code."),
        );
    }
    let Some(a) = account else {
        return login_page(StatusCode::UNAUTHORIZED, None);
    };
    s.guard.succeed(ip);
    let sess = s
        .sessions
        .create(&a.name, a.role, a.totp_secret.is_none(), &a.password_hash);
    let _ = accounts::audit(
        &s.db,
        &peer.actor(format!("admin:{}", a.name)),
        "console.login",
        None,
        None,
        None,
    )
    .await;
    let to = if sess.needs_totp { "/account/2fa" } else { "/" };
    let mut res = Redirect::to(to).into_response();
    for c in [set_cookie(COOKIE, &sess.id), clear_cookie(LOGIN_COOKIE)] {
        if let Ok(v) = c.parse() {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    res
}

#[derive(Deserialize)]
struct CsrfOnly {
    csrf: String,
}

async fn logout(
    AxState(s): AxState<State>,
    headers: HeaderMap,
    AxForm(f): AxForm<CsrfOnly>,
) -> Response {
    if let Some(sess) = s.sessions.from_headers(&headers, s.guard.settings().idle)
        && same_secret(&f.csrf, &sess.csrf)
    {
        s.sessions.remove(&sess.id);
    }
    let mut res = Redirect::to("/login").into_response();
    if let Ok(v) = clear_cookie(COOKIE).parse() {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

#[derive(Template)]
#[template(path = "totp.html")]
struct TotpPage {
    title: String,
    nav: Nav,
    qr_svg: String,
    secret: String,
}

/// Enrolment: any session (also one that has no second factor yet) may (re-)enrol its own account.
async fn totp_form(AxState(s): AxState<State>, headers: HeaderMap) -> Response {
    let Some(sess) = s.sessions.from_headers(&headers, s.guard.settings().idle) else {
        return Redirect::to("/login").into_response();
    };
    totp_page(&s, &sess, StatusCode::OK, None).await
}

async fn totp_page(
    s: &State,
    sess: &sessions::Session,
    status: StatusCode,
    error: Option<String>,
) -> Response {
    let secret = match &sess.pending_totp {
        Some(p) => p.clone(),
        None => {
            let p = totp::new_secret();
            let stored = p.clone();
            s.sessions
                .update(&sess.id, |x| x.pending_totp = Some(stored));
            p
        }
    };
    let domain = s.db.domain().await.unwrap_or_else(|_| "palisade".into());
    let uri = totp::otpauth_uri(&format!("Palisade {domain}"), &sess.account, &secret);
    let mut nav = Nav::new(sess, "settings");
    if sess.needs_totp {
        // Until enrolled the menu leads nowhere: hide it.
        nav.account.clear();
    }
    nav.errors.extend(error);
    let page = TotpPage {
        title: "Two-factor login".into(),
        nav,
        qr_svg: super::qr_svg(&uri),
        secret,
    };
    (status, render(&page)).into_response()
}

#[derive(Deserialize)]
struct CodeForm {
    csrf: String,
    code: String,
}

async fn totp_confirm(
    AxState(s): AxState<State>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    AxForm(f): AxForm<CodeForm>,
) -> Response {
    let Some(sess) = s.sessions.from_headers(&headers, s.guard.settings().idle) else {
        return Redirect::to("/login").into_response();
    };
    if !same_secret(&f.csrf, &sess.csrf) {
        return (StatusCode::FORBIDDEN, "stale form: reload the page").into_response();
    }
    let Some(secret) = sess.pending_totp.clone() else {
        return Redirect::to("/account/2fa").into_response();
    };
    let key = totp::decode_secret(&secret).unwrap_or_default();
    let Some(step) = totp::verify(&key, &f.code, (now_ms() / 1000) as u64) else {
        return totp_page(
            &s,
            &sess,
            StatusCode::BAD_REQUEST,
            Some("That code is not the one the app shows now: check the phone's clock and try again.".into()),
        )
        .await;
    };
    s.sessions.use_totp_step(&sess.account, step);
    let who = actor(&sess, &peer);
    if let Err(e) = accounts::enrol_totp(&s.db, &who, &sess.account, &secret).await {
        return totp_page(&s, &sess, StatusCode::BAD_REQUEST, Some(format!("{e:#}"))).await;
    }
    s.sessions.update(&sess.id, |x| {
        x.needs_totp = false;
        x.pending_totp = None;
    });
    Redirect::to("/").into_response()
}

async fn settings_page(s: &State, sess: &sessions::Session, nav: Nav) -> Response {
    let admin = sess.role == store::admin::Role::Admin;
    let mut page = TablePage::new("Settings", nav);
    match super::cert_json(s) {
        Ok(c) => page.intro.push(format!(
            "TLS certificate: {} (issuer {}), valid until {}, SHA-256 {}{}. Replace the PEM files and it is \
             reloaded within seconds (or on SIGHUP).",
            c["subject"].as_str().unwrap_or(""),
            c["issuer"].as_str().unwrap_or(""),
            c["not_after"].as_str().unwrap_or(""),
            c["sha256_fingerprint"].as_str().unwrap_or(""),
            if c["self_signed"].as_bool() == Some(true) { ", self-signed" } else { "" },
        )),
        Err(e) => page.intro.push(format!("TLS certificate: {}", e.1)),
    }
    let accounts: Vec<AccountView> =
        s.db.list_admins()
            .await
            .unwrap_or_default()
            .iter()
            .map(AccountView::from)
            .collect();
    page.tables.push(Table {
        heading: "Console accounts".into(),
        columns: vec!["Name", "Role", "Two-factor", "Created"],
        empty: "No accounts.".into(),
        has_actions: admin,
        rows: accounts
            .iter()
            .map(|a| Row {
                cells: vec![
                    Cell::from(a.name.clone()),
                    Cell::from(a.role.as_str()),
                    Cell::from(if a.totp_enrolled {
                        "enrolled"
                    } else {
                        "not yet"
                    }),
                    Cell::from(a.created_at.clone()),
                ],
                actions: if admin {
                    vec![
                        Action {
                            url: "/settings/accounts/reset-password".into(),
                            label: "New password",
                            confirm: format!("Give {} a new password?", a.name),
                            hidden: vec![("name", a.name.clone())],
                        },
                        Action {
                            url: "/settings/accounts/remove".into(),
                            label: "Remove",
                            confirm: format!("Remove the account {}?", a.name),
                            hidden: vec![("name", a.name.clone())],
                        },
                    ]
                } else {
                    Vec::new()
                },
            })
            .collect(),
        links: vec![(
            "Enrol a new authenticator for my account".into(),
            "/account/2fa".into(),
        )],
    });
    let now = now_ms();
    let tokens: Vec<TokenView> =
        s.db.list_tokens()
            .await
            .unwrap_or_default()
            .iter()
            .map(|t| TokenView::new(t, now))
            .collect();
    page.tables.push(Table {
        heading: "API tokens".into(),
        columns: vec!["Id", "Name", "Scope", "Expires", "Last used", "State"],
        empty: "No API tokens.".into(),
        has_actions: admin,
        rows: tokens
            .iter()
            .map(|t| Row {
                cells: vec![
                    Cell::from(t.id.to_string()),
                    Cell::from(t.name.clone()),
                    Cell::from(t.scope.clone()),
                    Cell::from(t.expires_at.clone().unwrap_or_else(|| "never".into())),
                    Cell::from(super::or_dash(t.last_used_at.as_deref())),
                    Cell::from(if t.live { "live" } else { "revoked or expired" }),
                ],
                actions: if admin && t.live {
                    vec![Action {
                        url: "/settings/tokens/revoke".into(),
                        label: "Revoke",
                        confirm: format!("Revoke token {} ({})?", t.id, t.name),
                        hidden: vec![("id", t.id.to_string())],
                    }]
                } else {
                    Vec::new()
                },
            })
            .collect(),
        ..Table::default()
    });
    if admin {
        page.forms.push(Form {
            method: "post",
            action: "/settings/accounts".into(),
            heading: "Add an account".into(),
            submit: "Add".into(),
            fields: vec![
                Field::text("name", "Name", "").required(),
                Field::select("role", "Role", &["admin", "viewer"], "viewer"),
            ],
        });
        page.forms.push(Form {
            method: "post",
            action: "/settings/tokens".into(),
            heading: "Create an API token".into(),
            submit: "Create".into(),
            fields: vec![
                Field::text("name", "Name", "").required(),
                Field::select("scope", "Scope", &["read", "write"], "read"),
                Field::text("expires", "Expires after (days, empty: never)", ""),
            ],
        });
    }
    render(&page)
}

async fn settings(AxState(s): AxState<State>, headers: HeaderMap) -> Response {
    let sess = match session(&s, &headers) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let nav = Nav::new(&sess, "settings");
    settings_page(&s, &sess, nav).await
}

/// Runs a change from the settings page and shows the page again with its outcome.
async fn settings_after(
    s: &State,
    sess: &sessions::Session,
    outcome: anyhow::Result<String>,
) -> Response {
    let mut nav = Nav::new(sess, "settings");
    match outcome {
        Ok(m) => nav.messages.push(m),
        Err(e) => nav.errors.push(format!("{e:#}")),
    }
    settings_page(s, sess, nav).await
}

#[derive(Deserialize)]
struct AccountForm {
    csrf: String,
    name: String,
    #[serde(default)]
    role: String,
}

async fn add_account(
    AxState(s): AxState<State>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    AxForm(f): AxForm<AccountForm>,
) -> Response {
    let sess = match session(&s, &headers) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if let Err(r) = may_change(&sess, &f.csrf) {
        return r;
    }
    let out = accounts::add_account(&s.db, &actor(&sess, &peer), f.name.trim(), &f.role)
        .await
        .map(|pw| {
            format!(
                "Account {} added. Its password, shown only now: {pw}",
                f.name.trim()
            )
        });
    settings_after(&s, &sess, out).await
}

async fn remove_account(
    AxState(s): AxState<State>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    AxForm(f): AxForm<AccountForm>,
) -> Response {
    let sess = match session(&s, &headers) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if let Err(r) = may_change(&sess, &f.csrf) {
        return r;
    }
    let out = accounts::remove_account(&s.db, &actor(&sess, &peer), &f.name)
        .await
        .map(|()| {
            s.sessions.remove_account(&f.name);
            format!("Account {} removed.", f.name)
        });
    settings_after(&s, &sess, out).await
}

async fn reset_account_password(
    AxState(s): AxState<State>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    AxForm(f): AxForm<AccountForm>,
) -> Response {
    let sess = match session(&s, &headers) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if let Err(r) = may_change(&sess, &f.csrf) {
        return r;
    }
    let out = accounts::reset_account_password(&s.db, &actor(&sess, &peer), &f.name)
        .await
        .map(|pw| {
            if f.name != sess.account {
                s.sessions.remove_account(&f.name);
            }
            format!("New password for {}, shown only now: {pw}", f.name)
        });
    settings_after(&s, &sess, out).await
}

#[derive(Deserialize)]
struct TokenForm {
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    expires: String,
    #[serde(default)]
    id: String,
}

async fn create_token(
    AxState(s): AxState<State>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    AxForm(f): AxForm<TokenForm>,
) -> Response {
    let sess = match session(&s, &headers) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if let Err(r) = may_change(&sess, &f.csrf) {
        return r;
    }
    let out = async {
        let days = Some(f.expires.trim())
            .filter(|e| !e.is_empty())
            .map(accounts::parse_expiry_days)
            .transpose()?;
        let (token, id) =
            accounts::create_token(&s.db, &actor(&sess, &peer), f.name.trim(), &f.scope, days)
                .await?;
        anyhow::Ok(format!(
            "Token {id} created. The token, shown only now: {token}"
        ))
    }
    .await;
    settings_after(&s, &sess, out).await
}

async fn revoke_token(
    AxState(s): AxState<State>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    AxForm(f): AxForm<TokenForm>,
) -> Response {
    let sess = match session(&s, &headers) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if let Err(r) = may_change(&sess, &f.csrf) {
        return r;
    }
    let out = accounts::revoke_token(&s.db, &actor(&sess, &peer), &f.id)
        .await
        .map(|n| format!("Revoked {n} token(s)."));
    settings_after(&s, &sess, out).await
}
