//! `palisade trunk …` (SIP trunks: the providers external calls go through) and `palisade did …` (inbound numbers
//! and the extension each rings).

use anyhow::anyhow;
use clap::{Args, Subcommand};
use pbx::trunks::registration::RegState;
use serde::{Deserialize, Serialize};
use store::trunks::HOST_SOURCES;
use store::{Db, DidRow, SrtpMode, StoreError, TrunkNew, TrunkPatch, TrunkRow, TrunkStatusRow};

use super::secret::PasswordArgs;
use super::time::format_ms;
use super::{CommonArgs, output, store_error};

#[derive(Debug, Args)]
pub struct TrunkArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(subcommand)]
    pub command: TrunkCommand,
}

/// The trunk password is stored as given, because Palisade needs it to answer the provider's digest challenges
/// (the database file is readable only by its owner, mode 0600). It is never shown.
#[derive(Debug, Subcommand)]
pub enum TrunkCommand {
    /// Add a trunk. Calls come in as this trunk only from its --source networks. The --password is stored as
    /// given (it is needed to answer the provider's digest challenges; the database file is mode 0600) and never
    /// shown again.
    Add {
        /// The trunk's name: 1 to 32 letters, digits, '-' and '_'.
        name: String,
        /// The provider's SIP server: IP address or DNS name.
        #[arg(long, value_name = "HOST")]
        host: String,
        /// The provider's SIP port (default: 5060, 5061 for tls).
        #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
        port: Option<u16>,
        /// udp, tcp or tls (default: udp).
        #[arg(long, value_name = "udp|tcp|tls")]
        transport: Option<String>,
        /// Username for the provider's digest challenges (and registration).
        #[arg(long, value_name = "USER")]
        username: Option<String>,
        /// Password for the provider's digest challenges; needs --username. Stored as given (needed to answer the
        /// challenges; the database file is mode 0600) and never shown. Visible to every local user (`ps`) while
        /// the command runs: prefer --password-stdin, or leave both out on a terminal to be asked for it.
        #[arg(
            long,
            value_name = "PASSWORD",
            requires = "username",
            conflicts_with = "password_stdin"
        )]
        password: Option<String>,
        /// Read the password as one line from standard input; needs --username.
        #[arg(long, requires = "username")]
        password_stdin: bool,
        /// Register to the provider (for providers that send calls to a registered contact): on or off
        /// (default off; --register alone is on). Needs --username and --password.
        #[arg(long, value_name = "on|off", num_args = 0..=1, default_missing_value = "on",
              value_parser = on_off)]
        register: Option<bool>,
        /// The addresses or CIDR prefixes the provider sends calls from: only these may send calls in as this
        /// trunk, e.g. 198.51.100.0/28,203.0.113.5. Default (or "host"): the addresses of --host only (its
        /// name is resolved again every 300 s).
        #[arg(long, value_name = "CIDR[,CIDR]", value_delimiter = ',')]
        source: Vec<String>,
        /// The caller number presented on outbound calls (digits, optionally after '+').
        #[arg(long, value_name = "NUMBER")]
        caller_id: Option<String>,
        /// Most concurrent calls (in and out) through this trunk, 1 to 1000; the next gets 503 (or the next
        /// trunk of the rule). Default: no cap.
        #[arg(long, value_name = "N")]
        max_calls: Option<String>,
        /// The digest username for the provider's challenges when it differs from --username (which stays the
        /// user of From, To and the registration).
        #[arg(long, value_name = "USER", requires = "username")]
        auth_user: Option<String>,
        /// With --transport tls: a PEM file of the CA certificate(s) the provider's certificate must chain to
        /// (default: the system's trusted roots). A provider's self-signed certificate works here too.
        #[arg(long, value_name = "PATH")]
        ca_file: Option<std::path::PathBuf>,
        /// With --transport tls: the name the provider's certificate must carry, also sent as SNI (default:
        /// --host).
        #[arg(long, value_name = "NAME")]
        tls_server_name: Option<String>,
        /// SRTP toward the provider: disabled (plain RTP; the default), enabled (SRTP offered over TLS, plain
        /// RTP accepted) or enforced (only SRTP, only over TLS).
        #[arg(long, value_name = "disabled|enabled|enforced")]
        srtp: Option<String>,
    },
    /// Change a trunk: only the options given change; "" clears --username (and the password), --password and
    /// --caller-id; --source replaces the whole list. The --password is stored as given (see `trunk add`).
    Set {
        name: String,
        /// The provider's SIP server: IP address or DNS name.
        #[arg(long, value_name = "HOST")]
        host: Option<String>,
        /// The provider's SIP port.
        #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
        port: Option<u16>,
        /// udp, tcp or tls.
        #[arg(long, value_name = "udp|tcp|tls")]
        transport: Option<String>,
        /// Username for the provider's digest challenges; "" removes the credentials.
        #[arg(long, value_name = "USER")]
        username: Option<String>,
        /// Password for the provider's digest challenges (needs a username); "" removes it. Never shown.
        /// Visible to every local user (`ps`) while the command runs: prefer --password-stdin.
        #[arg(long, value_name = "PASSWORD", conflicts_with = "password_stdin")]
        password: Option<String>,
        /// Read the new password as one line from standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Register to the provider: on or off (--register alone is on). Needs a username and password.
        #[arg(long, value_name = "on|off", num_args = 0..=1, default_missing_value = "on",
              value_parser = on_off, conflicts_with = "no_register")]
        register: Option<bool>,
        /// Stop registering to the provider (the same as --register off).
        #[arg(long)]
        no_register: bool,
        /// The provider's source addresses or CIDR prefixes (replaces the list); "host" for the addresses of the
        /// trunk's host only.
        #[arg(long, value_name = "CIDR[,CIDR]", value_delimiter = ',')]
        source: Option<Vec<String>>,
        /// The caller number presented on outbound calls; "" for none.
        #[arg(long, value_name = "NUMBER")]
        caller_id: Option<String>,
        /// Most concurrent calls (in and out) through this trunk, 1 to 1000; 0 or "" for no cap.
        #[arg(long, value_name = "N")]
        max_calls: Option<String>,
        /// The digest username for the provider's challenges when it differs from --username (which stays the
        /// user of From, To and the registration).
        #[arg(long, value_name = "USER")]
        auth_user: Option<String>,
        /// With --transport tls: a PEM file of the CA certificate(s) the provider's certificate must chain to
        /// ("" for the system's trusted roots). A provider's self-signed certificate works here too.
        #[arg(long, value_name = "PATH")]
        ca_file: Option<std::path::PathBuf>,
        /// With --transport tls: the name the provider's certificate must carry, also sent as SNI ("" for
        /// --host).
        #[arg(long, value_name = "NAME")]
        tls_server_name: Option<String>,
        /// SRTP toward the provider: disabled (plain RTP; the default), enabled (SRTP offered over TLS, plain
        /// RTP accepted) or enforced (only SRTP, only over TLS).
        #[arg(long, value_name = "disabled|enabled|enforced")]
        srtp: Option<String>,
    },
    /// List the trunks (never their passwords).
    List,
    /// Show one trunk and its DIDs (never its password).
    Show { name: String },
    /// Remove a trunk and its DIDs.
    Remove { name: String },
}

