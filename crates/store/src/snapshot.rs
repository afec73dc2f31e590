//! Consistent copies of the live database, and the schema upgrade that takes one first.
//!
//! A copy is made with SQLite's `VACUUM INTO`: one read transaction, so it sees a single committed state while
//! the server keeps writing (WAL mode lets readers and the writer run together), and the result is a compact,
//! self-contained database file with no `-wal` beside it.
//!
//! Migrations are forward-only. Before one runs on a database that already holds data, a copy of the database as
//! it was is written to `DATA/backups/pre-upgrade-…`; going back to an older Palisade means stopping the server,
//! putting that copy back as `palisade.db` and installing the older binary (docs/operations.md). An older binary
//! refuses to open a database a newer one migrated, instead of running on a schema it does not know.

use std::collections::BTreeSet;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use sqlx::sqlite::SqlitePool;

use super::{Db, Result, StoreError, now_ms};

/// Folder (inside the data directory) for automatic pre-upgrade copies and scheduled backups.
pub const BACKUP_DIR: &str = "backups";

/// What the schema of an opened database looks like next to the migrations this binary carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaState {
    /// The newest migration applied to the database (0 for a new one).
    pub applied: i64,
    /// The newest migration this binary knows.
    pub latest: i64,
    /// Migrations this binary will apply.
    pub pending: Vec<i64>,
    /// Migrations applied by a newer Palisade that this binary does not know.
    pub unknown: Vec<i64>,
}

/// The state of `pool`'s schema against `known` migration versions.
async fn schema_state(pool: &SqlitePool, known: &BTreeSet<i64>) -> Result<SchemaState> {
    let has_table: Option<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_optional(pool)
    .await?;
    let applied: BTreeSet<i64> = if has_table.is_some() {
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success = 1")
            .fetch_all(pool)
            .await?
            .into_iter()
            .collect()
    } else {
        BTreeSet::new()
    };
    Ok(SchemaState {
        applied: applied.iter().next_back().copied().unwrap_or(0),
        latest: known.iter().next_back().copied().unwrap_or(0),
        pending: known.difference(&applied).copied().collect(),
        unknown: applied.difference(known).copied().collect(),
    })
}

/// Runs before the migrations: refuses a database from a newer Palisade, and copies a database that holds data
/// before its schema changes. Returns the copy's path when one was made.
pub(crate) async fn before_migrations(
    pool: &SqlitePool,
    db_path: &Path,
    known: &BTreeSet<i64>,
) -> Result<Option<PathBuf>> {
    let state = schema_state(pool, known).await?;
    if !state.unknown.is_empty() {
        return Err(StoreError::Invalid(format!(
            "{} was upgraded by a newer Palisade (schema {}, this binary knows up to {}): install that version \
             again, or go back to the copy made before the upgrade (see `{}` in the data directory and \
             docs/operations.md, \"Downgrading\")",
            db_path.display(),
            state.applied,
            state.latest,
            BACKUP_DIR
        )));
    }
    if state.applied == 0 || state.pending.is_empty() {
        return Ok(None);
    }
    let dir = db_path
        .parent()
        .map(|d| d.join(BACKUP_DIR))
        .unwrap_or_else(|| PathBuf::from(BACKUP_DIR));
    let target = dir.join(format!(
        "pre-upgrade-schema{:04}-to-{:04}-{}.db",
        state.applied,
        state.latest,
        now_ms() / 1000
    ));
    vacuum_into(pool, &target).await?;
    tracing::info!(backup = %target.display(), from = state.applied, to = state.latest,
        "database schema upgrade: copied the database first");
    Ok(Some(target))
}

