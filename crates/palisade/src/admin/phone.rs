//! `palisade phone …`: desk phones and softphones provisioned over HTTPS (issue 14). The same functions serve the
//! console and the API. The URL token is shown once (stored as SHA-256); the SIP password is never stored: the
//! phone's first fetch in its window generates it, replaces the extension's hashes and carries it.

use std::path::Path;

use anyhow::{anyhow, bail};
use clap::{Args, Subcommand};
use serde::Serialize;
use store::phones::{Phone, PhoneNew};
use store::{Db, StoreError};

use super::accounts::{Actor, audit};
use super::time::{format_ms, now_ms};
use super::{CommonArgs, output, store_error};
use crate::config::{CONFIG_FILE, DEFAULT_ADMIN_PORT, FileConfig};
use crate::prov::model::{ALL_MODELS, Model, normalize_mac};
use crate::prov::token;

#[derive(Debug, Args)]
pub struct PhoneArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(subcommand)]
    pub command: PhoneCommand,
}

#[derive(Debug, Subcommand)]
pub enum PhoneCommand {
    /// Provision a phone for an extension; prints its provisioning URL (shown once) and how to enter it.
    ///
    /// The phone's first fetch within the window (`provisioning_window_hours`, default 24) gets the SIP
    /// credentials — a new password, which replaces the extension's current one at that moment — and binds the
    /// URL to that phone. One provisioned phone per extension (an extension has one password).
    Add {
        /// The phone's MAC address (any notation: 00:15:65:aa:bb:cc, 001565AABBCC, …). Optional for linphone
        /// and generic.
        mac: Option<String>,
        /// The extension the phone registers as.
        #[arg(long, value_name = "NUM")]
        ext: String,
        /// yealink (T4x/T5x), snom (D7xx), grandstream (GXP/GRP), polycom (VVX), linphone, generic.
        #[arg(long, value_name = "MODEL")]
        model: String,
        /// Host (and port) the phone reaches the console listener at, for the printed URL. Default: the SIP
        /// domain and the port of the first `admin_listen` in palisade.toml (8443).
        #[arg(long, value_name = "HOST[:PORT]")]
        host: Option<String>,
    },
    /// List provisioned phones.
    List,
    /// Show one phone, with its web-admin password.
    Show {
        /// Its MAC (any notation) or id (MODEL-EXT for a softphone without a MAC).
        phone: String,
    },
    /// Remove a phone: its URL stops working (the extension and its password stay).
    Remove { phone: String },
    /// A new URL and a new window; the next successful fetch binds again and rotates the SIP password (the
    /// current one keeps working until then).
    Reprovision {
        phone: String,
        #[arg(long, value_name = "HOST[:PORT]")]
        host: Option<String>,
    },
}

/// A phone as shown (the admin password only in `show`).
#[derive(Debug, Serialize)]
pub struct PhoneView {
    pub id: String,
    pub mac: Option<String>,
    pub model: String,
    pub extension: String,
    /// `waiting` (window open, no fetch yet), `provisioned` (credentials fetched), `expired` (window closed
    /// before any fetch: reprovision).
    pub state: &'static str,
    pub window_opened_at: String,
    pub window_expires_at: String,
    pub credentials_fetched_at: Option<String>,
    pub bound_at: Option<String>,
    pub bound_source: Option<String>,
    pub bound_user_agent: Option<String>,
    pub bound_cert_sha256: Option<String>,
    pub last_fetch_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_password: Option<String>,
}

impl PhoneView {
    pub fn of(p: &Phone, now: i64, with_password: bool) -> PhoneView {
        let state = if p.credentials_at.is_some() {
            "provisioned"
        } else if now < p.window_expires_at {
            "waiting"
        } else {
            "expired"
        };
        PhoneView {
            id: p.id.clone(),
            mac: p.mac.clone(),
            model: p.model.clone(),
            extension: p.extension.clone(),
            state,
            window_opened_at: format_ms(p.window_opened_at),
            window_expires_at: format_ms(p.window_expires_at),
            credentials_fetched_at: p.credentials_at.map(format_ms),
            bound_at: p.bound_at.map(format_ms),
            bound_source: p.bound_source.clone(),
            bound_user_agent: p.bound_user_agent.clone(),
            bound_cert_sha256: p.bound_cert_sha256.clone(),
            last_fetch_at: p.last_fetch_at.map(format_ms),
            admin_password: with_password.then(|| p.admin_password.clone()),
        }
    }
}

/// A phone just added or reprovisioned: the URL (with the token, shown this once) and how to enter it.
#[derive(Debug, Serialize)]
pub struct Provisioned {
    pub phone: PhoneView,
    pub url: String,
    pub instructions: Vec<String>,
}

