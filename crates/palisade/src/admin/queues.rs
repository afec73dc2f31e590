//! `palisade queue …`: call queues — add, change, list, show, remove, login, logout, stats. [`add_queue`],
//! [`change_queue`], [`remove_queue`] and [`queue_views`] are the code path the console and API share.

use anyhow::{anyhow, bail};
use clap::{Args, Subcommand};
use pbx::office::groups::Fallback;
use pbx::office::{QueueConfig, QueueStrategy};
use serde::Serialize;
use store::{Db, StoreError};

use super::{CommonArgs, output};

#[derive(Debug, Args)]
pub struct QueueArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(subcommand)]
    pub command: QueueCommand,
}

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Add a call queue: callers of NUMBER wait with music until an agent is free.
    Add {
        /// The queue's number (not an extension's or a ring group's, nor an emergency or the voicemail number).
        number: String,
        #[command(flatten)]
        settings: QueueSettings,
    },
    /// Change a queue: only the options given change (agents keep their login state).
    Change {
        number: String,
        #[command(flatten)]
        settings: QueueSettings,
    },
    /// List the queues.
    List,
    /// Show one queue, with its agents' login state.
    Show { number: String },
    /// Remove a queue.
    Remove { number: String },
    /// Log an agent in to a queue (agents do it themselves with *45).
    Login { number: String, agent: String },
    /// Log an agent out of a queue (agents do it themselves with *46).
    Logout { number: String, agent: String },
    /// Queue statistics: callers waiting now (as the server last wrote), answered, abandoned, timed out,
    /// average wait.
    Stats {
        /// One queue (default: all).
        number: Option<String>,
    },
}

#[derive(Debug, Clone, Default, Args)]
pub struct QueueSettings {
    /// Agent extensions, comma-separated, e.g. 201,202. Required for `add`.
    #[arg(long, value_name = "N,N,…", value_delimiter = ',')]
    pub agents: Option<Vec<String>>,
    /// longest-idle (default), round-robin or all (every free agent rings).
    #[arg(long, value_name = "longest-idle|round-robin|all")]
    pub strategy: Option<String>,
    /// Nobody waits longer than this, 5 to 3600 s (default 300); then the fallback.
    #[arg(long, value_name = "SECONDS")]
    pub max_wait: Option<u32>,
    /// `default` (Palisade's own melody) or a WAV file (8 kHz 16-bit mono) the server can read.
    #[arg(long, value_name = "default|FILE")]
    pub music: Option<String>,
    /// After the maximum wait: ext:NUMBER (rung as the caller would dial it) or hangup (default).
    #[arg(long, value_name = "ext:NUMBER|hangup")]
    pub fallback: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AgentView {
    pub agent: String,
    pub logged_in: bool,
}

/// A queue as shown and as the API returns it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct QueueView {
    pub number: String,
    pub agents: Vec<AgentView>,
    pub strategy: String,
    pub max_wait_secs: u32,
    pub music: String,
    pub fallback: String,
}

impl QueueSettings {
    fn apply(&self, mut q: QueueConfig) -> anyhow::Result<QueueConfig> {
        if let Some(a) = &self.agents {
            q.agents = a
                .iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
        }
        if let Some(s) = &self.strategy {
            q.strategy = QueueStrategy::parse(s).map_err(|e| anyhow!(e))?;
        }
        if let Some(w) = self.max_wait {
            q.max_wait_secs = w;
        }
        if let Some(m) = &self.music {
            let m = m.trim();
            if m != "default" {
                let path = std::path::Path::new(m);
                let bytes = std::fs::read(path)
                    .map_err(|e| anyhow!("cannot read the music file {m}: {e}"))?;
                media::wav::decode(&bytes).map_err(|e| {
                    anyhow!("{m} is not an 8 kHz 16-bit mono WAV file ({e}); convert it, e.g. `sox in.mp3 -r 8000 -c 1 -b 16 out.wav`")
                })?;
                let abs = std::fs::canonicalize(path).map_err(|e| anyhow!("{m}: {e}"))?;
                q.music = abs.to_string_lossy().into_owned();
            } else {
                q.music = "default".into();
            }
        }
        if let Some(f) = &self.fallback {
            q.fallback = Fallback::parse(f).map_err(|e| anyhow!(e))?;
        }
        q.validate().map_err(|e| anyhow!(e))?;
        Ok(q)
    }
}