/// Writes a consistent copy of the database behind `pool` to `target` (a new file, mode 0600; its folder is
/// created with mode 0700).
pub(crate) async fn vacuum_into(pool: &SqlitePool, target: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let io = |what: String| move |source| StoreError::Io { what, source };
    if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io(format!("cannot create directory {}", dir.display())))?;
    }
    // VACUUM INTO writes into an empty file it finds; creating it first gives it the private mode.
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(target)
        .map_err(io(format!("cannot create {}", target.display())))?;
    let Some(target_str) = target.to_str() else {
        return Err(StoreError::Invalid(format!(
            "{} is not a UTF-8 path",
            target.display()
        )));
    };
    if let Err(e) = sqlx::query("VACUUM INTO $1")
        .bind(target_str)
        .execute(pool)
        .await
    {
        let _ = std::fs::remove_file(target);
        return Err(e.into());
    }
    Ok(())
}

impl Db {
    /// Writes a consistent copy of the live database to `target` (which must not exist), while the server runs.
    pub async fn snapshot_to(&self, target: &Path) -> Result<()> {
        match self {
            Db::Pg(_) => not_ported!("snapshot_to"),
            Db::Sqlite(pool) => vacuum_into(pool, target).await,
        }
    }

    /// The schema version applied and the newest this binary knows, for `palisade status`.
    pub async fn schema_state(&self) -> Result<SchemaState> {
        match self {
            Db::Pg(_) => not_ported!("schema_state"),
            Db::Sqlite(pool) => schema_state(pool, &super::known_migrations()).await,
        }
    }

    /// SQLite's own consistency check (`PRAGMA quick_check`): "ok", or the first problems found.
    pub async fn quick_check(&self) -> Result<String> {
        match self {
            Db::Pg(_) => not_ported!("quick_check"),
            Db::Sqlite(pool) => {
                let rows: Vec<String> = sqlx::query_scalar("PRAGMA quick_check(5)")
                    .fetch_all(pool)
                    .await?;
                Ok(rows.join("; "))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ExtensionNew;
    use crate::realm::REALM;
    use pbx::auth::credentials::Credentials;

    fn ext(number: &str, realm: &str) -> ExtensionNew {
        let c = Credentials::from_password(&format!("auth{number}xyz"), realm, "secretsecret");
        ExtensionNew {
            number: number.into(),
            auth_id: format!("auth{number}xyz"),
            ha1_md5: c.ha1_md5.unwrap_or_default(),
            ha1_sha256: c.ha1_sha256.unwrap_or_default(),
            realm: realm.into(),
            ..ExtensionNew::default()
        }
    }

    /// Makes `path` look like a database written by a binary from before migration 15 (the stable realm).
    async fn roll_back_before_stable_realm(path: &Path) {
        let db = Db::open(path).await.unwrap();
        let Db::Sqlite(pool) = &db else {
            panic!("these checks read SQLite directly")
        };
        sqlx::query("DELETE FROM settings WHERE key = $1")
            .bind(REALM)
            .execute(pool)
            .await
            .unwrap();
        sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 15")
            .execute(pool)
            .await
            .unwrap();
        db.close().await;
    }

    fn backups(dir: &Path) -> Vec<PathBuf> {
        std::fs::read_dir(dir.join(BACKUP_DIR))
            .map(|r| r.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn a_new_database_is_not_copied_and_fixes_the_realm_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open_in(dir.path()).await.unwrap();
        assert!(backups(dir.path()).is_empty());
        assert_eq!(db.realm().await.unwrap(), None);
        assert_eq!(
            db.realm_or_fix("first.example").await.unwrap(),
            "first.example"
        );
        // A later start with another domain keeps the realm.
        assert_eq!(
            db.realm_or_fix("second.example").await.unwrap(),
            "first.example"
        );
        let state = db.schema_state().await.unwrap();
        assert_eq!(state.applied, state.latest);
        assert!(state.pending.is_empty() && state.unknown.is_empty());
        assert_eq!(db.quick_check().await.unwrap(), "ok");
    }

    #[tokio::test]
    async fn upgrading_keeps_the_realm_the_passwords_use_and_copies_the_database_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(crate::DB_FILE);
        {
            let db = Db::open(&path).await.unwrap();
            db.set_setting(crate::settings::DOMAIN, "new-domain.example")
                .await
                .unwrap();
            for n in ["100", "101"] {
                db.create_extension(ext(n, "old.example")).await.unwrap();
            }
            db.create_extension(ext("102", "other.example"))
                .await
                .unwrap();
            db.close().await;
        }
        roll_back_before_stable_realm(&path).await;
        let db = Db::open(&path).await.unwrap();
        assert_eq!(db.realm().await.unwrap().as_deref(), Some("old.example"));
        assert_eq!(
            db.extensions_outside_realm("old.example").await.unwrap(),
            ["102"]
        );
        let copies = backups(dir.path());
        assert_eq!(copies.len(), 1, "{copies:?}");
        let name = copies[0].file_name().unwrap().to_string_lossy().to_string();
        // Up to the newest migration this binary carries (later migrations than 0015 are applied too).
        let newest = crate::known_migrations().into_iter().max().unwrap_or(0);
        assert!(
            name.starts_with("pre-upgrade-schema00") && name.contains(&format!("-to-{newest:04}")),
            "{name}"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&copies[0]).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "backup must be private: {mode:o}");
        // Opening again migrates nothing and copies nothing.
        db.close().await;
        let db = Db::open(&path).await.unwrap();
        db.close().await;
        assert_eq!(backups(dir.path()).len(), 1);
    }

    #[tokio::test]
    async fn without_extensions_the_recorded_domain_becomes_the_realm() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(crate::DB_FILE);
        {
            let db = Db::open(&path).await.unwrap();
            db.set_setting(crate::settings::DOMAIN, "pbx.example.com")
                .await
                .unwrap();
            db.close().await;
        }
        roll_back_before_stable_realm(&path).await;
        let db = Db::open(&path).await.unwrap();
        assert_eq!(db.realm_or_fix("ignored").await.unwrap(), "pbx.example.com");
    }

    #[tokio::test]
    async fn a_database_from_a_newer_palisade_is_refused_with_the_way_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(crate::DB_FILE);
        {
            let db = Db::open(&path).await.unwrap();
            let Db::Sqlite(pool) = &db else {
                panic!("these checks read SQLite directly")
            };
            sqlx::query(
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                 VALUES (9999, 'from the future', 1, x'00', 0)",
            )
            .execute(pool)
            .await
            .unwrap();
            db.close().await;
        }
        let err = Db::open(&path).await.unwrap_err().to_string();
        assert!(err.contains("newer Palisade"), "{err}");
        assert!(err.contains("Downgrading"), "{err}");
    }

