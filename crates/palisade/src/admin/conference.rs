//! `palisade conference …`: conference rooms (add, list, show, remove, unlock) and the people in them
//! (participants, mute, unmute, kick). Room settings take effect within a second; mute and kick are requests the
//! running server applies within half a second.

use anyhow::anyhow;
use clap::{Args, Subcommand};
use serde::Serialize;
use store::StoreError;
use store::conferences::ConferenceAction;

use super::time::format_ms;
use super::{CommonArgs, output};

/// Participants per room unless `--max` says otherwise.
pub const DEFAULT_MAX: u32 = 10;

#[derive(Debug, Args)]
pub struct ConferenceArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(subcommand)]
    pub command: ConferenceCommand,
}

#[derive(Debug, Subcommand)]
pub enum ConferenceCommand {
    /// Add a room: extensions dial NUMBER to join it.
    Add {
        /// The room's number (not an extension's).
        number: String,
        /// A PIN callers must key in (4-10 digits; wrong PINs lock the room's PIN entry like a voicemail PIN's).
        #[arg(long)]
        pin: Option<String>,
        /// Most participants at once (2-50).
        #[arg(long, default_value_t = DEFAULT_MAX)]
        max: u32,
    },
    /// List the rooms.
    List,
    /// Show a room: its settings and who is in it.
    Show { number: String },
    /// Remove a room (people in it stay connected until they hang up).
    Remove { number: String },
    /// Who is in a room now (their numbers are for mute and kick).
    Participants { number: String },
    /// Mute participant N of a room (the others stop hearing it).
    Mute { number: String, participant: i64 },
    /// Unmute participant N of a room.
    Unmute { number: String, participant: i64 },
    /// Hang up participant N of a room.
    Kick { number: String, participant: i64 },
    /// Lift a room's PIN lockout (after too many wrong PINs).
    Unlock { number: String },
}