#[derive(Debug, Args)]
pub struct DidArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(subcommand)]
    pub command: DidCommand,
}

#[derive(Debug, Subcommand)]
pub enum DidCommand {
    /// Map an inbound number to an extension (a call from the trunk's source networks to NUMBER rings EXT), or
    /// to a ring group or call queue (`--target group:600`, `--target queue:700`).
    Add {
        /// The inbound number: digits, optionally after '+' (e.g. +4930123456).
        number: String,
        /// The trunk the number comes in on.
        #[arg(long, value_name = "NAME")]
        trunk: String,
        /// The extension it rings.
        #[arg(
            long,
            value_name = "EXT",
            required_unless_present = "target",
            conflicts_with = "target"
        )]
        ext: Option<String>,
        /// A ring group (`group:600`: its members that take outside calls ring) or a queue (`queue:700`).
        #[arg(long, value_name = "group:N|queue:N")]
        target: Option<String>,
    },
    /// List the inbound numbers.
    List,
    /// Remove an inbound number (with or without its '+').
    Remove { number: String },
}

/// `on`/`off` (also yes/no, true/false).
fn on_off(v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "on" | "yes" | "true" => Ok(true),
        "off" | "no" | "false" => Ok(false),
        _ => Err(format!("'{v}' is not on or off (e.g. --register on)")),
    }
}

