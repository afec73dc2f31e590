//! The Rooms & recordings page: conference rooms (add, remove, unlock) with who is in each now (mute, unmute,
//! kick), call recordings (play in the browser, download, delete) with the office's settings (announcement,
//! retention) and each extension's mode, and music on hold per extension (default, none, an uploaded WAV) —
//! through the same functions as `palisade conference`, `palisade recording` and `palisade moh`, audited.

use axum::Router;
use axum::body::Body;
use axum::extract::{
    DefaultBodyLimit, Extension, Form as AxForm, Multipart, Path, State as AxState,
};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use store::conferences::ConferenceAction;

use super::monitor::sess;
use super::{
    Action, AuditedChange, Cell, Field, Form, Nav, Row, Table, TablePage, audited_change, or_dash,
    render, session,
};
use crate::admin::{conference, moh, recording};
use crate::console::api::ApiError;
use crate::console::{Peer, State};

pub fn routes() -> Router<State> {
    Router::new()
        .route("/media", get(media))
        .route("/media/rooms", post(room_add))
        .route("/media/rooms/remove", post(room_remove))
        .route("/media/rooms/unlock", post(room_unlock))
        .route("/media/participants", post(participant))
        .route("/media/recordings/settings", post(recording_settings))
        .route("/media/recordings/mode", post(recording_mode))
        .route("/media/recordings/{id}", get(recording_play))
        .route("/media/recordings/{id}/delete", post(recording_delete))
        .route("/media/moh", post(music_set))
        .route(
            "/media/moh/upload",
            post(music_upload).layer(DefaultBodyLimit::max(128 * 1024 * 1024)),
        )
}

#[derive(Deserialize)]
struct MusicForm {
    csrf: String,
    extension: String,
    music: String,
}

async fn music_set(
    AxState(s): AxState<State>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    AxForm(f): AxForm<MusicForm>,
) -> Response {
    change(&s, &peer, &headers, &f.csrf, async |s: &State| {
        let number = f.extension.trim().to_string();
        if !matches!(f.music.as_str(), "default" | "off") {
            anyhow::bail!("music {:?}: default or off (or upload a WAV)", f.music);
        }
        let before = json!(moh::view(&s.db, &number).await?);
        moh::set(&s.db, &crate::music::root(&s.data_dir), &number, &f.music).await?;
        let after = moh::view(&s.db, &number).await?;
        let msg = format!(
            "Extension {number}'s callers on hold hear: {}.",
            after.music
        );
        Ok((
            "moh.set".into(),
            number,
            Some(before),
            Some(json!(after)),
            msg,
        ))
    })
    .await
}

/// A WAV uploaded for an extension's music on hold (multipart: csrf, extension, file).
async fn music_upload(
    AxState(s): AxState<State>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    mut form: Multipart,
) -> Response {
    let mut csrf = String::new();
    let mut extension = String::new();
    let mut wav: Option<Vec<u8>> = None;
    let mut unreadable = None;
    loop {
        match form.next_field().await {
            Ok(Some(field)) => {
                let name = field.name().unwrap_or_default().to_string();
                match field.bytes().await {
                    Ok(b) => match name.as_str() {
                        "csrf" => csrf = String::from_utf8_lossy(&b).into_owned(),
                        "extension" => extension = String::from_utf8_lossy(&b).trim().to_string(),
                        "file" => wav = Some(b.to_vec()),
                        _ => {}
                    },
                    Err(e) => {
                        unreadable = Some(e.to_string());
                        break;
                    }
                }
            }
            Ok(None) => break,
            Err(e) => {
                unreadable = Some(e.to_string());
                break;
            }
        }
    }
    change(&s, &peer, &headers, &csrf, async |s: &State| {
        if let Some(e) = unreadable {
            anyhow::bail!("the upload could not be read ({e})");
        }
        let wav = wav
            .filter(|w| !w.is_empty())
            .ok_or_else(|| anyhow::anyhow!("choose a WAV file to upload"))?;
        let before = json!(moh::view(&s.db, &extension).await?);
        moh::set_upload(&s.db, &crate::music::root(&s.data_dir), &extension, &wav).await?;
        let after = moh::view(&s.db, &extension).await?;
        let msg = format!(
            "Extension {extension}'s callers on hold hear: {}.",
            after.music
        );
        Ok((
            "moh.upload".into(),
            extension.clone(),
            Some(before),
            Some(json!(after)),
            msg,
        ))
    })
    .await
}

