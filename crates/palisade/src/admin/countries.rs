//! `palisade countries list|allow CODE|deny CODE`: the allow list of country calling codes (hardening step 4),
//! a shorthand for the `allowed_country_codes` policy setting. Changes go through the same validation and store
//! write as `palisade policy set` ([`super::policy::set_policy`]).

use anyhow::anyhow;
use clap::{Args, Subcommand};
use serde::Serialize;
use store::policy::{ALLOWED_COUNTRY_CODES, COUNTRY_CODE, PolicyConfig, normalize};

use super::policy::{read_policy, set_policy};
use super::{CommonArgs, output};

#[derive(Debug, Args)]
pub struct CountriesArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(subcommand)]
    pub command: CountriesCommand,
}

#[derive(Debug, Subcommand)]
pub enum CountriesCommand {
    /// Show the home country and the country calling codes international calls may reach.
    List,
    /// Allow international calls to these country calling codes (e.g. 44 33; a leading '+' is fine).
    Allow {
        #[arg(required = true, value_name = "CODE")]
        codes: Vec<String>,
    },
    /// Stop allowing calls to these country calling codes (the home country is always allowed).
    Deny {
        #[arg(required = true, value_name = "CODE")]
        codes: Vec<String>,
    },
}

#[derive(Debug, Serialize)]
struct CountriesView {
    /// The home country calling code; empty while not set.
    home: String,
    /// `allowed_country_codes`, as set.
    allowed: Vec<String>,
    /// What calls may reach: the home country and the allowed ones (none until the home country is set).
    effective: Vec<String>,
    warning: Option<String>,
}

fn view(c: &PolicyConfig) -> CountriesView {
    CountriesView {
        home: c.country_code.clone(),
        allowed: c.allowed_country_codes.clone(),
        effective: c.effective_allowed_country_codes().into_iter().collect(),
        warning: c.not_configured(),
    }
}

fn print(v: &CountriesView) {
    let home = if v.home.is_empty() {
        "not set".to_string()
    } else {
        v.home.clone()
    };
    let list = |l: &[String]| {
        if l.is_empty() {
            "none".to_string()
        } else {
            l.join(", ")
        }
    };
    output::fields(&[
        ("home country", home),
        ("allowed", list(&v.allowed)),
        ("calls may reach", list(&v.effective)),
    ]);
    crate::say!(
        "Emergency numbers always go out. Change the list with `palisade countries allow CODE` and \
         `palisade countries deny CODE`."
    );
    if let Some(w) = &v.warning {
        crate::say!();
        crate::say!("warning: {w}");
    }
}

/// One country calling code, checked and canonical (no '+'). The error says what is wrong and what is expected.
fn code(verb: &str, item: &str) -> anyhow::Result<String> {
    match normalize(COUNTRY_CODE, item) {
        Some(Ok(c)) if !c.is_empty() => Ok(c),
        Some(Err(e)) => Err(anyhow!(
            "cannot {verb} '{}': {}",
            item.escape_debug(),
            e.to_string()
                .replace("invalid country_code", "invalid country calling code")
        )),
        _ => Err(anyhow!(
            "cannot {verb} '{}': expected an ITU country calling code of 1 to 3 digits (e.g. 1, 44, 49)",
            item.escape_debug()
        )),
    }
}

pub async fn run(args: CountriesArgs) -> anyhow::Result<()> {
    let common = args.common;
    let (config, note) = match args.command {
        CountriesCommand::List => (read_policy(&common).await?, None),
        CountriesCommand::Allow { codes } => {
            let codes = codes
                .iter()
                .map(|c| code("allow", c))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let mut c = read_policy(&common).await?;
            let mut list = c.allowed_country_codes.clone();
            list.extend(codes.iter().cloned());
            let value = set_policy(&common, ALLOWED_COUNTRY_CODES, &list.join(",")).await?;
            c.allowed_country_codes = split(&value);
            (c, Some(format!("Allowed {}.", codes.join(", "))))
        }
        CountriesCommand::Deny { codes } => {
            let codes = codes
                .iter()
                .map(|c| code("deny", c))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let mut c = read_policy(&common).await?;
            if let Some(home) = codes.iter().find(|x| **x == c.country_code) {
                return Err(anyhow!(
                    "cannot deny {home}: it is the home country (country_code), whose calls are always allowed; \
                     change the home country with `palisade policy set country_code CODE`"
                ));
            }
            let not_listed: Vec<&String> = codes
                .iter()
                .filter(|x| !c.allowed_country_codes.contains(x))
                .collect();
            let list: Vec<String> = c
                .allowed_country_codes
                .iter()
                .filter(|x| !codes.contains(x))
                .cloned()
                .collect();
            let value = set_policy(&common, ALLOWED_COUNTRY_CODES, &list.join(",")).await?;
            c.allowed_country_codes = split(&value);
            let mut note = format!("Denied {}.", codes.join(", "));
            if !not_listed.is_empty() {
                let n: Vec<&str> = not_listed.iter().map(|s| s.as_str()).collect();
                note.push_str(&format!(" ({} was not allowed before.)", n.join(", ")));
            }
            (c, Some(note))
        }
    };
    let v = view(&config);
    if common.json {
        return output::json(&v);
    }
    if let Some(n) = note {
        crate::say!("{n}");
    }
    print(&v);
    Ok(())
}

fn split(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}