#[derive(Debug, Serialize)]
pub struct RoomView {
    pub number: String,
    pub pin: bool,
    pub max_participants: i64,
    pub participants: usize,
    pub locked_until: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ParticipantView {
    pub participant: i64,
    pub caller: String,
    pub joined_at: String,
    pub muted: bool,
}

fn room_error(e: StoreError) -> anyhow::Error {
    match e {
        StoreError::NotFound(what) if what.starts_with("conference ") => {
            anyhow!("{what} does not exist (list the rooms with `palisade conference list`)")
        }
        StoreError::NotFound(what) if what.starts_with("participant ") => {
            anyhow!("{what} is not in the room now (see `palisade conference participants ROOM`)")
        }
        e => anyhow::Error::new(e),
    }
}

/// Adds a room (`palisade conference add`, the API).
pub async fn add(db: &store::Db, number: &str, pin: Option<&str>, max: u32) -> anyhow::Result<()> {
    if number.is_empty() || number.len() > 20 || !number.bytes().all(|b| b.is_ascii_digit()) {
        anyhow::bail!("a room number is 1 to 20 digits, like an extension's (got {number:?})");
    }
    if !(2..=50).contains(&max) {
        anyhow::bail!("--max must be 2 to 50 (got {max})");
    }
    let hash = match pin {
        Some(pin) => {
            pbx::voicemail::pin::validate(pin, number).map_err(|e| {
                anyhow!(
                    "PIN refused ({e}): a conference PIN is 4 to 10 digits, not one digit repeated, not a run \
                     like 1234, not the room number"
                )
            })?;
            Some(pbx::voicemail::pin::hash(pin).map_err(|e| anyhow!("{e}"))?)
        }
        None => None,
    };
    db.add_conference(number, hash.as_deref(), max)
        .await
        .map_err(room_error)
}

/// A room's settings and how many are in it (`list`, `show`, the API).
pub async fn views(db: &store::Db) -> anyhow::Result<Vec<RoomView>> {
    let now = super::time::now_ms();
    let mut out = Vec::new();
    for r in db.list_conferences().await? {
        let participants = db.conference_participants(&r.number).await?.len();
        let lock = db.conference_lock_state(&r.number).await?;
        out.push(RoomView {
            pin: r.pin_hash.is_some(),
            max_participants: r.max_participants,
            participants,
            locked_until: lock.locked(now).map(format_ms),
            number: r.number,
        });
    }
    Ok(out)
}

/// Who is in `room` (`participants`, the API).
pub async fn participants(db: &store::Db, room: &str) -> anyhow::Result<Vec<ParticipantView>> {
    Ok(db
        .conference_participants(room)
        .await
        .map_err(room_error)?
        .into_iter()
        .map(|p| ParticipantView {
            participant: p.position,
            caller: p.caller,
            joined_at: format_ms(p.joined_at),
            muted: p.muted,
        })
        .collect())
}

/// Asks the running server to mute, unmute or kick a participant (`mute`, `unmute`, `kick`, the API).
pub async fn request(
    db: &store::Db,
    room: &str,
    participant: i64,
    action: ConferenceAction,
) -> anyhow::Result<()> {
    db.request_conference_action(room, participant, action)
        .await
        .map_err(room_error)
}

/// Removes a room (`remove`, the API).
pub async fn remove(db: &store::Db, number: &str) -> anyhow::Result<()> {
    db.remove_conference(number).await.map_err(room_error)
}

/// Lifts a room's PIN lockout; false when nothing was counted (`unlock`, the API).
pub async fn unlock(db: &store::Db, number: &str) -> anyhow::Result<bool> {
    db.conference(number).await.map_err(room_error)?;
    Ok(db.clear_conference_lockout(number).await?)
}

fn print_rooms(json: bool, views: &[RoomView]) -> anyhow::Result<()> {
    output::list(
        json,
        views,
        "No conference rooms (add one with `palisade conference add NUMBER`).",
        &["ROOM", "PIN", "MAX", "IN", "LOCKED UNTIL"],
        |v| {
            vec![
                v.number.clone(),
                if v.pin { "yes" } else { "no" }.into(),
                v.max_participants.to_string(),
                v.participants.to_string(),
                output::opt(&v.locked_until),
            ]
        },
    )
}

pub async fn run(args: ConferenceArgs) -> anyhow::Result<()> {
    let common = args.common;
    let json = common.json;
    let db = match &args.command {
        ConferenceCommand::Add { .. } => common.open_or_create().await?,
        _ => common.open().await?,
    };
    let result = async {
        match args.command {
            ConferenceCommand::Add { number, pin, max } => {
                add(&db, &number, pin.as_deref(), max).await?;
                if json {
                    return output::json(&serde_json::json!({ "added": number }));
                }
                crate::say!(
                    "Added conference room {number} ({}, up to {max} participants): extensions dial {number} to join.",
                    if pin.is_some() { "with a PIN" } else { "no PIN" }
                );
                Ok(())
            }
            ConferenceCommand::List => print_rooms(json, &views(&db).await?),
            ConferenceCommand::Show { number } => {
                db.conference(&number).await.map_err(room_error)?;
                let room: Vec<RoomView> = views(&db)
                    .await?
                    .into_iter()
                    .filter(|v| v.number == number)
                    .collect();
                let people = participants(&db, &number).await?;
                if json {
                    return output::json(&serde_json::json!({ "room": room.first(), "participants": people }));
                }
                print_rooms(false, &room)?;
                print_participants(false, &number, &people)
            }
            ConferenceCommand::Remove { number } => {
                remove(&db, &number).await?;
                if json {
                    return output::json(&serde_json::json!({ "removed": number }));
                }
                crate::say!("Removed conference room {number}.");
                Ok(())
            }
            ConferenceCommand::Participants { number } => {
                print_participants(json, &number, &participants(&db, &number).await?)
            }
            ConferenceCommand::Mute {
                number,
                participant,
            } => act(&db, json, &number, participant, ConferenceAction::Mute).await,
            ConferenceCommand::Unmute {
                number,
                participant,
            } => act(&db, json, &number, participant, ConferenceAction::Unmute).await,
            ConferenceCommand::Kick {
                number,
                participant,
            } => act(&db, json, &number, participant, ConferenceAction::Kick).await,
            ConferenceCommand::Unlock { number } => {
                let cleared = unlock(&db, &number).await?;
                if json {
                    return output::json(&serde_json::json!({ "room": number, "cleared": cleared }));
                }
                if cleared {
                    crate::say!("Cleared the wrong-PIN count and any lockout of conference {number}.");
                } else {
                    crate::say!("Conference {number} had no wrong PINs counted; nothing to clear.");
                }
                Ok(())
            }
        }
    }
    .await;
    db.close().await;
    result
}

fn print_participants(json: bool, room: &str, people: &[ParticipantView]) -> anyhow::Result<()> {
    output::list(
        json,
        people,
        &format!("Nobody is in conference {room}."),
        &["N", "CALLER", "JOINED", "MUTED"],
        |p| {
            vec![
                p.participant.to_string(),
                p.caller.clone(),
                p.joined_at.clone(),
                if p.muted { "yes" } else { "no" }.into(),
            ]
        },
    )
}

async fn act(
    db: &store::Db,
    json: bool,
    room: &str,
    participant: i64,
    action: ConferenceAction,
) -> anyhow::Result<()> {
    request(db, room, participant, action).await?;
    if json {
        return output::json(
            &serde_json::json!({ "room": room, "participant": participant, "action": action.as_str() }),
        );
    }
    crate::say!(
        "Asked the server to {} participant {participant} of conference {room}.",
        action.as_str()
    );
    Ok(())
}
