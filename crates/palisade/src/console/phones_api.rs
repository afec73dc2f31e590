//! `/api/v1/phones`: provisioned phones, through the same functions as `palisade phone` (same checks, same
//! messages), audited by them. The provisioning URL is in the answer to a creation or a reprovision only; the
//! phone's web-admin password in `GET /phones/{id}` for write-scope tokens only.

use axum::Router;
use axum::extract::{Path, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use super::State;
use super::api::{ApiError, Caller, JsonBody};
use crate::admin::phone;

pub fn api_routes() -> Router<State> {
    Router::new()
        .route("/phones", get(list).post(add))
        .route("/phones/{id}", get(show).delete(remove))
        .route("/phones/{id}/reprovision", post(reprovision))
}

type ApiResult = Result<Response, ApiError>;

async fn list(AxState(s): AxState<State>) -> ApiResult {
    Ok(axum::Json(json!({ "items": phone::list(&s.db).await? })).into_response())
}

async fn show(
    AxState(s): AxState<State>,
    axum::Extension(c): axum::Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult {
    let mut v = phone::show(&s.db, &id).await?;
    if c.scope != "write" {
        v.admin_password = None;
    }
    Ok(axum::Json(json!(v)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPhone {
    mac: Option<String>,
    ext: String,
    model: String,
    /// HOST[:PORT] for the URL; default: the one this request was sent to.
    host: Option<String>,
}

async fn host(s: &State, headers: &HeaderMap, given: Option<String>) -> Result<String, ApiError> {
    let given = given.or_else(|| Some(super::pages::request_host(headers)));
    Ok(phone::url_host(&s.db, &s.data_dir, given).await?)
}

async fn add(
    AxState(s): AxState<State>,
    axum::Extension(c): axum::Extension<Caller>,
    headers: HeaderMap,
    JsonBody(n): JsonBody<NewPhone>,
) -> ApiResult {
    let host = host(&s, &headers, n.host).await?;
    let p = phone::add(&s.db, &c.actor(), n.mac.as_deref(), &n.ext, &n.model, &host).await?;
    Ok((StatusCode::CREATED, axum::Json(json!(p))).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Reprovision {
    host: Option<String>,
}

async fn reprovision(
    AxState(s): AxState<State>,
    axum::Extension(c): axum::Extension<Caller>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult {
    // The body is optional: none (or empty) keeps the host this request was sent to.
    let given = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        serde_json::from_slice::<Reprovision>(&body)
            .map_err(|e| {
                ApiError(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("invalid body: {e}"),
                )
            })?
            .host
    };
    let host = host(&s, &headers, given).await?;
    let p = phone::reprovision(&s.db, &c.actor(), &id, &host).await?;
    Ok(axum::Json(json!(p)).into_response())
}

async fn remove(
    AxState(s): AxState<State>,
    axum::Extension(c): axum::Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult {
    let removed = phone::remove(&s.db, &c.actor(), &id).await?;
    Ok(axum::Json(json!({ "removed": removed })).into_response())
}