/// Adds a queue; refuses an emergency or the voicemail number.
pub async fn add_queue(
    db: &Db,
    number: &str,
    settings: &QueueSettings,
) -> anyhow::Result<QueueConfig> {
    if settings.agents.as_ref().is_none_or(Vec::is_empty) {
        bail!("a queue needs agents: --agents 201,202,…");
    }
    let q = settings.apply(QueueConfig {
        number: number.trim().to_string(),
        agents: Vec::new(),
        strategy: QueueStrategy::LongestIdle,
        max_wait_secs: 300,
        music: "default".into(),
        fallback: Fallback::Hangup,
    })?;
    check_number(db, &q.number).await?;
    db.add_queue(&q).await.map_err(queue_error)?;
    Ok(q)
}

/// Changes queue `number`; returns (before, after).
pub async fn change_queue(
    db: &Db,
    number: &str,
    settings: &QueueSettings,
) -> anyhow::Result<(QueueConfig, QueueConfig)> {
    let before = db
        .queue(number.trim())
        .await?
        .ok_or_else(|| queue_error(StoreError::NotFound(format!("queue {number}"))))?;
    let after = settings.apply(before.clone())?;
    db.update_queue(&after).await.map_err(queue_error)?;
    Ok((before, after))
}

pub async fn remove_queue(db: &Db, number: &str) -> anyhow::Result<QueueConfig> {
    db.remove_queue(number.trim()).await.map_err(queue_error)
}

/// Every queue with its agents' login state.
pub async fn queue_views(db: &Db) -> anyhow::Result<Vec<QueueView>> {
    let out = db.logged_out_agents().await?;
    Ok(db
        .list_queues()
        .await?
        .iter()
        .map(|q| QueueView {
            number: q.number.clone(),
            agents: q
                .agents
                .iter()
                .map(|a| AgentView {
                    agent: a.clone(),
                    logged_in: !out.contains(&(q.number.clone(), a.clone())),
                })
                .collect(),
            strategy: q.strategy.to_string(),
            max_wait_secs: q.max_wait_secs,
            music: q.music.clone(),
            fallback: q.fallback.to_string(),
        })
        .collect())
}

async fn check_number(db: &Db, number: &str) -> anyhow::Result<()> {
    let policy = db.policy_settings().await?;
    if policy.emergency_numbers.iter().any(|e| e == number) || policy.voicemail_number == number {
        bail!("{number} is an emergency or the voicemail number; a queue needs another number");
    }
    Ok(())
}

fn queue_error(e: StoreError) -> anyhow::Error {
    match e {
        StoreError::NotFound(what) => {
            anyhow!("{what} does not exist (list them with `palisade queue list`)")
        }
        e => anyhow::Error::new(e),
    }
}

#[derive(Debug, Serialize)]
pub struct StatsView {
    pub queue: String,
    /// Callers waiting now (from the server's calls in progress).
    pub waiting: usize,
    #[serde(flatten)]
    pub stats: store::queues::QueueStats,
}

async fn set_login(db: &Db, number: &str, agent: &str, logged_in: bool) -> anyhow::Result<()> {
    db.set_agent_login(number.trim(), agent.trim(), logged_in, true)
        .await
        .map_err(queue_error)?;
    crate::say!(
        "Agent {} {} queue {}.",
        agent.trim(),
        if logged_in {
            "logged in to"
        } else {
            "logged out of"
        },
        number.trim()
    );
    Ok(())
}

fn print_queue(v: &QueueView) {
    let agents: Vec<String> = v
        .agents
        .iter()
        .map(|a| {
            format!(
                "{}{}",
                a.agent,
                if a.logged_in { "" } else { " (logged out)" }
            )
        })
        .collect();
    output::fields(&[
        ("Queue", v.number.clone()),
        ("Agents", agents.join(", ")),
        ("Strategy", v.strategy.clone()),
        ("Max wait", format!("{} s", v.max_wait_secs)),
        ("Music", v.music.clone()),
        ("Fallback", v.fallback.clone()),
    ]);
}

