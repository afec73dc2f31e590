//! `/api/v1/conferences`, `/api/v1/recordings` and `/api/v1/moh`: conference rooms (add, remove, who is in,
//! mute/unmute/kick, unlock), call recordings (list, WAV, delete, the office's settings and each extension's mode)
//! and music on hold per extension (default, off, an uploaded WAV) through the same functions as
//! `palisade conference|recording|moh` (same checks, same messages), audited.

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Query, State as AxState};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Deserialize;
use serde_json::{Value, json};
use store::conferences::ConferenceAction;

use super::State;
use super::api::{ApiError, Caller, JsonBody};
use crate::admin::{conference, moh, recording};

/// Largest music-on-hold upload: ten minutes of 48 kHz 16-bit stereo WAV and then some.
const MAX_MUSIC_UPLOAD: usize = 128 * 1024 * 1024;

pub fn api_routes() -> Router<State> {
    Router::new()
        .route("/conferences", get(list_rooms).post(add_room))
        .route("/conferences/{number}", get(get_room).delete(remove_room))
        .route("/conferences/{number}/unlock", post(unlock_room))
        .route(
            "/conferences/{number}/participants/{participant}/{action}",
            post(participant_action),
        )
        .route("/recordings", get(list_recordings))
        .route(
            "/recordings/settings",
            get(recording_settings).patch(change_recording_settings),
        )
        .route("/recordings/extensions/{number}", put(set_recording_mode))
        .route(
            "/recordings/{id}",
            get(recording_wav).delete(delete_recording),
        )
        .route("/moh", get(list_music))
        .route("/moh/{number}", get(get_music).put(set_music))
        .route(
            "/moh/{number}/upload",
            post(upload_music).layer(DefaultBodyLimit::max(MAX_MUSIC_UPLOAD)),
        )
}

use super::api::{audited, no_such};

type ApiResult = Result<Response, ApiError>;

/// A new room: its number, an optional PIN (4-10 digits, kept only as a hash) and the most participants.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomInput {
    number: String,
    pin: Option<String>,
    max: Option<u32>,
}

async fn room_view(s: &State, number: &str) -> Result<Value, ApiError> {
    let room = conference::views(&s.db)
        .await?
        .into_iter()
        .find(|r| r.number == number)
        .ok_or_else(|| no_such(format!("conference room {number}")))?;
    let people = conference::participants(&s.db, number).await?;
    Ok(json!({ "room": room, "participants": people }))
}

async fn list_rooms(AxState(s): AxState<State>) -> ApiResult {
    Ok(axum::Json(json!({ "items": conference::views(&s.db).await? })).into_response())
}

async fn get_room(AxState(s): AxState<State>, Path(number): Path<String>) -> ApiResult {
    Ok(axum::Json(room_view(&s, &number).await?).into_response())
}

async fn add_room(
    AxState(s): AxState<State>,
    axum::Extension(c): axum::Extension<Caller>,
    JsonBody(input): JsonBody<RoomInput>,
) -> ApiResult {
    let max = input.max.unwrap_or(10);
    conference::add(&s.db, &input.number, input.pin.as_deref(), max).await?;
    let v = room_view(&s, &input.number).await?;
    // The PIN itself is never audited: only whether the room has one.
    audited(
        &s,
        &c,
        "conference.add",
        &input.number,
        None,
        Some(v["room"].clone()),
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(v)).into_response())
}

async fn remove_room(
    AxState(s): AxState<State>,
    axum::Extension(c): axum::Extension<Caller>,
    Path(number): Path<String>,
) -> ApiResult {
    let before = room_view(&s, &number).await?;
    conference::remove(&s.db, &number).await?;
    audited(
        &s,
        &c,
        "conference.remove",
        &number,
        Some(before["room"].clone()),
        None,
    )
    .await?;
    Ok(axum::Json(json!({ "removed": number })).into_response())
}

async fn unlock_room(
    AxState(s): AxState<State>,
    axum::Extension(c): axum::Extension<Caller>,
    Path(number): Path<String>,
) -> ApiResult {
    let cleared = conference::unlock(&s.db, &number).await?;
    audited(&s, &c, "conference.unlock", &number, None, None).await?;
    Ok(axum::Json(json!({ "room": number, "cleared": cleared })).into_response())
}

async fn participant_action(
    AxState(s): AxState<State>,
    axum::Extension(c): axum::Extension<Caller>,
    Path((number, participant, action)): Path<(String, String, String)>,
) -> ApiResult {
    let participant: i64 = participant.parse().map_err(|_| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("participant {participant:?}: the number `participants` lists (1, 2, …)"),
        )
    })?;
    let action = match action.as_str() {
        "mute" => ConferenceAction::Mute,
        "unmute" => ConferenceAction::Unmute,
        "kick" => ConferenceAction::Kick,
        other => {
            return Err(ApiError(
                StatusCode::NOT_FOUND,
                format!("no action {other:?}: use mute, unmute or kick"),
            ));
        }
    };
    conference::request(&s.db, &number, participant, action).await?;
    let target = format!("{number}/{participant}");
    audited(
        &s,
        &c,
        &format!("conference.{}", action.as_str()),
        &target,
        None,
        None,
    )
    .await?;
    Ok(
        axum::Json(
            json!({ "room": number, "participant": participant, "action": action.as_str() }),
        )
        .into_response(),
    )
}

