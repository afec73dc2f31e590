//! Console sessions: a random id in a `__Host-` cookie (HttpOnly, Secure, SameSite=Strict, Path=/), held in
//! memory only (a restart logs everyone out, which is the safe direction), ended by logout or after the idle
//! timeout. Each session carries its CSRF token, which every form echoes back.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use store::admin::Role;

/// The session cookie. `__Host-` makes browsers refuse it unless Secure, Path=/ and without Domain.
pub const COOKIE: &str = "__Host-palisade";
/// Sessions at once; beyond it the least recently used is ended.
const MAX_SESSIONS: usize = 1000;

#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub account: String,
    pub role: Role,
    pub csrf: String,
    /// True until the account has a second factor: the session may only enrol one.
    pub needs_totp: bool,
    /// A secret offered for enrolment, confirmed by a code before it is stored.
    pub pending_totp: Option<String>,
    pub last_seen: Instant,
    /// The account's password hash at login: a new password (from the CLI too) ends the session.
    pub credential: String,
}

#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    /// The last TOTP time step used per account: a code is good for one login (RFC 6238 section 5.2).
    totp_steps: Mutex<HashMap<String, u64>>,
}

/// 256 random bits, base64url.
pub fn random_id() -> String {
    let mut bytes = [0u8; 32];
    rand::Rng::fill(&mut rand::rngs::OsRng, &mut bytes[..]);
    data_encoding::BASE64URL_NOPAD.encode(&bytes)
}

impl Sessions {
    /// Starts a session; returns it.
    pub fn create(&self, account: &str, role: Role, needs_totp: bool, credential: &str) -> Session {
        let s = Session {
            credential: credential.to_string(),
            id: random_id(),
            account: account.to_string(),
            role,
            csrf: random_id(),
            needs_totp,
            pending_totp: None,
            last_seen: Instant::now(),
        };
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .values()
                .min_by_key(|s| s.last_seen)
                .map(|s| s.id.clone())
        {
            map.remove(&oldest);
        }
        map.insert(s.id.clone(), s.clone());
        s
    }

    /// The live session named by the request's cookie, touched; `None` if absent, unknown or idle too long.
    pub fn from_headers(&self, headers: &HeaderMap, idle: Duration) -> Option<Session> {
        let id = cookie(headers, COOKIE)?;
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let s = map.get_mut(&id)?;
        if s.last_seen.elapsed() > idle {
            map.remove(&id);
            return None;
        }
        s.last_seen = Instant::now();
        Some(s.clone())
    }

    pub fn update(&self, id: &str, f: impl FnOnce(&mut Session)) {
        if let Some(s) = self
            .map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(id)
        {
            f(s);
        }
    }

    /// Records that `account` used the code of time `step`; false if that step (or a later one) was used before.
    pub fn use_totp_step(&self, account: &str, step: u64) -> bool {
        let mut used = self.totp_steps.lock().unwrap_or_else(|e| e.into_inner());
        if used.get(account).is_some_and(|last| *last >= step) {
            return false;
        }
        if used.len() >= MAX_SESSIONS {
            used.clear();
        }
        used.insert(account.to_string(), step);
        true
    }

    pub fn remove(&self, id: &str) {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// Ends every session of `account` (removed, or its password changed).
    pub fn remove_account(&self, account: &str) {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, s| s.account != account);
    }

    /// Applies the accounts as stored (read every two seconds, so CLI changes reach the running console): ends the
    /// sessions of removed accounts and of accounts with a new password, and follows role changes.
    pub fn sync_accounts(&self, accounts: &[store::admin::AdminAccount]) {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, s| match accounts.iter().find(|a| a.name == s.account) {
                Some(a) if a.password_hash == s.credential => {
                    s.role = a.role;
                    true
                }
                _ => false,
            });
    }

    /// Ends sessions idle longer than `idle`.
    pub fn expire(&self, idle: Duration) {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, s| s.last_seen.elapsed() <= idle);
    }
}

/// The value of cookie `name` in the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// The Set-Cookie value starting a session.
pub fn set_cookie(name: &str, value: &str) -> String {
    format!("{name}={value}; Path=/; Secure; HttpOnly; SameSite=Strict")
}

/// The Set-Cookie value ending one.
pub fn clear_cookie(name: &str) -> String {
    format!("{name}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// Compares two secrets in constant time.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::COOKIE,
            "a=1; __Host-palisade=xyz; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h, COOKIE).as_deref(), Some("xyz"));
        assert_eq!(cookie(&h, "c"), None);
    }

    #[test]
    fn idle_sessions_end() {
        let s = Sessions::default();
        let a = s.create("ann", Role::Admin, false, "h1");
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::COOKIE,
            format!("{COOKIE}={}", a.id).parse().unwrap(),
        );
        assert!(s.from_headers(&h, Duration::from_secs(60)).is_some());
        assert!(s.from_headers(&h, Duration::ZERO).is_none());
        assert!(s.from_headers(&h, Duration::from_secs(60)).is_none());
    }

    #[test]
    fn removed_accounts_and_new_passwords_end_sessions() {
        let s = Sessions::default();
        let ann = s.create("ann", Role::Admin, false, "h1");
        let bob = s.create("bob", Role::Admin, false, "h2");
        let cy = s.create("cy", Role::Admin, false, "h3");
        let account = |name: &str, hash: &str, role| store::admin::AdminAccount {
            name: name.into(),
            password_hash: hash.into(),
            role,
            totp_secret: None,
            created_at: 0,
            updated_at: 0,
        };
        s.sync_accounts(&[
            account("ann", "h1", Role::Viewer),
            account("bob", "new", Role::Admin),
        ]);
        let map = s.map.lock().unwrap();
        assert_eq!(map.get(&ann.id).map(|x| x.role), Some(Role::Viewer));
        assert!(!map.contains_key(&bob.id));
        assert!(!map.contains_key(&cy.id));
    }

    #[test]
    fn set_cookie_has_every_flag() {
        let c = set_cookie(COOKIE, "v");
        for flag in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(c.contains(flag), "{c}");
        }
    }
}