pub async fn run(args: QueueArgs) -> anyhow::Result<()> {
    let common = args.common;
    let db = match &args.command {
        QueueCommand::Add { .. } => common.open_or_create().await?,
        _ => common.open().await?,
    };
    let r = run_on(&db, &common, args.command).await;
    db.close().await;
    r
}

async fn run_on(db: &Db, common: &CommonArgs, command: QueueCommand) -> anyhow::Result<()> {
    let show = |number: &str, views: Vec<QueueView>| -> anyhow::Result<()> {
        let v = views
            .into_iter()
            .find(|v| v.number == number)
            .ok_or_else(|| queue_error(StoreError::NotFound(format!("queue {number}"))))?;
        if common.json {
            return output::json(&v);
        }
        print_queue(&v);
        Ok(())
    };
    match command {
        QueueCommand::Add { number, settings } => {
            let q = add_queue(db, &number, &settings).await?;
            if !common.json {
                crate::say!("Added queue {}.", q.number);
            }
            show(&q.number, queue_views(db).await?)
        }
        QueueCommand::Change { number, settings } => {
            let (_, q) = change_queue(db, &number, &settings).await?;
            if !common.json {
                crate::say!("Changed queue {}.", q.number);
            }
            show(&q.number, queue_views(db).await?)
        }
        QueueCommand::Show { number } => show(number.trim(), queue_views(db).await?),
        QueueCommand::List => output::list(
            common.json,
            &queue_views(db).await?,
            "No queues. Add one with `palisade queue add 700 --agents 201,202`.",
            &[
                "QUEUE", "STRATEGY", "MAX WAIT", "MUSIC", "FALLBACK", "AGENTS",
            ],
            |v| {
                vec![
                    v.number.clone(),
                    v.strategy.clone(),
                    format!("{} s", v.max_wait_secs),
                    v.music.clone(),
                    v.fallback.clone(),
                    v.agents
                        .iter()
                        .map(|a| format!("{}{}", a.agent, if a.logged_in { "" } else { "-" }))
                        .collect::<Vec<_>>()
                        .join(","),
                ]
            },
        ),
        QueueCommand::Remove { number } => {
            let q = remove_queue(db, &number).await?;
            crate::say!("Removed queue {}.", q.number);
            Ok(())
        }
        QueueCommand::Login { number, agent } => set_login(db, &number, &agent, true).await,
        QueueCommand::Logout { number, agent } => set_login(db, &number, &agent, false).await,
        QueueCommand::Stats { number } => {
            let views = stats_views(db, number.as_deref()).await?;
            if let Some(n) = &number
                && views.is_empty()
            {
                return Err(queue_error(StoreError::NotFound(format!("queue {n}"))));
            }
            output::list(
                common.json,
                &views,
                "No queues.",
                &[
                    "QUEUE",
                    "WAITING",
                    "ANSWERED",
                    "ABANDONED",
                    "TIMED OUT",
                    "AVG WAIT",
                ],
                |v| {
                    vec![
                        v.queue.clone(),
                        v.waiting.to_string(),
                        v.stats.answered.to_string(),
                        v.stats.abandoned.to_string(),
                        v.stats.timeout.to_string(),
                        format!("{:.1} s", v.stats.average_wait_secs),
                    ]
                },
            )
        }
    }
}

/// Statistics of every queue (or of `number`): callers waiting now (the running server's calls in progress, as
/// last written) and the recorded outcomes.
pub async fn stats_views(db: &Db, number: Option<&str>) -> anyhow::Result<Vec<StatsView>> {
    let active = db.list_active_calls().await?;
    let mut views = Vec::new();
    for q in db.list_queues().await? {
        if number.is_some_and(|n| n.trim() != q.number) {
            continue;
        }
        let waiting = active
            .iter()
            .filter(|c| c.call.callee == q.number && c.call.state != "parked")
            .count();
        views.push(StatsView {
            waiting,
            stats: db.queue_stats(&q.number, 0).await?,
            queue: q.number,
        });
    }
    Ok(views)
}