#[derive(Debug, Deserialize)]
struct RecordingFilter {
    extension: Option<String>,
}

async fn list_recordings(
    AxState(s): AxState<State>,
    Query(f): Query<RecordingFilter>,
) -> ApiResult {
    let items = recording::views(&s.db, f.extension.as_deref()).await?;
    Ok(axum::Json(json!({ "items": items })).into_response())
}

fn recording_id(id: &str) -> Result<i64, ApiError> {
    id.parse().map_err(|_| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("recording id {id:?}: a number from the list"),
        )
    })
}

async fn recording_wav(AxState(s): AxState<State>, Path(id): Path<String>) -> ApiResult {
    let id = recording_id(&id)?;
    let root = crate::recording::root(&s.data_dir);
    let bytes = recording::wav(&s.db, &root, id).await?;
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "audio/wav")
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"recording-{id}.wav\""),
        )
        .body(Body::from(bytes))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()))
}

async fn delete_recording(
    AxState(s): AxState<State>,
    axum::Extension(c): axum::Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult {
    let id = recording_id(&id)?;
    let root = crate::recording::root(&s.data_dir);
    recording::delete(&s.db, &root, id).await?;
    audited(&s, &c, "recording.delete", &id.to_string(), None, None).await?;
    Ok(axum::Json(json!({ "deleted": id })).into_response())
}

async fn recording_settings(AxState(s): AxState<State>) -> ApiResult {
    Ok(axum::Json(json!(recording::settings(&s.db).await?)).into_response())
}

/// The office's recording settings; only the fields given change.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingSettingsInput {
    announce: Option<String>,
    retention_days: Option<u32>,
}

async fn change_recording_settings(
    AxState(s): AxState<State>,
    axum::Extension(c): axum::Extension<Caller>,
    JsonBody(input): JsonBody<RecordingSettingsInput>,
) -> ApiResult {
    let before = json!(recording::settings(&s.db).await?);
    if let Some(a) = &input.announce {
        recording::set_announce(&s.db, a).await?;
    }
    if let Some(d) = input.retention_days {
        recording::set_retention(&s.db, d).await?;
    }
    let after = json!(recording::settings(&s.db).await?);
    audited(
        &s,
        &c,
        "recording.settings",
        "office",
        Some(before),
        Some(after.clone()),
    )
    .await?;
    Ok(axum::Json(after).into_response())
}

/// How an extension's calls are recorded: `always`, `on-demand` or `off`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingModeInput {
    mode: String,
}

async fn set_recording_mode(
    AxState(s): AxState<State>,
    axum::Extension(c): axum::Extension<Caller>,
    Path(number): Path<String>,
    JsonBody(input): JsonBody<RecordingModeInput>,
) -> ApiResult {
    recording::set_mode(&s.db, &number, &input.mode).await?;
    let after = json!({ "extension": number, "mode": input.mode });
    audited(&s, &c, "recording.mode", &number, None, Some(after.clone())).await?;
    Ok(axum::Json(after).into_response())
}

async fn list_music(AxState(s): AxState<State>) -> ApiResult {
    Ok(axum::Json(json!({ "items": moh::views(&s.db).await? })).into_response())
}

async fn get_music(AxState(s): AxState<State>, Path(number): Path<String>) -> ApiResult {
    Ok(axum::Json(json!(moh::view(&s.db, &number).await?)).into_response())
}

/// `default` (the generated melody) or `off`; a file is uploaded with `POST /moh/{number}/upload` (the API never
/// reads a path on the server).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MusicInput {
    music: String,
}

async fn set_music(
    AxState(s): AxState<State>,
    axum::Extension(c): axum::Extension<Caller>,
    Path(number): Path<String>,
    JsonBody(input): JsonBody<MusicInput>,
) -> ApiResult {
    if !matches!(input.music.as_str(), "default" | "off") {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!(
                "music {:?}: default or off here; upload a WAV with POST /api/v1/moh/{number}/upload",
                input.music
            ),
        ));
    }
    let before = json!(moh::view(&s.db, &number).await?);
    let root = crate::music::root(&s.data_dir);
    moh::set(&s.db, &root, &number, &input.music).await?;
    let after = json!(moh::view(&s.db, &number).await?);
    audited(
        &s,
        &c,
        "moh.set",
        &number,
        Some(before),
        Some(after.clone()),
    )
    .await?;
    Ok(axum::Json(after).into_response())
}

async fn upload_music(
    AxState(s): AxState<State>,
    axum::Extension(c): axum::Extension<Caller>,
    Path(number): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult {
    let before = json!(moh::view(&s.db, &number).await?);
    let root = crate::music::root(&s.data_dir);
    moh::set_upload(&s.db, &root, &number, &body).await?;
    let after = json!(moh::view(&s.db, &number).await?);
    audited(
        &s,
        &c,
        "moh.upload",
        &number,
        Some(before),
        Some(after.clone()),
    )
    .await?;
    Ok(axum::Json(after).into_response())
}