#[derive(Debug, Serialize)]
pub struct DidView {
    number: String,
    extension: String,
}

/// A trunk as shown: never the password, only whether one is set.
#[derive(Debug, Serialize)]
pub struct TrunkView {
    pub name: String,
    host: String,
    port: i64,
    transport: String,
    username: Option<String>,
    /// "set", or null when there is none.
    password: Option<&'static str>,
    register: bool,
    /// How the registration stands, as the running server last wrote it (null while registration is off or the
    /// server has not written it yet).
    registration: Option<RegistrationView>,
    /// Networks, or ["host"]: the addresses of `host` only.
    sources: Vec<String>,
    caller_id: Option<String>,
    /// Concurrent calls (in and out) this trunk carries at most; null: no cap.
    max_calls: Option<u32>,
    /// The digest username, when it differs from `username`.
    auth_user: Option<String>,
    /// TLS: the CA file the provider's certificate is checked against (null: the system roots).
    ca_file: Option<String>,
    /// TLS: the name the provider's certificate must carry (null: the host).
    tls_server_name: Option<String>,
    srtp: SrtpMode,
    dids: Vec<DidView>,
    created_at: String,
    updated_at: String,
}

#[derive(Debug, Serialize)]
pub struct RegistrationView {
    /// registered, registering, failed or unregistering.
    state: String,
    registered_until: Option<String>,
    last_error: Option<String>,
    next_attempt: Option<String>,
    /// When the server wrote this.
    updated_at: String,
}

impl RegistrationView {
    /// One line for tables: "registered until …", "failed", "registering"…
    fn summary(&self) -> String {
        match (RegState::from_stored(&self.state), &self.registered_until) {
            (Some(RegState::Registered), Some(until)) => format!("registered until {until}"),
            _ => self.state.clone(),
        }
    }
}

fn registration_view(t: &TrunkRow, status: &[TrunkStatusRow]) -> Option<RegistrationView> {
    if !t.register {
        return None;
    }
    let s = status.iter().find(|s| s.trunk == t.name)?;
    Some(RegistrationView {
        state: s.state.clone(),
        registered_until: s.registered_until.map(format_ms),
        last_error: s.last_error.clone(),
        next_attempt: s.next_attempt.map(format_ms),
        updated_at: format_ms(s.updated_at),
    })
}

fn view(t: &TrunkRow, dids: &[DidRow], status: &[TrunkStatusRow]) -> TrunkView {
    TrunkView {
        name: t.name.clone(),
        host: t.host.clone(),
        port: t.port,
        transport: t.transport.clone(),
        username: t.username.clone(),
        password: t.password.as_ref().map(|_| "set"),
        register: t.register,
        registration: registration_view(t, status),
        sources: t.source_list(),
        caller_id: t.caller_id.clone(),
        max_calls: None,
        auth_user: t.auth_user.clone(),
        ca_file: t.ca_file.clone(),
        tls_server_name: t.tls_server_name.clone(),
        srtp: t.srtp,
        dids: dids
            .iter()
            .filter(|d| d.trunk == t.name)
            .map(|d| DidView {
                number: d.number.clone(),
                extension: d.extension.clone(),
            })
            .collect(),
        created_at: format_ms(t.created_at),
        updated_at: format_ms(t.updated_at),
    }
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}

/// The sources for people: "host" spelled out.
fn sources_text(v: &TrunkView) -> String {
    if v.sources.len() == 1 && v.sources[0] == HOST_SOURCES {
        format!("{HOST_SOURCES} (the addresses of {} only)", v.host)
    } else {
        v.sources.join(", ")
    }
}

