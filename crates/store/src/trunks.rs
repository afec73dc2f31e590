//! Stored SIP trunks (the providers external calls go through) and DIDs (the inbound numbers each one delivers,
//! and the extension each rings). [`Db::list_trunks`] gives them as the [`pbx::trunks::Trunk`]s the server uses.
//!
//! A trunk is trusted by the address its requests come from: its source networks, or, without any, the addresses
//! of its host (the IP itself, or what the name resolves to; stored as [`HOST_SOURCES`]). Its
//! digest password is stored as given: Palisade needs it to answer the provider's challenges (the database file is
//! mode 0600, like the HA1s of the extensions).

use std::collections::BTreeMap;
use std::net::IpAddr;

use guard::lists::parse_net;
use ipnet::IpNet;
use serde::Serialize;

use super::SrtpMode;
use super::policy::{MAX_NUMBER_LEN, validate_name};
use super::{Db, Result, StoreError, bump_version, is_unique_violation, now_ms};
use pbx::trunks::{Trunk, TrunkTls};

/// The default port (5061 for TLS).
pub const DEFAULT_PORT: u16 = 5060;
pub const DEFAULT_TLS_PORT: u16 = 5061;
/// The transports a trunk may use (stored by their lower-case [`sip::Transport::name`]).
pub const TRANSPORTS: [sip::Transport; 3] = [
    sip::Transport::Udp,
    sip::Transport::Tcp,
    sip::Transport::Tls,
];
/// The most source networks per trunk.
pub const MAX_SOURCES: usize = 64;
/// The most trunks.
pub const MAX_TRUNKS: i64 = 1000;
/// The most DIDs.
pub const MAX_DIDS: i64 = 100_000;
const MAX_USERNAME_LEN: usize = 128;
const MAX_PASSWORD_LEN: usize = 256;
const MAX_HOST_LEN: usize = 253;
const MAX_PATH_LEN: usize = 4096;

/// `SELECT <all columns> FROM trunks <rest>` as a `&'static str`.
macro_rules! select {
    ($rest:literal) => {
        concat!(
            "SELECT name, host, port, transport, username, password, register, sources, caller_id, created_at, \
             updated_at, auth_user, ca_file, tls_server_name, srtp FROM trunks ",
            $rest
        )
    };
}

/// One stored trunk. `Debug` leaves the password out.
#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TrunkRow {
    pub name: String,
    /// IP literal (IPv6 without brackets) or DNS name, lower case.
    pub host: String,
    pub port: i64,
    /// "udp", "tcp" or "tls".
    pub transport: String,
    pub username: Option<String>,
    /// Stored as given (needed to answer the provider's digest challenges).
    pub password: Option<String>,
    pub register: bool,
    /// Comma list of canonical CIDRs, or [`HOST_SOURCES`]: the host's own addresses.
    pub sources: String,
    pub caller_id: Option<String>,
    /// Unix milliseconds.
    pub created_at: i64,
    pub updated_at: i64,
    /// The digest username when it differs from `username` (the user of From/To).
    pub auth_user: Option<String>,
    /// PEM file of the CA certificate(s) the provider's TLS certificate must chain to; `None`: the system roots.
    pub ca_file: Option<String>,
    /// The name the provider's TLS certificate must carry (and the SNI); `None`: the host.
    pub tls_server_name: Option<String>,
    /// SRTP toward the provider.
    #[sqlx(try_from = "String")]
    pub srtp: SrtpMode,
}

impl std::fmt::Debug for TrunkRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrunkRow")
            .field("name", &self.name)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("transport", &self.transport)
            .field("username", &self.username)
            .field("password_set", &self.password.is_some())
            .field("register", &self.register)
            .field("sources", &self.sources)
            .field("caller_id", &self.caller_id)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .field("auth_user", &self.auth_user)
            .field("ca_file", &self.ca_file)
            .field("tls_server_name", &self.tls_server_name)
            .field("srtp", &self.srtp)
            .finish()
    }
}

impl TrunkRow {
    /// The source networks, parsed; empty when the host's own addresses are trusted.
    pub fn source_nets(&self) -> Result<Vec<IpNet>> {
        parse_sources(&self.sources)
    }

