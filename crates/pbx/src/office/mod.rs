//! Office telephony applications answered by Palisade itself, sans-IO: conference rooms (the PIN dialogue at
//! the door, [`conference`]). The numbers they answer on are configuration ([`OfficeNumbers`], from the store);
//! the audio (mixing, playing) is the edge's, with the pure parts in the `media` crate.

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

/// The numbers Palisade's own applications answer on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OfficeNumbers {
    pub conferences: HashMap<String, Room>,
}

impl OfficeNumbers {
    pub fn conference(&self, number: &str) -> Option<&Room> {
        self.conferences.get(number)
    }
}