#[derive(Deserialize)]
struct RoomForm {
    csrf: String,
    number: String,
    #[serde(default)]
    pin: String,
    #[serde(default)]
    max: String,
}

#[derive(Deserialize)]
struct NameForm {
    csrf: String,
    name: String,
}

#[derive(Deserialize)]
struct ParticipantForm {
    csrf: String,
    room: String,
    participant: i64,
    action: String,
}

#[derive(Deserialize)]
struct SettingsForm {
    csrf: String,
    #[serde(default)]
    announce: String,
    #[serde(default)]
    retention_days: String,
}

#[derive(Deserialize)]
struct ModeForm {
    csrf: String,
    extension: String,
    mode: String,
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

/// Runs a change of the media page: CSRF and role checked, audited, the page shown with the outcome.
async fn change<F>(s: &State, peer: &Peer, headers: &HeaderMap, csrf: &str, run: F) -> Response
where
    F: AsyncFnOnce(&State) -> anyhow::Result<AuditedChange>,
{
    audited_change(s, peer, headers, csrf, "media", media_page, run).await
}

async fn room_add(
    AxState(s): AxState<State>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    AxForm(f): AxForm<RoomForm>,
) -> Response {
    change(&s, &peer, &headers, &f.csrf, async |s: &State| {
        let max = match f.max.trim() {
            "" => 10,
            m => m
                .parse()
                .map_err(|_| anyhow::anyhow!("Most participants: '{m}' is not a number"))?,
        };
        let pin = Some(f.pin.trim()).filter(|p| !p.is_empty());
        conference::add(&s.db, f.number.trim(), pin, max).await?;
        let after =
            json!({"number": f.number.trim(), "pin": pin.is_some(), "max_participants": max});
        let msg = format!(
            "Added conference room {} ({}, up to {max} participants).",
            f.number.trim(),
            if pin.is_some() {
                "with a PIN"
            } else {
                "no PIN"
            }
        );
        Ok((
            "conference.add".into(),
            f.number.trim().to_string(),
            None,
            Some(after),
            msg,
        ))
    })
    .await
}

async fn room_remove(
    AxState(s): AxState<State>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    AxForm(f): AxForm<NameForm>,
) -> Response {
    change(&s, &peer, &headers, &f.csrf, async |s: &State| {
        conference::remove(&s.db, &f.name).await?;
        let msg = format!("Removed conference room {}.", f.name);
        Ok((
            "conference.remove".into(),
            f.name.clone(),
            Some(json!({"number": f.name})),
            None,
            msg,
        ))
    })
    .await
}

async fn room_unlock(
    AxState(s): AxState<State>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    AxForm(f): AxForm<NameForm>,
) -> Response {
    change(&s, &peer, &headers, &f.csrf, async |s: &State| {
        let cleared = conference::unlock(&s.db, &f.name).await?;
        let msg = if cleared {
            format!(
                "Cleared the wrong-PIN count and any lockout of room {}.",
                f.name
            )
        } else {
            format!("Room {} had no wrong PINs counted.", f.name)
        };
        Ok(("conference.unlock".into(), f.name.clone(), None, None, msg))
    })
    .await
}

async fn participant(
    AxState(s): AxState<State>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    AxForm(f): AxForm<ParticipantForm>,
) -> Response {
    change(&s, &peer, &headers, &f.csrf, async |s: &State| {
        let action = match f.action.as_str() {
            "mute" => ConferenceAction::Mute,
            "unmute" => ConferenceAction::Unmute,
            "kick" => ConferenceAction::Kick,
            other => anyhow::bail!("no action {other:?}: mute, unmute or kick"),
        };
        conference::request(&s.db, &f.room, f.participant, action).await?;
        let msg = format!(
            "Asked the server to {} participant {} of room {}.",
            action.as_str(),
            f.participant,
            f.room
        );
        Ok((
            format!("conference.{}", action.as_str()),
            format!("{}/{}", f.room, f.participant),
            None,
            None,
            msg,
        ))
    })
    .await
}

async fn recording_settings(
    AxState(s): AxState<State>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    AxForm(f): AxForm<SettingsForm>,
) -> Response {
    change(&s, &peer, &headers, &f.csrf, async |s: &State| {
        let before = json!(recording::settings(&s.db).await?);
        if !f.announce.trim().is_empty() {
            recording::set_announce(&s.db, f.announce.trim()).await?;
        }
        if let Some(d) = Some(f.retention_days.trim()).filter(|d| !d.is_empty()) {
            let days = d.parse().map_err(|_| {
                anyhow::anyhow!("Retention: '{d}' is not a number of days (0 keeps recordings)")
            })?;
            recording::set_retention(&s.db, days).await?;
        }
        let after = recording::settings(&s.db).await?;
        let msg = format!(
            "Recording announcement {}; recordings kept {}.",
            after.announce,
            if after.retention_days == 0 {
                "until deleted".to_string()
            } else {
                format!("{} days", after.retention_days)
            }
        );
        Ok((
            "recording.settings".into(),
            "office".into(),
            Some(before),
            Some(json!(after)),
            msg,
        ))
    })
    .await
}

async fn recording_mode(
    AxState(s): AxState<State>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    AxForm(f): AxForm<ModeForm>,
) -> Response {
    change(&s, &peer, &headers, &f.csrf, async |s: &State| {
        let number = f.extension.trim().to_string();
        recording::set_mode(&s.db, &number, &f.mode).await?;
        let msg = format!("Extension {number}'s calls: recording {}.", f.mode);
        let after = json!({"extension": number, "mode": f.mode});
        Ok(("recording.mode".into(), number, None, Some(after), msg))
    })
    .await
}

fn recording_id(id: &str) -> Result<i64, ApiError> {
    id.trim_end_matches(".wav").parse().map_err(|_| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("recording {id:?}: a number from the list"),
        )
    })
}