    /// The source networks as text ([`HOST_SOURCES`] alone when the host's own addresses are trusted).
    pub fn source_list(&self) -> Vec<String> {
        split(&self.sources)
    }

    /// The trunk as the server uses it, with its DIDs as (number, extension) pairs. Fails (with a message naming
    /// the trunk) for a row that no longer validates.
    pub fn to_trunk(&self, dids: &[(String, String)]) -> Result<Trunk, String> {
        let fail = |e: StoreError| format!("trunk {}: {e}", self.name);
        let checked = checked(self.clone()).map_err(fail)?;
        let sources = checked.source_nets().map_err(fail)?;
        let port = u16::try_from(checked.port).map_err(|_| {
            format!(
                "trunk {}: port {} is out of range: expected 1 to 65535",
                self.name, checked.port
            )
        })?;
        Ok(Trunk {
            name: checked.name,
            host: checked.host,
            port,
            transport: parse_transport(&checked.transport).map_err(fail)?,
            username: checked.username,
            password: checked.password,
            register: checked.register,
            sources,
            caller_id: checked.caller_id,
            dids: dids.to_vec(),
            addresses: Vec::new(),
            auth_user: checked.auth_user,
            tls: TrunkTls {
                ca_file: checked.ca_file.map(Into::into),
                server_name: checked.tls_server_name,
            },
            srtp: checked.srtp,
        })
    }
}

/// A new trunk.
#[derive(Clone, Default)]
pub struct TrunkNew {
    pub name: String,
    pub host: String,
    /// `None`: [`DEFAULT_PORT`], or [`DEFAULT_TLS_PORT`] for TLS.
    pub port: Option<u16>,
    /// "udp", "tcp" or "tls" (any case); `None`: "udp".
    pub transport: Option<String>,
    pub username: Option<String>,
    /// Only together with `username`.
    pub password: Option<String>,
    pub register: bool,
    /// Addresses or CIDR prefixes (each item may itself be a comma list); none (or [`HOST_SOURCES`]): the
    /// addresses of `host`.
    pub sources: Vec<String>,
    pub caller_id: Option<String>,
    pub auth_user: Option<String>,
    pub ca_file: Option<String>,
    pub tls_server_name: Option<String>,
    /// `None`: [`SrtpMode::Disabled`] (most providers speak plain RTP).
    pub srtp: Option<SrtpMode>,
}

impl std::fmt::Debug for TrunkNew {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrunkNew")
            .field("name", &self.name)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("transport", &self.transport)
            .field("username", &self.username)
            .field("password_set", &self.password.is_some())
            .field("register", &self.register)
            .field("sources", &self.sources)
            .field("caller_id", &self.caller_id)
            .field("auth_user", &self.auth_user)
            .field("ca_file", &self.ca_file)
            .field("tls_server_name", &self.tls_server_name)
            .field("srtp", &self.srtp)
            .finish()
    }
}

/// Changes to a trunk: `None` leaves a field alone; `Some(None)` (or `Some(Some(""))`) clears an optional field.
/// Clearing the username clears the password too unless the patch sets one (which is then refused).
#[derive(Clone, Default)]
pub struct TrunkPatch {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub transport: Option<String>,
    pub username: Option<Option<String>>,
    pub password: Option<Option<String>>,
    pub register: Option<bool>,
    /// Replaces the whole list.
    pub sources: Option<Vec<String>>,
    pub caller_id: Option<Option<String>>,
    pub auth_user: Option<Option<String>>,
    pub ca_file: Option<Option<String>>,
    pub tls_server_name: Option<Option<String>>,
    pub srtp: Option<SrtpMode>,
}

impl std::fmt::Debug for TrunkPatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrunkPatch")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("transport", &self.transport)
            .field("username", &self.username)
            .field(
                "password",
                &self.password.as_ref().map(|p| p.as_ref().map(|_| "…")),
            )
            .field("register", &self.register)
            .field("sources", &self.sources)
            .field("caller_id", &self.caller_id)
            .field("auth_user", &self.auth_user)
            .field("ca_file", &self.ca_file)
            .field("tls_server_name", &self.tls_server_name)
            .field("srtp", &self.srtp)
            .finish()
    }
}

