//! Keeps the running server and the store in step: loads extensions, settings and registrations at start,
//! applies admin changes within a second (the store's `config_version` is polled), and writes security events
//! and registration changes behind, in batches, so the database is never on the per-packet path.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use guard::{Guard, GuardEvent, Rule};
use pbx::auth::{Credentials, NonceKey};
use pbx::calls::CallRecord;
use pbx::core::{CoreConfig, ExtensionAuth, PbxCore};
use pbx::registrar::{self, Change};
use sip::digest::Algorithm;
use store::{self, BindingChange, Db, Extension, settings};

use crate::config::Config;
use crate::guard_store;
use crate::service::{Record, unix_ms};
use crate::transport::Edge;

/// How often the store is polled for admin changes and pending writes are flushed.
pub const SYNC_INTERVAL: Duration = Duration::from_millis(500);

/// What the server starts with.
pub struct Loaded {
    pub trunks: Vec<pbx::trunks::Trunk>,
    pub ring_groups: Vec<pbx::office::RingGroup>,
    /// Call queues and the agents logged out of them.
    pub queues: (
        Vec<pbx::office::QueueConfig>,
        std::collections::HashSet<(String, String)>,
    ),
    /// Feature codes and each extension's pickup group.
    pub office_features: (
        pbx::office::FeatureCodes,
        std::collections::HashMap<String, String>,
    ),
    pub limits: pbx::limits::ResourceLimits,
    pub core: PbxCore,
    pub guard: Guard,
    pub domain: String,
    /// The digest realm (fixed in the store at first start; independent of the domain).
    pub realm: String,
    pub version: i64,
}

/// Resolves the domain (flag or palisade.toml, else the stored setting, else the host name), builds the PBX core
/// and fills it from the store. A cluster node (`node`) restores only the registrations it holds.
pub async fn load(
    db: &Db,
    config: &Config,
    now: SystemTime,
    node: Option<&str>,
) -> anyhow::Result<Loaded> {
    let domain = if config.domain_explicit {
        // Record it so the admin commands hash new passwords for the realm the server really uses.
        if db.get_setting(settings::DOMAIN).await?.as_deref() != Some(config.domain.as_str()) {
            db.set_setting(settings::DOMAIN, &config.domain)
                .await
                .context("cannot record the domain")?;
        }
        config.domain.clone()
    } else {
        db.domain().await?
    };
    // Passwords are bound to the realm, so it is fixed once (now, at the first start) and never follows the
    // domain: a later --domain change leaves every phone working.
    let realm = db
        .realm_or_fix(&domain)
        .await
        .context("cannot read or fix the digest realm")?;
    if realm != domain {
        tracing::info!(%realm, %domain, "the digest realm stays as fixed at first start (see `palisade realm`)");
    }
    let version = db.current_version().await?;
    let mut core_config = CoreConfig::new(realm.clone());
    core_config.algorithms = algorithms(db).await?;
    let key = NonceKey::generate()
        .map_err(|e| anyhow::anyhow!("cannot read random bytes for the nonce key: {e}"))?;
    let mut core = PbxCore::new(core_config, key).map_err(|e| anyhow::anyhow!("{e}"))?;
    let extensions = db.list_extensions().await?;
    warn_on_realm_mismatch(&extensions, &realm);
    core.set_extensions(extension_auths(db).await?);
    core.set_restrictions(restrictions(db).await?);
    let stored = match node {
        Some(node) => db.list_bindings_of_node(node).await?,
        None => db.list_bindings().await?,
    };
    let bindings: Vec<_> = stored.into_iter().filter_map(binding_from_store).collect();
    let restored = bindings.len();
    core.restore_bindings(bindings, now);
    tracing::info!(extensions = extensions.len(), registrations = restored, %realm, "store loaded");
    let mut guard = Guard::new(guard_store::guard_config(db).await?);
    let rules = guard_store::rules(db).await?;
    tracing::info!(ip_rules = rules.len(), "IP lists loaded");
    for r in rules {
        guard.insert_rule(r);
    }
    Ok(Loaded {
        trunks: db.list_trunks().await?,
        ring_groups: db.list_ring_groups().await?,
        office_features: office_features(db).await?,
        queues: (db.list_queues().await?, db.logged_out_agents().await?),
        limits: db.resource_limits().await?,
        core,
        guard,
        domain,
        realm,
        version,
    })
}

