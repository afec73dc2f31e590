//! `palisade hours …`: the weekly office hours, their time zone and the holidays (for extensions with
//! "no outbound calls outside office hours"). A shorthand for the `office_hours`, `office_hours_timezone` and
//! `holidays` policy settings: changes go through the same validation and store write as `palisade policy set`
//! ([`super::policy::set_policy`]).

use anyhow::anyhow;
use clap::{Args, Subcommand};
use serde::Serialize;
use store::policy::{HOLIDAYS, OFFICE_HOURS, OFFICE_HOURS_TIMEZONE, PolicyConfig, normalize};

use super::policy::{read_policy, set_policy, show_value};
use super::{CommonArgs, output};

#[derive(Debug, Args)]
pub struct HoursArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(subcommand)]
    pub command: HoursCommand,
}

#[derive(Debug, Subcommand)]
pub enum HoursCommand {
    /// Show the office hours, their time zone, the holidays and whether the office is open now.
    Show,
    /// Set the weekly office hours: DAYS HH:MM-HH:MM entries separated by ';', e.g.
    /// "mon-fri 08:00-18:00; sat 09:00-12:00"; "" for none (office-hours-only extensions then make no
    /// external calls except emergency numbers).
    Set {
        #[arg(value_name = "WEEKLY")]
        weekly: String,
    },
    /// Set the time zone of the office hours: an IANA name such as Europe/Berlin; "" for the server's system
    /// time zone.
    Timezone {
        #[arg(value_name = "ZONE")]
        zone: String,
    },
    /// Days the office is closed all day: add, remove.
    #[command(alias = "holidays")]
    Holiday {
        #[command(subcommand)]
        command: HolidayCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum HolidayCommand {
    /// Add holidays (dates YYYY-MM-DD, in the office-hours time zone).
    Add {
        #[arg(required = true, value_name = "DATE")]
        dates: Vec<String>,
    },
    /// Remove holidays.
    Remove {
        #[arg(required = true, value_name = "DATE")]
        dates: Vec<String>,
    },
}

#[derive(Debug, Serialize)]
struct HoursView {
    /// The weekly hours as set; empty: none.
    office_hours: String,
    /// As set; empty: the system time zone.
    timezone: String,
    /// The time zone in force.
    effective_timezone: String,
    holidays: Vec<String>,
    /// Whether the office is open now (false when no hours are set); `None` when the stored hours do not parse.
    open_now: Option<bool>,
    /// Why the stored hours do not apply, if they do not.
    error: Option<String>,
}

fn view(c: &PolicyConfig) -> HoursView {
    let (open_now, error) = match c.office_hours() {
        Ok(Some(h)) => (Some(h.is_open(std::time::SystemTime::now())), None),
        Ok(None) => (Some(false), None),
        Err(e) => (None, Some(e)),
    };
    HoursView {
        office_hours: c.office_hours.clone(),
        timezone: c.office_hours_timezone.clone(),
        effective_timezone: c.effective_timezone(),
        holidays: c.holidays.clone(),
        open_now,
        error,
    }
}

fn print(v: &HoursView) {
    let tz = if v.timezone.is_empty() {
        format!("{} (the system time zone)", v.effective_timezone)
    } else {
        v.timezone.clone()
    };
    let open = match v.open_now {
        Some(true) => "yes",
        Some(false) => "no",
        None => "unknown",
    };
    output::fields(&[
        ("office hours", show_value(&v.office_hours)),
        ("time zone", tz),
        ("holidays", show_value(&v.holidays.join(", "))),
        ("open now", open.to_string()),
    ]);
    if let Some(e) = &v.error {
        crate::say!();
        crate::say!("warning: {e} (fix it with `palisade hours set` or `palisade hours timezone`)");
    }
}

/// One holiday, checked and canonical. The error says what is wrong and what is expected.
fn date(item: &str) -> anyhow::Result<String> {
    match normalize(HOLIDAYS, item) {
        Some(Ok(d)) if !d.is_empty() && !d.contains(',') => Ok(d),
        _ => Err(anyhow!(
            "invalid holiday '{}': expected one date as YYYY-MM-DD (e.g. 2026-12-25)",
            item.escape_debug()
        )),
    }
}

pub async fn run(args: HoursArgs) -> anyhow::Result<()> {
    let common = args.common;
    let note = match args.command {
        HoursCommand::Show => None,
        HoursCommand::Set { weekly } => {
            let v = set_policy(&common, OFFICE_HOURS, &weekly).await?;
            Some(format!("Office hours: {}.", show_value(&v)))
        }
        HoursCommand::Timezone { zone } => {
            let v = set_policy(&common, OFFICE_HOURS_TIMEZONE, &zone).await?;
            Some(if v.is_empty() {
                "Office hours follow the system time zone.".to_string()
            } else {
                format!("Office hours time zone: {v}.")
            })
        }
        HoursCommand::Holiday { command } => {
            let (add, dates) = match command {
                HolidayCommand::Add { dates } => (true, dates),
                HolidayCommand::Remove { dates } => (false, dates),
            };
            let dates = dates
                .iter()
                .map(|d| date(d))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let current = read_policy(&common).await?.holidays;
            let list: Vec<String> = if add {
                current.iter().chain(&dates).cloned().collect()
            } else {
                current
                    .iter()
                    .filter(|d| !dates.contains(d))
                    .cloned()
                    .collect()
            };
            set_policy(&common, HOLIDAYS, &list.join(",")).await?;
            let mut note = format!(
                "{} holiday{} {}.",
                if add { "Added" } else { "Removed" },
                if dates.len() == 1 { "" } else { "s" },
                dates.join(", ")
            );
            let absent: Vec<&str> = dates
                .iter()
                .filter(|d| !current.contains(d))
                .map(String::as_str)
                .collect();
            if !add && !absent.is_empty() {
                note.push_str(&format!(" ({} was not a holiday.)", absent.join(", ")));
            }
            Some(note)
        }
    };
    let v = view(&read_policy(&common).await?);
    if common.json {
        return output::json(&v);
    }
    if let Some(n) = note {
        crate::say!("{n}");
    }
    print(&v);
    Ok(())
}