fn print_trunk(v: &TrunkView) {
    let dids = if v.dids.is_empty() {
        "none (map one with `palisade did add NUMBER --trunk NAME --ext EXT`)".to_string()
    } else {
        v.dids
            .iter()
            .map(|d| format!("{} -> {}", d.number, d.extension))
            .collect::<Vec<_>>()
            .join(", ")
    };
    output::fields(&[
        ("name", v.name.clone()),
        ("host", v.host.clone()),
        ("port", v.port.to_string()),
        ("transport", v.transport.clone()),
        ("username", output::opt(&v.username)),
        ("auth user", output::opt(&v.auth_user)),
        ("password", v.password.unwrap_or("not set").to_string()),
        ("register", yes_no(v.register)),
        (
            "registration",
            match (&v.registration, v.register) {
                (_, false) => "off".to_string(),
                (Some(r), true) => r.summary(),
                (None, true) => "not reported yet (is `palisade serve` running?)".to_string(),
            },
        ),
        (
            "last error",
            v.registration
                .as_ref()
                .and_then(|r| r.last_error.clone())
                .unwrap_or_else(|| "none".into()),
        ),
        ("sources", sources_text(v)),
        (
            "TLS",
            if v.transport == sip::Transport::Tls.name() {
                format!(
                    "certificate for {} checked against {}",
                    v.tls_server_name.as_deref().unwrap_or(&v.host),
                    v.ca_file.as_deref().unwrap_or("the system roots")
                )
            } else {
                "no (transport is not tls)".into()
            },
        ),
        ("SRTP", v.srtp.to_string()),
        ("caller ID", output::opt(&v.caller_id)),
        (
            "max calls",
            v.max_calls.map_or_else(
                || "no cap".to_string(),
                |n| format!("{n} at once (in and out)"),
            ),
        ),
        ("DIDs", dids),
        ("created", v.created_at.clone()),
        ("updated", v.updated_at.clone()),
    ]);
}

/// A warning when registration is on but cannot work.
fn warn_register(v: &TrunkView) {
    if v.register && (v.username.is_none() || v.password.is_none()) {
        crate::say!(
            "warning: registration is on but the trunk has no username and password, so it cannot register; set \
             them with `palisade trunk set {} --username USER --password-stdin`",
            v.name
        );
    }
}

fn print_trunks(trunks: &[TrunkView]) {
    if trunks.is_empty() {
        crate::say!(
            "No trunks: no external call goes in or out. Add one with `palisade trunk add NAME --host HOST \
             --source CIDR`."
        );
        return;
    }
    let rows: Vec<Vec<String>> = trunks
        .iter()
        .map(|t| {
            vec![
                t.name.clone(),
                t.host.clone(),
                t.port.to_string(),
                t.transport.clone(),
                output::opt(&t.username),
                match (&t.registration, t.register) {
                    (_, false) => "off".to_string(),
                    (Some(r), true) => r.summary(),
                    (None, true) => "on".to_string(),
                },
                t.sources.join(","),
                output::opt(&t.caller_id),
                t.dids.len().to_string(),
            ]
        })
        .collect();
    output::table(
        &[
            "NAME",
            "HOST",
            "PORT",
            "TRANSPORT",
            "USERNAME",
            "REGISTRATION",
            "SOURCES",
            "CALLER ID",
            "DIDS",
        ],
        &rows,
    );
}

/// A store error about trunks or DIDs, with a hint where one helps.
fn trunk_error(e: StoreError) -> anyhow::Error {
    match e {
        StoreError::NotFound(what) if what.starts_with("trunk ") => {
            anyhow!("{what} does not exist (list them with `palisade trunk list`)")
        }
        StoreError::NotFound(what) if what.starts_with("DID ") => {
            anyhow!("{what} does not exist (list them with `palisade did list`)")
        }
        e => store_error(e),
    }
}

/// The outbound rules that name trunk `name`.
async fn rules_using(db: &Db, name: &str) -> anyhow::Result<Vec<String>> {
    Ok(db
        .list_outbound_rules()
        .await?
        .into_iter()
        .filter(|r| r.trunks.iter().any(|t| t == name))
        .map(|r| r.name)
        .collect())
}

/// A --ca-file: made absolute (the server may run elsewhere) and checked to hold PEM certificates now, so a
/// typo is reported here rather than as a failed connection later.
fn ca_file_arg(path: &std::path::Path) -> anyhow::Result<String> {
    let abs =
        std::path::absolute(path).map_err(|e| anyhow!("--ca-file {}: {e}", path.display()))?;
    crate::tls_client::load_ca_file(&abs).map_err(|e| anyhow!("--ca-file: {e:#}"))?;
    abs.to_str()
        .map(String::from)
        .ok_or_else(|| anyhow!("--ca-file {}: the path is not UTF-8", abs.display()))
}