/// Feature codes and pickup groups (extensions in the office-wide group are left out).
async fn office_features(
    db: &Db,
) -> anyhow::Result<(
    pbx::office::FeatureCodes,
    std::collections::HashMap<String, String>,
)> {
    let codes = crate::admin::features::feature_codes(db).await?;
    let groups = db
        .pickup_groups()
        .await?
        .into_iter()
        .filter_map(|(ext, g)| g.map(|g| (ext, g)))
        .collect();
    Ok((codes, groups))
}

async fn algorithms(db: &Db) -> anyhow::Result<Vec<Algorithm>> {
    Ok(db
        .digest_algorithms()
        .await?
        .into_iter()
        .filter_map(|a| Algorithm::parse(a).ok())
        .collect())
}

fn warn_on_realm_mismatch(extensions: &[Extension], realm: &str) {
    let stale: Vec<&str> = extensions
        .iter()
        .filter(|e| e.realm != realm)
        .map(|e| e.number.as_str())
        .collect();
    if stale.is_empty() {
        return;
    }
    // One line, however many: the list is in `palisade realm show`.
    let shown = stale
        .iter()
        .take(10)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    let more = if stale.len() > 10 { ", …" } else { "" };
    tracing::warn!(count = stale.len(), %realm,
        "extension(s) {shown}{more} have passwords set for another realm and cannot authenticate; give them new \
         ones with `palisade ext reset-password NUMBER` (list: `palisade realm show`)");
}

/// The authentication view of a stored extension.
pub fn extension_auth(e: &Extension, mailbox: Option<&store::Mailbox>) -> ExtensionAuth {
    ExtensionAuth {
        number: e.number.clone(),
        auth_id: e.auth_id.clone(),
        enabled: e.enabled,
        credentials: Credentials {
            ha1_md5: Some(e.ha1_md5.clone()),
            ha1_sha256: Some(e.ha1_sha256.clone()),
            disabled: !e.enabled,
        },
        algorithms: e
            .digest_algorithms
            .as_deref()
            .map(|list| {
                list.split(',')
                    .filter_map(|a| Algorithm::parse(a.trim()).ok())
                    .collect::<Vec<_>>()
            })
            .filter(|l| !l.is_empty()),
        require_tls: e.require_tls,
        srtp: e.srtp,
        restrictions: e.caller_restrictions(),
        lan_only: e.lan_only,
        block_remote_ws: e.block_remote_ws,
        voicemail: mailbox.is_some_and(|m| m.enabled),
        mwi_unsolicited: mailbox.is_some_and(|m| m.mwi_unsolicited),
        forward: e.forwarding(),
    }
}

/// Every extension with its mailbox settings.
async fn extension_auths(db: &Db) -> anyhow::Result<Vec<ExtensionAuth>> {
    let mailboxes: std::collections::HashMap<String, store::Mailbox> = db
        .list_mailboxes()
        .await?
        .into_iter()
        .map(|m| (m.number.clone(), m))
        .collect();
    Ok(db
        .list_extensions()
        .await?
        .iter()
        .map(|e| extension_auth(e, mailboxes.get(&e.number)))
        .collect())
}

/// The call policy from the store. Office hours that no longer parse are dropped with a warning (extensions
/// restricted to office hours are then refused external calls: deny by default).
async fn restrictions(db: &Db) -> anyhow::Result<pbx::restrictions::Restrictions> {
    let config = db.policy_settings().await?;
    let settings = match config.to_settings() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "office hours ignored");
            let mut c = config.clone();
            c.office_hours.clear();
            c.to_settings().map_err(|e| anyhow::anyhow!(e))?
        }
    };
    let local: Vec<ipnet::IpNet> = config
        .local_networks
        .iter()
        .filter_map(|n| n.parse().ok())
        .collect();
    Ok(pbx::restrictions::Restrictions::new(
        settings,
        config.not_configured(),
        local,
        config.pin_unlock_duration(),
    ))
}

fn binding_from_store(b: store::Binding) -> Option<registrar::Binding> {
    let transport = sip::Transport::parse(&b.transport)?;
    Some(registrar::Binding {
        aor: b.aor,
        contact: b.contact_uri,
        transport,
        source: b.source_addr.parse().ok()?,
        local: b
            .local_addr
            .and_then(|l| l.parse().ok())
            .unwrap_or_else(|| ([0, 0, 0, 0], 0).into()),
        expires_at: u64::try_from(b.expires_at).ok()?,
        call_id: b.call_id,
        cseq: u32::try_from(b.cseq).ok()?,
        q: b.q.and_then(|q| u16::try_from(q).ok()),
        user_agent: b.user_agent,
        via_node: None,
    })
}

