//! Durable storage: SQLite embedded by default, or PostgreSQL (`postgres://…`, docs/cluster.md), behind one
//! interface.
//!
//! This crate depends on the sans-IO `pbx` core and maps its vocabulary ([`pbx::model`]) to and from columns;
//! `pbx` never depends on it.
//!
//! One file, `DATA/palisade.db`, in WAL mode with `synchronous=FULL`: when a write returns, it is on disk
//! (nothing lost: docs/architecture.md, principle 5). Migrations are embedded in the binary and applied at open.
//!
//! SQL is written once with `$1, $2, …` placeholders, which SQLite and PostgreSQL both accept, and run with the
//! runtime `sqlx::query*` functions (no `sqlx::Any`, which sends `?` to PostgreSQL). A method body is written once
//! inside `on_both!` and compiled for each back end; `migrations/postgres` mirrors `migrations/sqlite`.
//!
//! Every admin write (extensions, settings) bumps the `config_version` setting in the same transaction; a running
//! server polls [`Db::current_version`] and reloads when it changes.

/// The arm of a store method that has no PostgreSQL version yet: a clear error, never wrong data (docs/cluster.md).
/// A macro so the early `return` fits any arm type.
macro_rules! not_ported {
    ($function:literal) => {
        return Err($crate::StoreError::NotPorted($function))
    };
}

/// Runs one method body on whichever back end `db` is: `$pool` is bound to the variant's pool, and the body is
/// compiled once per back end, so its SQL text is written once (docs/cluster.md). With `helpers`, the body also
/// sees the calling module's `sqlite_helpers::*` or `pg_helpers::*` (connection-typed helper functions generated
/// for each back end by the module's own macro).
macro_rules! on_both {
    ($db:expr, $pool:ident, helpers, $body:expr) => {
        match $db {
            $crate::Db::Sqlite($pool) => {
                #[allow(unused_imports)]
                use sqlite_helpers::*;
                $body
            }
            $crate::Db::Pg($pool) => {
                #[allow(unused_imports)]
                use pg_helpers::*;
                $body
            }
        }
    };
    ($db:expr, $pool:ident, $body:expr) => {
        match $db {
            $crate::Db::Sqlite($pool) => $body,
            $crate::Db::Pg($pool) => $body,
        }
    };
}

pub mod admin;
pub mod attendants;
pub mod calls;
pub mod cluster;
pub mod cluster_nodes;
pub mod conferences;
mod events;
mod extensions;
pub mod groups;
pub mod ip_rules;
pub mod limits;
pub mod migrate_to;
pub mod music;
pub mod phones;
mod pickup;
mod pin_lockout;
pub mod policy;
pub mod queues;
pub mod realm;
pub mod recordings;
mod registrations;
pub mod settings;
pub mod snapshot;
#[cfg(test)]
mod tests;
pub mod trunk_status;
pub mod trunks;
pub mod voicemail;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use calls::{ActiveCallRow, CdrRow, MAX_CDR_LIST, StoredActiveCall, StoredCdr};
pub use events::{
    EVENT_MAX_ROWS, EVENT_RETENTION_DAYS, EVENT_SETTINGS, EventCount, MAX_EVENT_LIST, Pruned,
    SecurityEvent, StoredEvent, is_routine, split_routine,
};
pub use extensions::{
    Extension, ExtensionNew, ExtensionPatch, SrtpMode, validate_auth_id, validate_number,
};
pub use ip_rules::{IpRule, MAX_MANUAL_IP_RULES, canonical_net};
pub use music::HoldMusicSetting;
pub use policy::{OutboundRuleRow, POLICY_SETTINGS, PolicyConfig};
pub use registrations::{Binding, BindingChange};
pub use trunk_status::TrunkStatusRow;
pub use trunks::{DidRow, TrunkNew, TrunkPatch, TrunkRow};
pub use voicemail::{Mailbox, VoicemailMessage, VoicemailNew};

/// The database file's name inside the data directory.
pub const DB_FILE: &str = "palisade.db";

/// How long a writer waits for another writer (e.g. the server while the CLI writes) before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections per pool. SQLite has one writer at a time; a few readers are enough for an office PBX.
const MAX_CONNECTIONS: u32 = 4;