fn parse_srtp(v: &str) -> anyhow::Result<SrtpMode> {
    SrtpMode::parse(v).map_err(|e| {
        anyhow!(
            "--srtp: {e} (disabled: plain RTP toward the provider; enabled: SRTP offered over TLS, plain RTP \
             accepted; enforced: only SRTP over TLS)"
        )
    })
}

fn clearable(v: Option<String>) -> Option<Option<String>> {
    v.map(|s| Some(s).filter(|s| !s.is_empty()))
}

/// A trunk to add, as `palisade trunk add` and `POST /api/v1/trunks` take it (the password already read).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkInput {
    pub name: String,
    pub host: String,
    pub port: Option<u16>,
    pub transport: Option<String>,
    pub username: Option<String>,
    /// Stored as given, never shown back.
    pub password: Option<String>,
    pub register: Option<bool>,
    #[serde(default)]
    pub sources: Vec<String>,
    pub caller_id: Option<String>,
    /// 1 to 1000, as text or a number.
    #[serde(default, deserialize_with = "text_or_number")]
    pub max_calls: Option<String>,
    pub auth_user: Option<String>,
    pub ca_file: Option<std::path::PathBuf>,
    pub tls_server_name: Option<String>,
    pub srtp: Option<String>,
}

/// Changes to a trunk, as `palisade trunk set` and `PATCH /api/v1/trunks/{name}` take them: only what is given
/// changes; "" clears the username (and the password), the password, the caller ID, the auth user, the CA file
/// and the TLS name; `sources` replaces the whole list.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkChange {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub transport: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub register: Option<bool>,
    pub sources: Option<Vec<String>>,
    pub caller_id: Option<String>,
    /// 1 to 1000; 0 or "" for no cap.
    #[serde(default, deserialize_with = "text_or_number")]
    pub max_calls: Option<String>,
    pub auth_user: Option<String>,
    pub ca_file: Option<std::path::PathBuf>,
    pub tls_server_name: Option<String>,
    pub srtp: Option<String>,
}

impl TrunkChange {
    pub fn check_not_empty(&self) -> anyhow::Result<()> {
        let TrunkChange {
            host,
            port,
            transport,
            username,
            password,
            register,
            sources,
            caller_id,
            max_calls,
            auth_user,
            ca_file,
            tls_server_name,
            srtp,
        } = self;
        let given = host.is_some()
            || port.is_some()
            || transport.is_some()
            || username.is_some()
            || password.is_some()
            || register.is_some()
            || sources.is_some()
            || caller_id.is_some()
            || max_calls.is_some()
            || auth_user.is_some()
            || ca_file.is_some()
            || tls_server_name.is_some()
            || srtp.is_some();
        if !given {
            return Err(anyhow!(
                "nothing to change: give at least one option, e.g. --host or --source (see `palisade trunk set \
                 --help`)"
            ));
        }
        Ok(())
    }
}

/// A number given as JSON text or number, kept as text for the CLI's own parser.
fn text_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
    })
}

/// Adds a trunk (and its call cap) and answers it as shown.
pub async fn add_trunk(db: &Db, input: TrunkInput) -> anyhow::Result<TrunkView> {
    let max_calls = input
        .max_calls
        .map(|v| store::limits::parse_limit("--max-calls", &v))
        .transpose()
        .map_err(trunk_error)?
        .flatten();
    let new = TrunkNew {
        name: input.name,
        host: input.host,
        port: input.port,
        transport: input.transport,
        username: input.username,
        password: input.password,
        register: input.register.unwrap_or(false),
        sources: input.sources,
        caller_id: input.caller_id,
        auth_user: input.auth_user,
        ca_file: input.ca_file.map(|f| ca_file_arg(&f)).transpose()?,
        tls_server_name: input.tls_server_name,
        srtp: input.srtp.as_deref().map(parse_srtp).transpose()?,
    };
    let t = db.add_trunk(new).await.map_err(trunk_error)?;
    if max_calls.is_some() {
        db.set_trunk_max_calls(&t.name, max_calls)
            .await
            .map_err(trunk_error)?;
    }
    let mut v = view(&t, &[], &[]);
    v.max_calls = max_calls;
    Ok(v)
}

