//! `palisade features …` (feature codes: show, set, reset) and `palisade pickup …` (pickup groups: list, set).
//! [`feature_codes`] and [`set_feature`] are the code path the console and API share.

use anyhow::anyhow;
use clap::{Args, Subcommand};
use pbx::office::FeatureCodes;
use pbx::office::features::{FEATURE_KEYS, setting_key, validate};
use serde::Serialize;
use store::Db;

use super::{CommonArgs, output, store_error};

#[derive(Debug, Args)]
pub struct FeatureArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(subcommand)]
    pub command: FeatureCommand,
}

#[derive(Debug, Subcommand)]
pub enum FeatureCommand {
    /// Every feature code, with its default and meaning.
    Show,
    /// Change a feature code, e.g. `palisade features set pickup '#8'` ("" turns the feature off).
    Set { name: String, value: String },
    /// Back to the default code.
    Reset { name: String },
}

#[derive(Debug, Args)]
pub struct PickupArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(subcommand)]
    pub command: PickupCommand,
}

#[derive(Debug, Subcommand)]
pub enum PickupCommand {
    /// Every extension and its pickup group.
    List,
    /// Put an extension into a pickup group ("" or `office`: the office-wide group, the default).
    Set { number: String, group: String },
}

#[derive(Debug, Serialize)]
pub struct FeatureView {
    pub name: &'static str,
    pub code: String,
    pub default: &'static str,
    pub meaning: &'static str,
}

/// The feature codes in force, with their defaults.
pub async fn feature_views(db: &Db) -> anyhow::Result<Vec<FeatureView>> {
    let mut out = Vec::new();
    for k in FEATURE_KEYS {
        let stored = db.get_setting(&setting_key(k.name)).await?;
        out.push(FeatureView {
            name: k.name,
            code: stored.unwrap_or_else(|| k.default.to_string()),
            default: k.default,
            meaning: k.meaning,
        });
    }
    Ok(out)
}

/// The feature codes as the server applies them.
pub async fn feature_codes(db: &Db) -> anyhow::Result<FeatureCodes> {
    let views = feature_views(db).await?;
    Ok(FeatureCodes::from_settings(|name| {
        views
            .iter()
            .find(|v| v.name == name)
            .map(|v| v.code.clone())
    }))
}

/// Sets feature code `name` (validated; "" turns it off); `None` restores the default.
pub async fn set_feature(db: &Db, name: &str, value: Option<&str>) -> anyhow::Result<()> {
    let default = FEATURE_KEYS
        .iter()
        .find(|k| k.name == name)
        .map(|k| k.default);
    let value = value.or(default).unwrap_or_default();
    validate(name, value).map_err(|e| anyhow!(e))?;
    db.set_setting(&setting_key(name), value).await?;
    Ok(())
}

pub async fn run_features(args: FeatureArgs) -> anyhow::Result<()> {
    let common = args.common;
    let db = match args.command {
        FeatureCommand::Show => common.open().await?,
        _ => common.open_or_create().await?,
    };
    let r = async {
        match &args.command {
            FeatureCommand::Set { name, value } => set_feature(&db, name, Some(value)).await?,
            FeatureCommand::Reset { name } => set_feature(&db, name, None).await?,
            FeatureCommand::Show => {}
        }
        feature_views(&db).await
    }
    .await;
    db.close().await;
    let views = r?;
    output::list(
        common.json,
        &views,
        "",
        &["FEATURE", "CODE", "DEFAULT", "MEANING"],
        |v| {
            vec![
                v.name.to_string(),
                if v.code.is_empty() {
                    "(off)".into()
                } else {
                    v.code.clone()
                },
                v.default.to_string(),
                v.meaning.to_string(),
            ]
        },
    )
}

#[derive(Debug, Serialize)]
pub struct PickupView {
    pub extension: String,
    /// `office` for the office-wide group.
    pub group: String,
}

pub async fn run_pickup(args: PickupArgs) -> anyhow::Result<()> {
    let common = args.common;
    let db = common.open().await?;
    let r = async {
        if let PickupCommand::Set { number, group } = &args.command {
            let g = group.trim();
            let g = (!g.is_empty() && g != "office").then_some(g);
            db.set_pickup_group(number.trim(), g)
                .await
                .map_err(store_error)?;
        }
        Ok::<_, anyhow::Error>(db.pickup_groups().await?)
    }
    .await;
    db.close().await;
    let views: Vec<PickupView> = r?
        .into_iter()
        .map(|(extension, group)| PickupView {
            extension,
            group: group.unwrap_or_else(|| "office".into()),
        })
        .collect();
    output::list(
        common.json,
        &views,
        "No extensions.",
        &["EXTENSION", "PICKUP GROUP"],
        |v| vec![v.extension.clone(), v.group.clone()],
    )
}