fn binding_to_store(b: &registrar::Binding, node: Option<&str>) -> store::Binding {
    store::Binding {
        aor: b.aor.clone(),
        contact_uri: b.contact.clone(),
        transport: b.transport.name().to_string(),
        source_addr: b.source.to_string(),
        local_addr: (!b.local.ip().is_unspecified()).then(|| b.local.to_string()),
        expires_at: i64::try_from(b.expires_at).unwrap_or(i64::MAX),
        call_id: b.call_id.clone(),
        cseq: i64::from(b.cseq),
        user_agent: b.user_agent.clone(),
        q: b.q.map(i64::from),
        node: node.map(str::to_string),
    }
}

/// How often a cluster node (PostgreSQL) flushes and exchanges its ban counters: a ban reaches the database, and
/// so the other nodes, within this (docs/cluster.md).
pub const CLUSTER_SYNC_INTERVAL: Duration = Duration::from_millis(250);

/// The sync task: runs until the server stops; [`flush`] once more on the way out. With `cluster` (PostgreSQL),
/// the change listener's wake-ups make it compare versions at once, and the ban counters are exchanged.
pub async fn run(db: Db, edge: Arc<Edge>, version: i64, cluster: Option<crate::cluster::Node>) {
    // Calls do not survive a restart: whatever the last run left in the table is stale.
    if let Err(e) = db.clear_active_calls().await {
        tracing::error!(error = %e, "cannot clear the calls left by the last run");
    }
    let mut active: Vec<store::ActiveCallRow> = Vec::new();
    let period = match cluster {
        Some(_) => CLUSTER_SYNC_INTERVAL,
        None => SYNC_INTERVAL,
    };
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pruned_at: Option<Instant> = None;
    let mut loaded = store::cluster::Versions {
        config: version,
        ip_rules: db.versions().await.map(|v| v.ip_rules).unwrap_or(0),
    };
    loop {
        let woken = match &cluster {
            Some(node) => tokio::select! {
                _ = tick.tick() => false,
                _ = node.wake.notified() => true,
            },
            None => {
                tick.tick().await;
                false
            }
        };
        if woken {
            // Another node (or an admin command) changed something: apply it now, the rest waits for the tick.
            check_versions(&db, &edge, &mut loaded).await;
            continue;
        }
        if !database_unreachable() && pruned_at.is_none_or(|t| t.elapsed() >= PRUNE_INTERVAL) {
            pruned_at = Some(Instant::now());
            if let Err(e) = prune_events(&db, SystemTime::now()).await {
                tracing::error!(error = %e, "cannot prune the security events; will retry");
            }
            if cluster.is_some()
                && let Err(e) = crate::cluster::counters::prune(&db).await
            {
                tracing::error!(error = %e, "cannot prune the shared ban counters; will retry");
            }
        }
        if let Some(node) = &cluster
            && let Err(e) = crate::cluster::counters::exchange(&db, &edge, &node.key).await
        {
            tracing::error!(error = %e, "cannot exchange the ban counters with the other nodes; will retry");
            if e.downcast_ref::<store::StoreError>()
                .is_some_and(note_unreachable)
            {
                continue;
            }
        }
        if let Err(e) = flush(&db, &edge).await {
            tracing::error!(error = %e, "cannot write to the store; will retry");
            if database_unreachable() {
                // Serve from memory; the next tick checks again (the listener reconnects by itself).
                continue;
            }
        }
        if let Err(e) = sync_active_calls(&db, &edge, &mut active).await {
            tracing::error!(error = %e, "cannot write the calls in progress; will retry");
        }
        check_versions(&db, &edge, &mut loaded).await;
    }
}

/// Reloads what changed since `loaded`: everything when the configuration version moved, only the IP lists
/// when only their version did (PostgreSQL: another node's ban or unban).
async fn check_versions(db: &Db, edge: &Arc<Edge>, loaded: &mut store::cluster::Versions) {
    match db.versions().await {
        Ok(v) if v.config != loaded.config => match reload(db, edge).await {
            Ok(()) => {
                *loaded = v;
                tracing::info!(version = v.config, "configuration reloaded");
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot reload the configuration; will retry")
            }
        },
        Ok(v) if v.ip_rules != loaded.ip_rules => match reload_ip_rules(db, edge).await {
            Ok(()) => {
                loaded.ip_rules = v.ip_rules;
                tracing::debug!(version = v.ip_rules, "IP lists reloaded");
            }
            Err(e) => tracing::error!(error = %e, "cannot reload the IP lists; will retry"),
        },
        Ok(_) => {}
        Err(e) => {
            note_unreachable(&e);
            tracing::error!(error = %e, "cannot read the configuration version; will retry")
        }
    }
}

