//! The console's own anti-hacking: failed logins and failed API authentications counted per source address, and
//! the bans they lead to. Separate from the SIP guard and its blacklist (docs/architecture.md, principle 11): a phone's bad
//! password never locks the administrator out of the console, and a console ban never silences a phone.
//!
//! [`FailureCounter`] is pure (time is an argument); [`ConsoleGuard`] wraps it with the ban list, which lives in
//! the database (bans survive restarts, `palisade admin unban` lifts them) and is re-read every two seconds.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use pbx::model::{ConsoleAuthReason, SecurityEventKind};
use store::Db;
use store::admin::{ADMIN_BAN_SECONDS, ADMIN_FAILURES_BEFORE_BAN, ADMIN_SESSION_IDLE_MINUTES};

use super::State;

/// Sources whose failures are tracked at once; the stalest is forgotten to make room.
const MAX_TRACKED: usize = 10_000;
/// Failures older than this are forgotten.
const FAILURE_WINDOW_MS: i64 = 15 * 60 * 1000;
/// How often bans and settings are re-read from the database.
const REFRESH: Duration = Duration::from_secs(2);
/// How often batched failure events are written.
const FLUSH: Duration = Duration::from_millis(500);
/// Batched failure events held at most between two flushes; more are summarised in one event.
const MAX_PENDING_EVENTS: usize = 5_000;

/// Failure events not yet written, and how many did not fit.
#[derive(Debug, Default)]
struct PendingEvents {
    events: Vec<store::SecurityEvent>,
    dropped: u64,
}

/// Failures per source within [`FAILURE_WINDOW_MS`], bounded to [`MAX_TRACKED`] sources.
#[derive(Debug, Default)]
pub struct FailureCounter {
    by_source: HashMap<IpAddr, (u32, i64)>,
}

impl FailureCounter {
    /// Counts a failure at `now`; true when the source has reached `threshold` (and is forgotten: it is banned).
    pub fn fail(&mut self, ip: IpAddr, now: i64, threshold: u32) -> bool {
        if !self.by_source.contains_key(&ip) && self.by_source.len() >= MAX_TRACKED {
            self.by_source
                .retain(|_, (_, last)| now - *last < FAILURE_WINDOW_MS);
            if self.by_source.len() >= MAX_TRACKED
                && let Some(oldest) = self
                    .by_source
                    .iter()
                    .min_by_key(|(_, (_, last))| *last)
                    .map(|(ip, _)| *ip)
            {
                self.by_source.remove(&oldest);
            }
        }
        let entry = self.by_source.entry(ip).or_insert((0, now));
        if now - entry.1 >= FAILURE_WINDOW_MS {
            *entry = (0, now);
        }
        entry.0 += 1;
        entry.1 = now;
        if entry.0 >= threshold {
            self.by_source.remove(&ip);
            return true;
        }
        false
    }

    /// A successful login forgives the source's failures.
    pub fn succeed(&mut self, ip: IpAddr) {
        self.by_source.remove(&ip);
    }

    pub fn tracked(&self) -> usize {
        self.by_source.len()
    }
}

/// The console settings in force.
#[derive(Debug, Clone, Copy)]
pub struct GuardSettings {
    pub failures_before_ban: u32,
    pub ban_seconds: u64,
    pub idle: Duration,
}

impl Default for GuardSettings {
    fn default() -> Self {
        GuardSettings {
            failures_before_ban: ADMIN_FAILURES_BEFORE_BAN.default as u32,
            ban_seconds: ADMIN_BAN_SECONDS.default,
            idle: Duration::from_secs(ADMIN_SESSION_IDLE_MINUTES.default * 60),
        }
    }
}

pub struct ConsoleGuard {
    failures: Mutex<FailureCounter>,
    /// Failure events waiting for [`flush_loop`] (bounded: beyond [`MAX_PENDING_EVENTS`] they are only counted).
    pending: Mutex<PendingEvents>,
    /// Banned address → until (unix ms).
    bans: RwLock<HashMap<IpAddr, i64>>,
    settings: RwLock<GuardSettings>,
}

impl ConsoleGuard {
    pub async fn load(db: &Db) -> anyhow::Result<ConsoleGuard> {
        let g = ConsoleGuard {
            failures: Mutex::new(FailureCounter::default()),
            pending: Mutex::new(PendingEvents::default()),
            bans: RwLock::new(HashMap::new()),
            settings: RwLock::new(GuardSettings::default()),
        };
        g.refresh(db).await?;
        Ok(g)
    }

