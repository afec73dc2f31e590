//! `palisade security …`: the security settings kept in the database.

use clap::{Args, Subcommand};
use std::collections::BTreeMap;

use serde::Serialize;
use store::settings::{
    self, CREDENTIAL_LENGTH, DIGEST_ALGORITHMS, DOMAIN, GUARD_SETTINGS, SETTABLE,
};

use super::{CommonArgs, domain, output, realm, store_error};

#[derive(Debug, Args)]
pub struct SecurityArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(subcommand)]
    pub command: SecurityCommand,
}

#[derive(Debug, Subcommand)]
pub enum SecurityCommand {
    /// Show the security settings and their values.
    Show,
    /// Change a setting: digest_algorithms (e.g. "SHA-256,MD5"), credential_length (10 to 50), domain, or an
    /// anti-hacking setting (auth_failures_before_ban, unanswered_challenges_before_ban, flood_amber_pps,
    /// flood_red_pps, throttle_seconds, ban_seconds), or an event log setting (event_retention_days,
    /// event_max_rows); `palisade security show` gives their limits.
    Set {
        /// The setting's name.
        key: String,
        /// The new value.
        value: String,
    },
}

#[derive(Debug, Serialize)]
struct Settings {
    digest_algorithms: String,
    credential_length: usize,
    domain: String,
    /// The digest realm passwords are bound to (`palisade realm`); not changed by the domain.
    realm: String,
    /// The anti-hacking settings in force, by key.
    #[serde(flatten)]
    guard: BTreeMap<&'static str, u64>,
    /// Their defaults and limits, by key.
    guard_limits: BTreeMap<&'static str, GuardLimit>,
    /// The event log settings in force (`event_retention_days`, `event_max_rows`).
    events: BTreeMap<&'static str, u64>,
    /// The web console's settings in force (`admin_failures_before_ban`, …).
    console: BTreeMap<&'static str, u64>,
}

#[derive(Debug, Serialize)]
struct GuardLimit {
    default: u64,
    min: u64,
    max: u64,
    about: &'static str,
}

/// The anti-hacking settings in force: each stored value if valid, else its default (as the server does).
async fn guard_values(db: &store::Db) -> anyhow::Result<BTreeMap<&'static str, u64>> {
    let stored = db.guard_settings().await?;
    Ok(GUARD_SETTINGS
        .iter()
        .map(|l| {
            let v = stored
                .iter()
                .find(|(k, _)| k == l.key)
                .and_then(|(_, v)| guard::config::validate(l.key, v).ok())
                .unwrap_or(l.default);
            (l.key, v)
        })
        .collect())
}

/// The security settings in force with their limits (`palisade security show`, the API and the console).
async fn settings(db: &store::Db, data_dir: &std::path::Path) -> anyhow::Result<Settings> {
    Ok(Settings {
        digest_algorithms: db.digest_algorithms().await?.join(","),
        credential_length: db.credential_length().await?,
        domain: domain(db, data_dir).await?,
        realm: realm(db, data_dir).await?,
        guard: guard_values(db).await?,
        console: {
            let mut m = BTreeMap::new();
            for l in store::admin::ADMIN_SETTINGS.iter() {
                m.insert(l.key, db.admin_setting(l).await?);
            }
            m
        },
        events: {
            let (days, rows) = db.event_retention().await?;
            BTreeMap::from([
                (store::EVENT_RETENTION_DAYS.key, days),
                (store::EVENT_MAX_ROWS.key, rows),
            ])
        },
        guard_limits: GUARD_SETTINGS
            .iter()
            .map(|l| {
                let limit = GuardLimit {
                    default: l.default,
                    min: l.min,
                    max: l.max,
                    about: l.help,
                };
                (l.key, limit)
            })
            .collect(),
    })
}

/// [`settings`] as JSON, with the console's settings and their limits.
pub async fn settings_json(
    db: &store::Db,
    data_dir: &std::path::Path,
) -> anyhow::Result<serde_json::Value> {
    let mut v = serde_json::to_value(settings(db, data_dir).await?)?;
    let mut limits = serde_json::Map::new();
    for l in store::admin::ADMIN_SETTINGS.iter() {
        limits.insert(
            l.key.into(),
            serde_json::json!({ "default": l.default, "min": l.min, "max": l.max, "about": l.help }),
        );
    }
    if let Some(obj) = v.as_object_mut() {
        obj.insert("console_limits".into(), limits.into());
    }
    Ok(v)
}

