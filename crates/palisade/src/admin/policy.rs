//! `palisade policy …` (the call-policy settings) and `palisade rule …` (the ordered outbound rules).

use anyhow::anyhow;
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};
use store::policy::{POLICY_SETTINGS, PolicyConfig, PolicySetting};
use store::{OutboundRuleRow, StoreError, settings};

use super::{CommonArgs, output, store_error};

#[derive(Debug, Args)]
pub struct PolicyArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(subcommand)]
    pub command: PolicyCommand,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Show the call-policy settings, their values, defaults and allowed values.
    Show,
    /// Change a setting: country_code, international_prefix, national_prefix, allowed_country_codes,
    /// emergency_numbers, pin_unlock_seconds, local_networks, office_hours_timezone, office_hours, holidays,
    /// voicemail_number (`palisade policy show` gives what each takes).
    Set {
        /// The setting's name.
        key: String,
        /// The new value ("" where the setting allows an empty value).
        value: String,
    },
    /// Put a setting back to its default.
    Reset {
        /// The setting's name.
        key: String,
    },
}

#[derive(Debug, Args)]
pub struct RuleArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(subcommand)]
    pub command: RuleCommand,
}

#[derive(Debug, Subcommand)]
pub enum RuleCommand {
    /// Add an outbound rule (at the end, or at --position). The first rule that matches a dialled number (prefix,
    /// length, calling extension) rewrites it (strip, then prepend) and sends it to its trunks in order.
    Add {
        /// The rule's name: letters, digits, '-' and '_'.
        name: String,
        /// Dialled numbers starting with these digits (e.g. 00, 0, +44); "" for any number.
        #[arg(long, value_name = "DIGITS", allow_hyphen_values = true)]
        prefix: String,
        /// Shortest dialled number, in digits (default: the prefix length).
        #[arg(long, value_name = "N")]
        min_len: Option<u32>,
        /// Longest dialled number, in digits (default: 32).
        #[arg(long, value_name = "N")]
        max_len: Option<u32>,
        /// Only for these calling extensions, e.g. 201,202 (default: all).
        #[arg(long, value_name = "LIST", value_delimiter = ',')]
        extensions: Vec<String>,
        /// Digits removed from the front of the dialled number.
        #[arg(long, value_name = "N", default_value_t = 0)]
        strip: u32,
        /// Digits put in front after stripping, e.g. 0049 or + (default: none).
        #[arg(long, value_name = "DIGITS", default_value = "")]
        prepend: String,
        /// Trunk names, in failover order, e.g. carrier,backup.
        #[arg(long, value_name = "T1[,T2]", value_delimiter = ',', required = true)]
        trunks: Vec<String>,
        /// Insert at this position (1 is tried first); the rules from there on move down.
        #[arg(long, value_name = "N")]
        position: Option<usize>,
    },
    /// List the outbound rules, in the order they are tried.
    List,
    /// Remove an outbound rule.
    Remove { name: String },
    /// Move an outbound rule to another position (1 is tried first).
    Move {
        name: String,
        /// The new position.
        #[arg(long, value_name = "POSITION")]
        to: usize,
    },
}

/// One setting as shown.
#[derive(Debug, Serialize)]
struct SettingView {
    key: &'static str,
    value: String,
    default: &'static str,
    allowed: &'static str,
    about: &'static str,
}

#[derive(Debug, Serialize)]
struct PolicyView {
    /// The values in force, by key.
    values: serde_json::Map<String, serde_json::Value>,
    settings: Vec<SettingView>,
    /// Set when the home country is missing: every external call except emergency numbers is refused.
    warning: Option<String>,
    /// The home country and allowed_country_codes: the countries external calls may reach.
    effective_allowed_country_codes: Vec<String>,
    /// The office-hours time zone in force.
    effective_timezone: String,
    rules: Vec<OutboundRuleRow>,
}

/// A setting's value in force, as stored text.
/// A policy setting's value as `palisade policy show` prints it.
pub fn value_of(c: &PolicyConfig, key: &str) -> String {
    use store::policy::*;
    match key {
        COUNTRY_CODE => c.country_code.clone(),
        INTERNATIONAL_PREFIX => c.international_prefix.clone(),
        NATIONAL_PREFIX => c.national_prefix.clone(),
        ALLOWED_COUNTRY_CODES => c.allowed_country_codes.join(","),
        EMERGENCY_NUMBERS => c.emergency_numbers.join(","),
        PIN_UNLOCK_SECONDS => c.pin_unlock_seconds.to_string(),
        PIN_FAILURES_BEFORE_LOCKOUT => c.pin_failures_before_lockout.to_string(),
        PIN_LOCKOUT_SECONDS => c.pin_lockout_seconds.to_string(),
        MAX_CALLS_PER_EXTENSION => c.max_calls_per_extension.to_string(),
        MAX_SUBSCRIPTIONS_PER_EXTENSION => c.max_subscriptions_per_extension.to_string(),
        LOCAL_NETWORKS => c.local_networks.join(","),
        OFFICE_HOURS_TIMEZONE => c.office_hours_timezone.clone(),
        OFFICE_HOURS => c.office_hours.clone(),
        HOLIDAYS => c.holidays.join(","),
        VOICEMAIL_NUMBER => c.voicemail_number.clone(),
        _ => String::new(),
    }
}