/// What went wrong in the store. `NotFound`, `Conflict` and `Invalid` are the caller's fault and carry a message
/// fit for an operator; `Db`, `Migrate` and `Io` are the system's.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The thing named does not exist, e.g. "extension 123".
    #[error("{0} does not exist")]
    NotFound(String),
    /// A uniqueness rule would be broken, e.g. "extension 100 already exists".
    #[error("{0}")]
    Conflict(String),
    /// An input value is not acceptable; the message says which values are.
    #[error("{0}")]
    Invalid(String),
    /// No database at the given path (for [`Db::open_existing`]).
    #[error("no database at {}", .0.display())]
    Missing(PathBuf),
    /// The function has no PostgreSQL version yet (issue 17 ports the store in steps; docs/cluster.md).
    #[error(
        "{0} is not yet available on PostgreSQL (docs/cluster.md); use a SQLite data directory for now"
    )]
    NotPorted(&'static str),
    /// The database cannot be reached (PostgreSQL down, network cut, pool timed out): nothing was written.
    #[error("the database is unreachable; the change was not saved ({0})")]
    Unreachable(String),
    #[error("database error: {0}")]
    Db(sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl From<sqlx::Error> for StoreError {
    /// Connection failures become [`StoreError::Unreachable`], so that every caller (CLI, console, API) says
    /// plainly that the database is unreachable and nothing was saved, instead of a driver message.
    fn from(e: sqlx::Error) -> Self {
        if is_unreachable(&e) {
            StoreError::Unreachable(e.to_string())
        } else {
            StoreError::Db(e)
        }
    }
}

/// True when `e` says the database could not be reached or went away, rather than refusing a statement:
/// I/O and TLS failures, pool timeouts, and PostgreSQL's connection-exception (08…) and operator-intervention
/// (57P0…: shutting down, cannot connect now) classes.
pub fn is_unreachable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(d) => d
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P0")),
        _ => false,
    }
}

impl From<pbx::model::InvalidSrtpMode> for StoreError {
    fn from(e: pbx::model::InvalidSrtpMode) -> Self {
        StoreError::Invalid(e.to_string())
    }
}