async fn recording_play(
    AxState(s): AxState<State>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let _sess = sess!(s, headers);
    let id = match recording_id(&id) {
        Ok(i) => i,
        Err(e) => return e.into_response(),
    };
    let root = crate::recording::root(&s.data_dir);
    match recording::wav(&s.db, &root, id).await {
        Ok(bytes) => Response::builder()
            .header(header::CONTENT_TYPE, "audio/wav")
            .body(Body::from(bytes))
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()),
        Err(e) => ApiError::from(e).into_response(),
    }
}

async fn recording_delete(
    AxState(s): AxState<State>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    Path(id): Path<String>,
    AxForm(f): AxForm<CsrfForm>,
) -> Response {
    change(&s, &peer, &headers, &f.csrf, async |s: &State| {
        let id = recording_id(&id).map_err(|e| anyhow::anyhow!("{}", e.1))?;
        let root = crate::recording::root(&s.data_dir);
        recording::delete(&s.db, &root, id).await?;
        Ok((
            "recording.delete".into(),
            id.to_string(),
            None,
            None,
            format!("Deleted recording {id}."),
        ))
    })
    .await
}

async fn media(AxState(s): AxState<State>, headers: HeaderMap) -> Response {
    let sess = sess!(s, headers);
    let nav = Nav::new(&sess, "media");
    media_page(&s, &sess, nav).await
}

