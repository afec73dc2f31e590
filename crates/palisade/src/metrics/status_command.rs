//! `palisade status`: is the server up, which version, its listeners and counts, the certificate's expiry, the
//! database's state and the last scheduled backup. Reads DATA/status.json (written by the running server) and the
//! database; needs no network listener.
//!
//! Exit status: 0 running and healthy, 3 not running (as `systemctl status`), 1 running or not but the database
//! or the certificate needs attention.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use clap::Args;
use serde::Serialize;

use super::status::{self, Snapshot, unix_secs};
use crate::config::{CONFIG_FILE, DEFAULT_DATA_DIR, FileConfig};

/// Certificates closer than this to expiry are reported as a problem.
const CERT_WARN_DAYS: i64 = 14;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Data directory (default: $PALISADE_DATA, else ./palisade-data).
    #[arg(long, value_name = "DIR", env = "PALISADE_DATA")]
    pub data: Option<PathBuf>,
    /// Machine-readable JSON output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    running: bool,
    /// What the running server (or the last one, if it stopped uncleanly) reported.
    server: Option<Snapshot>,
    database: DatabaseState,
    last_backup: Option<BackupState>,
    /// Things an administrator should act on.
    problems: Vec<String>,
}

#[derive(Debug, Serialize)]
struct DatabaseState {
    file: String,
    bytes: u64,
    schema: i64,
    schema_latest: i64,
    /// SQLite's quick_check: "ok" or the problems found.
    check: String,
}

#[derive(Debug, Serialize)]
struct BackupState {
    file: String,
    /// Unix seconds.
    modified_at: u64,
    bytes: u64,
}

pub fn main(args: StatusArgs) -> ExitCode {
    let data = args
        .data
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
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
    let report = match runtime.block_on(report(&data)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(1);
        }
    };
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        }
    } else {
        print_human(&report);
    }
    if !report.problems.is_empty() {
        ExitCode::from(1)
    } else if !report.running {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    }
}

async fn report(data: &Path) -> anyhow::Result<Report> {
    let db_path = data.join(store::DB_FILE);
    if let Err(e) = std::fs::metadata(&db_path)
        && e.kind() == std::io::ErrorKind::PermissionDenied
    {
        anyhow::bail!(
            "cannot read {}: permission denied; run it as the server's user, e.g. `sudo -u palisade palisade \
             status --data {}`",
            data.display(),
            data.display()
        );
    }
    if !db_path.is_file() {
        anyhow::bail!(
            "no Palisade database in {}: check --data or $PALISADE_DATA",
            data.display()
        );
    }
    let now = SystemTime::now();
    let server = status::read(data);
    let running = server.as_ref().is_some_and(|s| status::is_live(s, now));
    let mut problems = Vec::new();
    let db = store::Db::open_existing(&db_path)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open the database {}: {e}", db_path.display()))?;
    let schema = db.schema_state().await;
    let check = db.quick_check().await;
    db.close().await;
    let schema = schema?;
    let check = check.unwrap_or_else(|e| format!("cannot check: {e}"));
    if check != "ok" {
        problems.push(format!(
            "the database fails SQLite's check ({check}): restore the last backup (docs/operations.md)"
        ));
    }
    let bytes = ["", "-wal"]
        .iter()
        .filter_map(|suffix| std::fs::metadata(format!("{}{suffix}", db_path.display())).ok())
        .map(|m| m.len())
        .sum();
    if let Some(cert) = server.as_ref().and_then(|s| s.certificate.as_ref())
        && cert.days_left < CERT_WARN_DAYS
    {
        problems.push(format!(
            "the TLS certificate {} expires in {} day(s): renew it (the server reloads it without a restart)",
            cert.file, cert.days_left
        ));
    }
    Ok(Report {
        running,
        server,
        database: DatabaseState {
            file: db_path.display().to_string(),
            bytes,
            schema: schema.applied,
            schema_latest: schema.latest,
            check,
        },
        last_backup: last_backup(data),
        problems,
    })
}

fn last_backup(data: &Path) -> Option<BackupState> {
    let file = FileConfig::load(&data.join(CONFIG_FILE)).ok()?;
    let schedule = crate::backup::BackupSchedule::resolve(file.backup.as_ref(), data).ok()?;
    std::fs::read_dir(&schedule.dir)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.starts_with("palisade-") && n.ends_with(".tar")
        })
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            Some(BackupState {
                file: e.path().display().to_string(),
                modified_at: unix_secs(m.modified().ok()?),
                bytes: m.len(),
            })
        })
        .max_by_key(|b| b.modified_at)
}

fn ago(secs: u64) -> String {
    match secs {
        0..120 => format!("{secs} s"),
        120..7200 => format!("{} min", secs / 60),
        7200..172_800 => format!("{} h", secs / 3600),
        _ => format!("{} days", secs / 86_400),
    }
}

fn print_human(r: &Report) {
    let now = unix_secs(SystemTime::now());
    match (&r.server, r.running) {
        (Some(s), true) => println!(
            "Palisade is running: pid {}, version {}, up {} (status {} old)",
            s.info.pid,
            s.info.version,
            ago(now.saturating_sub(s.info.started_at)),
            ago(now.saturating_sub(s.updated_at))
        ),
        (Some(s), false) => println!(
            "Palisade is NOT running (last seen {} ago: pid {}, version {})",
            ago(now.saturating_sub(s.updated_at)),
            s.info.pid,
            s.info.version
        ),
        (None, _) => println!("Palisade is not running (no server status in this data directory)"),
    }
    if let Some(s) = &r.server {
        let c = &s.counts;
        println!("  domain        {} (realm {})", s.info.domain, s.info.realm);
        println!("  listeners     {}", s.info.listeners.join(", "));
        if let Some(m) = &s.info.metrics_listen {
            println!("  metrics       http://{m}/metrics");
        }
        println!(
            "  counts        {} registrations, {} calls, {} connections, {} automatic bans, {} IP rules, \
             relay ports {}/{}",
            c.registrations,
            c.calls_active,
            c.connections,
            c.bans_auto,
            c.ip_rules,
            c.relay_ports_in_use,
            c.relay_ports_total
        );
        match &s.certificate {
            Some(cert) => println!(
                "  certificate   {}: {} days left",
                cert.file, cert.days_left
            ),
            None => println!("  certificate   none in use (no TLS listener)"),
        }
    }
    let d = &r.database;
    println!(
        "  database      {}: {:.1} MB, schema {}{}, check {}",
        d.file,
        d.bytes as f64 / 1_000_000.0,
        d.schema,
        if d.schema == d.schema_latest {
            " (current)".to_string()
        } else {
            format!(" (this binary knows {})", d.schema_latest)
        },
        d.check
    );
    match &r.last_backup {
        Some(b) => println!(
            "  last backup   {} ({} ago, {:.1} MB)",
            b.file,
            ago(now.saturating_sub(b.modified_at)),
            b.bytes as f64 / 1_000_000.0
        ),
        None => println!("  last backup   no scheduled backup yet"),
    }
    for p in &r.problems {
        println!("problem: {p}");
    }
}
