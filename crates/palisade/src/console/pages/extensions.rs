//! Extensions: list with search, add (credentials shown once, with a QR code for softphones), show and edit
//! (switches and restrictions), reset password or PIN, remove.

use askama::Template;
use axum::Router;
use axum::extract::{Extension, Form as AxForm, Path, Query, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use super::monitor::sess;
use super::{
    Action, Cell, Field, Form, Nav, Row, Table, TablePage, actor, enc, error_page, may_change,
    or_dash, qr_svg, render, session,
};
use crate::admin::accounts;
use crate::admin::ext::{self, ExtChanges, NewCredentials};
use crate::console::{Peer, State};

pub fn routes() -> Router<State> {
    Router::new()
        .route("/extensions", get(list).post(create))
        .route("/extensions/{number}", get(show).post(update))
        .route("/extensions/{number}/delete", post(remove))
        .route("/extensions/{number}/reset-password", post(reset_password))
        .route("/extensions/{number}/reset-pin", post(reset_pin))
}

/// Rows one page of the extension list shows (a phone screen, and a fast page at 10,000 extensions).
const MAX_ROWS: usize = 200;

#[derive(Deserialize)]
struct Search {
    #[serde(default)]
    q: String,
}

async fn list(AxState(s): AxState<State>, headers: HeaderMap, Query(q): Query<Search>) -> Response {
    let sess = sess!(s, headers);
    let admin = sess.role == store::admin::Role::Admin;
    let views = ext::list_views(&s.db).await.unwrap_or_default();
    let registered: std::collections::BTreeSet<String> =
        crate::admin::events::binding_views(&s.db, None)
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|b| b.extension)
            .collect();
    let needle = q.q.trim().to_lowercase();
    let mut page = TablePage::new("Extensions", Nav::new(&sess, "extensions"));
    page.forms.push(Form {
        method: "get",
        action: "/extensions".into(),
        heading: String::new(),
        submit: "Search".into(),
        fields: vec![Field::text("q", "Number, name or e-mail", q.q.clone())],
    });
    if admin {
        page.forms.push(Form {
            method: "post",
            action: "/extensions".into(),
            heading: "Add an extension".into(),
            submit: "Add".into(),
            fields: vec![
                Field::text("number", "Number", "").required(),
                Field::text("name", "Name", ""),
                Field::text("email", "E-mail", ""),
                Field::checkbox("require_tls", "TLS only", false),
                Field::select(
                    "srtp",
                    "SRTP",
                    &["disabled", "enabled", "enforced"],
                    // The CLI's default (SRTP when the phone offers it over TLS).
                    store::SrtpMode::default().as_str(),
                ),
            ],
        });
    }
    let matching: Vec<&ext::ExtensionView> = views
        .iter()
        .filter(|v| {
            let has = |t: Option<&str>| t.unwrap_or("").to_lowercase().contains(&needle);
            needle.is_empty()
                || v.number.contains(&needle)
                || has(v.display_name.as_deref())
                || has(v.email.as_deref())
        })
        .collect();
    if matching.len() > MAX_ROWS {
        page.intro.push(format!(
            "Showing the first {MAX_ROWS} of {} extensions: search to narrow the list (the API lists them all).",
            matching.len()
        ));
    }
    page.tables.push(Table {
        columns: vec![
            "Number",
            "Name",
            "Enabled",
            "Registered",
            "TLS only",
            "SRTP",
            "Restrictions",
        ],
        empty: "No extensions match.".into(),
        rows: matching
            .into_iter()
            .take(MAX_ROWS)
            .map(|v| Row {
                cells: vec![
                    Cell {
                        text: v.number.clone(),
                        link: Some(format!("/extensions/{}", enc(&v.number))),
                        audio: None,
                    },
                    Cell::from(or_dash(v.display_name.as_deref())),
                    Cell::from(if v.enabled { "yes" } else { "no" }),
                    Cell::from(if registered.contains(&v.number) {
                        "yes"
                    } else {
                        "no"
                    }),
                    Cell::from(if v.require_tls { "yes" } else { "no" }),
                    Cell::from(v.srtp.to_string()),
                    Cell::from(restrictions(v)),
                ],
                actions: Vec::new(),
            })
            .collect(),
        ..Table::default()
    });
    render(&page)
}