/// Re-reads the IP lists alone (another node banned or unbanned a source).
async fn reload_ip_rules(db: &Db, edge: &Arc<Edge>) -> anyhow::Result<()> {
    let rules = guard_store::rules(db).await?;
    edge.with_service(|s| replace_rules(s.guard_mut(), rules));
    Ok(())
}

/// Replaces the guard's lists with the stored ones, keeping the automatic bans made since the last flush (they
/// are not in the store yet).
fn replace_rules(guard: &mut Guard, rules: Vec<Rule>) {
    let stored: std::collections::HashSet<_> = rules.iter().map(|r| r.net).collect();
    let pending: Vec<Rule> = guard
        .lists()
        .iter()
        .filter(|r| r.is_auto() && !stored.contains(&r.net))
        .cloned()
        .collect();
    guard.replace_rules(rules);
    for r in pending {
        guard.insert_rule(r);
    }
}

/// Re-reads extensions and settings into the running service.
async fn reload(db: &Db, edge: &Arc<Edge>) -> anyhow::Result<()> {
    let extensions = extension_auths(db).await?;
    let counts = db.voicemail_counts().await?;
    let algorithms = algorithms(db).await?;
    let restrictions = restrictions(db).await?;
    let trunks = db.list_trunks().await?;
    let limits = db.resource_limits().await?;
    let guard_config = guard_store::guard_config(db).await?;
    let rules = guard_store::rules(db).await?;
    let ring_groups = db.list_ring_groups().await?;
    let (codes, pickup) = office_features(db).await?;
    let (queues, logged_out) = (db.list_queues().await?, db.logged_out_agents().await?);
    let out = edge.with_service(|s| {
        s.set_ring_groups(ring_groups);
        s.set_queues(queues, logged_out);
        s.set_office_features(codes, pickup);
        let core = s.core_mut();
        core.set_extensions(extensions);
        core.set_algorithms(algorithms);
        core.set_restrictions(restrictions);
        s.apply_trunks(trunks, Instant::now());
        s.set_resource_limits(limits);
        let lamps = s.set_voicemail_counts(counts, Instant::now());
        let guard = s.guard_mut();
        replace_rules(guard, rules);
        guard.set_config(guard_config);
        lamps
    });
    // A trunk's CA file may have changed with the configuration: read it again at the next TLS connection.
    edge.tls_clients.clear();
    edge.dispatch(out);
    Ok(())
}

/// Rewrites the table of calls in progress when the set changed.
async fn sync_active_calls(
    db: &Db,
    edge: &Edge,
    last: &mut Vec<store::ActiveCallRow>,
) -> anyhow::Result<()> {
    let mut now: Vec<store::ActiveCallRow> = edge.with_service(|s| {
        s.active_calls()
            .into_iter()
            .map(|c| store::ActiveCallRow {
                call_id: c.call_id,
                caller: c.caller,
                callee: c.callee,
                started_at: i64::try_from(unix_ms(c.started_at)).unwrap_or(i64::MAX),
                answered_at: c
                    .answered_at
                    .map(|t| i64::try_from(unix_ms(t)).unwrap_or(i64::MAX)),
                state: c.state.to_string(),
            })
            .collect()
    });
    now.sort_by(|a, b| a.call_id.cmp(&b.call_id));
    if now != *last {
        db.replace_active_calls(&now).await?;
        *last = now;
    }
    Ok(())
}

/// Set when a write found the database unreachable (PostgreSQL down, network cut); the next flush first checks
/// quickly whether it is back ([`reachable`]) rather than waiting for it once per write.
static UNREACHABLE: AtomicBool = AtomicBool::new(false);

/// How long the quick check waits for the database.
const REACHABLE_CHECK: Duration = Duration::from_secs(1);

/// True while the last write found the database unreachable.
pub fn database_unreachable() -> bool {
    UNREACHABLE.load(Ordering::Relaxed)
}

/// Records that `e` says the database is unreachable; returns whether it does.
fn note_unreachable(e: &store::StoreError) -> bool {
    let unreachable = matches!(e, store::StoreError::Unreachable(_));
    if unreachable && !UNREACHABLE.swap(true, Ordering::Relaxed) {
        tracing::error!(error = %e, "the database is unreachable: serving from memory, unsaved writes kept for later");
    }
    unreachable
}

