//! Phones: provisioned desk phones and softphones (issue 14). List, add (the provisioning URL is shown once, with
//! how to enter it in each vendor's phone), show (with the phone's web-admin password), reprovision, remove —
//! through the same functions as `palisade phone`, audited.

use axum::Router;
use axum::extract::{Extension, Form as AxForm, Path, State as AxState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::monitor::sess;
use super::{
    Action, Cell, Field, Form, Nav, Row, Table, TablePage, actor, enc, error_page, may_change,
    or_dash, render, session,
};
use crate::admin::phone::{self, PhoneView, Provisioned};
use crate::console::{Peer, State};
use crate::prov::model::{ALL_MODELS, Model};

pub fn routes() -> Router<State> {
    Router::new()
        .route("/phones", get(list).post(create))
        .route("/phones/{id}", get(show))
        .route("/phones/{id}/reprovision", post(reprovision))
        .route("/phones/{id}/delete", post(remove))
}

/// The host (and port) the administrator reached the console at: what the phones on the same network will
/// reach it at too (a field of the form changes it).
pub fn request_host(headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']')
                })
        })
        .unwrap_or("localhost")
        .to_string()
}

async fn list(AxState(s): AxState<State>, headers: HeaderMap) -> Response {
    let sess = sess!(s, headers);
    let admin = sess.role == store::admin::Role::Admin;
    let phones = phone::list(&s.db).await.unwrap_or_default();
    let mut page = TablePage::new("Phones", Nav::new(&sess, "phones"));
    page.intro.push(
        "Each phone gets its own provisioning URL (random, shown once). Its first fetch within the provisioning \
         window gets the SIP credentials — a new password for its extension — and binds the URL to that phone; \
         any other fetch gets 404 and counts toward the source's console ban."
            .into(),
    );
    if admin {
        page.forms.push(Form {
            method: "post",
            action: "/phones".into(),
            heading: "Provision a phone".into(),
            submit: "Add".into(),
            fields: vec![
                Field::text("mac", "MAC address (not for linphone/generic)", ""),
                Field::text("ext", "Extension", "").required(),
                Field::select(
                    "model",
                    "Model",
                    &ALL_MODELS.map(|m| m.as_str()),
                    Model::Yealink.as_str(),
                ),
                Field::text(
                    "host",
                    "Console address phones reach",
                    request_host(&headers),
                ),
            ],
        });
    }
    page.tables.push(Table {
        columns: vec![
            "Phone",
            "Model",
            "Extension",
            "State",
            "Window until",
            "Bound to",
            "Last fetch",
        ],
        empty: "No provisioned phones yet.".into(),
        has_actions: admin,
        rows: phones
            .iter()
            .map(|p| Row {
                cells: vec![
                    Cell {
                        text: p.id.clone(),
                        link: Some(format!("/phones/{}", enc(&p.id))),
                        audio: None,
                    },
                    Cell::from(p.model.clone()),
                    Cell::from(p.extension.clone()),
                    Cell::from(p.state),
                    Cell::from(p.window_expires_at.clone()),
                    Cell::from(or_dash(p.bound_source.as_deref())),
                    Cell::from(or_dash(p.last_fetch_at.as_deref())),
                ],
                actions: if admin { actions(p) } else { Vec::new() },
            })
            .collect(),
        ..Table::default()
    });
    page.tables
        .push(vendor_table("https://HOST:PORT/prov/TOKEN/", None));
    render(&page)
}

fn actions(p: &PhoneView) -> Vec<Action> {
    let id = enc(&p.id);
    vec![
        Action {
            url: format!("/phones/{id}/reprovision"),
            label: "Reprovision",
            confirm: format!(
                "Give phone {} a new provisioning URL? Its next fetch gets a new password for extension {}.",
                p.id, p.extension
            ),
            hidden: Vec::new(),
        },
        Action {
            url: format!("/phones/{id}/delete"),
            label: "Remove",
            confirm: format!("Remove phone {}? Its provisioning URL stops working.", p.id),
            hidden: Vec::new(),
        },
    ]
}

/// How to point each model at the URL.
fn vendor_table(url: &str, only: Option<Model>) -> Table {
    Table {
        heading: "How to point the phone at its URL".into(),
        columns: vec!["Model", "Instructions"],
        rows: ALL_MODELS
            .iter()
            .filter(|m| only.is_none_or(|o| o == **m))
            .flat_map(|m| {
                m.instructions(url, None).into_iter().map(move |line| Row {
                    cells: vec![Cell::from(m.as_str()), Cell::from(line)],
                    actions: Vec::new(),
                })
            })
            .collect(),
        ..Table::default()
    }
}

#[derive(Deserialize)]
struct NewForm {
    csrf: String,
    #[serde(default)]
    mac: String,
    ext: String,
    model: String,
    #[serde(default)]
    host: String,
}