pub async fn run(args: PhoneArgs) -> anyhow::Result<()> {
    let common = args.common;
    let actor = Actor::cli();
    match args.command {
        PhoneCommand::Add {
            mac,
            ext,
            model,
            host,
        } => {
            let db = common.open_or_create().await?;
            let host = url_host(&db, &common.data_dir(), host).await?;
            let r = add(&db, &actor, mac.as_deref(), &ext, &model, &host).await;
            db.close().await;
            print_provisioned(&r?, common.json)
        }
        PhoneCommand::Reprovision { phone, host } => {
            let db = common.open().await?;
            let host = url_host(&db, &common.data_dir(), host).await?;
            let r = reprovision(&db, &actor, &phone, &host).await;
            db.close().await;
            print_provisioned(&r?, common.json)
        }
        PhoneCommand::List => {
            let db = common.open().await?;
            let phones = list(&db).await;
            db.close().await;
            let phones = phones?;
            if common.json {
                return output::json(&phones);
            }
            if phones.is_empty() {
                println!(
                    "No provisioned phones (add one with `palisade phone add MAC --ext NUM --model MODEL`)."
                );
                return Ok(());
            }
            let rows: Vec<Vec<String>> = phones
                .iter()
                .map(|p| {
                    vec![
                        p.id.clone(),
                        p.model.clone(),
                        p.extension.clone(),
                        p.state.into(),
                        p.window_expires_at.clone(),
                        output::opt(&p.bound_source),
                        output::opt(&p.last_fetch_at),
                    ]
                })
                .collect();
            output::table(
                &[
                    "PHONE",
                    "MODEL",
                    "EXT",
                    "STATE",
                    "WINDOW UNTIL",
                    "BOUND TO",
                    "LAST FETCH",
                ],
                &rows,
            );
            Ok(())
        }
        PhoneCommand::Show { phone } => {
            let db = common.open().await?;
            let p = show(&db, &phone).await;
            db.close().await;
            let p = p?;
            if common.json {
                return output::json(&p);
            }
            output::fields(&[
                ("Phone", p.id.clone()),
                ("MAC", output::opt(&p.mac)),
                ("Model", p.model.clone()),
                ("Extension", p.extension.clone()),
                ("State", p.state.into()),
                (
                    "Window",
                    format!("{} to {}", p.window_opened_at, p.window_expires_at),
                ),
                (
                    "Credentials fetched",
                    output::opt(&p.credentials_fetched_at),
                ),
                ("Bound to", output::opt(&p.bound_source)),
                ("Bound User-Agent", output::opt(&p.bound_user_agent)),
                ("Bound certificate", output::opt(&p.bound_cert_sha256)),
                ("Last fetch", output::opt(&p.last_fetch_at)),
                ("Web-admin password", output::opt(&p.admin_password)),
            ]);
            Ok(())
        }
        PhoneCommand::Remove { phone } => {
            let db = common.open().await?;
            let r = remove(&db, &actor, &phone).await;
            db.close().await;
            let id = r?;
            if common.json {
                return output::json(&serde_json::json!({ "removed": id }));
            }
            println!("Phone {id} removed: its provisioning URL no longer works.");
            Ok(())
        }
    }
}

fn print_provisioned(p: &Provisioned, json: bool) -> anyhow::Result<()> {
    if json {
        return output::json(p);
    }
    output::fields(&[
        ("Phone", p.phone.id.clone()),
        ("Model", p.phone.model.clone()),
        ("Extension", p.phone.extension.clone()),
        ("Window until", p.phone.window_expires_at.clone()),
        ("Provisioning URL", p.url.clone()),
    ]);
    println!();
    println!(
        "The URL is shown only this once (it is stored hashed); `palisade phone reprovision` makes a new one."
    );
    println!(
        "The phone's first fetch replaces extension {}'s SIP password with the one it receives.",
        p.phone.extension
    );
    println!("How to point the phone at it:");
    for line in &p.instructions {
        println!("  - {line}");
    }
    Ok(())
}

/// The phone named by MAC (any notation) or id.
pub async fn find(db: &Db, name: &str) -> anyhow::Result<Phone> {
    let id = normalize_mac(name).unwrap_or_else(|| name.trim().to_ascii_lowercase());
    db.phone(&id).await?.ok_or_else(|| {
        anyhow!("phone {name} does not exist (list them with `palisade phone list`)")
    })
}