/// Changes a trunk and answers it as shown.
pub async fn set_trunk(db: &Db, name: &str, change: TrunkChange) -> anyhow::Result<TrunkView> {
    change.check_not_empty()?;
    let max_calls = change
        .max_calls
        .map(|v| store::limits::parse_limit("--max-calls", &v))
        .transpose()
        .map_err(trunk_error)?;
    let patch = TrunkPatch {
        host: change.host,
        port: change.port,
        transport: change.transport,
        username: clearable(change.username),
        password: clearable(change.password),
        register: change.register,
        sources: change.sources,
        caller_id: clearable(change.caller_id),
        auth_user: clearable(change.auth_user),
        ca_file: change
            .ca_file
            .map(|f| {
                if f.as_os_str().is_empty() {
                    Ok(None)
                } else {
                    ca_file_arg(&f).map(Some)
                }
            })
            .transpose()?,
        tls_server_name: clearable(change.tls_server_name),
        srtp: change.srtp.as_deref().map(parse_srtp).transpose()?,
    };
    let t = if patch.is_empty() {
        db.get_trunk(name).await.map_err(trunk_error)?
    } else {
        db.update_trunk(name, patch).await.map_err(trunk_error)?
    };
    if let Some(max_calls) = max_calls {
        db.set_trunk_max_calls(&t.name, max_calls)
            .await
            .map_err(trunk_error)?;
    }
    trunk_view(db, &t.name).await
}

/// One trunk as shown, with its DIDs and registration.
pub async fn trunk_view(db: &Db, name: &str) -> anyhow::Result<TrunkView> {
    let t = db.get_trunk(name).await.map_err(trunk_error)?;
    let dids = db.list_dids().await?;
    let status = db.list_trunk_status().await?;
    let mut v = view(&t, &dids, &status);
    v.max_calls = db.trunk_max_calls(&t.name).await?;
    Ok(v)
}

/// Removes a trunk with its DIDs; answers the DIDs removed and the outbound rules that still name it.
pub async fn remove_trunk(db: &Db, name: &str) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let dids: Vec<String> = db
        .list_dids()
        .await?
        .into_iter()
        .filter(|d| d.trunk == name)
        .map(|d| d.number)
        .collect();
    db.remove_trunk(name).await.map_err(trunk_error)?;
    let rules = rules_using(db, name).await?;
    Ok((dids, rules))
}

/// Maps an inbound number to an extension.
pub async fn add_did(db: &Db, number: &str, trunk: &str, ext: &str) -> anyhow::Result<DidRow> {
    db.add_did(number, trunk, ext).await.map_err(trunk_error)
}

/// Maps an inbound number to a ring group or queue (`group:600`, `queue:700`), which must exist.
pub async fn add_did_target(
    db: &Db,
    number: &str,
    trunk: &str,
    target: &str,
) -> anyhow::Result<store::attendants::DidTargetRow> {
    let number = number.trim();
    let parsed: pbx::office::attendant::Target =
        target.trim().parse().map_err(|e| anyhow!("--target {e}"))?;
    if !matches!(
        parsed,
        pbx::office::attendant::Target::Group(_) | pbx::office::attendant::Target::Queue(_)
    ) {
        return Err(anyhow!(
            "--target {target}: a DID leads to group:NUMBER or queue:NUMBER (use --ext EXT for an extension, \
             `palisade attendant did add` for an attendant)"
        ));
    }
    if number.is_empty()
        || number.len() > 32
        || !number
            .trim_start_matches('+')
            .bytes()
            .all(|b| b.is_ascii_digit())
    {
        return Err(anyhow!(
            "DID {number:?}: digits, optionally after '+' (e.g. +4930123456)"
        ));
    }
    super::attendant::office_target_exists(db, &parsed).await?;
    let target = parsed.to_string();
    db.add_did_target(number, trunk, &target)
        .await
        .map_err(trunk_error)?;
    Ok(store::attendants::DidTargetRow {
        number: number.to_string(),
        trunk: trunk.to_string(),
        target,
    })
}

