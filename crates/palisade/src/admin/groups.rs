//! `palisade group …`: ring groups — add, change, list, show, remove. The functions below the command runner
//! ([`add_group`], [`change_group`], [`remove_group`], [`group_views`]) are the one code path the console and the
//! API call too.

use anyhow::{anyhow, bail};
use clap::{Args, Subcommand};
use pbx::office::{Fallback, RingGroup, Strategy, groups::DEFAULT_RING_SECONDS};
use serde::Serialize;
use store::{Db, StoreError};

use super::{CommonArgs, output};

#[derive(Debug, Args)]
pub struct GroupArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(subcommand)]
    pub command: GroupCommand,
}

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Add a ring group: dialling NUMBER rings its members by the strategy.
    Add {
        /// The group's number (not an extension's, nor an emergency or the voicemail number).
        number: String,
        #[command(flatten)]
        settings: GroupSettings,
    },
    /// Change a ring group: only the options given change.
    Change {
        number: String,
        #[command(flatten)]
        settings: GroupSettings,
    },
    /// List the ring groups.
    List,
    /// Show one ring group.
    Show { number: String },
    /// Remove a ring group.
    Remove { number: String },
}

#[derive(Debug, Clone, Default, Args)]
pub struct GroupSettings {
    /// Members in ring order, comma-separated: extensions, or external numbers (routed under the caller's call
    /// policy), e.g. 201,202,203. Required for `add`.
    #[arg(long, value_name = "N,N,…", value_delimiter = ',')]
    pub members: Option<Vec<String>>,
    /// all: every member at once; order: one after the other; round-robin: one after the other, starting one
    /// further on each call. Default: all.
    #[arg(long, value_name = "all|order|round-robin")]
    pub strategy: Option<String>,
    /// How long each step rings (all members with `all`, each member otherwise), 5 to 300 s. Default: 20.
    #[arg(long, value_name = "N")]
    pub ring_seconds: Option<u32>,
    /// When nobody answers: voicemail:EXT (that extension's mailbox), ext:NUMBER (ring it, as the caller would
    /// dial it) or hangup. Default: hangup.
    #[arg(long, value_name = "voicemail:EXT|ext:NUMBER|hangup")]
    pub fallback: Option<String>,
}

/// A ring group as shown and as the API returns it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct GroupView {
    pub number: String,
    pub members: Vec<String>,
    pub strategy: String,
    pub ring_seconds: u32,
    pub fallback: String,
}

impl From<&RingGroup> for GroupView {
    fn from(g: &RingGroup) -> Self {
        GroupView {
            number: g.number.clone(),
            members: g.members.clone(),
            strategy: g.strategy.to_string(),
            ring_seconds: g.ring_seconds,
            fallback: g.fallback.to_string(),
        }
    }
}

impl GroupSettings {
    /// `base` with these settings applied; errors say which value is wrong and what is accepted.
    pub fn apply(&self, mut base: RingGroup) -> anyhow::Result<RingGroup> {
        if let Some(m) = &self.members {
            base.members = m
                .iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
        }
        if let Some(s) = &self.strategy {
            base.strategy = Strategy::parse(s).map_err(|e| anyhow!(e))?;
        }
        if let Some(r) = self.ring_seconds {
            base.ring_seconds = r;
        }
        if let Some(f) = &self.fallback {
            base.fallback = Fallback::parse(f).map_err(|e| anyhow!(e))?;
        }
        base.validate().map_err(|e| anyhow!(e))?;
        Ok(base)
    }
}

/// Adds a ring group. Refuses a number that dialling would never reach (an emergency number, the voicemail
/// number) and a voicemail fallback to an extension that does not exist.
pub async fn add_group(
    db: &Db,
    number: &str,
    settings: &GroupSettings,
) -> anyhow::Result<RingGroup> {
    if settings.members.as_ref().is_none_or(Vec::is_empty) {
        bail!("a ring group needs members: --members 201,202,…");
    }
    let group = settings.apply(RingGroup {
        number: number.trim().to_string(),
        members: Vec::new(),
        strategy: Strategy::All,
        ring_seconds: DEFAULT_RING_SECONDS,
        fallback: Fallback::Hangup,
    })?;
    check_numbers(db, &group).await?;
    db.add_ring_group(&group).await.map_err(group_error)?;
    Ok(group)
}

