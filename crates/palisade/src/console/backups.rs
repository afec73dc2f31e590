//! `/api/v1/backups`: list the archives in the backup folder (scheduled ones included), back up now, download
//! one, upload one (checked with restore's own code, then kept for `palisade restore`). A backup holds password
//! hashes and the TLS private key: downloading needs a write-scope token (the console: the admin role), like
//! creating; listing is open to read tokens. Every action is audited.

use std::io::Read;
use std::path::PathBuf;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, State as AxState};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use serde_json::json;

use super::State;
use super::api::{ApiError, Caller};
use crate::admin::accounts;
use crate::backup::folder::{self, Upload};

pub fn api_routes() -> Router<State> {
    Router::new()
        .route("/backups", get(list).post(create))
        .route(
            "/backups/upload",
            post(upload).layer(DefaultBodyLimit::disable()),
        )
        .route("/backups/{name}", get(download))
}

type ApiResult = Result<Response, ApiError>;

async fn list(AxState(s): AxState<State>) -> ApiResult {
    let items = folder::list(&s.backup_dir)?;
    Ok(axum::Json(json!({ "items": items, "dir": s.backup_dir })).into_response())
}

/// The JSON describing a backup just written or accepted.
pub fn summary_json(
    name: &str,
    summary: &crate::backup::Summary,
    data: &std::path::Path,
) -> serde_json::Value {
    json!({
        "name": name,
        "kind": folder::kind_of(name),
        "bytes": std::fs::metadata(&summary.path).map(|m| m.len()).unwrap_or(0),
        "files": summary.manifest.files.len(),
        "schema": summary.manifest.schema,
        "palisade": summary.manifest.palisade,
        "created_at": summary.manifest.created_at,
        "summary": folder::describe(summary),
        "restore_command": folder::restore_command(&summary.path, data),
    })
}

async fn create(
    AxState(s): AxState<State>,
    axum::Extension(c): axum::Extension<Caller>,
) -> ApiResult {
    let (name, summary) = folder::create_now(&s.db, &s.data_dir, &s.backup_dir).await?;
    let body = summary_json(&name, &summary, &s.data_dir);
    accounts::audit(
        &s.db,
        &c.actor(),
        "backup.create",
        Some(&name),
        None,
        Some(body.clone()),
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(body)).into_response())
}

async fn download(
    AxState(s): AxState<State>,
    axum::Extension(c): axum::Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult {
    if c.scope != "write" {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            format!(
                "token {} has the read scope: downloading a backup (password hashes, the TLS private key) needs \
                 a write-scope token",
                c.token
            ),
        ));
    }
    let path = folder::path_of(&s.backup_dir, &name)?;
    accounts::audit(
        &s.db,
        &c.actor(),
        "backup.download",
        Some(&name),
        None,
        None,
    )
    .await?;
    Ok(file_response(path, &name))
}

/// An archive as a download, read in chunks off the async threads.
pub fn file_response(path: PathBuf, name: &str) -> Response {
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(error = %e, file = %path.display(), "cannot open a backup");
            return ApiError(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot read the backup; see the server log".into(),
            )
            .into_response();
        }
    };
    let len = file.metadata().map(|m| m.len()).ok();
    let chunks = futures_util::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let read = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; 256 * 1024];
            let n = file.read(&mut buf)?;
            buf.truncate(n);
            std::io::Result::Ok((buf, file))
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        match read {
            Ok((buf, _)) if buf.is_empty() => None,
            Ok((buf, file)) => Some((Ok(axum::body::Bytes::from(buf)), Some(file))),
            Err(e) => Some((Err(e), None)),
        }
    });
    let mut res = Response::builder()
        .header(header::CONTENT_TYPE, "application/x-tar")
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        );
    if let Some(len) = len {
        res = res.header(header::CONTENT_LENGTH, len);
    }
    res.body(Body::from_stream(chunks))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// The request body (the archive itself, `Content-Type: application/x-tar`) into the backup folder, checked.
async fn upload(
    AxState(s): AxState<State>,
    axum::Extension(c): axum::Extension<Caller>,
    body: Body,
) -> ApiResult {
    let mut up = Upload::start(&s.backup_dir)?;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError(
                StatusCode::BAD_REQUEST,
                format!("the upload was interrupted: {e}"),
            )
        })?;
        up.write(&chunk)?;
    }
    let accepted = accept_audited(&s, &c.actor(), up).await?;
    Ok((StatusCode::CREATED, axum::Json(accepted)).into_response())
}

/// Checks and keeps an upload, auditing the outcome either way (a refused archive is worth knowing about).
pub async fn accept_audited(
    s: &State,
    actor: &accounts::Actor,
    up: Upload,
) -> anyhow::Result<serde_json::Value> {
    match up.accept().await {
        Ok((name, summary)) => {
            let body = summary_json(&name, &summary, &s.data_dir);
            accounts::audit(
                &s.db,
                actor,
                "backup.upload",
                Some(&name),
                None,
                Some(body.clone()),
            )
            .await?;
            Ok(body)
        }
        Err(e) => {
            let msg = format!("{e:#}");
            accounts::audit(
                &s.db,
                actor,
                "backup.upload_refused",
                None,
                None,
                Some(json!({ "error": msg })),
            )
            .await?;
            Err(e)
        }
    }
}