fn restrictions(v: &ext::ExtensionView) -> String {
    let mut r = Vec::new();
    for (on, name) in [
        (v.internal_only, "internal only"),
        (v.pin_protect, "PIN protect"),
        (v.lan_only, "LAN only"),
        (v.block_remote_ws, "no remote WebSocket"),
        (v.office_hours_only, "office hours only"),
    ] {
        if on {
            r.push(name);
        }
    }
    if r.is_empty() {
        "-".into()
    } else {
        r.join(", ")
    }
}

#[derive(Template)]
#[template(path = "credentials.html")]
struct Credentials {
    title: String,
    nav: Nav,
    number: String,
    auth_id: String,
    password: String,
    realm: String,
    pin: String,
    qr_svg: String,
}

fn credentials_page(
    sess: &crate::console::sessions::Session,
    c: &NewCredentials,
    title: &str,
) -> Response {
    let password = c.password.clone().unwrap_or_default();
    // What softphones read from a QR code: a SIP URI with the credentials (auth ID and password) in its userinfo.
    let uri = format!("sip:{}:{}@{}", c.auth_id, password, c.realm);
    let page = Credentials {
        title: title.into(),
        nav: Nav::new(sess, "extensions"),
        number: c.number.clone(),
        auth_id: c.auth_id.clone(),
        password,
        realm: c.realm.clone(),
        pin: c.voicemail_pin.clone().unwrap_or_default(),
        qr_svg: qr_svg(&uri),
    };
    render(&page)
}

#[derive(Deserialize)]
struct NewForm {
    csrf: String,
    number: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    require_tls: Option<String>,
    #[serde(default)]
    srtp: String,
}

fn opt(s: &str) -> Option<String> {
    Some(s.trim().to_string()).filter(|v| !v.is_empty())
}

async fn create(
    AxState(s): AxState<State>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    AxForm(f): AxForm<NewForm>,
) -> Response {
    let sess = sess!(s, headers);
    if let Err(r) = may_change(&sess, &f.csrf) {
        return r;
    }
    let number = f.number.trim().to_string();
    let created = ext::create(
        &s.db,
        &s.data_dir,
        number.clone(),
        opt(&f.name),
        opt(&f.email),
        f.require_tls.is_some(),
        opt(&f.srtp).as_deref(),
    )
    .await;
    match created {
        Ok(c) => {
            let after = ext::show(&s.db, &number).await.ok().map(|v| json!(v));
            let _ = accounts::audit(
                &s.db,
                &actor(&sess, &peer),
                "extension.create",
                Some(&number),
                None,
                after,
            )
            .await;
            credentials_page(&sess, &c, &format!("Extension {number} added"))
        }
        Err(e) => error_page(
            "Extensions",
            Nav::new(&sess, "extensions"),
            format!("{e:#}"),
            "/extensions",
        ),
    }
}

async fn show(
    AxState(s): AxState<State>,
    headers: HeaderMap,
    Path(number): Path<String>,
) -> Response {
    let sess = sess!(s, headers);
    let nav = Nav::new(&sess, "extensions");
    show_page(&s, &sess, nav, &number).await
}