fn host_or_request(given: &str, headers: &HeaderMap) -> String {
    let h = given.trim();
    if h.is_empty() {
        request_host(headers)
    } else {
        h.to_string()
    }
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
    let nav = Nav::new(&sess, "phones");
    let host =
        match phone::url_host(&s.db, &s.data_dir, Some(host_or_request(&f.host, &headers))).await {
            Ok(h) => h,
            Err(e) => return error_page("Phones", nav, format!("{e:#}"), "/phones"),
        };
    let mac = Some(f.mac.trim()).filter(|m| !m.is_empty());
    match phone::add(
        &s.db,
        &actor(&sess, &peer),
        mac,
        f.ext.trim(),
        &f.model,
        &host,
    )
    .await
    {
        Ok(p) => url_page(nav, &p, "added"),
        Err(e) => error_page("Phones", nav, format!("{e:#}"), "/phones"),
    }
}

/// The URL, shown this once, and how to enter it.
fn url_page(nav: Nav, p: &Provisioned, what: &str) -> Response {
    let mut page = TablePage::new(format!("Phone {} {what}", p.phone.id), nav);
    page.intro.push(format!("Provisioning URL: {}", p.url));
    page.intro.push(
        "Copy it now: it is shown only this once (Palisade keeps only its hash). Reprovision makes a new one."
            .into(),
    );
    page.intro.push(format!(
        "The phone's first fetch, before {}, replaces extension {}'s SIP password with the one it receives.",
        p.phone.window_expires_at, p.phone.extension
    ));
    let mut t = vendor_table(&p.url, Model::parse(&p.phone.model));
    t.rows = p
        .instructions
        .iter()
        .map(|l| Row {
            cells: vec![Cell::from(p.phone.model.clone()), Cell::from(l.clone())],
            actions: Vec::new(),
        })
        .collect();
    t.links = vec![("Back to the phones".into(), "/phones".into())];
    page.tables.push(t);
    let mut res = render(&page);
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    res
}

async fn show(AxState(s): AxState<State>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let sess = sess!(s, headers);
    let nav = Nav::new(&sess, "phones");
    let admin = sess.role == store::admin::Role::Admin;
    let p = match phone::show(&s.db, &id).await {
        Ok(p) => p,
        Err(e) => {
            let mut r = error_page("Phone", nav, format!("{e:#}"), "/phones");
            *r.status_mut() = StatusCode::NOT_FOUND;
            return r;
        }
    };
    let mut page = TablePage::new(format!("Phone {}", p.id), nav);
    let mut rows = vec![
        ("MAC", or_dash(p.mac.as_deref())),
        ("Model", p.model.clone()),
        ("Extension", p.extension.clone()),
        ("State", p.state.into()),
        (
            "Window",
            format!("{} to {}", p.window_opened_at, p.window_expires_at),
        ),
        (
            "Credentials fetched",
            or_dash(p.credentials_fetched_at.as_deref()),
        ),
        ("Bound to", or_dash(p.bound_source.as_deref())),
        ("Bound User-Agent", or_dash(p.bound_user_agent.as_deref())),
        (
            "Bound client certificate",
            or_dash(p.bound_cert_sha256.as_deref()),
        ),
        ("Last fetch", or_dash(p.last_fetch_at.as_deref())),
    ];
    // The phone's own web-admin password: for administrators only.
    if admin {
        rows.push(("Web-admin password", or_dash(p.admin_password.as_deref())));
    }
    page.tables.push(Table {
        columns: vec!["Setting", "Value"],
        rows: rows
            .into_iter()
            .map(|(k, v)| Row {
                cells: vec![Cell::from(k), Cell::from(v)],
                actions: Vec::new(),
            })
            .collect(),
        ..Table::default()
    });
    if admin {
        page.tables.push(Table {
            heading: "Actions".into(),
            columns: vec!["What"],
            has_actions: true,
            rows: vec![Row {
                cells: vec![Cell::from("New URL and window, or removal")],
                actions: actions(&p),
            }],
            links: vec![("Back to the phones".into(), "/phones".into())],
            ..Table::default()
        });
    }
    render(&page)
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn reprovision(
    AxState(s): AxState<State>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    Path(id): Path<String>,
    AxForm(f): AxForm<CsrfForm>,
) -> Response {
    let sess = sess!(s, headers);
    if let Err(r) = may_change(&sess, &f.csrf) {
        return r;
    }
    let nav = Nav::new(&sess, "phones");
    let host = request_host(&headers);
    match phone::reprovision(&s.db, &actor(&sess, &peer), &id, &host).await {
        Ok(p) => url_page(nav, &p, "reprovisioned"),
        Err(e) => error_page("Phones", nav, format!("{e:#}"), "/phones"),
    }
}

async fn remove(
    AxState(s): AxState<State>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    Path(id): Path<String>,
    AxForm(f): AxForm<CsrfForm>,
) -> Response {
    let sess = sess!(s, headers);
    if let Err(r) = may_change(&sess, &f.csrf) {
        return r;
    }
    match phone::remove(&s.db, &actor(&sess, &peer), &id).await {
        Ok(_) => Redirect::to("/phones").into_response(),
        Err(e) => error_page(
            "Phones",
            Nav::new(&sess, "phones"),
            format!("{e:#}"),
            "/phones",
        ),
    }
}