/// Adds a phone; returns its URL (the token is shown only here).
pub async fn add(
    db: &Db,
    actor: &Actor,
    mac: Option<&str>,
    ext: &str,
    model: &str,
    host: &str,
) -> anyhow::Result<Provisioned> {
    let model = Model::parse(model).ok_or_else(|| {
        anyhow!(
            "unknown model `{model}`: use one of {}",
            ALL_MODELS.map(|m| m.as_str()).join(", ")
        )
    })?;
    let mac = match mac.map(str::trim).filter(|m| !m.is_empty()) {
        Some(m) => Some(normalize_mac(m).ok_or_else(|| {
            anyhow!(
                "invalid MAC address `{m}`: give the 12 hex digits printed on the phone's label, e.g. \
                 00:15:65:aa:bb:cc or 001565AABBCC"
            )
        })?),
        None if model.needs_mac() => bail!(
            "a {model} phone is provisioned by its MAC address: `palisade phone add MAC --ext {ext} --model {model}` \
             (the MAC is on the label under the phone)"
        ),
        None => None,
    };
    let ext_row = db.extension(ext).await?.ok_or_else(|| {
        anyhow!("extension {ext} does not exist (list them with `palisade ext list`, add it with `palisade ext add {ext}`)")
    })?;
    let id = mac
        .clone()
        .unwrap_or_else(|| format!("{}-{}", model.as_str(), ext_row.number));
    let tok = token::generate_token();
    let window = window_ms(db).await?;
    let phone = db
        .create_phone(PhoneNew {
            id,
            mac,
            model: model.as_str().into(),
            extension: ext_row.number.clone(),
            token_hash: token::token_hash(&tok),
            admin_password: token::generate_admin_password(),
            window_expires_at: now_ms().saturating_add(window),
        })
        .await
        .map_err(phone_error)?;
    let view = PhoneView::of(&phone, now_ms(), false);
    audit(
        db,
        actor,
        "phone.create",
        Some(&phone.id),
        None,
        Some(serde_json::to_value(&view)?),
    )
    .await?;
    Ok(provisioned(view, model, host, &tok))
}

/// A new token and window for a phone; the binding is cleared.
pub async fn reprovision(
    db: &Db,
    actor: &Actor,
    name: &str,
    host: &str,
) -> anyhow::Result<Provisioned> {
    let before = find(db, name).await?;
    let model = Model::parse(&before.model)
        .ok_or_else(|| anyhow!("phone {} has an unknown model {}", before.id, before.model))?;
    let tok = token::generate_token();
    let window = window_ms(db).await?;
    let phone = db
        .reopen_phone_window(
            &before.id,
            &token::token_hash(&tok),
            now_ms().saturating_add(window),
        )
        .await
        .map_err(phone_error)?;
    let now = now_ms();
    let view = PhoneView::of(&phone, now, false);
    audit(
        db,
        actor,
        "phone.reprovision",
        Some(&phone.id),
        Some(serde_json::to_value(PhoneView::of(&before, now, false))?),
        Some(serde_json::to_value(&view)?),
    )
    .await?;
    Ok(provisioned(view, model, host, &tok))
}

pub async fn list(db: &Db) -> anyhow::Result<Vec<PhoneView>> {
    let now = now_ms();
    Ok(db
        .list_phones()
        .await?
        .iter()
        .map(|p| PhoneView::of(p, now, false))
        .collect())
}

pub async fn show(db: &Db, name: &str) -> anyhow::Result<PhoneView> {
    Ok(PhoneView::of(&find(db, name).await?, now_ms(), true))
}

/// Removes a phone; returns its id.
pub async fn remove(db: &Db, actor: &Actor, name: &str) -> anyhow::Result<String> {
    let phone = find(db, name).await?;
    db.remove_phone(&phone.id).await.map_err(phone_error)?;
    audit(
        db,
        actor,
        "phone.remove",
        Some(&phone.id),
        Some(serde_json::to_value(PhoneView::of(
            &phone,
            now_ms(),
            false,
        ))?),
        None,
    )
    .await?;
    Ok(phone.id)
}

fn provisioned(view: PhoneView, model: Model, host: &str, tok: &str) -> Provisioned {
    let url = format!("https://{host}/prov/{tok}/");
    let instructions = model.instructions(&url, view.mac.as_deref());
    Provisioned {
        phone: view,
        url,
        instructions,
    }
}

async fn window_ms(db: &Db) -> anyhow::Result<i64> {
    let hours = db
        .admin_setting(&store::admin::PROVISIONING_WINDOW_HOURS)
        .await?;
    Ok(i64::try_from(hours).unwrap_or(24).saturating_mul(3_600_000))
}

/// `HOST[:PORT]` for the printed URL: as given, else the domain and the console port from palisade.toml.
pub async fn url_host(db: &Db, data_dir: &Path, given: Option<String>) -> anyhow::Result<String> {
    if let Some(h) = given {
        let h = h
            .trim()
            .trim_start_matches("https://")
            .trim_end_matches('/');
        let ok = !h.is_empty()
            && h.len() <= 255
            && h.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']')
            });
        if !ok {
            bail!(
                "invalid --host `{h}`: give a host name or address and optional port, e.g. pbx.example.com:8443"
            );
        }
        return Ok(h.to_string());
    }
    let domain = super::domain(db, data_dir).await?;
    let file = FileConfig::load(&data_dir.join(CONFIG_FILE))?;
    let port = file
        .admin_listen
        .as_ref()
        .and_then(|l| l.first())
        .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
        .map_or(DEFAULT_ADMIN_PORT, |a| a.port());
    Ok(format!("{domain}:{port}"))
}

fn phone_error(e: StoreError) -> anyhow::Error {
    match e {
        StoreError::NotFound(what) if what.starts_with("extension ") => {
            anyhow!("{what} does not exist (list them with `palisade ext list`)")
        }
        StoreError::NotFound(what) => {
            anyhow!("{what} does not exist (list them with `palisade phone list`)")
        }
        e => store_error(e),
    }
}
