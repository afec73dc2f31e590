//! Office telephony applications answered by Palisade itself, sans-IO: conference rooms (the PIN dialogue at
//! the door, [`conference`]). The numbers they answer on are configuration ([`OfficeNumbers`], from the store);
//! the audio (mixing, playing) is the edge's, with the pure parts in the `media` crate.

pub mod attendant;
pub mod conference;

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

    /// Which attendant answers for `entry` now: its after-hours one when the office is closed (`open` false) and
    /// that one exists.
    pub fn effective_attendant(&self, entry: &AttendantEntry, open: bool) -> String {
        match &entry.after_hours {
            Some(other) if !open && self.attendants.contains_key(other) => other.clone(),
            _ => entry.name.clone(),
        }
    }
}