fn post_action(
    admin: bool,
    url: &str,
    label: &'static str,
    confirm: String,
    hidden: Vec<(&'static str, String)>,
) -> Option<Action> {
    admin.then(|| Action {
        url: url.into(),
        label,
        confirm,
        hidden,
    })
}

async fn media_page(s: &State, sess: &crate::console::sessions::Session, nav: Nav) -> Response {
    let admin = sess.role == store::admin::Role::Admin;
    let mut page = TablePage::new("Conference rooms, call recordings, music on hold", nav);
    page.intro.push(
        "Extensions dial a room's number to meet; a room with a PIN asks for it (wrong PINs lock it out like \
         voicemail's). Recorded calls are mixed into one WAV per call, kept as long as the retention says. Callers \
         an extension holds hear its music on hold. The same checks as `palisade conference`, `palisade recording` \
         and `palisade moh`; every change is in the audit log."
            .into(),
    );
    let settings = recording::settings(&s.db).await.ok();
    if admin {
        page.forms.push(Form {
            method: "post",
            action: "/media/rooms".into(),
            heading: "Add a conference room".into(),
            submit: "Add room".into(),
            fields: vec![
                Field::text("number", "Number", "").required(),
                Field {
                    kind: "password",
                    ..Field::text("pin", "PIN (4-10 digits, optional)", "")
                },
                Field::text("max", "Most participants (2-50, default 10)", ""),
            ],
        });
        let (announce, retention) = settings.as_ref().map_or(("off".to_string(), 0), |v| {
            (v.announce.clone(), v.retention_days)
        });
        page.forms.push(Form {
            method: "post",
            action: "/media/recordings/settings".into(),
            heading: "Recording settings".into(),
            submit: "Save".into(),
            fields: vec![
                Field::select(
                    "announce",
                    "Announce \"This call is recorded.\"",
                    &["off", "on"],
                    &announce,
                ),
                Field::text(
                    "retention_days",
                    "Keep recordings (days, 0: until deleted)",
                    retention.to_string(),
                ),
            ],
        });
        page.forms.push(Form {
            method: "post",
            action: "/media/recordings/mode".into(),
            heading: "Record an extension's calls".into(),
            submit: "Set".into(),
            fields: vec![
                Field::text("extension", "Extension", "").required(),
                Field::select(
                    "mode",
                    "Mode (on-demand: its user keys *1)",
                    &["always", "on-demand", "off"],
                    "always",
                ),
            ],
        });
    }
    if admin {
        page.forms.push(Form {
            method: "post",
            action: "/media/moh/upload".into(),
            heading: "Music on hold: upload an extension's".into(),
            submit: "Upload".into(),
            fields: vec![
                Field::text("extension", "Extension (its callers on hold hear it)", "").required(),
                Field {
                    kind: "file",
                    ..Field::text("file", "WAV file (any PCM WAV, at most 10 minutes)", "")
                }
                .required(),
            ],
        });
        page.forms.push(Form {
            method: "post",
            action: "/media/moh".into(),
            heading: "Music on hold: the default melody or none".into(),
            submit: "Set".into(),
            fields: vec![
                Field::text("extension", "Extension", "").required(),
                Field::select("music", "Music", &["default", "off"], "default"),
            ],
        });
    }
    let rooms = conference::views(&s.db).await.unwrap_or_default();
    let mut people_rows = Vec::new();
    for r in &rooms {
        for p in conference::participants(&s.db, &r.number)
            .await
            .unwrap_or_default()
        {
            let hidden = |action: &str| {
                vec![
                    ("room", r.number.clone()),
                    ("participant", p.participant.to_string()),
                    ("action", action.to_string()),
                ]
            };
            let toggle = if p.muted { "unmute" } else { "mute" };
            let actions = [
                post_action(
                    admin,
                    "/media/participants",
                    if p.muted { "Unmute" } else { "Mute" },
                    String::new(),
                    hidden(toggle),
                ),
                post_action(
                    admin,
                    "/media/participants",
                    "Kick",
                    format!("Hang up {} in room {}?", p.caller, r.number),
                    hidden("kick"),
                ),
            ];
            people_rows.push(Row {
                cells: vec![
                    Cell::from(r.number.clone()),
                    Cell::from(p.participant.to_string()),
                    Cell::from(p.caller.clone()),
                    Cell::from(p.joined_at.clone()),
                    Cell::from(if p.muted { "yes" } else { "no" }),
                ],
                actions: actions.into_iter().flatten().collect(),
            });
        }
    }
    page.tables.push(Table {
        heading: "Conference rooms".into(),
        columns: vec!["Number", "PIN", "Most", "In now", "PIN locked until"],
        empty: "No conference rooms.".into(),
        has_actions: admin,
        rows: rooms
            .iter()
            .map(|r| Row {
                cells: vec![
                    Cell::from(r.number.clone()),
                    Cell::from(if r.pin { "yes" } else { "no" }),
                    Cell::from(r.max_participants.to_string()),
                    Cell::from(r.participants.to_string()),
                    Cell::from(or_dash(r.locked_until.as_deref())),
                ],
                actions: [
                    post_action(
                        admin,
                        "/media/rooms/unlock",
                        "Unlock",
                        String::new(),
                        vec![("name", r.number.clone())],
                    ),
                    post_action(
                        admin,
                        "/media/rooms/remove",
                        "Remove",
                        format!("Remove conference room {}?", r.number),
                        vec![("name", r.number.clone())],
                    ),
                ]
                .into_iter()
                .flatten()
                .collect(),
            })
            .collect(),
        ..Table::default()
    });
    page.tables.push(Table {
        heading: "In the rooms now".into(),
        columns: vec!["Room", "N", "Caller", "Joined", "Muted"],
        empty: "Nobody is in a conference room.".into(),
        has_actions: admin,
        rows: people_rows,
        ..Table::default()
    });
    page.tables.push(Table {
        heading: "Recorded extensions".into(),
        columns: vec!["Extension", "Mode"],
        empty: "No extension is recorded.".into(),
        rows: settings
            .map(|v| v.extensions)
            .unwrap_or_default()
            .into_iter()
            .map(|m| Row {
                cells: vec![Cell::from(m.extension), Cell::from(m.mode)],
                actions: Vec::new(),
            })
            .collect(),
        ..Table::default()
    });
    page.tables.push(Table {
        heading: "Music on hold (extensions not on the default melody)".into(),
        columns: vec!["Extension", "Music"],
        empty: "Every extension's callers on hold hear the default melody.".into(),
        has_actions: admin,
        rows: moh::views(&s.db)
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|m| Row {
                actions: post_action(
                    admin,
                    "/media/moh",
                    "Default",
                    String::new(),
                    vec![
                        ("extension", m.number.clone()),
                        ("music", "default".to_string()),
                    ],
                )
                .into_iter()
                .collect(),
                cells: vec![Cell::from(m.number), Cell::from(m.music)],
            })
            .collect(),
        ..Table::default()
    });
    let recordings = recording::views(&s.db, None).await.unwrap_or_default();
    page.tables.push(Table {
        heading: "Recordings".into(),
        columns: vec!["Recording", "From", "To", "Started", "Seconds"],
        empty: "No recordings.".into(),
        has_actions: admin,
        rows: recordings
            .into_iter()
            .map(|r| {
                let url = format!("/media/recordings/{}", r.id);
                Row {
                    cells: vec![
                        Cell {
                            text: format!("Recording {} (WAV)", r.id),
                            link: Some(format!("{url}.wav")),
                            audio: Some(format!("{url}.wav")),
                        },
                        Cell::from(r.caller),
                        Cell::from(r.callee),
                        Cell::from(r.started_at),
                        Cell::from(format!("{:.1}", r.duration_secs)),
                    ],
                    actions: post_action(
                        admin,
                        &format!("{url}/delete"),
                        "Delete",
                        format!("Delete recording {}?", r.id),
                        Vec::new(),
                    )
                    .into_iter()
                    .collect(),
                }
            })
            .collect(),
        ..Table::default()
    });
    render(&page)
}
