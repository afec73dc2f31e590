//! Administration commands: extensions, registrations, security events and settings, IP lists, calls and call
//! records. They work on the database in the data directory directly, also while the server runs: every write is
//! durable when the command returns and bumps the configuration version, which the server polls to reload.

pub mod accounts;
pub mod attendant;
pub mod calls;
pub mod cert;
pub mod conference;
mod countries;
pub mod db;
pub mod events;
pub mod ext;
pub mod features;
pub mod groups;
mod hours;
pub mod lists;
pub mod moh;
mod output;
pub mod phone;
pub mod policy;
pub mod queues;

mod realm;
pub mod recording;
mod secret;
pub mod security;
pub mod time;
pub mod trunks;
pub mod voicemail;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::anyhow;
use clap::{Args, Subcommand};
use store::{Db, StoreError};

use crate::config::{CONFIG_FILE, DEFAULT_DATA_DIR, FileConfig};

pub use accounts::{AccountArgs, AccountCommand, AuditArgs};
pub use calls::{CallsArgs, CdrArgs};
pub use cert::{CertArgs, CertCommand};
pub use countries::{CountriesArgs, CountriesCommand};
pub use events::{EventsArgs, RegistrationsArgs};
pub use ext::{ExtArgs, ExtCommand};
pub use hours::{HolidayCommand, HoursArgs, HoursCommand};
pub use lists::{ListArgs, ListCommand};
pub use policy::{PolicyArgs, PolicyCommand, RuleArgs, RuleCommand};
pub use security::{SecurityArgs, SecurityCommand};
pub use trunks::{DidArgs, DidCommand, TrunkArgs, TrunkCommand};
pub use voicemail::{VoicemailArgs, VoicemailCommand};

/// The admin subcommands, flattened into the top-level command line next to `serve`.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Manage extensions: add, add-range, list, show, set, reset-password, reset-pin, remove.
    Ext(ExtArgs),
    /// List registered contacts.
    Registrations(RegistrationsArgs),
    /// Show security events (authentication failures, bans, …), newest first.
    Events(EventsArgs),
    /// Show or change security settings.
    Security(SecurityArgs),
    /// Blocked addresses and prefixes, manual and automatic bans: list, add, remove (unban).
    Blacklist(ListArgs),
    /// Addresses and prefixes exempt from anti-hacking: list, add, remove.
    Whitelist(ListArgs),
    /// Show the calls in progress, as the running server last wrote them (it does within a second of a change).
    Calls(CallsArgs),
    /// Show call records (finished calls, answered or not), newest first.
    Cdr(CdrArgs),
    /// The TLS certificate: show.
    Cert(CertArgs),
    /// Call policy: home country and dialling prefixes, allowed countries, emergency numbers, PIN unlock, local
    /// networks, office hours: show, set, reset.
    Policy(PolicyArgs),
    /// Outbound rules, tried in order: add, list, remove, move (also `palisade route …`).
    #[command(alias = "route")]
    Rule(RuleArgs),
    /// Country calling codes international calls may reach: list, allow CODE, deny CODE.
    Countries(CountriesArgs),
    /// Office hours (for office-hours-only extensions): show, set, timezone, holiday add|remove.
    Hours(HoursArgs),
    /// SIP trunks (the providers external calls go through): add, set, list, show, remove.
    Trunk(TrunkArgs),
    /// Inbound numbers (DIDs) and the extension each rings: add, list, remove.
    Did(DidArgs),
    /// Voicemail messages of a mailbox: list, export, delete (PINs: `palisade ext reset-pin`).
    Voicemail(VoicemailArgs),
    /// Web console accounts, API tokens and console bans: add, list, remove, reset-password, totp, token, bans,
    /// unban.
    Admin(AccountArgs),
    /// Show the audit log: every change from the console, the API and the command line, newest first.
    Audit(AuditArgs),
    /// The digest realm passwords are bound to (fixed at first start, independent of the domain): show, set.
    Realm(realm::RealmArgs),
    /// Ring groups (one number ringing several phones): add, change, list, show, remove.
    Group(groups::GroupArgs),
    /// Feature codes (`*8` pickup, `**EXT` directed pickup, …): show, set, reset.
    Features(features::FeatureArgs),
    /// Pickup groups (who may pick up whose ringing calls with `*8`): list, set.
    Pickup(features::PickupArgs),
    /// Call queues (callers wait with music for a free agent): add, change, list, show, remove, login, logout,
    /// stats.
    Queue(queues::QueueArgs),
    /// Music on hold per extension (what callers hear while it holds them): set default|off|FILE.wav, show, list.
    Moh(moh::MohArgs),
    /// Conference rooms: add, list, show, remove, unlock; participants, mute, unmute, kick.
    Conference(conference::ConferenceArgs),
    /// Auto attendants ("press 1 for sales"): add, list, show, remove; did add|list|remove.
    Attendant(attendant::AttendantArgs),
    /// Call recording: set EXT always|on-demand|off, show, announce on|off, retention DAYS; list, export, delete.
    Recording(recording::RecordingArgs),
    /// Desk phones and softphones provisioned over HTTPS: add, list, show, remove, reprovision.
    Phone(phone::PhoneArgs),
    /// The database itself: migrate-to postgres://… (copy a SQLite installation into PostgreSQL, verified).
    Db(db::DbArgs),
}