/// Whether the database answers within [`REACHABLE_CHECK`]; clears the unreachable mark when it does.
async fn reachable(db: &Db) -> bool {
    match tokio::time::timeout(REACHABLE_CHECK, db.versions()).await {
        Ok(Ok(_)) => {
            UNREACHABLE.store(false, Ordering::Relaxed);
            tracing::info!("the database is reachable again: writing what was kept");
            true
        }
        _ => false,
    }
}

/// Writes what the endpoint recorded since the last flush (`Service::poll_record`): call records, bans, security
/// events, registration changes. On failure events and changes are put back for the next try (the core bounds how
/// many it keeps).
pub async fn flush(db: &Db, edge: &Edge) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut calls: Vec<CallRecord> = Vec::new();
    let mut events = Vec::new();
    let mut changes = Vec::new();
    let mut guard_events = Vec::new();
    let mut lefts = Vec::new();
    let mut agent_logins = Vec::new();
    let (now_ms, wall, node) = edge.with_service(|s| {
        let cluster = s.cluster();
        let node = cluster
            .is_cluster()
            .then(|| cluster.this_node().to_string());
        while let Some(record) = s.poll_record() {
            match record {
                Record::Call(r) => calls.push(r),
                Record::Security(e) => events.push(e),
                Record::Binding(c) => changes.push(c),
                Record::Guard(g) => guard_events.push(g),
                Record::QueueCall(left) => lefts.push(left),
                Record::QueueAgent {
                    queue,
                    agent,
                    logged_in,
                } => agent_logins.push((queue, agent, logged_in)),
            }
        }
        let wall = s.wall(Instant::now());
        (unix_ms(wall), wall, node)
    });
    if UNREACHABLE.load(Ordering::Relaxed) && !reachable(db).await {
        // Still down: keep everything for the next flush instead of waiting for the database once per write.
        let kept: Vec<Record> =
            (guard_events.into_iter().map(Record::Guard))
                .chain(changes.into_iter().map(Record::Binding))
                .chain(events.into_iter().map(Record::Security))
                .chain(calls.into_iter().map(Record::Call))
                .chain(lefts.into_iter().map(Record::QueueCall))
                .chain(agent_logins.into_iter().map(|(queue, agent, logged_in)| {
                    Record::QueueAgent {
                        queue,
                        agent,
                        logged_in,
                    }
                }))
                .collect();
        let dropped = edge.with_service(|s| s.requeue_records(kept));
        if dropped > 0 {
            tracing::error!(
                dropped,
                "the database is still unreachable: the oldest unsaved records were dropped"
            );
        }
        anyhow::bail!(
            "the database is unreachable; bans, call records and registrations are kept for later"
        );
    }
    let queue_calls: Vec<_> = lefts.iter().map(|l| queue_call_row(l, wall)).collect();
    let records: Vec<store::CdrRow> = calls.iter().map(cdr_row).collect();
    // Kept for the next flush when the database is unreachable (issue 17: nothing acknowledged is lost).
    let mut unsaved: Vec<Record> = Vec::new();
    if let Err(e) = db.append_cdrs(&records).await {
        tracing::error!(error = %e, count = records.len(), "cannot store call records");
        if note_unreachable(&e) {
            unsaved.extend(calls.into_iter().map(Record::Call));
        }
    }
    if let Err(e) = db.append_queue_calls(&queue_calls).await {
        tracing::error!(error = %e, count = queue_calls.len(), "cannot store queue statistics");
    }
    for (queue, agent, logged_in) in agent_logins {
        if let Err(e) = db.set_agent_login(&queue, &agent, logged_in, false).await {
            tracing::error!(error = %e, %queue, %agent, "cannot store an agent's queue login");
        }
    }
    // Bans first: a ban must survive a restart even if writing its event fails.
    let mut kept_bans: Vec<GuardEvent> = Vec::new();
    for e in &guard_events {
        let GuardEvent::Banned { rule } = e else {
            continue;
        };
        if !kept_bans.is_empty() {
            // The database is unreachable: do not wait for it once per ban.
            kept_bans.push(e.clone());
            continue;
        }
        if let Err(err) = db
            .upsert_ip_rule(&guard_store::rule_to_store(rule), false)
            .await
        {
            tracing::error!(error = %err, net = %rule.net, "cannot store a ban");
            if note_unreachable(&err) {
                // Enforced here already; written (and so sent to the other nodes) when the database is back.
                kept_bans.push(e.clone());
            }
        }
    }
    // A kept ban's security event is written with the ban, when it is retried.
    guard_events.retain(|e| !kept_bans.contains(e));
    unsaved.extend(kept_bans.into_iter().map(Record::Guard));
    if !unsaved.is_empty() {
        let count = unsaved.len();
        let dropped = edge.with_service(|s| s.requeue_records(unsaved));
        tracing::warn!(
            count,
            dropped,
            "the database is unreachable: bans and call records kept for later"
        );
    }
    if guard_events
        .iter()
        .any(|e| matches!(e, GuardEvent::Expired { .. }))
    {
        db.purge_expired_ip_rules(i64::try_from(now_ms).unwrap_or(i64::MAX))
            .await?;
    }
    events.extend(
        guard_events
            .iter()
            .map(|e| guard_store::guard_event(e, now_ms)),
    );
    let store_changes: Vec<BindingChange> = changes
        .iter()
        .map(|c| match c {
            Change::Upsert(b) => BindingChange::Upsert(binding_to_store(b, node.as_deref())),
            Change::Remove { aor, contact } => BindingChange::Remove {
                aor: aor.clone(),
                contact_uri: contact.clone(),
            },
        })
        .collect();
    if let Err(e) = db.apply_binding_changes(&store_changes).await {
        note_unreachable(&e);
        edge.with_service(|s| s.requeue(events, changes));
        return Err(e).context("cannot store registrations");
    }
    // Routine decisions (challenges to requests without credentials, successful authentications) are counted,
    // not stored one row each: see store::events::is_routine and docs/security.md.
    crate::metrics::count_flushed(&events, &records);
    let (rows, counts) = store::split_routine(events);
    if let Err(e) = db.add_event_counts(&counts).await {
        tracing::error!(error = %e, "cannot update the event counters; these counts are lost");
    }
    crate::syslog::forward(&rows);
    if let Err(e) = db.append_events(&rows).await {
        edge.with_service(|s| s.requeue(rows, Vec::new()));
        return Err(e).context("cannot store security events");
    }
    if !records.is_empty() || !store_changes.is_empty() || !rows.is_empty() {
        ::metrics::histogram!(crate::metrics::STORE_WRITE_SECONDS)
            .record(started.elapsed().as_secs_f64());
    }
    Ok(())
}