    pub fn settings(&self) -> GuardSettings {
        *self.settings.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn is_banned(&self, ip: IpAddr) -> bool {
        let now = crate::admin::time::now_ms();
        self.bans
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&ip)
            .is_some_and(|until| *until > now)
    }

    /// Counts an authentication failure from `ip` (`what` says which: a wrong password, an unknown token…) and
    /// bans the source when it reaches `admin_failures_before_ban`. Both are security events.
    pub async fn fail(&self, db: &Db, ip: IpAddr, user: Option<&str>, what: ConsoleAuthReason) {
        self.fail_as(
            db,
            ip,
            user,
            SecurityEventKind::ConsoleAuthFailure,
            what.as_str(),
            None,
        )
        .await
    }

    /// [`Self::fail`] recorded as a security event of `kind` (e.g. a refused provisioning fetch): the same count
    /// toward the same console ban.
    pub async fn fail_as(
        &self,
        db: &Db,
        ip: IpAddr,
        user: Option<&str>,
        kind: SecurityEventKind,
        what: &str,
        detail: Option<String>,
    ) {
        let now = crate::admin::time::now_ms();
        let settings = self.settings();
        let ban = self
            .failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .fail(ip, now, settings.failures_before_ban);
        let _ = db
            .append_event(&store::SecurityEvent {
                at: now,
                kind: kind.as_str().into(),
                reason: what.into(),
                source: ip.to_string(),
                user: user.map(str::to_string),
                detail,
            })
            .await;
        if ban {
            self.ban(db, ip, user, now, settings).await;
        }
    }

    /// Bans `ip` (it reached the failure threshold): in memory at once, then in the database with an event.
    async fn ban(
        &self,
        db: &Db,
        ip: IpAddr,
        user: Option<&str>,
        now: i64,
        settings: GuardSettings,
    ) {
        let until = now.saturating_add((settings.ban_seconds as i64).saturating_mul(1000));
        let reason = format!(
            "{} failed console logins, API authentications or refused provisioning fetches",
            settings.failures_before_ban
        );
        self.bans
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(ip, until);
        if let Err(e) = db.ban_admin_source(&ip.to_string(), until, &reason).await {
            tracing::error!(error = %e, %ip, "cannot record the console ban; it holds until restart");
        }
        let _ = db
            .append_event(&store::SecurityEvent {
                at: now,
                kind: SecurityEventKind::ConsoleBan.as_str().into(),
                reason: guard::BanReason::AuthFailures.as_str().into(),
                source: ip.to_string(),
                user: user.map(str::to_string),
                detail: Some(reason),
            })
            .await;
        tracing::warn!(%ip, seconds = settings.ban_seconds, "source banned from the web console");
    }

    /// [`Self::fail_as`] for failures that can come by the thousand (refused provisioning fetches): counted at
    /// once, the event written by [`flush_loop`] within half a second with others in one transaction, so a
    /// scanner costs one durable write per batch instead of one per request. The ban itself is written at once.
    pub async fn fail_batched(
        &self,
        db: &Db,
        ip: IpAddr,
        kind: SecurityEventKind,
        what: &str,
        detail: Option<String>,
    ) {
        let now = crate::admin::time::now_ms();
        let settings = self.settings();
        let ban = self
            .failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .fail(ip, now, settings.failures_before_ban);
        {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            if p.events.len() < MAX_PENDING_EVENTS {
                p.events.push(store::SecurityEvent {
                    at: now,
                    kind: kind.as_str().into(),
                    reason: what.into(),
                    source: ip.to_string(),
                    user: None,
                    detail,
                });
            } else {
                p.dropped += 1;
            }
        }
        if ban {
            self.ban(db, ip, None, now, settings).await;
        }
    }

    /// Writes the batched failure events.
    pub async fn flush(&self, db: &Db) {
        let (mut events, dropped) = {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            (
                std::mem::take(&mut p.events),
                std::mem::take(&mut p.dropped),
            )
        };
        if dropped > 0 {
            events.push(store::SecurityEvent {
                at: crate::admin::time::now_ms(),
                kind: SecurityEventKind::ConsoleEventsDropped.as_str().into(),
                reason: "too_many".into(),
                source: "-".into(),
                user: None,
                detail: Some(format!(
                    "{dropped} more failure events within half a second were counted but not stored"
                )),
            });
        }
        if events.is_empty() {
            return;
        }
        if let Err(e) = db.append_events(&events).await {
            tracing::warn!(error = %e, n = events.len(), "cannot store console failure events");
        }
    }