impl TrunkPatch {
    pub fn is_empty(&self) -> bool {
        self.host.is_none()
            && self.port.is_none()
            && self.transport.is_none()
            && self.username.is_none()
            && self.password.is_none()
            && self.register.is_none()
            && self.sources.is_none()
            && self.caller_id.is_none()
            && self.auth_user.is_none()
            && self.ca_file.is_none()
            && self.tls_server_name.is_none()
            && self.srtp.is_none()
    }
}

/// One inbound number.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, Serialize)]
pub struct DidRow {
    /// Digits, optionally after a leading '+'.
    pub number: String,
    pub trunk: String,
    pub extension: String,
}

fn split(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

fn invalid(msg: String) -> StoreError {
    StoreError::Invalid(msg)
}

/// An IP address (IPv6 with or without brackets) or a DNS name; returns the canonical form (IPv6 without brackets,
/// names in lower case without a trailing dot).
pub fn normalize_host(host: &str) -> Result<String> {
    let h = host.trim();
    let bad = || {
        invalid(format!(
            "invalid host '{}': expected the provider's IP address (e.g. 198.51.100.10, 2001:db8::10) or DNS name \
             (e.g. sip.example.com)",
            host.escape_debug()
        ))
    };
    if let Some(inner) = h.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        return match inner.parse::<IpAddr>() {
            Ok(IpAddr::V6(v6)) => Ok(v6.to_string()),
            _ => Err(bad()),
        };
    }
    if let Ok(ip) = h.parse::<IpAddr>() {
        return Ok(ip.to_string());
    }
    let name = h.strip_suffix('.').unwrap_or(h);
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let labels: Vec<&str> = name.split('.').collect();
    let ok = !name.is_empty()
        && name.len() <= MAX_HOST_LEN
        && labels.iter().all(|l| label_ok(l))
        // "1.2.3" or "300.1.2.3" is a mistyped address, not a name.
        && !labels
            .last()
            .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()));
    if ok {
        Ok(name.to_ascii_lowercase())
    } else {
        Err(bad())
    }
}

/// A trunk's transport from its configured or stored text: "udp", "tcp" or "tls" in any case.
pub fn parse_transport(transport: &str) -> Result<sip::Transport> {
    sip::Transport::parse(transport.trim())
        .filter(|t| TRANSPORTS.contains(t))
        .ok_or_else(|| {
            invalid(format!(
                "invalid transport '{}': expected udp, tcp or tls",
                transport.escape_debug()
            ))
        })
}

/// The stored `sources` of a trunk without source networks: calls are trusted from the addresses of its host
/// only (the IP itself, or what the name resolves to).
pub const HOST_SOURCES: &str = "host";

/// Parses a comma list of addresses and CIDR prefixes into canonical networks (duplicates dropped), none that
/// covers every address. An empty list (or [`HOST_SOURCES`] alone) means the host's own addresses.
fn parse_sources(list: &str) -> Result<Vec<IpNet>> {
    let items = split(list);
    if items.iter().any(|i| i.eq_ignore_ascii_case(HOST_SOURCES)) {
        if items.len() > 1 {
            return Err(invalid(format!(
                "source '{HOST_SOURCES}' (the addresses of the trunk's host) cannot be combined with networks:                  give either --source {HOST_SOURCES} (or no --source) or the provider's networks (e.g.                  --source 198.51.100.0/28)"
            )));
        }
        return Ok(Vec::new());
    }
    let mut nets: Vec<IpNet> = Vec::new();
    for item in items {
        let net = parse_net(&item).map_err(|e| invalid(format!("invalid source network: {e}")))?;
        if net.prefix_len() == 0 {
            return Err(invalid(format!(
                "source network {net} would let any address on the Internet send calls in as this trunk: give \
                 the addresses your provider sends calls from (e.g. 198.51.100.0/28)"
            )));
        }
        if !nets.contains(&net) {
            nets.push(net);
        }
    }
    if nets.len() > MAX_SOURCES {
        return Err(invalid(format!(
            "at most {MAX_SOURCES} source networks per trunk; combine them into wider prefixes"
        )));
    }
    Ok(nets)
}