impl StoreError {
    /// True for errors caused by the caller's input (not found, conflict, invalid), as opposed to system errors.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            StoreError::NotFound(_) | StoreError::Conflict(_) | StoreError::Invalid(_)
        )
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A connection pool to the configured database: SQLite (the embedded default) or PostgreSQL (several nodes, issue
/// 17). The SQL is shared (`$N` placeholders); each method matches on the variant (docs/cluster.md).
#[derive(Debug, Clone)]
pub enum Db {
    Sqlite(SqlitePool),
    Pg(PgPool),
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
/// The same schema for PostgreSQL, one file per SQLite migration with the same number and name (checked by the
/// test `both_back_ends_have_the_same_migrations`; scripts/pg-migration-from-sqlite.sh writes a twin).
static PG_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections per PostgreSQL pool: it has real concurrent writers, but every node of a cluster holds a pool.
const PG_MAX_CONNECTIONS: u32 = 8;

/// How long opening a PostgreSQL pool may wait for a connection before reporting the database unreachable.
/// Also how long an admin write waits for a lost database before saying it is unreachable.
const PG_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// `location` fit for logs and error messages: a URL's password replaced by `***`.
pub fn redact_url(location: &str) -> String {
    let Some((scheme, rest)) = location.split_once("://") else {
        return location.to_string();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => location.to_string(),
        },
        None => location.to_string(),
    }
}

/// True when `location` names a PostgreSQL database (`postgres://…` or `postgresql://…`) rather than a file.
pub fn is_postgres_url(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}

/// The migration versions this binary carries.
fn known_migrations() -> std::collections::BTreeSet<i64> {
    SQLITE_MIGRATIONS.iter().map(|m| m.version).collect()
}

impl Db {
    /// Opens (creating if needed) the SQLite database at `path` and applies pending migrations. A missing parent
    /// directory is created with mode 0700, a new database file with mode 0600 (it holds password hashes).
    pub async fn open(path: &Path) -> Result<Db> {
        prepare_file(path)?;
        Self::connect(path, true).await
    }

    /// Opens `DIR/palisade.db`, creating it if needed.
    pub async fn open_in(dir: &Path) -> Result<Db> {
        Self::open(&dir.join(DB_FILE)).await
    }

    /// Opens an existing database (applying pending migrations); [`StoreError::Missing`] if there is none, so a
    /// mistyped data directory is reported instead of silently starting an empty one.
    pub async fn open_existing(path: &Path) -> Result<Db> {
        if !path.is_file() {
            return Err(StoreError::Missing(path.to_path_buf()));
        }
        Self::connect(path, false).await
    }

    /// Opens the database `location` names: a `postgres://…` / `postgresql://…` URL opens PostgreSQL and applies
    /// its pending migrations; anything else is the path of a SQLite file, opened (created if needed) as by
    /// [`Db::open`].
    pub async fn open_url(location: &str) -> Result<Db> {
        if is_postgres_url(location) {
            Self::open_postgres(location).await
        } else {
            Self::open(Path::new(location)).await
        }
    }

    /// Opens PostgreSQL at `url` and applies pending migrations (the migrator takes an advisory lock, so nodes
    /// starting together migrate once). A bad URL is [`StoreError::Invalid`] naming the expected form.
    pub async fn open_postgres(url: &str) -> Result<Db> {
        let options: PgConnectOptions = url.parse().map_err(|e| {
            StoreError::Invalid(format!(
                "cannot read the database URL: {e}; expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE"
            ))
        })?;
        Self::open_postgres_options(options).await
    }

    /// [`Db::open_postgres`] with parsed options.
    pub async fn open_postgres_options(options: PgConnectOptions) -> Result<Db> {
        let pool = PgPoolOptions::new()
            .max_connections(PG_MAX_CONNECTIONS)
            .acquire_timeout(PG_CONNECT_TIMEOUT)
            .connect_with(options)
            .await?;
        PG_MIGRATIONS.run(&pool).await?;
        Ok(Db::Pg(pool))
    }

    /// Copies this SQLite database into the empty PostgreSQL database at `url` (migrating it first), verifies the
    /// copy and commits it (see [`migrate_to`]). Returns what was copied, table by table.
    pub async fn migrate_to_postgres(&self, url: &str) -> Result<Vec<migrate_to::TableCopy>> {
        let Db::Sqlite(src) = self else {
            return Err(StoreError::Invalid(
                "the source database is already PostgreSQL; `db migrate-to` copies a SQLite installation".into(),
            ));
        };
        let Db::Pg(dst) = Self::open_postgres(url).await? else {
            unreachable!("open_postgres opens PostgreSQL")
        };
        let copied = migrate_to::copy_sqlite_to_postgres(src, &dst).await;
        dst.close().await;
        copied
    }

    /// True when this store is PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        matches!(self, Db::Pg(_))
    }

    async fn connect(path: &Path, create: bool) -> Result<Db> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(create)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await?;
        snapshot::before_migrations(&pool, path, &known_migrations()).await?;
        SQLITE_MIGRATIONS.run(&pool).await?;
        Ok(Db::Sqlite(pool))
    }

    /// Closes every connection (checkpointing the WAL). Writes are already durable without it.
    pub async fn close(&self) {
        match self {
            Db::Sqlite(pool) => pool.close().await,
            Db::Pg(pool) => pool.close().await,
        }
    }

    /// The configuration version: changes whenever an admin write (extension or setting) commits.
    pub async fn current_version(&self) -> Result<i64> {
        const SQL: &str = "SELECT value FROM settings WHERE key = 'config_version'";
        let v: Option<String> = match self {
            Db::Sqlite(pool) => sqlx::query_scalar(SQL).fetch_optional(pool).await?,
            Db::Pg(pool) => sqlx::query_scalar(SQL).fetch_optional(pool).await?,
        };
        Ok(v.and_then(|v| v.parse().ok()).unwrap_or(0))
    }
}