    #[tokio::test]
    async fn set_realm_names_the_extensions_that_need_a_new_password() {
        crate::tests::on_each_backend(
            check_set_realm_names_the_extensions_that_need_a_new_password,
        )
        .await;
    }

    async fn check_set_realm_names_the_extensions_that_need_a_new_password(db: Db) {
        db.realm_or_fix("a.example").await.unwrap();
        db.create_extension(ext("100", "a.example")).await.unwrap();
        db.create_extension(ext("101", "b.example")).await.unwrap();
        assert_eq!(db.set_realm("b.example").await.unwrap(), ["100"]);
        assert_eq!(db.realm().await.unwrap().as_deref(), Some("b.example"));
        assert!(db.set_realm("bad realm").await.is_err());
        assert!(db.set_realm("").await.is_err());
        assert!(db.set_realm("a\"b").await.is_err());
    }

    #[tokio::test]
    async fn snapshot_is_a_consistent_private_copy() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open_in(dir.path()).await.unwrap();
        db.create_extension(ext("100", "a.example")).await.unwrap();
        let target = dir.path().join("out/copy.db");
        db.snapshot_to(&target).await.unwrap();
        // An existing file is never overwritten.
        assert!(db.snapshot_to(&target).await.is_err());
        let copy = Db::open_existing(&target).await.unwrap();
        assert_eq!(copy.list_extensions().await.unwrap().len(), 1);
    }
}