async fn show_page(
    s: &State,
    sess: &crate::console::sessions::Session,
    nav: Nav,
    number: &str,
) -> Response {
    let v = match ext::show(&s.db, number).await {
        Ok(v) => v,
        Err(e) => {
            let mut r = error_page("Extension", nav, format!("{e:#}"), "/extensions");
            *r.status_mut() = StatusCode::NOT_FOUND;
            return r;
        }
    };
    let admin = sess.role == store::admin::Role::Admin;
    let mut page = TablePage::new(format!("Extension {}", v.number), nav);
    let bindings = crate::admin::events::binding_views(&s.db, Some(number))
        .await
        .unwrap_or_default();
    let vm = v.voicemail.as_ref();
    page.tables.push(Table {
        columns: vec!["Setting", "Value"],
        rows: [
            ("Name", or_dash(v.display_name.as_deref())),
            ("Auth ID", v.auth_id.clone()),
            ("Realm", v.realm.clone()),
            ("Enabled", yes(v.enabled)),
            ("TLS only", yes(v.require_tls)),
            ("SRTP", v.srtp.to_string()),
            ("Restrictions", restrictions(&v)),
            (
                "Forwards",
                format!(
                    "always: {}; busy: {}; no answer: {}",
                    or_dash(v.forward.always.as_deref()),
                    or_dash(v.forward.busy.as_deref()),
                    or_dash(v.forward.no_answer.as_deref())
                ),
            ),
            ("E-mail", or_dash(v.email.as_deref())),
            (
                "Voicemail",
                vm.map_or("-".into(), |m| {
                    format!(
                        "{} ({} new, {} old)",
                        if m.enabled { "on" } else { "off" },
                        m.new_messages,
                        m.old_messages
                    )
                }),
            ),
            ("Password changed", v.password_changed_at.clone()),
            (
                "Registered contacts",
                if bindings.is_empty() {
                    "none".into()
                } else {
                    bindings
                        .iter()
                        .map(|b| format!("{} via {} from {}", b.contact, b.transport, b.source))
                        .collect::<Vec<_>>()
                        .join("; ")
                },
            ),
        ]
        .into_iter()
        .map(|(k, val)| Row {
            cells: vec![Cell::from(k), Cell::from(val)],
            actions: Vec::new(),
        })
        .collect(),
        ..Table::default()
    });
    if admin {
        let n = enc(&v.number);
        page.forms.push(Form {
            method: "post",
            action: format!("/extensions/{n}"),
            heading: "Change".into(),
            submit: "Save".into(),
            fields: vec![
                Field::text("name", "Name", v.display_name.clone().unwrap_or_default()),
                Field::text("email", "E-mail", v.email.clone().unwrap_or_default()),
                Field::checkbox("enabled", "Enabled", v.enabled),
                Field::checkbox("require_tls", "TLS only", v.require_tls),
                Field::select(
                    "srtp",
                    "SRTP",
                    &["disabled", "enabled", "enforced"],
                    &v.srtp.to_string(),
                ),
                Field::checkbox("internal_only", "Internal calls only", v.internal_only),
                Field::checkbox("pin_protect", "PIN protect outbound", v.pin_protect),
                Field::checkbox("lan_only", "Register from the LAN only", v.lan_only),
                Field::checkbox(
                    "block_remote_ws",
                    "Block remote WebSocket",
                    v.block_remote_ws,
                ),
                Field::checkbox(
                    "office_hours_only",
                    "Outbound in office hours only",
                    v.office_hours_only,
                ),
                Field::checkbox("voicemail", "Voicemail", vm.is_some_and(|m| m.enabled)),
                Field::text(
                    "forward_always",
                    "Forward always to (empty: off)",
                    v.forward.always.clone().unwrap_or_default(),
                ),
                Field::text(
                    "forward_busy",
                    "Forward when busy to",
                    v.forward.busy.clone().unwrap_or_default(),
                ),
                Field::text(
                    "forward_no_answer",
                    "Forward on no answer to",
                    v.forward.no_answer.clone().unwrap_or_default(),
                ),
            ],
        });
        page.tables.push(Table {
            heading: "Actions".into(),
            columns: vec!["What"],
            has_actions: true,
            rows: vec![Row {
                cells: vec![Cell::from("Credentials and removal")],
                actions: vec![
                    Action {
                        url: format!("/extensions/{n}/reset-password"),
                        label: "New password",
                        confirm: format!(
                            "Give extension {} a new password? The phone must be reconfigured.",
                            v.number
                        ),
                        hidden: Vec::new(),
                    },
                    Action {
                        url: format!("/extensions/{n}/reset-pin"),
                        label: "New voicemail PIN",
                        confirm: format!("Give extension {} a new voicemail PIN?", v.number),
                        hidden: Vec::new(),
                    },
                    Action {
                        url: format!("/extensions/{n}/delete"),
                        label: "Remove",
                        confirm: format!("Remove extension {} and its voicemail?", v.number),
                        hidden: Vec::new(),
                    },
                ],
            }],
            ..Table::default()
        });
    }
    render(&page)
}

fn yes(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}

#[derive(Deserialize)]
struct EditForm {
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    enabled: Option<String>,
    require_tls: Option<String>,
    #[serde(default)]
    srtp: String,
    internal_only: Option<String>,
    pin_protect: Option<String>,
    lan_only: Option<String>,
    block_remote_ws: Option<String>,
    office_hours_only: Option<String>,
    voicemail: Option<String>,
    #[serde(default)]
    forward_always: String,
    #[serde(default)]
    forward_busy: String,
    #[serde(default)]
    forward_no_answer: String,
}

