//! `palisade attendant …`: auto attendants (add, list, show, remove) and the inbound numbers they answer
//! (`attendant did add|list|remove`). The greeting is uploaded as a WAV and converted to 8 kHz mono.

use anyhow::{anyhow, bail};
use clap::{Args, Subcommand};
use pbx::office::attendant::{Target, valid_name};
use store::StoreError;
use store::attendants::AttendantRow;

use super::{CommonArgs, output};
use crate::voicemail::files;

#[derive(Debug, Args)]
pub struct AttendantArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(subcommand)]
    pub command: AttendantCommand,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The attendant's name (a-z, 0-9, - and _), e.g. main.
    pub name: String,
    /// The greeting callers hear (a WAV file; converted to 8 kHz mono; at most 5 minutes), e.g. "Press 1 for
    /// sales, 2 for support, 0 for the operator".
    #[arg(long, value_name = "FILE.wav")]
    pub greeting: std::path::PathBuf,
    /// KEY=TARGET, repeatable: a key (0-9, *, #) and where it leads: ext:N, voicemail:N, conference:N,
    /// attendant:NAME or hangup.
    #[arg(long = "option", value_name = "KEY=TARGET")]
    pub options: Vec<String>,
    /// Seconds after the greeting without a key before the caller goes to --on-timeout.
    #[arg(long, default_value_t = 10)]
    pub timeout: u32,
    /// Where callers who press nothing go (default: option 0's target, else hang up).
    #[arg(long, value_name = "TARGET")]
    pub on_timeout: Option<String>,
    /// Where callers go after the third invalid key (the first two replay the greeting). Default: hang up.
    #[arg(long, value_name = "TARGET", default_value = "hangup")]
    pub invalid: String,
    /// Another attendant that answers instead outside office hours and on holidays (`palisade hours`).
    #[arg(long, value_name = "NAME")]
    pub after_hours: Option<String>,
    /// Let callers key an extension's number (then # or a pause). Only extensions: never a trunk.
    #[arg(long)]
    pub dial_by_extension: bool,
    /// An internal number extensions can dial to reach the attendant (DIDs point at it by name).
    #[arg(long, value_name = "N")]
    pub number: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AttendantCommand {
    /// Add an attendant.
    Add(AddArgs),
    /// List the attendants.
    List,
    /// Show an attendant's menu.
    Show { name: String },
    /// Remove an attendant (DIDs pointing at it are removed with it).
    Remove { name: String },
    /// Inbound numbers (DIDs) an attendant answers: add NUMBER --trunk T --attendant NAME, list, remove NUMBER.
    Did {
        #[command(subcommand)]
        command: DidCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum DidCommand {
    /// Answer calls to NUMBER from trunk T with attendant NAME.
    Add {
        number: String,
        #[arg(long)]
        trunk: String,
        #[arg(long)]
        attendant: String,
    },
    List,
    Remove {
        number: String,
    },
}

fn not_found(e: StoreError) -> anyhow::Error {
    match e {
        StoreError::NotFound(what) if what.starts_with("attendant ") => {
            anyhow!("{what} does not exist (list them with `palisade attendant list`)")
        }
        e => anyhow::Error::new(e),
    }
}

/// Checks and stores a new attendant, its greeting first (`palisade attendant add`, the API).
pub async fn add(
    db: &store::Db,
    root: &std::path::Path,
    a: AddArgs,
) -> anyhow::Result<AttendantRow> {
    if !valid_name(&a.name) {
        bail!(
            "attendant name {:?}: use 1 to 32 of a-z, 0-9, - and _ (e.g. main)",
            a.name
        );
    }
    if !(1..=120).contains(&a.timeout) {
        bail!("--timeout must be 1 to 120 seconds (got {})", a.timeout);
    }
    if let Some(n) = &a.number
        && (n.is_empty() || n.len() > 20 || !n.bytes().all(|b| b.is_ascii_digit()))
    {
        bail!("--number {n:?}: 1 to 20 digits, like an extension's");
    }
    let options =
        crate::attendant::parse_options(&a.options.join(";")).map_err(|e| anyhow!("{e}"))?;
    let on_timeout = match &a.on_timeout {
        Some(t) => t
            .parse::<Target>()
            .map_err(|e| anyhow!("--on-timeout {e}"))?,
        None => options.get(&'0').cloned().unwrap_or(Target::Hangup),
    };
    let on_invalid: Target = a.invalid.parse().map_err(|e| anyhow!("--invalid {e}"))?;
    let targets = options.values().chain([&on_timeout, &on_invalid]);
    for t in targets {
        office_target_exists(db, t).await?;
    }
    if let Some(other) = &a.after_hours {
        db.attendant(other)
            .await
            .map_err(not_found)
            .map_err(|e| anyhow!("--after-hours: {e} (add the after-hours attendant first)"))?;
    }
    let samples = crate::audio_upload::read(&a.greeting)?;
    if samples.len() > 5 * 60 * 8000 {
        bail!(
            "the greeting is {} s long; at most 300 s",
            samples.len() / 8000
        );
    }
    if samples.is_empty() {
        bail!("{} holds no audio", a.greeting.display());
    }
    let file = format!("{}/greeting-{}.wav", a.name, super::time::now_ms());
    files::write_wav(root, &file, &samples)
        .map_err(|e| anyhow!("cannot store the greeting under {}: {e}", root.display()))?;
    let row = AttendantRow {
        name: a.name.clone(),
        number: a.number.clone(),
        greeting: file.clone(),
        options: options
            .iter()
            .map(|(k, t)| format!("{k}={t}"))
            .collect::<Vec<_>>()
            .join(";"),
        timeout_seconds: i64::from(a.timeout),
        on_timeout: on_timeout.to_string(),
        on_invalid: on_invalid.to_string(),
        after_hours: a.after_hours.clone(),
        dial_by_extension: a.dial_by_extension,
    };
    if let Err(e) = db.add_attendant(&row).await {
        let _ = files::remove(root, &file);
        return Err(e.into());
    }
    Ok(row)
}

/// A ring group or queue an attendant (or a DID) leads to must exist when it is configured: a typo would
/// otherwise only show when a caller presses the key.
pub async fn office_target_exists(db: &store::Db, target: &Target) -> anyhow::Result<()> {
    match target {
        Target::Group(n) if db.ring_group(n).await?.is_none() => bail!(
            "`{target}`: ring group {n} does not exist (list them with `palisade group list`)"
        ),
        Target::Queue(n) if db.queue(n).await?.is_none() => {
            bail!("`{target}`: queue {n} does not exist (list them with `palisade queue list`)")
        }
        _ => Ok(()),
    }
}

fn show(row: &AttendantRow) {
    crate::say!("attendant  {}", row.name);
    crate::say!("number     {}", output::opt(&row.number));
    crate::say!("greeting   {}", row.greeting);
    for o in row.options.split(';').filter(|o| !o.is_empty()) {
        crate::say!("option     {o}");
    }
    crate::say!(
        "timeout    {} s, then {}",
        row.timeout_seconds,
        row.on_timeout
    );
    crate::say!("invalid    {}", row.on_invalid);
    crate::say!("after hours {}", output::opt(&row.after_hours));
    crate::say!(
        "dial by extension {}",
        if row.dial_by_extension { "yes" } else { "no" }
    );
}

pub async fn run(args: AttendantArgs) -> anyhow::Result<()> {
    let common = args.common;
    let json = common.json;
    let root = crate::attendant::root(&common.data_dir());
    let db = common.open().await?;
    let result = async {
        match args.command {
            AttendantCommand::Add(a) => {
                let row = add(&db, &root, a).await?;
                if json {
                    return output::json(&row);
                }
                crate::say!("Added attendant {}.", row.name);
                show(&row);
                Ok(())
            }
            AttendantCommand::List => {
                let rows = db.list_attendants().await?;
                output::list(
                    json,
                    &rows,
                    "No attendants (add one with `palisade attendant add NAME --greeting FILE.wav --option 1=ext:N`).",
                    &["NAME", "NUMBER", "OPTIONS", "TIMEOUT", "AFTER HOURS"],
                    |r| {
                        vec![
                            r.name.clone(),
                            output::opt(&r.number),
                            r.options.clone(),
                            format!("{} s → {}", r.timeout_seconds, r.on_timeout),
                            output::opt(&r.after_hours),
                        ]
                    },
                )
            }
            AttendantCommand::Show { name } => {
                let row = db.attendant(&name).await.map_err(not_found)?;
                if json {
                    return output::json(&row);
                }
                show(&row);
                Ok(())
            }
            AttendantCommand::Remove { name } => {
                let greeting = db.remove_attendant(&name).await.map_err(not_found)?;
                let _ = files::remove(&root, &greeting);
                if json {
                    return output::json(&serde_json::json!({ "removed": name }));
                }
                crate::say!("Removed attendant {name}.");
                Ok(())
            }
            AttendantCommand::Did { command } => match command {
                DidCommand::Add {
                    number,
                    trunk,
                    attendant,
                } => {
                    db.attendant(&attendant).await.map_err(not_found)?;
                    db.add_did_attendant(&number, &trunk, &attendant)
                        .await
                        .map_err(|e| match e {
                            StoreError::NotFound(_) => anyhow!(
                                "trunk {trunk} does not exist (list them with `palisade trunk list`)"
                            ),
                            e => e.into(),
                        })?;
                    if json {
                        return output::json(
                            &serde_json::json!({ "number": number, "trunk": trunk, "attendant": attendant }),
                        );
                    }
                    crate::say!("Calls to {number} from trunk {trunk} are answered by attendant {attendant}.");
                    Ok(())
                }
                DidCommand::List => {
                    let rows = db.list_did_attendants().await?;
                    output::list(
                        json,
                        &rows,
                        "No DIDs are answered by an attendant.",
                        &["NUMBER", "TRUNK", "ATTENDANT"],
                        |r| vec![r.number.clone(), r.trunk.clone(), r.attendant.clone()],
                    )
                }
                DidCommand::Remove { number } => {
                    db.remove_did_attendant(&number).await?;
                    if json {
                        return output::json(&serde_json::json!({ "removed": number }));
                    }
                    crate::say!("DID {number} is no longer answered by an attendant.");
                    Ok(())
                }
            },
        }
    }
    .await;
    db.close().await;
    result
}
