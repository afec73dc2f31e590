//! Office telephony features built on calls: ring groups, feature codes (pickup, park) and call queues. Pure data and
//! decisions; the endpoint (`endpoint/groups.rs`) applies them to live registrations and calls.

pub mod features;
pub mod groups;
pub mod queues;

pub use features::{Feature, FeatureCodes};
pub use groups::{Fallback, RingGroup, RingGroups, Strategy};
pub use queues::{QueueConfig, QueueStrategy, Queues};