/// Options every admin command takes (before or after the subcommand).
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Data directory (default: $PALISADE_DATA, else ./palisade-data; the same rule as `serve`).
    #[arg(long, value_name = "DIR", env = "PALISADE_DATA", global = true)]
    pub data: Option<PathBuf>,

    /// The database: a postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE URL when several nodes share one
    /// PostgreSQL (docs/cluster.md); default: DATA/palisade.db (SQLite). The same rule as `serve`.
    #[arg(long, value_name = "URL", env = "PALISADE_DATABASE", global = true)]
    pub database: Option<String>,

    /// Machine-readable JSON output instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

impl CommonArgs {
    fn data_dir(&self) -> PathBuf {
        self.data
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
    }

    /// Opens the database, creating the data directory and database if needed (for commands that write).
    async fn open_or_create(&self) -> anyhow::Result<Db> {
        if let Some(url) = &self.database {
            return open_url(url).await;
        }
        let dir = self.data_dir();
        Db::open_in(&dir)
            .await
            .map_err(|e| anyhow!("cannot open the database in {}: {e}", dir.display()))
    }

    /// Opens an existing database; a missing one is reported with the data directory that was looked at.
    async fn open(&self) -> anyhow::Result<Db> {
        if let Some(url) = &self.database {
            return open_url(url).await;
        }
        let dir = self.data_dir();
        match Db::open_existing(&dir.join(store::DB_FILE)).await {
            Ok(db) => Ok(db),
            Err(StoreError::Missing(_)) => Err(anyhow!(
                "no Palisade database in {}: check --data or $PALISADE_DATA (`palisade serve` or \
                 `palisade ext add` creates it)",
                dir.display()
            )),
            Err(e) => Err(anyhow!(
                "cannot open the database in {}: {e}",
                dir.display()
            )),
        }
    }
}

/// Opens the database a `--database` URL names; the error names it without its password.
async fn open_url(url: &str) -> anyhow::Result<Db> {
    Db::open_url(url)
        .await
        .map_err(|e| anyhow!("cannot open the database {}: {e}", store::redact_url(url)))
}

/// Runs an admin command; a change made from the command line is written to the audit log.
pub async fn run(cmd: AdminCommand) -> anyhow::Result<()> {
    let audited = cli_audit(&cmd);
    run_command(cmd).await?;
    if let Some((common, what)) = audited {
        // The change is made; an audit log that cannot be written is reported but does not undo it.
        let written = async {
            let db = common.open().await?;
            let r = db
                .append_audit(&store::admin::AuditNew {
                    actor: accounts::Actor::cli().name,
                    source: "local".into(),
                    action: "cli".into(),
                    target: Some(what),
                    before: None,
                    after: None,
                })
                .await;
            db.close().await;
            r.map_err(anyhow::Error::from)
        }
        .await;
        if let Err(e) = written {
            eprintln!(
                "warning: the change was made but could not be written to the audit log: {e}"
            );
        }
    }
    Ok(())
}

/// For a command that changes something (not `list`, `show` or `export`, and not the account commands, which
/// audit themselves): its data directory and the command line to record, with passwords left out.
fn cli_audit(cmd: &AdminCommand) -> Option<(CommonArgs, String)> {
    let common = match cmd {
        AdminCommand::Ext(a) => &a.common,
        AdminCommand::Security(a) => &a.common,
        AdminCommand::Blacklist(a) | AdminCommand::Whitelist(a) => &a.common,
        AdminCommand::Policy(a) => &a.common,
        AdminCommand::Rule(a) => &a.common,
        AdminCommand::Countries(a) => &a.common,
        AdminCommand::Hours(a) => &a.common,
        AdminCommand::Trunk(a) => &a.common,
        AdminCommand::Did(a) => &a.common,
        AdminCommand::Voicemail(a) => &a.common,
        AdminCommand::Group(a) => &a.common,
        AdminCommand::Features(a) => &a.common,
        AdminCommand::Pickup(a) => &a.common,
        AdminCommand::Queue(a) => &a.common,
        AdminCommand::Moh(a) => &a.common,
        AdminCommand::Conference(a) => &a.common,
        AdminCommand::Attendant(a) => &a.common,
        AdminCommand::Recording(a) => &a.common,
        _ => return None,
    };
    let words = cli_words(std::env::args().skip(1));
    let action = words.get(1).map(String::as_str).unwrap_or("");
    if matches!(
        action,
        "list" | "show" | "export" | "stats" | "participants" | ""
    ) {
        return None;
    }
    Some((common.clone(), words.join(" ")))
}