/// Sets one setting, already normalised; returns the extensions whose passwords were set for another realm.
pub async fn set(
    db: &store::Db,
    data_dir: &std::path::Path,
    key: &str,
    value: &str,
) -> anyhow::Result<Vec<String>> {
    db.set_setting(key, value).await?;
    // The domain no longer moves the realm; report passwords set for another realm all the same, so an
    // administrator who expected the old behaviour sees that nothing broke.
    let mut stale = Vec::new();
    if key == DOMAIN {
        let realm = realm(db, data_dir).await?;
        stale = db.extensions_outside_realm(&realm).await?;
    }
    Ok(stale)
}

pub async fn run(args: SecurityArgs) -> anyhow::Result<()> {
    let common = args.common;
    match args.command {
        SecurityCommand::Show => {
            let db = common.open_or_create().await?;
            let shown = settings(&db, &common.data_dir()).await;
            db.close().await;
            let s = shown?;
            if common.json {
                return output::json(&s);
            }
            let rows = SETTABLE
                .iter()
                .map(|(key, about)| {
                    let value = match *key {
                        DIGEST_ALGORITHMS => s.digest_algorithms.clone(),
                        CREDENTIAL_LENGTH => s.credential_length.to_string(),
                        _ => s.domain.clone(),
                    };
                    vec![key.to_string(), value, about.to_string()]
                })
                .collect::<Vec<_>>();
            output::table(&["SETTING", "VALUE", "ABOUT"], &rows);
            crate::say!(
                "The digest realm is {} (fixed; `palisade realm` shows or changes it).",
                s.realm
            );
            crate::say!();
            crate::say!("Anti-hacking (per source IP; whitelisted sources are exempt):");
            let rows = GUARD_SETTINGS
                .iter()
                .map(|l| {
                    vec![
                        l.key.to_string(),
                        s.guard.get(l.key).copied().unwrap_or(l.default).to_string(),
                        l.default.to_string(),
                        format!("{} to {}", l.min, l.max),
                        l.help.to_string(),
                    ]
                })
                .collect::<Vec<_>>();
            output::table(&["SETTING", "VALUE", "DEFAULT", "LIMITS", "ABOUT"], &rows);
            crate::say!();
            crate::say!(
                "Security event log (`palisade events --summary` shows its size and the routine counters):"
            );
            let rows = store::EVENT_SETTINGS
                .iter()
                .map(|l| {
                    vec![
                        l.key.to_string(),
                        s.events
                            .get(l.key)
                            .copied()
                            .unwrap_or(l.default)
                            .to_string(),
                        l.default.to_string(),
                        format!("{} to {}", l.min, l.max),
                        l.help.to_string(),
                    ]
                })
                .collect::<Vec<_>>();
            output::table(&["SETTING", "VALUE", "DEFAULT", "LIMITS", "ABOUT"], &rows);
            crate::say!();
            crate::say!("Web console and API (per source address; separate from the SIP bans):");
            let rows = store::admin::ADMIN_SETTINGS
                .iter()
                .map(|l| {
                    vec![
                        l.key.to_string(),
                        s.console
                            .get(l.key)
                            .copied()
                            .unwrap_or(l.default)
                            .to_string(),
                        l.default.to_string(),
                        format!("{} to {}", l.min, l.max),
                        l.help.to_string(),
                    ]
                })
                .collect::<Vec<_>>();
            output::table(&["SETTING", "VALUE", "DEFAULT", "LIMITS", "ABOUT"], &rows);
            Ok(())
        }
        SecurityCommand::Set { key, value } => {
            let value = settings::normalize(&key, &value).map_err(store_error)?;
            let db = common.open_or_create().await?;
            let stale = set(&db, &common.data_dir(), &key, &value).await;
            db.close().await;
            let stale = stale?;
            if common.json {
                return output::json(
                    &serde_json::json!({ "key": key, "value": value, "stale_passwords": stale }),
                );
            }
            crate::say!("{key} = {value}");
            if !stale.is_empty() {
                crate::say!(
                    "warning: the passwords of extension(s) {} were set for another realm and do not work; \
                     give them new ones with `palisade ext reset-password NUMBER` (see `palisade realm show`)",
                    stale.join(", ")
                );
            }
            Ok(())
        }
    }
}
