//! `palisade db migrate-to postgres://…`: moves a single-node installation (SQLite in the data directory) onto
//! PostgreSQL, so that several nodes can share it (issue 17, docs/cluster.md).

use anyhow::{anyhow, bail};
use clap::{Args, Subcommand};
use serde::Serialize;
use store::{Db, StoreError};

use super::{CommonArgs, output};

#[derive(Debug, Args)]
pub struct DbArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(subcommand)]
    pub command: DbCommand,
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Copy this installation's SQLite database (DATA/palisade.db: extensions, settings, lists, trunks, rules,
    /// voicemail, call records, events, office tables, …) into an EMPTY PostgreSQL database, in one
    /// transaction, and verify every table's row count and checksum before committing. Stop the server first;
    /// then start it with --database URL. Files in DATA (voicemail audio, greetings, recordings, music, TLS) are
    /// not copied.
    MigrateTo {
        /// postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE of an empty database (e.g. made with `createdb`).
        #[arg(value_name = "URL")]
        url: String,
    },
}

#[derive(Debug, Serialize)]
struct Copied {
    table: String,
    rows: u64,
    checksum: String,
}

pub async fn run(args: DbArgs) -> anyhow::Result<()> {
    match args.command {
        DbCommand::MigrateTo { url } => migrate_to(&args.common, &url).await,
    }
}

async fn migrate_to(common: &CommonArgs, url: &str) -> anyhow::Result<()> {
    if !store::is_postgres_url(url) {
        bail!(
            "the target must be a PostgreSQL URL: postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE (got '{}')",
            store::redact_url(url)
        );
    }
    if common
        .database
        .as_deref()
        .is_some_and(store::is_postgres_url)
    {
        bail!(
            "db migrate-to copies the SQLite database of the data directory: leave out --database (and \
             PALISADE_DATABASE), and name the data directory with --data"
        );
    }
    let path = match &common.database {
        Some(file) => std::path::PathBuf::from(file),
        None => common.data_dir().join(store::DB_FILE),
    };
    let source = match Db::open_existing(&path).await {
        Ok(db) => db,
        Err(StoreError::Missing(_)) => bail!(
            "no Palisade database at {}: name the data directory to copy with --data",
            path.display()
        ),
        Err(e) => return Err(anyhow!("cannot open {}: {e}", path.display())),
    };
    let copied = source.migrate_to_postgres(url).await;
    source.close().await;
    let copied =
        copied.map_err(|e| anyhow!("cannot migrate to {}: {e}", store::redact_url(url)))?;
    let total: u64 = copied.iter().map(|c| c.rows).sum();
    let rows: Vec<Copied> = copied
        .into_iter()
        .map(|c| Copied {
            table: c.table,
            rows: c.rows,
            checksum: c.checksum,
        })
        .collect();
    if common.json {
        return output::json(&rows);
    }
    output::table(
        &["TABLE", "ROWS", "CHECKSUM"],
        &rows
            .iter()
            .map(|c| vec![c.table.clone(), c.rows.to_string(), c.checksum.clone()])
            .collect::<Vec<_>>(),
    );
    println!(
        "copied {total} rows in {} tables from {} to {}; row counts and checksums verified.\n\
         Start the server with: palisade serve --database '{}'",
        rows.len(),
        path.display(),
        store::redact_url(url),
        store::redact_url(url)
    );
    Ok(())
}