async fn update(
    AxState(s): AxState<State>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    Path(number): Path<String>,
    AxForm(f): AxForm<EditForm>,
) -> Response {
    let sess = sess!(s, headers);
    if let Err(r) = may_change(&sess, &f.csrf) {
        return r;
    }
    let mut nav = Nav::new(&sess, "extensions");
    let before = ext::show(&s.db, &number).await.ok();
    let changes = ExtChanges {
        name: Some(f.name.trim().to_string()),
        email: Some(f.email.trim().to_string()),
        enabled: Some(f.enabled.is_some()),
        require_tls: Some(f.require_tls.is_some()),
        srtp: opt(&f.srtp),
        internal_only: Some(f.internal_only.is_some()),
        pin_protect: Some(f.pin_protect.is_some()),
        lan_only: Some(f.lan_only.is_some()),
        block_remote_ws: Some(f.block_remote_ws.is_some()),
        office_hours_only: Some(f.office_hours_only.is_some()),
        voicemail: Some(f.voicemail.is_some()),
        // An empty target turns a forward off, as `ext set --forward-always ""` does.
        forward_always: Some(f.forward_always.trim().to_string()),
        forward_busy: Some(f.forward_busy.trim().to_string()),
        forward_no_answer: Some(f.forward_no_answer.trim().to_string()),
        ..ExtChanges::default()
    };
    match ext::set(&s.db, &number, changes).await {
        Ok(after) => {
            let _ = accounts::audit(
                &s.db,
                &actor(&sess, &peer),
                "extension.update",
                Some(&number),
                before.map(|b| json!(b)),
                Some(json!(after)),
            )
            .await;
            nav.messages
                .push("Saved. The running server applies it within a second.".into());
        }
        Err(e) => nav.errors.push(format!("{e:#}")),
    }
    show_page(&s, &sess, nav, &number).await
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn remove(
    AxState(s): AxState<State>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    Path(number): Path<String>,
    AxForm(f): AxForm<CsrfForm>,
) -> Response {
    let sess = sess!(s, headers);
    if let Err(r) = may_change(&sess, &f.csrf) {
        return r;
    }
    let before = ext::show(&s.db, &number).await.ok();
    match ext::remove(&s.db, &s.data_dir, &number).await {
        Ok(_) => {
            let _ = accounts::audit(
                &s.db,
                &actor(&sess, &peer),
                "extension.remove",
                Some(&number),
                before.map(|b| json!(b)),
                None,
            )
            .await;
            Redirect::to("/extensions").into_response()
        }
        Err(e) => error_page(
            "Extensions",
            Nav::new(&sess, "extensions"),
            format!("{e:#}"),
            "/extensions",
        ),
    }
}

async fn reset_password(
    AxState(s): AxState<State>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    Path(number): Path<String>,
    AxForm(f): AxForm<CsrfForm>,
) -> Response {
    let sess = sess!(s, headers);
    if let Err(r) = may_change(&sess, &f.csrf) {
        return r;
    }
    match ext::new_password(&s.db, &s.data_dir, &number).await {
        Ok(c) => {
            let _ = accounts::audit(
                &s.db,
                &actor(&sess, &peer),
                "extension.reset_password",
                Some(&number),
                None,
                None,
            )
            .await;
            credentials_page(&sess, &c, &format!("New password for extension {number}"))
        }
        Err(e) => error_page(
            "Extensions",
            Nav::new(&sess, "extensions"),
            format!("{e:#}"),
            "/extensions",
        ),
    }
}

async fn reset_pin(
    AxState(s): AxState<State>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    Path(number): Path<String>,
    AxForm(f): AxForm<CsrfForm>,
) -> Response {
    let sess = sess!(s, headers);
    if let Err(r) = may_change(&sess, &f.csrf) {
        return r;
    }
    let mut nav = Nav::new(&sess, "extensions");
    match ext::reset_pin(&s.db, &number, None).await {
        Ok(pin) => {
            let _ = accounts::audit(
                &s.db,
                &actor(&sess, &peer),
                "extension.reset_pin",
                Some(&number),
                None,
                None,
            )
            .await;
            nav.messages.push(format!(
                "New voicemail PIN for extension {number}, shown only now: {pin}"
            ));
        }
        Err(e) => nav.errors.push(format!("{e:#}")),
    }
    show_page(&s, &sess, nav, &number).await
}
