//! Weekly office hours in a time zone, with holidays: when "no outbound calls outside office hours" applies.

use std::collections::BTreeSet;
use std::time::SystemTime;

use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;

#[derive(Debug, Clone)]
pub struct OfficeHours {
    tz: TimeZone,
    /// Open intervals per weekday (Monday first), in minutes after midnight, end exclusive.
    weekly: [Vec<(u16, u16)>; 7],
    holidays: BTreeSet<Date>,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl OfficeHours {
    /// `tz`: an IANA zone such as "Europe/Berlin". `weekly`: `;`-separated entries `DAYS HH:MM-HH:MM`, where
    /// DAYS is a day or a range (`mon-fri`, `sat`). `holidays`: ISO dates. Errors say what to fix.
    pub fn parse(tz: &str, weekly: &str, holidays: &[&str]) -> Result<Self, String> {
        let tz = TimeZone::get(tz).map_err(|_| {
            format!("unknown time zone `{tz}` (use an IANA name such as Europe/Berlin)")
        })?;
        let mut days: [Vec<(u16, u16)>; 7] = Default::default();
        for entry in weekly.split(';').map(str::trim).filter(|e| !e.is_empty()) {
            let bad = || {
                format!(
                    "office hours entry `{entry}`: expected DAYS HH:MM-HH:MM, e.g. mon-fri 08:00-18:00"
                )
            };
            let (day_part, time_part) = entry.split_once(char::is_whitespace).ok_or_else(bad)?;
            let day = |d: &str| DAYS.iter().position(|x| x.eq_ignore_ascii_case(d.trim()));
            let (first, last) = match day_part.split_once('-') {
                Some((a, b)) => (day(a).ok_or_else(bad)?, day(b).ok_or_else(bad)?),
                None => {
                    let d = day(day_part).ok_or_else(bad)?;
                    (d, d)
                }
            };
            let (from, to) = time_part.trim().split_once('-').ok_or_else(bad)?;
            let (from, to) = (minutes(from).ok_or_else(bad)?, minutes(to).ok_or_else(bad)?);
            if to <= from {
                return Err(bad());
            }
            let mut d = first;
            loop {
                days[d].push((from, to));
                if d == last {
                    break;
                }
                d = (d + 1) % 7;
            }
        }
        let holidays = holidays
            .iter()
            .map(|h| {
                h.trim()
                    .parse::<Date>()
                    .map_err(|_| format!("holiday `{h}`: expected a date such as 2026-12-25"))
            })
            .collect::<Result<_, _>>()?;
        Ok(OfficeHours {
            tz,
            weekly: days,
            holidays,
        })
    }

    /// Whether the office is open at `now`.
    pub fn is_open(&self, now: SystemTime) -> bool {
        let Ok(ts) = jiff::Timestamp::try_from(now) else {
            return false;
        };
        let local = ts.to_zoned_datetime(self.tz.clone());
        if self.holidays.contains(&local.date()) {
            return false;
        }
        let day = match local.weekday() {
            Weekday::Monday => 0,
            Weekday::Tuesday => 1,
            Weekday::Wednesday => 2,
            Weekday::Thursday => 3,
            Weekday::Friday => 4,
            Weekday::Saturday => 5,
            Weekday::Sunday => 6,
        };
        let minute =
            u16::try_from(i32::from(local.hour()) * 60 + i32::from(local.minute())).unwrap_or(0);
        self.weekly[day]
            .iter()
            .any(|&(from, to)| (from..to).contains(&minute))
    }
}

fn minutes(hhmm: &str) -> Option<u16> {
    let (h, m) = hhmm.trim().split_once(':')?;
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 24 && m < 60 && h * 60 + m <= 24 * 60).then_some(h * 60 + m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rfc3339: &str) -> SystemTime {
        let ts = rfc3339.parse::<jiff::Timestamp>().unwrap();
        std::time::UNIX_EPOCH
            + std::time::Duration::from_secs(u64::try_from(ts.as_second()).unwrap())
    }

    #[test]
    fn weekly_hours_in_the_office_time_zone() {
        let h = OfficeHours::parse(
            "Europe/Berlin",
            "mon-fri 08:00-18:00; sat 09:00-12:00",
            &["2026-12-25"],
        )
        .unwrap();
        // Friday 2026-11-27 07:59 and 08:00 in Berlin (UTC+1)
        assert!(!h.is_open(at("2026-11-27T06:59:00Z")));
        assert!(h.is_open(at("2026-11-27T07:00:00Z")));
        assert!(h.is_open(at("2026-11-27T16:59:00Z")));
        assert!(!h.is_open(at("2026-11-27T17:00:00Z")));
        // Saturday morning open, Sunday closed
        assert!(h.is_open(at("2026-11-28T09:30:00Z")));
        assert!(!h.is_open(at("2026-11-29T09:30:00Z")));
        // Christmas is a Friday, closed
        assert!(!h.is_open(at("2026-12-25T10:00:00Z")));
        // summer time: 08:00 Berlin is 06:00 UTC
        assert!(h.is_open(at("2026-06-01T06:00:00Z")));
    }

    #[test]
    fn errors_say_what_to_fix() {
        assert!(
            OfficeHours::parse("Mars/Olympus", "mon 08:00-09:00", &[])
                .unwrap_err()
                .contains("IANA")
        );
        assert!(
            OfficeHours::parse("UTC", "monday 8-9", &[])
                .unwrap_err()
                .contains("mon-fri 08:00-18:00")
        );
        assert!(OfficeHours::parse("UTC", "mon 18:00-08:00", &[]).is_err());
        assert!(
            OfficeHours::parse("UTC", "mon 08:00-09:00", &["25.12.2026"])
                .unwrap_err()
                .contains("2026-12-25")
        );
    }
}