/// Removes an inbound number and answers what it was.
pub async fn remove_did(db: &Db, number: &str) -> anyhow::Result<DidRow> {
    db.remove_did(number).await.map_err(trunk_error)
}

/// Changes which trunk and extension an inbound number belongs to (what is not given stays): the old mapping
/// is put back if the new one is refused. Answers (before, after).
pub async fn set_did(
    db: &Db,
    number: &str,
    trunk: Option<&str>,
    ext: Option<&str>,
) -> anyhow::Result<(DidRow, DidRow)> {
    if trunk.is_none() && ext.is_none() {
        return Err(anyhow!(
            "nothing to change: give the trunk, the extension or both"
        ));
    }
    let old = remove_did(db, number).await?;
    let added = add_did(
        db,
        &old.number,
        trunk.unwrap_or(&old.trunk),
        ext.unwrap_or(&old.extension),
    )
    .await;
    match added {
        Ok(new) => Ok((old, new)),
        Err(e) => {
            add_did(db, &old.number, &old.trunk, &old.extension).await?;
            Err(e)
        }
    }
}

pub async fn run_trunk(args: TrunkArgs) -> anyhow::Result<()> {
    let common = args.common;
    match args.command {
        TrunkCommand::Add {
            name,
            host,
            port,
            transport,
            username,
            password,
            password_stdin,
            register,
            source,
            caller_id,
            max_calls,
            auth_user,
            ca_file,
            tls_server_name,
            srtp,
        } => {
            // With a username the provider's challenges need a password: on a terminal, asked for without echo.
            let password = PasswordArgs {
                flag: password,
                stdin: password_stdin,
            }
            .read(username.is_some().then_some("Password for the provider"))?;
            let new = TrunkInput {
                name,
                host,
                port,
                transport,
                username,
                password,
                register,
                sources: source,
                caller_id,
                max_calls,
                auth_user,
                ca_file,
                tls_server_name,
                srtp,
            };
            let db = common.open_or_create().await?;
            let added = add_trunk(&db, new).await;
            db.close().await;
            let v = added?;
            if common.json {
                return output::json(&v);
            }
            crate::say!("Added trunk {}.", v.name);
            print_trunk(&v);
            warn_register(&v);
            crate::say!();
            crate::say!(
                "Route calls through it with `palisade rule add NAME --prefix DIGITS --trunks {}`.",
                v.name
            );
            Ok(())
        }
        TrunkCommand::Set {
            name,
            host,
            port,
            transport,
            username,
            password,
            password_stdin,
            register,
            no_register,
            source,
            caller_id,
            max_calls,
            auth_user,
            ca_file,
            tls_server_name,
            srtp,
        } => {
            let password = PasswordArgs {
                flag: password,
                stdin: password_stdin,
            }
            .read(None)?;
            let change = TrunkChange {
                host,
                port,
                transport,
                username,
                password,
                register: if no_register { Some(false) } else { register },
                sources: source,
                caller_id,
                max_calls,
                auth_user,
                ca_file,
                tls_server_name,
                srtp,
            };
            change.check_not_empty()?;
            let db = common.open().await?;
            let result = set_trunk(&db, &name, change).await;
            db.close().await;
            let v = result?;
            if common.json {
                return output::json(&v);
            }
            crate::say!("Changed trunk {}.", v.name);
            print_trunk(&v);
            warn_register(&v);
            Ok(())
        }
        TrunkCommand::List => {
            let db = common.open_or_create().await?;
            let result = async {
                let trunks = db.list_trunk_rows().await?;
                let dids = db.list_dids().await?;
                let status = db.list_trunk_status().await?;
                anyhow::Ok(
                    trunks
                        .iter()
                        .map(|t| view(t, &dids, &status))
                        .collect::<Vec<_>>(),
                )
            }
            .await;
            db.close().await;
            let views = result?;
            if common.json {
                return output::json(&views);
            }
            print_trunks(&views);
            Ok(())
        }
        TrunkCommand::Show { name } => {
            let db = common.open().await?;
            let result = trunk_view(&db, &name).await;
            db.close().await;
            let v = result?;
            if common.json {
                return output::json(&v);
            }
            print_trunk(&v);
            Ok(())
        }
        TrunkCommand::Remove { name } => {
            let db = common.open().await?;
            let result = remove_trunk(&db, &name).await;
            db.close().await;
            let (dids, rules) = result?;
            if common.json {
                return output::json(&serde_json::json!({
                    "removed": name,
                    "dids_removed": dids,
                    "rules_naming_it": rules,
                }));
            }
            if dids.is_empty() {
                crate::say!("Removed trunk {name}.");
            } else {
                crate::say!("Removed trunk {name} and its DIDs: {}.", dids.join(", "));
            }
            if !rules.is_empty() {
                crate::say!(
                    "warning: outbound rules still name trunk {name}: {} (calls matching them fail over to their \
                     other trunks or are refused; change them with `palisade rule remove` and `palisade rule add`)",
                    rules.join(", ")
                );
            }
            Ok(())
        }
    }
}

