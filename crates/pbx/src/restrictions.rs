//! The per-extension restrictions and the call policy applied to a running PBX (hardening steps 3 and 4): which
//! networks count as local, who may call what, and PIN unlocks in progress. The decisions themselves are the pure
//! functions of [`crate::policy`]; this holds the state they need between requests.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use ipnet::IpNet;

use crate::policy::{self, CallerRestrictions, PolicySettings, Refusal, Route};

pub struct Restrictions {
    settings: PolicySettings,
    /// Why external calls cannot be placed at all yet (e.g. no home country configured), if so.
    not_configured: Option<String>,
    local_networks: Vec<IpNet>,
    pin_unlock: Duration,
    /// Extensions whose PIN protection is lifted, until when.
    unlocked: HashMap<String, SystemTime>,
}

impl Default for Restrictions {
    fn default() -> Self {
        Restrictions {
            settings: PolicySettings::new(policy::NumberPlan {
                country_code: String::new(),
                international_prefix: "00".into(),
                national_prefix: "0".into(),
            }),
            not_configured: Some(
                "no home country configured (palisade policy set country_code CODE)".into(),
            ),
            local_networks: [
                "10.0.0.0/8",
                "172.16.0.0/12",
                "192.168.0.0/16",
                "127.0.0.0/8",
                "::1/128",
                "fc00::/7",
            ]
            .iter()
            .filter_map(|n| n.parse().ok())
            .collect(),
            pin_unlock: Duration::from_secs(3600),
            unlocked: HashMap::new(),
        }
    }
}

impl Restrictions {
    pub fn new(
        settings: PolicySettings,
        not_configured: Option<String>,
        local_networks: Vec<IpNet>,
        pin_unlock: Duration,
    ) -> Self {
        Restrictions {
            settings,
            not_configured,
            local_networks,
            pin_unlock,
            unlocked: HashMap::new(),
        }
    }

    /// New settings from an admin change; PIN unlocks in progress are kept.
    pub fn update(&mut self, other: Restrictions) {
        let unlocked = std::mem::take(&mut self.unlocked);
        *self = other;
        self.unlocked = unlocked;
    }

    /// Whether `ip` is on one of the local networks (LAN-only registration).
    pub fn is_local(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.local_networks.iter().any(|n| n.contains(&ip))
    }

    /// Where `dialed` from `caller` goes now. An extension restricted to office hours is refused external calls
    /// when no office hours are configured (deny by default).
    pub fn route(
        &self,
        caller: &CallerRestrictions,
        dialed: &str,
        is_extension: impl Fn(&str) -> bool,
        now: SystemTime,
    ) -> Route {
        let mut caller = caller.clone();
        caller.unlocked_until = self.unlocked.get(&caller.number).copied();
        let route = policy::route(&self.settings, &caller, dialed, is_extension, now);
        // The pure check lets calls through when no hours are set; here the office is closed then, and that
        // refusal comes before the PIN check, as when hours are set.
        let closed = caller.office_hours_only && self.settings.office_hours.is_none();
        match route {
            Route::External { .. } | Route::Refused(Refusal::PinProtected) if closed => {
                Route::Refused(Refusal::OutsideOfficeHours)
            }
            other => other,
        }
    }

    /// Whether `number` is an emergency number or the voicemail access number.
    pub fn is_service_number(&self, number: &str) -> bool {
        let s = &self.settings;
        s.emergency_numbers.iter().any(|e| e == number)
            || (!s.voicemail_number.is_empty() && s.voicemail_number == number)
    }

    /// Whether the office is open at `now` (its weekly hours and holidays); always open without configured hours.
    pub fn office_open(&self, now: SystemTime) -> bool {
        self.settings
            .office_hours
            .as_ref()
            .is_none_or(|h| h.is_open(now))
    }

    /// Why external calls are impossible, if they are.
    pub fn not_configured(&self) -> Option<&str> {
        self.not_configured.as_deref()
    }

    /// Lifts `number`'s PIN protection for the configured time.
    pub fn unlock(&mut self, number: &str, now: SystemTime) -> SystemTime {
        let until = now + self.pin_unlock;
        self.unlocked.insert(number.to_string(), until);
        self.unlocked.retain(|_, t| *t > now);
        until
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_networks_and_office_hours_fail_closed() {
        let r = Restrictions::default();
        assert!(r.is_local("192.168.1.20".parse().unwrap()));
        assert!(r.is_local("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!r.is_local("203.0.113.9".parse().unwrap()));
        let mut settings = PolicySettings::new(policy::NumberPlan {
            country_code: "49".into(),
            international_prefix: "00".into(),
            national_prefix: "0".into(),
        });
        settings.rules.push(policy::OutboundRule {
            name: "out".into(),
            prefix: "0".into(),
            min_len: 2,
            max_len: 20,
            extensions: vec![],
            strip: 0,
            prepend: String::new(),
            trunks: vec!["t".into()],
        });
        let r = Restrictions::new(settings, None, vec![], Duration::from_secs(60));
        let caller = CallerRestrictions {
            number: "201".into(),
            office_hours_only: true,
            ..Default::default()
        };
        assert_eq!(
            r.route(&caller, "0301234567", |_| false, SystemTime::UNIX_EPOCH),
            Route::Refused(Refusal::OutsideOfficeHours)
        );
    }

    #[test]
    fn pin_unlock_lasts_the_configured_time() {
        let mut settings = PolicySettings::new(policy::NumberPlan {
            country_code: "49".into(),
            international_prefix: "00".into(),
            national_prefix: "0".into(),
        });
        settings.rules.push(policy::OutboundRule {
            name: "out".into(),
            prefix: "0".into(),
            min_len: 2,
            max_len: 20,
            extensions: vec![],
            strip: 0,
            prepend: String::new(),
            trunks: vec!["t".into()],
        });
        let mut r = Restrictions::new(settings, None, vec![], Duration::from_secs(60));
        let caller = CallerRestrictions {
            number: "201".into(),
            pin_protect: true,
            ..Default::default()
        };
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        assert_eq!(
            r.route(&caller, "0301234567", |_| false, t0),
            Route::Refused(Refusal::PinProtected)
        );
        r.unlock("201", t0);
        assert!(matches!(
            r.route(&caller, "0301234567", |_| false, t0),
            Route::External { .. }
        ));
        assert_eq!(
            r.route(
                &caller,
                "0301234567",
                |_| false,
                t0 + Duration::from_secs(60)
            ),
            Route::Refused(Refusal::PinProtected)
        );
    }
}