/// The command line's words without `--data DIR`, `--database URL` (it may hold a password), `--json` and the value of `--password`.
fn cli_words(args: impl Iterator<Item = String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut skip_next = false;
    for a in args {
        if skip_next {
            skip_next = false;
            continue;
        }
        match a.as_str() {
            "--data" | "--database" => skip_next = true,
            "--json" => {}
            "--password" => {
                out.push("--password ***".into());
                skip_next = true;
            }
            _ if a.starts_with("--data=") || a.starts_with("--database=") => {}
            _ if a.starts_with("--password=") => out.push("--password ***".into()),
            _ => out.push(output::clean(&a).into_owned()),
        }
    }
    out
}

async fn run_command(cmd: AdminCommand) -> anyhow::Result<()> {
    match cmd {
        AdminCommand::Admin(args) => accounts::run(args).await,
        AdminCommand::Audit(args) => accounts::run_audit(args).await,
        AdminCommand::Ext(args) => ext::run(args).await,
        AdminCommand::Registrations(args) => events::registrations(args).await,
        AdminCommand::Events(args) => events::events(args).await,
        AdminCommand::Security(args) => security::run(args).await,
        AdminCommand::Blacklist(args) => lists::run(lists::List::Black, args).await,
        AdminCommand::Whitelist(args) => lists::run(lists::List::White, args).await,
        AdminCommand::Calls(args) => calls::calls(args).await,
        AdminCommand::Cdr(args) => calls::cdr(args).await,
        AdminCommand::Cert(args) => cert::run(args).await,
        AdminCommand::Policy(args) => policy::run_policy(args).await,
        AdminCommand::Rule(args) => policy::run_rule(args).await,
        AdminCommand::Countries(args) => countries::run(args).await,
        AdminCommand::Hours(args) => hours::run(args).await,
        AdminCommand::Trunk(args) => trunks::run_trunk(args).await,
        AdminCommand::Did(args) => trunks::run_did(args).await,
        AdminCommand::Voicemail(args) => voicemail::run(args).await,
        AdminCommand::Realm(args) => realm::run(args).await,
        AdminCommand::Group(args) => groups::run(args).await,
        AdminCommand::Features(args) => features::run_features(args).await,
        AdminCommand::Pickup(args) => features::run_pickup(args).await,
        AdminCommand::Queue(args) => queues::run(args).await,
        AdminCommand::Moh(args) => moh::run(args).await,
        AdminCommand::Conference(args) => conference::run(args).await,
        AdminCommand::Attendant(args) => attendant::run(args).await,
        AdminCommand::Recording(args) => recording::run(args).await,
        AdminCommand::Phone(args) => phone::run(args).await,
        AdminCommand::Db(args) => db::run(args).await,
    }
}

/// Runs an admin command on a small runtime and prints any error: exit code 0 on success, 1 on failure.
pub fn main(cmd: AdminCommand) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cmd)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// The SIP domain: the `domain` setting, else `domain` in palisade.toml, else the shared default
/// ([`store::settings::default_domain`]).
async fn domain(db: &Db, data_dir: &Path) -> anyhow::Result<String> {
    if let Some(d) = db.get_setting(store::settings::DOMAIN).await? {
        return Ok(d);
    }
    let file = FileConfig::load(&data_dir.join(CONFIG_FILE))?;
    Ok(file.domain.unwrap_or_else(store::settings::default_domain))
}

/// The digest realm passwords are hashed for: the fixed realm, or, before the first start, the domain (which
/// is then fixed as the realm, so a later `serve --domain` does not invalidate the passwords set now).
async fn realm(db: &Db, data_dir: &Path) -> anyhow::Result<String> {
    let candidate = domain(db, data_dir).await?;
    Ok(db.realm_or_fix(&candidate).await?)
}

/// Turns a store error into an operator message, with a hint for a missing extension.
fn store_error(e: StoreError) -> anyhow::Error {
    match e {
        StoreError::NotFound(what) if what.starts_with("extension ") => {
            anyhow!("{what} does not exist (list them with `palisade ext list`)")
        }
        e => anyhow::Error::new(e),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn command_line_is_consistent() {
        use clap::CommandFactory as _;
        crate::cli::Cli::command().debug_assert();
    }

    #[test]
    fn audited_command_lines_leave_out_passwords_the_data_dir_and_the_database() {
        let words = super::cli_words(
            [
                "ext",
                "add",
                "100",
                "--password",
                "secret1",
                "--data",
                "/d",
                "--json",
                "--password=x",
                "--database",
                "postgres://pbx:pw1@db/p",
                "--database=postgres://pbx:pw2@db/p",
            ]
            .into_iter()
            .map(String::from),
        );
        assert_eq!(
            words,
            ["ext", "add", "100", "--password ***", "--password ***"]
        );
    }
}