/// A setting's value in force, as JSON: lists as arrays, numbers as numbers.
fn json_value(c: &PolicyConfig, key: &str) -> serde_json::Value {
    use store::policy::*;
    let arr = |v: &[String]| serde_json::json!(v);
    match key {
        ALLOWED_COUNTRY_CODES => arr(&c.allowed_country_codes),
        EMERGENCY_NUMBERS => arr(&c.emergency_numbers),
        LOCAL_NETWORKS => arr(&c.local_networks),
        HOLIDAYS => arr(&c.holidays),
        PIN_UNLOCK_SECONDS => serde_json::json!(c.pin_unlock_seconds),
        PIN_FAILURES_BEFORE_LOCKOUT => serde_json::json!(c.pin_failures_before_lockout),
        PIN_LOCKOUT_SECONDS => serde_json::json!(c.pin_lockout_seconds),
        MAX_CALLS_PER_EXTENSION => serde_json::json!(c.max_calls_per_extension),
        MAX_SUBSCRIPTIONS_PER_EXTENSION => serde_json::json!(c.max_subscriptions_per_extension),
        k => serde_json::json!(value_of(c, k)),
    }
}

fn policy_key(key: &str) -> anyhow::Result<&'static PolicySetting> {
    store::policy::policy_setting(key).ok_or_else(|| {
        let known: Vec<&str> = POLICY_SETTINGS.iter().map(|s| s.key).collect();
        anyhow!(
            "unknown policy setting '{key}': known settings are {} (see `palisade policy show`)",
            known.join(", ")
        )
    })
}

pub(super) fn show_value(v: &str) -> String {
    if v.is_empty() {
        "(none)".into()
    } else {
        v.to_string()
    }
}

/// Validates a policy setting, stores it (bumping the configuration version, which the running server reloads
/// within a second) and returns the stored (canonical) value. `palisade policy set`, `palisade countries` and
/// `palisade hours` all change settings through here.
pub(super) async fn set_policy(
    common: &CommonArgs,
    key: &str,
    value: &str,
) -> anyhow::Result<String> {
    let value = check_policy(key, value)?;
    let db = common.open_or_create().await?;
    let done = db.set_setting(key, &value).await;
    db.close().await;
    done.map_err(store_error)?;
    Ok(value)
}

/// Checks a policy setting as `palisade policy set` does; returns the value to store (the API checks every
/// value of a change with it before writing any).
pub fn check_policy(key: &str, value: &str) -> anyhow::Result<String> {
    policy_key(key)?;
    settings::normalize(key, value).map_err(store_error)
}

/// The stored call policy with defaults applied (for `palisade countries` and `palisade hours`).
pub(super) async fn read_policy(common: &CommonArgs) -> anyhow::Result<PolicyConfig> {
    let db = common.open_or_create().await?;
    let config = db.policy_settings().await;
    db.close().await;
    Ok(config?)
}