/// Changes ring group `number`: only the settings given; returns (before, after).
pub async fn change_group(
    db: &Db,
    number: &str,
    settings: &GroupSettings,
) -> anyhow::Result<(RingGroup, RingGroup)> {
    let before = db
        .ring_group(number.trim())
        .await?
        .ok_or_else(|| group_error(StoreError::NotFound(format!("ring group {number}"))))?;
    let after = settings.apply(before.clone())?;
    check_numbers(db, &after).await?;
    db.update_ring_group(&after).await.map_err(group_error)?;
    Ok((before, after))
}

/// Removes ring group `number` and returns it.
pub async fn remove_group(db: &Db, number: &str) -> anyhow::Result<RingGroup> {
    db.remove_ring_group(number.trim())
        .await
        .map_err(group_error)
}

/// Every ring group, for display.
pub async fn group_views(db: &Db) -> anyhow::Result<Vec<GroupView>> {
    Ok(db
        .list_ring_groups()
        .await?
        .iter()
        .map(GroupView::from)
        .collect())
}

/// The numbers a group may not take or use: emergency and voicemail numbers (dialling them never reaches a
/// group), a voicemail fallback without a mailbox.
async fn check_numbers(db: &Db, group: &RingGroup) -> anyhow::Result<()> {
    let policy = db.policy_settings().await?;
    if policy.emergency_numbers.contains(&group.number) {
        bail!(
            "{} is an emergency number; a ring group needs another number",
            group.number
        );
    }
    if policy.voicemail_number == group.number {
        bail!(
            "{} is the voicemail access number; a ring group needs another number",
            group.number
        );
    }
    if let Fallback::Voicemail(mailbox) = &group.fallback {
        let has_mailbox = db
            .list_mailboxes()
            .await?
            .iter()
            .any(|m| m.number == *mailbox && m.enabled);
        if !has_mailbox {
            bail!(
                "extension {mailbox} has no voicemail; enable it (`palisade ext set {mailbox} --voicemail on`) or \
                 choose another fallback"
            );
        }
    }
    Ok(())
}

fn group_error(e: StoreError) -> anyhow::Error {
    match e {
        StoreError::NotFound(what) => {
            anyhow!("{what} does not exist (list them with `palisade group list`)")
        }
        e => anyhow::Error::new(e),
    }
}

fn print_group(v: &GroupView) {
    output::fields(&[
        ("Group", v.number.clone()),
        ("Members", v.members.join(", ")),
        ("Strategy", v.strategy.clone()),
        ("Ring time", format!("{} s", v.ring_seconds)),
        ("Fallback", v.fallback.clone()),
    ]);
}

pub async fn run(args: GroupArgs) -> anyhow::Result<()> {
    let common = args.common;
    match args.command {
        GroupCommand::Add { number, settings } => {
            let db = common.open_or_create().await?;
            let r = add_group(&db, &number, &settings).await;
            db.close().await;
            let g = GroupView::from(&r?);
            if common.json {
                return output::json(&g);
            }
            crate::say!("Added ring group {}.", g.number);
            print_group(&g);
            Ok(())
        }
        GroupCommand::Change { number, settings } => {
            let db = common.open().await?;
            let r = change_group(&db, &number, &settings).await;
            db.close().await;
            let g = GroupView::from(&r?.1);
            if common.json {
                return output::json(&g);
            }
            crate::say!("Changed ring group {}.", g.number);
            print_group(&g);
            Ok(())
        }
        GroupCommand::List => {
            let db = common.open().await?;
            let r = group_views(&db).await;
            db.close().await;
            output::list(
                common.json,
                &r?,
                "No ring groups. Add one with `palisade group add 600 --members 201,202`.",
                &["GROUP", "STRATEGY", "RING", "FALLBACK", "MEMBERS"],
                |g| {
                    vec![
                        g.number.clone(),
                        g.strategy.clone(),
                        format!("{} s", g.ring_seconds),
                        g.fallback.clone(),
                        g.members.join(","),
                    ]
                },
            )
        }
        GroupCommand::Show { number } => {
            let db = common.open().await?;
            let r = db.ring_group(number.trim()).await;
            db.close().await;
            let g = r?
                .ok_or_else(|| group_error(StoreError::NotFound(format!("ring group {number}"))))?;
            let v = GroupView::from(&g);
            if common.json {
                return output::json(&v);
            }
            print_group(&v);
            Ok(())
        }
        GroupCommand::Remove { number } => {
            let db = common.open().await?;
            let r = remove_group(&db, &number).await;
            db.close().await;
            let g = r?;
            if common.json {
                return output::json(&GroupView::from(&g));
            }
            crate::say!("Removed ring group {}.", g.number);
            Ok(())
        }
    }
}