    pub fn succeed(&self, ip: IpAddr) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .succeed(ip);
    }

    async fn refresh(&self, db: &Db) -> anyhow::Result<()> {
        let now = crate::admin::time::now_ms();
        let bans: HashMap<IpAddr, i64> = db
            .admin_bans(now)
            .await?
            .into_iter()
            .filter_map(|(ip, until, _)| Some((ip.parse().ok()?, until)))
            .collect();
        *self.bans.write().unwrap_or_else(|e| e.into_inner()) = bans;
        let settings = GuardSettings {
            failures_before_ban: db.admin_setting(&ADMIN_FAILURES_BEFORE_BAN).await? as u32,
            ban_seconds: db.admin_setting(&ADMIN_BAN_SECONDS).await?,
            idle: Duration::from_secs(db.admin_setting(&ADMIN_SESSION_IDLE_MINUTES).await? * 60),
        };
        *self.settings.write().unwrap_or_else(|e| e.into_inner()) = settings;
        Ok(())
    }
}

/// Writes batched failure events every half second.
pub async fn flush_loop(state: State) {
    loop {
        tokio::time::sleep(FLUSH).await;
        state.guard.flush(&state.db).await;
    }
}

/// Re-reads bans and settings, so `palisade admin unban` and `palisade security set admin_…` apply.
pub async fn refresh_loop(state: State) {
    loop {
        tokio::time::sleep(REFRESH).await;
        if let Err(e) = state.guard.refresh(&state.db).await {
            tracing::warn!(error = %e, "cannot re-read the console bans and settings");
        }
        state.sessions.expire(state.guard.settings().idle);
        match state.db.list_admins().await {
            Ok(accounts) => state.sessions.sync_accounts(&accounts),
            Err(e) => tracing::warn!(error = %e, "cannot re-read the console accounts"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_fifth_failure_bans_and_a_success_forgives() {
        let mut c = FailureCounter::default();
        for i in 0..4 {
            assert!(!c.fail(ip("10.0.0.1"), i, 5));
        }
        assert!(c.fail(ip("10.0.0.1"), 5, 5));
        for i in 0..4 {
            assert!(!c.fail(ip("10.0.0.2"), i, 5));
        }
        c.succeed(ip("10.0.0.2"));
        assert!(!c.fail(ip("10.0.0.2"), 10, 5));
    }

    #[test]
    fn old_failures_are_forgotten() {
        let mut c = FailureCounter::default();
        for i in 0..4 {
            assert!(!c.fail(ip("10.0.0.1"), i, 5));
        }
        assert!(!c.fail(ip("10.0.0.1"), 3 + FAILURE_WINDOW_MS, 5));
    }

    #[tokio::test]
    async fn batched_failures_ban_at_once_and_are_written_by_the_flush() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open_in(dir.path()).await.unwrap();
        let g = ConsoleGuard::load(&db).await.unwrap();
        let threshold = g.settings().failures_before_ban;
        for _ in 0..threshold {
            assert!(!g.is_banned(ip("10.0.0.9")));
            g.fail_batched(
                &db,
                ip("10.0.0.9"),
                SecurityEventKind::ProvisioningRefused,
                "unknown_token",
                None,
            )
            .await;
        }
        assert!(
            g.is_banned(ip("10.0.0.9")),
            "banned at the threshold, before any flush"
        );
        let count = |events: &[store::StoredEvent]| {
            events
                .iter()
                .filter(|e| e.kind == "provisioning_refused")
                .count()
        };
        let before = db.list_events(None, None, 100).await.unwrap();
        assert_eq!(count(&before), 0, "failure events wait for the flush");
        g.flush(&db).await;
        let after = db.list_events(None, None, 100).await.unwrap();
        assert_eq!(count(&after), threshold as usize);
    }

    #[test]
    fn the_table_stays_bounded() {
        let mut c = FailureCounter::default();
        for i in 0..(MAX_TRACKED as u32 + 100) {
            let a = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            c.fail(a, i64::from(i), 5);
        }
        assert!(c.tracked() <= MAX_TRACKED);
    }
}
