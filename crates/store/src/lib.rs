//! Durable storage: SQLite embedded by default, behind an interface a PostgreSQL backend can implement.
//!
//! This crate depends on the sans-IO `pbx` core and maps its vocabulary ([`pbx::model`]) to and from columns;
//! `pbx` never depends on it.
//!
//! One file, `DATA/palisade.db`, in WAL mode with `synchronous=FULL`: when a write returns, it is on disk
//! (nothing lost: docs/architecture.md, principle 5). Migrations are embedded in the binary and applied at open.
//!
//! SQL is written once with `$1, $2, …` placeholders, which SQLite and PostgreSQL both accept, and run with the
//! runtime `sqlx::query*` functions (no `sqlx::Any`, which sends `?` to PostgreSQL).
//!
//! Every admin write (extensions, settings) bumps the `config_version` setting in the same transaction; a running
//! server polls [`Db::current_version`] and reloads when it changes.

pub mod admin;
pub mod attendants;
pub mod calls;
pub mod conferences;
mod events;
mod extensions;
pub mod ip_rules;
pub mod limits;
pub mod music;
pub mod phones;
mod pin_lockout;
pub mod policy;
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
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
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

/// A connection pool to the configured database.
///
/// The PostgreSQL backend will be a second variant, `Pg(sqlx::PgPool)`, with the same SQL (`$N` placeholders) and
/// its own `migrations/postgres`; each method matches on the variant.
#[derive(Debug, Clone)]
pub enum Db {
    Sqlite(SqlitePool),
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

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
        }
    }

    /// The configuration version: changes whenever an admin write (extension or setting) commits.
    pub async fn current_version(&self) -> Result<i64> {
        match self {
            Db::Sqlite(pool) => {
                let v: Option<String> =
                    sqlx::query_scalar("SELECT value FROM settings WHERE key = 'config_version'")
                        .fetch_optional(pool)
                        .await?;
                Ok(v.and_then(|v| v.parse().ok()).unwrap_or(0))
            }
        }
    }
}

/// Increments `config_version` inside the caller's transaction.
/// Starts a write transaction holding SQLite's write lock from its first statement (`BEGIN IMMEDIATE`). A
/// deferred transaction that reads, then writes, fails at once with "database is locked" (SQLITE_BUSY_SNAPSHOT)
/// when another connection wrote in between — which the server's voicemail tasks and an admin command do at the
/// same time; an immediate one waits (busy timeout) and then succeeds.
async fn begin_write(pool: &SqlitePool) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
    Ok(pool.begin_with("BEGIN IMMEDIATE").await?)
}

async fn bump_version(tx: &mut sqlx::SqliteConnection, now: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO settings (key, value, updated_at) VALUES ('config_version', '1', $1) \
         ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(settings.value AS INTEGER) + 1 AS TEXT), updated_at = $1",
    )
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(())
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
