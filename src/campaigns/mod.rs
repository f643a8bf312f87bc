//! Campaigns: YAML files in the campaigns folder, checked against the stores,
//! segments and templates that exist, and planned into coupons and messages
//! exactly once per (campaign, customer, occurrence).

pub mod code;
pub mod file;
pub mod outbox;
pub mod redemption;
pub mod run;
pub mod schedule;
pub mod set;
pub mod spec;
pub mod stats;
pub mod watch;

pub use file::CheckEnv;
pub use schedule::Schedule;
pub use set::{Loaded, load};
pub use spec::{
    Audience, Campaign, CampaignId, CouponKind, CouponSpec, SegmentRef, SendWindow, Trigger,
};