/// The canonical comma list for `sources` (addresses and CIDR prefixes, each possibly a comma list itself);
/// [`HOST_SOURCES`] for none.
pub fn normalize_sources(sources: &[String]) -> Result<String> {
    let nets = parse_sources(&sources.join(","))?;
    if nets.is_empty() {
        return Ok(HOST_SOURCES.to_string());
    }
    Ok(nets
        .iter()
        .map(IpNet::to_string)
        .collect::<Vec<_>>()
        .join(","))
}

/// A phone number: digits, optionally after a leading '+' (at most 32 digits). `what` names it in the error.
pub fn validate_phone_number(what: &str, number: &str) -> Result<()> {
    let digits = number.strip_prefix('+').unwrap_or(number);
    if !digits.is_empty()
        && digits.len() <= MAX_NUMBER_LEN
        && digits.bytes().all(|b| b.is_ascii_digit())
    {
        Ok(())
    } else {
        Err(invalid(format!(
            "invalid {what} '{}': expected 1 to {MAX_NUMBER_LEN} digits, optionally after a '+' (e.g. +4930123456)",
            number.escape_debug()
        )))
    }
}

fn validate_username(username: &str) -> Result<()> {
    if (1..=MAX_USERNAME_LEN).contains(&username.len())
        && username
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    {
        Ok(())
    } else {
        Err(invalid(format!(
            "invalid trunk username '{}': expected 1 to {MAX_USERNAME_LEN} printable ASCII characters without \
             spaces, quotes or '\\'",
            username.escape_debug()
        )))
    }
}

fn validate_password(password: &str) -> Result<()> {
    if (1..=MAX_PASSWORD_LEN).contains(&password.chars().count())
        && !password.chars().any(char::is_control)
    {
        Ok(())
    } else {
        Err(invalid(format!(
            "invalid trunk password: expected 1 to {MAX_PASSWORD_LEN} characters without control characters"
        )))
    }
}

/// Empty optional strings mean "none".
fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

/// Checks every field of `row` and returns it in canonical form.
fn checked(mut row: TrunkRow) -> Result<TrunkRow> {
    validate_name("trunk name", &row.name)?;
    row.host = normalize_host(&row.host)?;
    if !(1..=65535).contains(&row.port) {
        return Err(invalid(format!(
            "port {} is out of range: expected 1 to 65535",
            row.port
        )));
    }
    row.transport = parse_transport(&row.transport)?.name().to_string();
    row.username = non_empty(row.username);
    row.password = non_empty(row.password);
    if let Some(u) = &row.username {
        validate_username(u)?;
    }
    if let Some(p) = &row.password {
        validate_password(p)?;
        if row.username.is_none() {
            return Err(invalid(
                "a trunk password needs a username (--username): the provider's digest challenges are answered \
                 with both"
                    .into(),
            ));
        }
    }
    row.sources = normalize_sources(std::slice::from_ref(&row.sources))?;
    row.caller_id = non_empty(row.caller_id.map(|c| c.trim().to_string()));
    if let Some(c) = &row.caller_id {
        validate_phone_number("caller ID", c)?;
    }
    row.auth_user = non_empty(row.auth_user);
    if let Some(u) = &row.auth_user {
        validate_username(u)?;
        if row.username.is_none() {
            return Err(invalid(
                "a trunk auth user needs a username (--username): it only replaces the user in the digest answer"
                    .into(),
            ));
        }
    }
    row.ca_file = non_empty(row.ca_file);
    if let Some(f) = &row.ca_file
        && (f.len() > MAX_PATH_LEN || f.chars().any(char::is_control) || !f.starts_with('/'))
    {
        return Err(invalid(format!(
            "invalid CA file '{}': expected an absolute path (at most {MAX_PATH_LEN} bytes) of a PEM file",
            f.escape_debug()
        )));
    }
    row.tls_server_name = non_empty(row.tls_server_name)
        .map(|n| normalize_host(&n))
        .transpose()
        .map_err(|_| {
            invalid("invalid TLS server name: expected a DNS name or an IP address".into())
        })?;
    Ok(row)
}

