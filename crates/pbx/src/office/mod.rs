//! Office telephony features built on calls: ring groups (and, later, pickup, park and queues). Pure data and
//! decisions; the endpoint (`endpoint/groups.rs`) applies them to live registrations and calls.

pub mod features;
pub mod groups;

pub use features::{Feature, FeatureCodes};
pub use groups::{Fallback, RingGroup, RingGroups, Strategy};