fn print_dids(dids: &[DidRow]) {
    if dids.is_empty() {
        crate::say!(
            "No DIDs: inbound calls ring nobody. Map one with `palisade did add NUMBER --trunk NAME --ext EXT`."
        );
        return;
    }
    let rows: Vec<Vec<String>> = dids
        .iter()
        .map(|d| vec![d.number.clone(), d.trunk.clone(), d.extension.clone()])
        .collect();
    output::table(&["NUMBER", "TRUNK", "EXTENSION"], &rows);
}

pub async fn run_did(args: DidArgs) -> anyhow::Result<()> {
    let common = args.common;
    match args.command {
        DidCommand::Add {
            number,
            trunk,
            target: Some(target),
            ..
        } => {
            let db = common.open().await?;
            let added = add_did_target(&db, &number, &trunk, &target).await;
            db.close().await;
            let added = added?;
            if common.json {
                return output::json(&added);
            }
            crate::say!(
                "Added DID {}: calls from trunk {} to it go to {}.",
                added.number,
                added.trunk,
                added.target
            );
            Ok(())
        }
        DidCommand::Add {
            number, trunk, ext, ..
        } => {
            let ext = ext.unwrap_or_default();
            let db = common.open().await?;
            let added = add_did(&db, &number, &trunk, &ext).await;
            db.close().await;
            let added = added?;
            if common.json {
                return output::json(&added);
            }
            crate::say!(
                "Added DID {}: calls from trunk {} to it ring extension {}.",
                added.number,
                added.trunk,
                added.extension
            );
            Ok(())
        }
        DidCommand::List => {
            let db = common.open_or_create().await?;
            let dids = db.list_dids().await;
            let targets = db.list_did_targets().await;
            db.close().await;
            let (dids, targets) = (dids?, targets?);
            if common.json {
                // Extension DIDs as before, then those leading to a group or queue (`target` instead of
                // `extension`).
                let mut all: Vec<serde_json::Value> = Vec::new();
                for d in &dids {
                    all.push(serde_json::to_value(d)?);
                }
                for t in &targets {
                    all.push(serde_json::to_value(t)?);
                }
                return output::json(&all);
            }
            print_dids(&dids);
            if !targets.is_empty() {
                let rows: Vec<Vec<String>> = targets
                    .iter()
                    .map(|d| vec![d.number.clone(), d.trunk.clone(), d.target.clone()])
                    .collect();
                output::table(&["NUMBER", "TRUNK", "GROUP OR QUEUE"], &rows);
            }
            Ok(())
        }
        DidCommand::Remove { number } => {
            let db = common.open().await?;
            let target = db.remove_did_target(&number).await;
            let target = match target {
                Ok(t) => t,
                Err(e) => {
                    db.close().await;
                    return Err(e.into());
                }
            };
            if let Some(t) = target {
                db.close().await;
                if common.json {
                    return output::json(&serde_json::json!({ "removed": t }));
                }
                crate::say!(
                    "Removed DID {} (trunk {}, {}).",
                    t.number,
                    t.trunk,
                    t.target
                );
                return Ok(());
            }
            let removed = remove_did(&db, &number).await;
            db.close().await;
            let removed = removed?;
            if common.json {
                return output::json(&serde_json::json!({ "removed": removed }));
            }
            crate::say!(
                "Removed DID {} (trunk {}, extension {}).",
                removed.number,
                removed.trunk,
                removed.extension
            );
            Ok(())
        }
    }
}