/// How often old and surplus security events are deleted.
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(10);

/// Deletes events past `event_retention_days` and beyond `event_max_rows` (settings read each time, so a change
/// applies at the next prune).
pub async fn prune_events(db: &Db, now: SystemTime) -> anyhow::Result<()> {
    let (days, max_rows) = db.event_retention().await?;
    let now_ms = i64::try_from(unix_ms(now)).unwrap_or(i64::MAX);
    let pruned = db.prune_events_by(now_ms, days, max_rows).await?;
    if pruned != store::Pruned::default() {
        tracing::info!(
            too_old = pruned.too_old,
            over_max = pruned.over_max,
            retention_days = days,
            max_rows,
            "security events pruned"
        );
    }
    Ok(())
}

/// A caller who left a queue, as its statistics row (`now` is when it was flushed: within a second of leaving).
fn queue_call_row(
    left: &pbx::office::queues::Left,
    now: SystemTime,
) -> store::queues::QueueCallRow {
    let left_at = i64::try_from(unix_ms(now)).unwrap_or(i64::MAX);
    let wait_ms = i64::try_from(left.waited.as_millis()).unwrap_or(i64::MAX);
    store::queues::QueueCallRow {
        queue: left.queue.clone(),
        caller: left.caller.clone(),
        entered_at: left_at.saturating_sub(wait_ms),
        left_at,
        outcome: left.outcome.as_str().to_string(),
        agent: left.agent.clone(),
        wait_ms,
    }
}

fn cdr_row(r: &CallRecord) -> store::CdrRow {
    let ms = |t: SystemTime| i64::try_from(unix_ms(t)).unwrap_or(i64::MAX);
    store::CdrRow {
        call_id: r.call_id.clone(),
        caller: r.caller.clone(),
        callee: r.callee.clone(),
        started_at: ms(r.started_at),
        answered_at: r.answered_at.map(ms),
        ended_at: ms(r.ended_at),
        duration_secs: i64::try_from(r.duration_secs()).unwrap_or(i64::MAX),
        disposition: r.disposition.as_str().to_string(),
        hung_up_by: r.hung_up_by.as_str().to_string(),
        reason: r.reason.clone(),
    }
}
