//! Palisade's anti-hacking guard (hardening steps 7 and 8): a verdict for every packet before it is parsed,
//! failed-authentication, unanswered-challenge and flood counters per source, and the IP allow/block lists.
//! Sans-IO and keyed on the transport source address only (docs/architecture.md, principles 1 and 7).
#![forbid(unsafe_code)]

pub mod config;
pub mod guard;
pub mod lists;
pub mod shared;

pub use config::{ConfigError, GuardConfig};
pub use guard::{Guard, GuardEvent, Verdict};
pub use lists::{Action, BanReason, IpLists, Origin, Rule, parse_net};
pub use shared::Counts as SharedCounts;
