//! Office telephony features built on calls, sans-IO: ring groups, feature codes (pickup, park) and call queues
//! (the endpoint's `endpoint/groups.rs`, `features.rs`, `queues.rs` apply them to live registrations and calls),
//! and the applications answered by Palisade itself: conference rooms (the PIN dialogue at the door,
//! [`conference`]) and auto attendants ([`attendant`]). The numbers they answer on are configuration
//! ([`OfficeNumbers`], from the store); the audio (mixing, playing) is the edge's, with the pure parts in the
//! `media` crate.

pub mod attendant;
pub mod conference;
pub mod features;
pub mod groups;
pub mod queues;

pub use features::{Feature, FeatureCodes};
pub use groups::{Fallback, RingGroup, RingGroups, Strategy};
pub use queues::{QueueConfig, QueueStrategy, Queues};

use std::collections::HashMap;

/// A conference room as the endpoint routes to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Room {
    pub number: String,
    /// Whether a PIN is asked for at the door.
    pub has_pin: bool,
    pub max_participants: u32,
}

/// An auto attendant as the endpoint routes to it (its menu is read by the edge when a call starts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttendantEntry {
    pub name: String,
    /// The internal number extensions dial it on, if any.
    pub number: Option<String>,
    /// The attendant that answers outside office hours and on holidays instead, if any.
    pub after_hours: Option<String>,
}

/// The numbers Palisade's own applications answer on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OfficeNumbers {
    pub conferences: HashMap<String, Room>,
    /// By name.
    pub attendants: HashMap<String, AttendantEntry>,
    /// Inbound numbers (DIDs) answered by an attendant: number → (trunk, attendant name).
    pub did_attendants: HashMap<String, (String, String)>,
    /// Inbound numbers leading to a ring group or a queue: number → (trunk, `Target::Group` or `Target::Queue`).
    pub did_targets: HashMap<String, (String, attendant::Target)>,
}

impl OfficeNumbers {
    pub fn conference(&self, number: &str) -> Option<&Room> {
        self.conferences.get(number)
    }

    /// The attendant extensions reach on `number`.
    pub fn attendant_by_number(&self, number: &str) -> Option<&AttendantEntry> {
        self.attendants
            .values()
            .find(|a| a.number.as_deref() == Some(number))
    }

    /// The attendant answering DID `number` when it comes in through `trunk`.
    pub fn did_attendant(&self, trunk: &str, number: &str) -> Option<&AttendantEntry> {
        let number = number.trim_start_matches('+');
        self.did_attendants
            .iter()
            .find(|(did, (t, _))| did.trim_start_matches('+') == number && t == trunk)
            .and_then(|(_, (_, name))| self.attendants.get(name))
    }

    /// The ring group or queue DID `number` leads to when it comes in through `trunk`.
    pub fn did_target(&self, trunk: &str, number: &str) -> Option<&attendant::Target> {
        let number = number.trim_start_matches('+');
        self.did_targets
            .iter()
            .find(|(did, (t, _))| did.trim_start_matches('+') == number && t == trunk)
            .map(|(_, (_, target))| target)
    }

    /// Which attendant answers for `entry` now: its after-hours one when the office is closed (`open` false) and
    /// that one exists.
    pub fn effective_attendant(&self, entry: &AttendantEntry, open: bool) -> String {
        match &entry.after_hours {
            Some(other) if !open && self.attendants.contains_key(other) => other.clone(),
            _ => entry.name.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbers() -> OfficeNumbers {
        let entry = |name: &str, number: Option<&str>, after: Option<&str>| AttendantEntry {
            name: name.into(),
            number: number.map(Into::into),
            after_hours: after.map(Into::into),
        };
        OfficeNumbers {
            conferences: HashMap::new(),
            attendants: [
                (
                    "main".to_string(),
                    entry("main", Some("800"), Some("night")),
                ),
                ("night".to_string(), entry("night", None, None)),
                ("lost".to_string(), entry("lost", None, Some("gone"))),
            ]
            .into_iter()
            .collect(),
            did_attendants: [(
                "+4930555".to_string(),
                ("carrier".to_string(), "main".to_string()),
            )]
            .into_iter()
            .collect(),
            did_targets: [(
                "4930600".to_string(),
                (
                    "carrier".to_string(),
                    attendant::Target::Group("600".into()),
                ),
            )]
            .into_iter()
            .collect(),
        }
    }

    #[test]
    fn a_did_leads_to_its_group_only_from_its_trunk() {
        let o = numbers();
        assert_eq!(
            o.did_target("carrier", "+4930600"),
            Some(&attendant::Target::Group("600".into()))
        );
        assert!(o.did_target("other", "4930600").is_none());
        assert!(o.did_target("carrier", "4930555").is_none());
    }

    #[test]
    fn after_hours_attendant_answers_when_the_office_is_closed() {
        let o = numbers();
        let main = o.attendant_by_number("800").expect("main on 800");
        assert_eq!(o.effective_attendant(main, true), "main");
        assert_eq!(o.effective_attendant(main, false), "night");
        // An after-hours attendant that does not exist (removed) leaves the day one answering.
        let lost = &o.attendants["lost"];
        assert_eq!(o.effective_attendant(lost, false), "lost");
        assert!(o.attendant_by_number("801").is_none());
    }

    #[test]
    fn a_did_leads_to_its_attendant_only_through_its_trunk() {
        let o = numbers();
        assert_eq!(
            o.did_attendant("carrier", "4930555")
                .map(|a| a.name.as_str()),
            Some("main")
        );
        assert_eq!(
            o.did_attendant("carrier", "+4930555")
                .map(|a| a.name.as_str()),
            Some("main")
        );
        assert!(
            o.did_attendant("other", "4930555").is_none(),
            "another trunk's caller"
        );
        assert!(o.did_attendant("carrier", "4930556").is_none());
    }
}