/// A pool that opens write transactions: SQLite's `BEGIN IMMEDIATE`, PostgreSQL's `BEGIN`. A trait so one method
/// body, instantiated for both back ends by [`on_both!`], can say `begin_write(pool)`.
pub(crate) trait WritePool {
    type Backend: sqlx::Database;
    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, Self::Backend>>> + Send;
}

impl WritePool for SqlitePool {
    type Backend = sqlx::Sqlite;
    /// Starts a write transaction holding SQLite's write lock from its first statement (`BEGIN IMMEDIATE`). A
    /// deferred transaction that reads, then writes, fails at once with "database is locked"
    /// (SQLITE_BUSY_SNAPSHOT) when another connection wrote in between — which the server's voicemail tasks and an
    /// admin command do at the same time; an immediate one waits (busy timeout) and then succeeds.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        Ok(self.begin_with("BEGIN IMMEDIATE").await?)
    }
}

impl WritePool for PgPool {
    type Backend = sqlx::Postgres;
    /// Read committed plus row locks: where a read decides a write, a unique index or `ON CONFLICT` guards the race
    /// (as on SQLite, the unique indexes stay the last word).
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>> {
        Ok(self.begin().await?)
    }
}

/// Starts a write transaction on either back end (see [`WritePool`]).
async fn begin_write<P: WritePool>(pool: &P) -> Result<sqlx::Transaction<'static, P::Backend>> {
    pool.begin_write().await
}

/// `BIGINT`, which SQLite reads as an integer type and PostgreSQL needs (its `INTEGER` is 32-bit).
const BUMP_VERSION: &str = "INSERT INTO settings (key, value, updated_at) VALUES ('config_version', '1', $1) \
     ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(settings.value AS BIGINT) + 1 AS TEXT), updated_at = $1";

/// [`BUMP_VERSION`] returning the new version (for the notification).
const BUMP_VERSION_RETURNING: &str = "INSERT INTO settings (key, value, updated_at) VALUES ('config_version', '1', $1) \
     ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(settings.value AS BIGINT) + 1 AS TEXT), updated_at = $1 \
     RETURNING value";

/// A connection (or transaction) in which `config_version` can be bumped; a trait for the same reason as
/// [`WritePool`].
pub(crate) trait VersionBump {
    fn bump_version(&mut self, now: i64) -> impl std::future::Future<Output = Result<()>> + Send;
}

impl VersionBump for sqlx::SqliteConnection {
    async fn bump_version(&mut self, now: i64) -> Result<()> {
        sqlx::query(BUMP_VERSION).bind(now).execute(self).await?;
        Ok(())
    }
}

impl VersionBump for sqlx::PgConnection {
    /// Also announces the new version to every node (`NOTIFY palisade_config`, delivered at commit).
    async fn bump_version(&mut self, now: i64) -> Result<()> {
        let version: String = sqlx::query_scalar(BUMP_VERSION_RETURNING)
            .bind(now)
            .fetch_one(&mut *self)
            .await?;
        cluster::notify(self, cluster::CONFIG_CHANNEL, version.parse().unwrap_or(0)).await
    }
}

impl<DB: sqlx::Database> VersionBump for sqlx::Transaction<'_, DB>
where
    DB::Connection: VersionBump,
{
    async fn bump_version(&mut self, now: i64) -> Result<()> {
        (**self).bump_version(now).await
    }
}

/// Increments `config_version` inside the caller's transaction.
async fn bump_version<C: VersionBump + ?Sized>(tx: &mut C, now: i64) -> Result<()> {
    tx.bump_version(now).await
}

/// Creates the parent directory (0700) and the database file (0600) if missing.
fn prepare_file(path: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.is_dir())
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| StoreError::Io {
                what: format!("cannot create directory {}", dir.display()),
                source,
            })?;
    }
    if !path.exists() {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|source| StoreError::Io {
                what: format!("cannot create database {}", path.display()),
                source,
            })?;
    }
    Ok(())
}

/// Wall-clock time in unix milliseconds, for `created_at`-style columns.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// True if `e` is a database uniqueness violation.
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// True if `e` is a foreign-key violation.
pub(crate) fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_foreign_key_violation())
}