fn trunk_not_found(name: &str) -> StoreError {
    StoreError::NotFound(format!("trunk {name}"))
}

/// The other spelling of a number (with a '+' if it has none, without if it has one): both reach the same DID.
fn other_spelling(number: &str) -> String {
    match number.strip_prefix('+') {
        Some(n) => n.to_string(),
        None => format!("+{number}"),
    }
}

/// Connection-typed helpers, instantiated as `sqlite_helpers` and `pg_helpers` (see `on_both!`): one SQL text.
macro_rules! trunk_helpers {
    ($conn:ty) => {
    pub(super) async fn load_trunk(conn: &mut $conn, name: &str) -> Result<Option<TrunkRow>> {
        Ok(sqlx::query_as(select!("WHERE name = $1"))
            .bind(name)
            .fetch_optional(&mut *conn)
            .await?)
    }

    pub(super) async fn write_trunk(conn: &mut $conn, t: &TrunkRow, insert: bool) -> Result<()> {
        let sql = if insert {
            "INSERT INTO trunks (name, host, port, transport, username, password, register, sources, caller_id, \
             created_at, updated_at, auth_user, ca_file, tls_server_name, srtp) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
        } else {
            "UPDATE trunks SET host = $2, port = $3, transport = $4, username = $5, password = $6, register = $7, \
             sources = $8, caller_id = $9, created_at = $10, updated_at = $11, auth_user = $12, ca_file = $13, \
             tls_server_name = $14, srtp = $15 WHERE name = $1"
        };
        sqlx::query(sql)
            .bind(&t.name)
            .bind(&t.host)
            .bind(t.port)
            .bind(&t.transport)
            .bind(&t.username)
            .bind(&t.password)
            .bind(t.register)
            .bind(&t.sources)
            .bind(&t.caller_id)
            .bind(t.created_at)
            .bind(t.updated_at)
            .bind(&t.auth_user)
            .bind(&t.ca_file)
            .bind(&t.tls_server_name)
            .bind(t.srtp.as_str())
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
    };
}

mod sqlite_helpers {
    use super::*;
    trunk_helpers!(sqlx::SqliteConnection);
}

mod pg_helpers {
    use super::*;
    trunk_helpers!(sqlx::PgConnection);
}

impl Db {
    /// Every trunk with its DIDs, as the server uses them, ordered by name. A stored row that no longer validates
    /// is skipped with a warning (calls through it fail rather than go somewhere unchecked).
    pub async fn list_trunks(&self) -> Result<Vec<Trunk>> {
        let rows = self.list_trunk_rows().await?;
        let mut dids: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for d in self.list_dids().await? {
            dids.entry(d.trunk)
                .or_default()
                .push((d.number, d.extension));
        }
        let mut trunks = Vec::with_capacity(rows.len());
        for row in rows {
            let own = dids.get(&row.name).map(Vec::as_slice).unwrap_or_default();
            match row.to_trunk(own) {
                Ok(t) => trunks.push(t),
                Err(e) => {
                    tracing::warn!(trunk = %row.name, error = %e, "stored trunk is invalid; skipping it")
                }
            }
        }
        Ok(trunks)
    }

    /// Every stored trunk as stored, ordered by name.
    pub async fn list_trunk_rows(&self) -> Result<Vec<TrunkRow>> {
        on_both!(
            self,
            pool,
            helpers,
            Ok(sqlx::query_as(select!("ORDER BY name"))
                .fetch_all(pool)
                .await?)
        )
    }

    /// The trunk called `name`, if any.
    pub async fn trunk(&self, name: &str) -> Result<Option<TrunkRow>> {
        on_both!(self, pool, helpers, {
            let mut conn = pool.acquire().await?;
            load_trunk(&mut conn, name).await
        })
    }

    /// The trunk called `name`, or [`StoreError::NotFound`].
    pub async fn get_trunk(&self, name: &str) -> Result<TrunkRow> {
        self.trunk(name).await?.ok_or_else(|| trunk_not_found(name))
    }

    /// Adds a trunk. [`StoreError::Conflict`] if the name is taken.
    pub async fn add_trunk(&self, new: TrunkNew) -> Result<TrunkRow> {
        let now = now_ms();
        let transport = match new.transport.as_deref() {
            Some(t) => parse_transport(t)?,
            None => sip::Transport::Udp,
        };
        let port = new.port.unwrap_or(if transport == sip::Transport::Tls {
            DEFAULT_TLS_PORT
        } else {
            DEFAULT_PORT
        });
        let row = checked(TrunkRow {
            name: new.name,
            host: new.host,
            port: port.into(),
            transport: transport.name().into(),
            username: new.username,
            password: new.password,
            register: new.register,
            sources: new.sources.join(","),
            caller_id: new.caller_id,
            created_at: now,
            updated_at: now,
            auth_user: new.auth_user,
            ca_file: new.ca_file,
            tls_server_name: new.tls_server_name,
            srtp: new.srtp.unwrap_or(SrtpMode::Disabled),
        })?;
        on_both!(self, pool, helpers, {
            let mut tx = super::begin_write(pool).await?;
            let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM trunks")
                .fetch_one(&mut *tx)
                .await?;
            if count >= MAX_TRUNKS {
                return Err(invalid(format!(
                    "at most {MAX_TRUNKS} trunks; remove some first"
                )));
            }
            if let Err(e) = write_trunk(&mut tx, &row, true).await {
                return Err(match e {
                    StoreError::Db(e) if is_unique_violation(&e) => StoreError::Conflict(format!(
                        "trunk {} already exists (change it with `palisade trunk set {}`)",
                        row.name, row.name
                    )),
                    e => e,
                });
            }
            bump_version(&mut tx, now).await?;
            tx.commit().await?;
            Ok(row)
        })
    }

    /// Applies `patch` to the trunk called `name` and returns it. [`StoreError::NotFound`] if there is none.
    pub async fn update_trunk(&self, name: &str, patch: TrunkPatch) -> Result<TrunkRow> {
        let now = now_ms();
        on_both!(self, pool, helpers, {
            let mut tx = super::begin_write(pool).await?;
            let mut row = load_trunk(&mut tx, name)
                .await?
                .ok_or_else(|| trunk_not_found(name))?;
            if let Some(h) = patch.host {
                row.host = h;
            }
            if let Some(p) = patch.port {
                row.port = p.into();
            }
            if let Some(t) = patch.transport {
                row.transport = t;
            }
            if let Some(u) = patch.username {
                row.username = non_empty(u);
                if row.username.is_none() && patch.password.is_none() {
                    row.password = None;
                }
            }
            if let Some(p) = patch.password {
                row.password = p;
            }
            if let Some(r) = patch.register {
                row.register = r;
            }
            if let Some(s) = patch.sources {
                row.sources = s.join(",");
            }
            if let Some(c) = patch.caller_id {
                row.caller_id = c;
            }
            // Clearing the username clears the auth user that replaced it in digest answers.
            if row.username.is_none() && patch.auth_user.is_none() {
                row.auth_user = None;
            }
            if let Some(a) = patch.auth_user {
                row.auth_user = a;
            }
            if let Some(f) = patch.ca_file {
                row.ca_file = f;
            }
            if let Some(n) = patch.tls_server_name {
                row.tls_server_name = n;
            }
            if let Some(m) = patch.srtp {
                row.srtp = m;
            }
            row.updated_at = now;
            let row = checked(row)?;
            write_trunk(&mut tx, &row, false).await?;
            bump_version(&mut tx, now).await?;
            tx.commit().await?;
            Ok(row)
        })
    }

    /// Removes the trunk called `name` and its DIDs. [`StoreError::NotFound`] if there is none.
    pub async fn remove_trunk(&self, name: &str) -> Result<()> {
        let now = now_ms();
        on_both!(self, pool, helpers, {
            let mut tx = super::begin_write(pool).await?;
            let done = sqlx::query("DELETE FROM trunks WHERE name = $1")
                .bind(name)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                return Err(trunk_not_found(name));
            }
            bump_version(&mut tx, now).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Maps the inbound number `number` on trunk `trunk` to `extension`. [`StoreError::NotFound`] if the trunk or
    /// the extension does not exist; [`StoreError::Conflict`] if the number (with or without '+') is taken.
    pub async fn add_did(&self, number: &str, trunk: &str, extension: &str) -> Result<DidRow> {
        let number = number.trim();
        validate_phone_number("DID", number)?;
        let now = now_ms();
        on_both!(self, pool, helpers, {
            let mut tx = super::begin_write(pool).await?;
            if load_trunk(&mut tx, trunk).await?.is_none() {
                return Err(trunk_not_found(trunk));
            }
            let ext: Option<String> =
                sqlx::query_scalar("SELECT number FROM extensions WHERE number = $1")
                    .bind(extension)
                    .fetch_optional(&mut *tx)
                    .await?;
            if ext.is_none() {
                return Err(StoreError::NotFound(format!("extension {extension}")));
            }
            let taken: Option<DidRow> = sqlx::query_as(
                "SELECT number, trunk, extension FROM dids WHERE number = $1 OR number = $2",
            )
            .bind(number)
            .bind(other_spelling(number))
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(d) = taken {
                return Err(StoreError::Conflict(format!(
                    "DID {} already exists (trunk {}, extension {}); remove it first with `palisade did remove {}`",
                    d.number, d.trunk, d.extension, d.number
                )));
            }
            // Nor may it already lead to a ring group or queue (`did_targets`).
            let office: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM did_targets WHERE number IN ($1, $2)")
                    .bind(number)
                    .bind(other_spelling(number))
                    .fetch_one(&mut *tx)
                    .await?;
            if office > 0 {
                return Err(StoreError::Conflict(format!(
                    "DID {number} leads to a ring group or queue; remove it first with `palisade did remove {number}`"
                )));
            }
            let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM dids")
                .fetch_one(&mut *tx)
                .await?;
            if count >= MAX_DIDS {
                return Err(invalid(format!(
                    "at most {MAX_DIDS} DIDs; remove some first"
                )));
            }
            sqlx::query("INSERT INTO dids (number, trunk, extension) VALUES ($1, $2, $3)")
                .bind(number)
                .bind(trunk)
                .bind(extension)
                .execute(&mut *tx)
                .await?;
            bump_version(&mut tx, now).await?;
            tx.commit().await?;
            Ok(DidRow {
                number: number.into(),
                trunk: trunk.into(),
                extension: extension.into(),
            })
        })
    }

    /// Removes the DID `number` (written with or without its '+') and returns it. [`StoreError::NotFound`] if
    /// there is none.
    pub async fn remove_did(&self, number: &str) -> Result<DidRow> {
        let number = number.trim();
        let now = now_ms();
        on_both!(self, pool, helpers, {
            let mut tx = super::begin_write(pool).await?;
            let found: Option<DidRow> = sqlx::query_as(
                "SELECT number, trunk, extension FROM dids WHERE number = $1 OR number = $2",
            )
            .bind(number)
            .bind(other_spelling(number))
            .fetch_optional(&mut *tx)
            .await?;
            let Some(did) = found else {
                return Err(StoreError::NotFound(format!("DID {number}")));
            };
            sqlx::query("DELETE FROM dids WHERE number = $1")
                .bind(&did.number)
                .execute(&mut *tx)
                .await?;
            bump_version(&mut tx, now).await?;
            tx.commit().await?;
            Ok(did)
        })
    }

    /// Every DID, ordered by number.
    pub async fn list_dids(&self) -> Result<Vec<DidRow>> {
        on_both!(
            self,
            pool,
            helpers,
            Ok(
                sqlx::query_as("SELECT number, trunk, extension FROM dids ORDER BY number",)
                    .fetch_all(pool)
                    .await?
            )
        )
    }
}
