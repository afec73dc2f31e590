//! The Backups page: the archives in the backup folder (scheduled ones included) with their downloads, a backup
//! made now, and an uploaded archive checked with restore's own code and kept, with the exact `palisade restore`
//! command to run (a running server never restores over its own data). Downloads need the admin role: a backup
//! holds password hashes and the TLS private key.

use axum::Router;
use axum::extract::{Extension, Form as AxForm, Multipart, Path, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use store::admin::Role;

use super::monitor::sess;
use super::{
    Cell, Field, Form, Nav, Row, Table, TablePage, actor, enc, may_change, render, session,
};
use crate::admin::accounts;
use crate::admin::time::format_ms;
use crate::backup::folder::{self, Upload};
use crate::console::backups::{accept_audited, file_response, summary_json};
use crate::console::sessions::Session;
use crate::console::{Peer, State};

pub fn routes() -> Router<State> {
    Router::new()
        .route("/backups", get(page))
        .route("/backups/create", post(create))
        .route(
            "/backups/upload",
            post(upload).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/backups/download/{name}", get(download))
}

async fn page(AxState(s): AxState<State>, headers: HeaderMap) -> Response {
    let sess = sess!(s, headers);
    let nav = Nav::new(&sess, "backups");
    backups_page(&s, &sess, nav)
}

fn backups_page(s: &State, sess: &Session, nav: Nav) -> Response {
    let admin = sess.role == Role::Admin;
    let mut page = TablePage::new("Backups", nav);
    page.intro.push(format!(
        "Backups in {}: scheduled ones ([backup] in palisade.toml), those made here or with POST /api/v1/backups, \
         and uploaded ones. A backup holds password hashes and the TLS private key: keep downloads private.",
        s.backup_dir.display()
    ));
    page.intro.push(
        "Restoring: a running server never restores over its own data. Upload an archive here to check it \
         (manifest, every checksum, the database), then stop the server and run the `palisade restore` command \
         shown into a new directory, and start the server with that --data."
            .into(),
    );
    if admin {
        page.forms.push(Form {
            method: "post",
            action: "/backups/create".into(),
            heading: "Back up now".into(),
            submit: "Back up now".into(),
            fields: Vec::new(),
        });
        page.forms.push(Form {
            method: "post",
            action: "/backups/upload".into(),
            heading: "Upload a backup to restore".into(),
            submit: "Upload and check".into(),
            fields: vec![
                Field {
                    kind: "file",
                    ..Field::text("archive", "Archive (.tar)", "")
                }
                .required(),
            ],
        });
    }
    let (rows, error) = match folder::list(&s.backup_dir) {
        Ok(list) => (list, None),
        Err(e) => (Vec::new(), Some(format!("{e:#}"))),
    };
    if let Some(e) = error {
        page.nav.errors.push(e);
    }
    page.tables.push(Table {
        heading: "Archives (newest first)".into(),
        columns: vec!["Name", "Kind", "Size", "Written"],
        empty: "No backups yet.".into(),
        rows: rows
            .into_iter()
            .map(|b| Row {
                cells: vec![
                    Cell {
                        link: admin.then(|| format!("/backups/download/{}", enc(&b.name))),
                        ..Cell::from(b.name)
                    },
                    Cell::from(b.kind),
                    Cell::from(format!("{:.1} MB", b.bytes as f64 / 1_000_000.0)),
                    Cell::from(format_ms(b.modified_at as i64 * 1000)),
                ],
                actions: Vec::new(),
            })
            .collect(),
        ..Table::default()
    });
    render(&page)
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn create(
    AxState(s): AxState<State>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    AxForm(f): AxForm<CsrfForm>,
) -> Response {
    let sess = sess!(s, headers);
    if let Err(r) = may_change(&sess, &f.csrf) {
        return r;
    }
    let mut nav = Nav::new(&sess, "backups");
    let done = async {
        let (name, summary) = folder::create_now(&s.db, &s.data_dir, &s.backup_dir).await?;
        let body = summary_json(&name, &summary, &s.data_dir);
        accounts::audit(
            &s.db,
            &actor(&sess, &peer),
            "backup.create",
            Some(&name),
            None,
            Some(body),
        )
        .await?;
        anyhow::Ok(format!(
            "Backed up {} to {name}.",
            folder::describe(&summary)
        ))
    }
    .await;
    match done {
        Ok(m) => nav.messages.push(m),
        Err(e) => nav.errors.push(format!("{e:#}")),
    }
    backups_page(&s, &sess, nav)
}

async fn download(
    AxState(s): AxState<State>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let sess = sess!(s, headers);
    if sess.role != Role::Admin {
        return (
            StatusCode::FORBIDDEN,
            "This account has the viewer role: a backup holds password hashes and the TLS private key, so only \
             admins may download one.",
        )
            .into_response();
    }
    let path = match folder::path_of(&s.backup_dir, &name) {
        Ok(p) => p,
        Err(e) => return (StatusCode::NOT_FOUND, format!("{e:#}")).into_response(),
    };
    if let Err(e) = accounts::audit(
        &s.db,
        &actor(&sess, &peer),
        "backup.download",
        Some(&name),
        None,
        None,
    )
    .await
    {
        return (StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")).into_response();
    }
    file_response(path, &name)
}

/// The form's fields in order: the CSRF token first (checked before a byte of the file is written), then the
/// archive.
async fn upload(
    AxState(s): AxState<State>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    mut form: Multipart,
) -> Response {
    let sess = sess!(s, headers);
    let mut nav = Nav::new(&sess, "backups");
    let done = async {
        let mut csrf_ok = false;
        while let Some(mut field) = form.next_field().await? {
            match field.name() {
                Some("csrf") => {
                    let token = field.text().await?;
                    if let Err(r) = may_change(&sess, &token) {
                        return Ok(Err(r));
                    }
                    csrf_ok = true;
                }
                Some("archive") if csrf_ok => {
                    let mut up = Upload::start(&s.backup_dir)?;
                    while let Some(chunk) = field.chunk().await? {
                        up.write(&chunk)?;
                    }
                    let body = accept_audited(&s, &actor(&sess, &peer), up).await?;
                    return anyhow::Ok(Ok(body));
                }
                _ => {}
            }
        }
        if !csrf_ok {
            return Ok(Err(may_change(&sess, "")
                .err()
                .unwrap_or_else(|| StatusCode::FORBIDDEN.into_response())));
        }
        anyhow::bail!("no archive in the upload: choose a .tar file written by `palisade backup`")
    }
    .await;
    match done {
        Ok(Err(refused)) => return refused,
        Ok(Ok(body)) => {
            let field = |k: &str| body[k].as_str().unwrap_or_default().to_string();
            nav.messages.push(format!(
                "The archive was checked and kept as {}: {}.",
                field("name"),
                field("summary")
            ));
            nav.messages.push(format!(
                "To restore it: stop the server, run `{}`, then start the server with that --data directory.",
                field("restore_command")
            ));
        }
        Err(e) => nav.errors.push(format!("{e:#}")),
    }
    let res = backups_page(&s, &sess, nav.clone());
    if nav.errors.is_empty() {
        res
    } else {
        (StatusCode::BAD_REQUEST, res).into_response()
    }
}
