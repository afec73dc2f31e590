//! `/api/v1/groups` and `/api/v1/queues`: ring groups and call queues — list, show, add, change, remove, and queue
//! statistics — through the same functions as `palisade group|queue` (same checks, same messages), audited.

use axum::Router;
use axum::extract::{Path, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use super::State;
use super::api::{ApiError, Caller, JsonBody};
use crate::admin::groups::{self, GroupSettings, GroupView};
use crate::admin::queues::{self, QueueSettings};

pub fn api_routes() -> Router<State> {
    Router::new()
        .route("/groups", get(list_groups).post(add_group))
        .route(
            "/groups/{number}",
            get(get_group).patch(change_group).delete(remove_group),
        )
        .route("/queues", get(list_queues).post(add_queue))
        .route(
            "/queues/{number}",
            get(get_queue).patch(change_queue).delete(remove_queue),
        )
        .route("/queues/{number}/stats", get(queue_stats))
}

use super::api::{audited, no_such};

type ApiResult = Result<Response, ApiError>;

/// A ring group's settings as JSON (every field optional for a change; `members` required to add).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupInput {
    number: Option<String>,
    members: Option<Vec<String>>,
    strategy: Option<String>,
    ring_seconds: Option<u32>,
    fallback: Option<String>,
}

impl GroupInput {
    fn settings(&self) -> GroupSettings {
        GroupSettings {
            members: self.members.clone(),
            strategy: self.strategy.clone(),
            ring_seconds: self.ring_seconds,
            fallback: self.fallback.clone(),
        }
    }
}

/// A queue's settings as JSON (every field optional for a change; `agents` required to add).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueInput {
    number: Option<String>,
    agents: Option<Vec<String>>,
    strategy: Option<String>,
    max_wait: Option<u32>,
    music: Option<String>,
    fallback: Option<String>,
}

impl QueueInput {
    fn settings(&self) -> QueueSettings {
        QueueSettings {
            agents: self.agents.clone(),
            strategy: self.strategy.clone(),
            max_wait: self.max_wait,
            music: self.music.clone(),
            fallback: self.fallback.clone(),
        }
    }
}

fn missing(what: &str) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, format!("{what} is required"))
}

async fn group_view(s: &State, number: &str) -> Result<GroupView, ApiError> {
    groups::group_views(&s.db)
        .await?
        .into_iter()
        .find(|g| g.number == number)
        .ok_or_else(|| no_such(format!("ring group {number}")))
}

async fn list_groups(AxState(s): AxState<State>) -> ApiResult {
    Ok(axum::Json(json!({ "items": groups::group_views(&s.db).await? })).into_response())
}

async fn get_group(AxState(s): AxState<State>, Path(number): Path<String>) -> ApiResult {
    Ok(axum::Json(json!(group_view(&s, &number).await?)).into_response())
}

async fn add_group(
    AxState(s): AxState<State>,
    axum::Extension(c): axum::Extension<Caller>,
    JsonBody(input): JsonBody<GroupInput>,
) -> ApiResult {
    let number = input.number.clone().ok_or_else(|| missing("number"))?;
    let g = groups::add_group(&s.db, &number, &input.settings()).await?;
    let v = json!(GroupView::from(&g));
    audited(&s, &c, "group.add", &g.number, None, Some(v.clone())).await?;
    Ok((StatusCode::CREATED, axum::Json(v)).into_response())
}

async fn change_group(
    AxState(s): AxState<State>,
    axum::Extension(c): axum::Extension<Caller>,
    Path(number): Path<String>,
    JsonBody(input): JsonBody<GroupInput>,
) -> ApiResult {
    let (before, after) = groups::change_group(&s.db, &number, &input.settings()).await?;
    let after = json!(GroupView::from(&after));
    let before = json!(GroupView::from(&before));
    audited(
        &s,
        &c,
        "group.update",
        &number,
        Some(before),
        Some(after.clone()),
    )
    .await?;
    Ok(axum::Json(after).into_response())
}

async fn remove_group(
    AxState(s): AxState<State>,
    axum::Extension(c): axum::Extension<Caller>,
    Path(number): Path<String>,
) -> ApiResult {
    let before = json!(GroupView::from(
        &groups::remove_group(&s.db, &number).await?
    ));
    audited(&s, &c, "group.remove", &number, Some(before.clone()), None).await?;
    Ok(axum::Json(json!({ "removed": before })).into_response())
}

async fn queue_view(s: &State, number: &str) -> Result<Value, ApiError> {
    queues::queue_views(&s.db)
        .await?
        .into_iter()
        .find(|q| q.number == number)
        .map(|q| json!(q))
        .ok_or_else(|| no_such(format!("queue {number}")))
}

async fn list_queues(AxState(s): AxState<State>) -> ApiResult {
    Ok(axum::Json(json!({ "items": queues::queue_views(&s.db).await? })).into_response())
}

async fn get_queue(AxState(s): AxState<State>, Path(number): Path<String>) -> ApiResult {
    Ok(axum::Json(queue_view(&s, &number).await?).into_response())
}

async fn add_queue(
    AxState(s): AxState<State>,
    axum::Extension(c): axum::Extension<Caller>,
    JsonBody(input): JsonBody<QueueInput>,
) -> ApiResult {
    let number = input.number.clone().ok_or_else(|| missing("number"))?;
    let q = queues::add_queue(&s.db, &number, &input.settings()).await?;
    let v = queue_view(&s, &q.number).await?;
    audited(&s, &c, "queue.add", &q.number, None, Some(v.clone())).await?;
    Ok((StatusCode::CREATED, axum::Json(v)).into_response())
}

async fn change_queue(
    AxState(s): AxState<State>,
    axum::Extension(c): axum::Extension<Caller>,
    Path(number): Path<String>,
    JsonBody(input): JsonBody<QueueInput>,
) -> ApiResult {
    let before = queue_view(&s, &number).await?;
    queues::change_queue(&s.db, &number, &input.settings()).await?;
    let after = queue_view(&s, &number).await?;
    audited(
        &s,
        &c,
        "queue.update",
        &number,
        Some(before),
        Some(after.clone()),
    )
    .await?;
    Ok(axum::Json(after).into_response())
}

async fn remove_queue(
    AxState(s): AxState<State>,
    axum::Extension(c): axum::Extension<Caller>,
    Path(number): Path<String>,
) -> ApiResult {
    let before = queue_view(&s, &number).await?;
    queues::remove_queue(&s.db, &number).await?;
    audited(&s, &c, "queue.remove", &number, Some(before.clone()), None).await?;
    Ok(axum::Json(json!({ "removed": before })).into_response())
}

async fn queue_stats(AxState(s): AxState<State>, Path(number): Path<String>) -> ApiResult {
    let views = queues::stats_views(&s.db, Some(&number)).await?;
    let v = views
        .into_iter()
        .next()
        .ok_or_else(|| no_such(format!("queue {number}")))?;
    Ok(axum::Json(json!(v)).into_response())
}