pub async fn run_policy(args: PolicyArgs) -> anyhow::Result<()> {
    let common = args.common;
    match args.command {
        PolicyCommand::Show => {
            let db = common.open_or_create().await?;
            let config = db.policy_settings().await;
            db.close().await;
            let c = config?;
            let view = PolicyView {
                values: POLICY_SETTINGS
                    .iter()
                    .map(|s| (s.key.to_string(), json_value(&c, s.key)))
                    .collect(),
                settings: POLICY_SETTINGS
                    .iter()
                    .map(|s| SettingView {
                        key: s.key,
                        value: value_of(&c, s.key),
                        default: s.default,
                        allowed: s.allowed,
                        about: s.about,
                    })
                    .collect(),
                warning: c.not_configured(),
                effective_allowed_country_codes: c
                    .effective_allowed_country_codes()
                    .into_iter()
                    .collect(),
                effective_timezone: c.effective_timezone(),
                rules: c.rules.clone(),
            };
            if common.json {
                return output::json(&view);
            }
            let rows: Vec<Vec<String>> = view
                .settings
                .iter()
                .map(|s| {
                    vec![
                        s.key.to_string(),
                        show_value(&s.value),
                        show_value(s.default),
                        s.allowed.to_string(),
                    ]
                })
                .collect();
            output::table(&["SETTING", "VALUE", "DEFAULT", "ALLOWED"], &rows);
            crate::say!();
            let countries = if view.effective_allowed_country_codes.is_empty() {
                "none".to_string()
            } else {
                view.effective_allowed_country_codes.join(", ")
            };
            crate::say!("Countries external calls may reach: {countries}");
            crate::say!(
                "Office hours time zone in force: {}",
                view.effective_timezone
            );
            crate::say!(
                "Outbound rules: {} (see `palisade rule list`)",
                view.rules.len()
            );
            if let Some(w) = &view.warning {
                crate::say!();
                crate::say!("warning: {w}");
            }
            Ok(())
        }
        PolicyCommand::Set { key, value } => {
            let value = set_policy(&common, &key, &value).await?;
            if common.json {
                return output::json(&serde_json::json!({ "key": key, "value": value }));
            }
            crate::say!("{key} = {}", show_value(&value));
            Ok(())
        }
        PolicyCommand::Reset { key } => {
            let setting = policy_key(&key)?;
            let db = common.open_or_create().await?;
            let done = db.remove_setting(&key).await;
            db.close().await;
            done.map_err(store_error)?;
            if common.json {
                return output::json(
                    &serde_json::json!({ "key": key, "value": setting.default, "reset": true }),
                );
            }
            crate::say!("{key} = {} (the default)", show_value(setting.default));
            Ok(())
        }
    }
}

/// A store error about rules, with a hint where one helps.
/// An outbound rule to add, as `palisade rule add` and `POST /api/v1/rules` take it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleInput {
    pub name: String,
    #[serde(default)]
    pub prefix: String,
    pub min_len: Option<u32>,
    pub max_len: Option<u32>,
    #[serde(default)]
    pub extensions: Vec<String>,
    #[serde(default)]
    pub strip: u32,
    #[serde(default)]
    pub prepend: String,
    pub trunks: Vec<String>,
    /// 1 is tried first; default: the end.
    pub position: Option<usize>,
}

/// Changes to an outbound rule (`PATCH /api/v1/rules/{name}`): what is given replaces the rule's value;
/// `position` moves it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleChange {
    pub name: Option<String>,
    pub prefix: Option<String>,
    pub min_len: Option<u32>,
    pub max_len: Option<u32>,
    pub extensions: Option<Vec<String>>,
    pub strip: Option<u32>,
    pub prepend: Option<String>,
    pub trunks: Option<Vec<String>>,
    pub position: Option<usize>,
}

fn trimmed(v: Vec<String>) -> Vec<String> {
    v.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Adds an outbound rule (checked as `palisade rule add` checks it) and answers it with its position.
pub async fn add_rule(db: &store::Db, input: RuleInput) -> anyhow::Result<OutboundRuleRow> {
    let rule = OutboundRuleRow {
        position: 0,
        name: input.name,
        prefix: input.prefix.trim().to_string(),
        min_len: input.min_len,
        max_len: input.max_len,
        extensions: trimmed(input.extensions),
        strip: input.strip,
        prepend: input.prepend.trim().to_string(),
        trunks: trimmed(input.trunks),
    };
    rule.validate().map_err(store_error)?;
    db.add_outbound_rule(rule, input.position)
        .await
        .map_err(rule_error)
}

/// Removes an outbound rule and answers what it was.
pub async fn remove_rule(db: &store::Db, name: &str) -> anyhow::Result<OutboundRuleRow> {
    let before = db
        .list_outbound_rules()
        .await?
        .into_iter()
        .find(|r| r.name == name);
    db.remove_outbound_rule(name).await.map_err(rule_error)?;
    before.ok_or_else(|| rule_error(StoreError::NotFound(format!("outbound rule {name}"))))
}

/// Moves an outbound rule; answers the rules in their new order.
pub async fn move_rule(
    db: &store::Db,
    name: &str,
    to: usize,
) -> anyhow::Result<Vec<OutboundRuleRow>> {
    db.move_outbound_rule(name, to).await.map_err(rule_error)
}

/// Changes an outbound rule in place (and moves it when `position` is given); answers (before, after).
pub async fn change_rule(
    db: &store::Db,
    name: &str,
    change: RuleChange,
) -> anyhow::Result<(OutboundRuleRow, OutboundRuleRow)> {
    let before = db
        .list_outbound_rules()
        .await?
        .into_iter()
        .find(|r| r.name == name)
        .ok_or_else(|| rule_error(StoreError::NotFound(format!("outbound rule {name}"))))?;
    let RuleChange {
        name: new_name,
        prefix,
        min_len,
        max_len,
        extensions,
        strip,
        prepend,
        trunks,
        position,
    } = change;
    let fields_given = new_name.is_some()
        || prefix.is_some()
        || min_len.is_some()
        || max_len.is_some()
        || extensions.is_some()
        || strip.is_some()
        || prepend.is_some()
        || trunks.is_some();
    if !fields_given && position.is_none() {
        return Err(anyhow!(
            "nothing to change: give at least one of name, prefix, min_len, max_len, extensions, strip, prepend, \
             trunks, position"
        ));
    }
    let mut after = before.clone();
    if fields_given {
        let rule = OutboundRuleRow {
            position: 0,
            name: new_name.unwrap_or_else(|| before.name.clone()),
            prefix: prefix.map_or_else(|| before.prefix.clone(), |p| p.trim().to_string()),
            min_len: min_len.or(before.min_len),
            max_len: max_len.or(before.max_len),
            extensions: extensions.map_or_else(|| before.extensions.clone(), trimmed),
            strip: strip.unwrap_or(before.strip),
            prepend: prepend.map_or_else(|| before.prepend.clone(), |p| p.trim().to_string()),
            trunks: trunks.map_or_else(|| before.trunks.clone(), trimmed),
        };
        rule.validate().map_err(store_error)?;
        after = db
            .replace_outbound_rule(name, rule)
            .await
            .map_err(rule_error)?;
    }
    if let Some(to) = position {
        let rules = move_rule(db, &after.name, to).await?;
        if let Some(moved) = rules.into_iter().find(|r| r.name == after.name) {
            after = moved;
        }
    }
    Ok((before, after))
}

fn rule_error(e: StoreError) -> anyhow::Error {
    match e {
        StoreError::NotFound(what) => {
            anyhow!("{what} does not exist (list them with `palisade rule list`)")
        }
        e => store_error(e),
    }
}

fn print_rules(rules: &[OutboundRuleRow]) {
    if rules.is_empty() {
        crate::say!(
            "No outbound rules: no external call goes out, emergency numbers included. Add one with \
             `palisade rule add NAME --prefix DIGITS --trunks TRUNK`."
        );
        return;
    }
    let rows: Vec<Vec<String>> = rules
        .iter()
        .map(|r| {
            vec![
                r.position.to_string(),
                r.name.clone(),
                if r.prefix.is_empty() {
                    "(any)".into()
                } else {
                    r.prefix.clone()
                },
                format!("{}-{}", r.effective_min_len(), r.effective_max_len()),
                if r.extensions.is_empty() {
                    "(all)".into()
                } else {
                    r.extensions.join(",")
                },
                r.strip.to_string(),
                show_value(&r.prepend),
                r.trunks.join(","),
            ]
        })
        .collect();
    output::table(
        &[
            "POS",
            "NAME",
            "PREFIX",
            "LENGTH",
            "EXTENSIONS",
            "STRIP",
            "PREPEND",
            "TRUNKS",
        ],
        &rows,
    );
}

pub async fn run_rule(args: RuleArgs) -> anyhow::Result<()> {
    let common = args.common;
    match args.command {
        RuleCommand::Add {
            name,
            prefix,
            min_len,
            max_len,
            extensions,
            strip,
            prepend,
            trunks,
            position,
        } => {
            let input = RuleInput {
                name,
                prefix,
                min_len,
                max_len,
                extensions,
                strip,
                prepend,
                trunks,
                position,
            };
            let db = common.open_or_create().await?;
            let added = add_rule(&db, input).await;
            db.close().await;
            let added = added?;
            if common.json {
                return output::json(&added);
            }
            crate::say!(
                "Added outbound rule {} at position {}.",
                added.name,
                added.position
            );
            print_rules(std::slice::from_ref(&added));
            Ok(())
        }
        RuleCommand::List => {
            let db = common.open_or_create().await?;
            let rules = db.list_outbound_rules().await;
            db.close().await;
            let rules = rules?;
            if common.json {
                return output::json(&rules);
            }
            print_rules(&rules);
            Ok(())
        }
        RuleCommand::Remove { name } => {
            let db = common.open().await?;
            let removed = remove_rule(&db, &name).await;
            db.close().await;
            removed?;
            if common.json {
                return output::json(&serde_json::json!({ "removed": name }));
            }
            crate::say!("Removed outbound rule {name}.");
            Ok(())
        }
        RuleCommand::Move { name, to } => {
            let db = common.open().await?;
            let moved = move_rule(&db, &name, to).await;
            db.close().await;
            let rules = moved?;
            if common.json {
                return output::json(&rules);
            }
            crate::say!("Moved outbound rule {name} to position {to}.");
            print_rules(&rules);
            Ok(())
        }
    }
}
