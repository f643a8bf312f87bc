//! What the segments job computes and what the store reports back: one
//! customer's attributes, segment sizes, membership history.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::plan::RecomputeMode;
use crate::expr::{Attr, AttrLookup, Value};

/// One customer's computed attributes, as of `today` in the customer's store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CustomerAttributes {
    pub customer_id: String,
    pub store: Option<String>,
    pub tags: Vec<String>,
    /// The local day (days since 1970-01-01) these are shown for.
    #[serde(skip)]
    pub today: i64,
    pub joined_at: DateTime<Utc>,
    /// Local days since joining (or since first imported).
    pub days_since_joined: i64,
    pub recency_days: Option<i64>,
    pub order_count: i64,
    pub total_spent_fen: i64,
    pub avg_order_value_fen: Option<i64>,
    pub order_count_90d: i64,
    pub spent_90d_fen: i64,
    pub spent_365d_fen: i64,
    pub first_order_at: Option<DateTime<Utc>>,
    pub last_order_at: Option<DateTime<Utc>>,
    #[serde(skip)]
    pub first_order_day: Option<i64>,
    #[serde(skip)]
    pub last_order_day: Option<i64>,
    pub favorite_daypart: Option<String>,
    pub r_score: Option<i64>,
    pub f_score: Option<i64>,
    pub m_score: Option<i64>,
    pub rfm: Option<String>,
    pub lifecycle: String,
    pub value_tier: String,
    pub days_to_birthday: Option<i64>,
    /// When a figure of this row last changed.
    pub computed_at: DateTime<Utc>,
}

impl AttrLookup for CustomerAttributes {
    fn get(&self, attr: Attr) -> Value {
        let int = |v: Option<i64>| v.map_or(Value::Null, Value::Int);
        let text = |v: Option<&str>| v.map_or(Value::Null, |s| Value::Text(s.to_owned()));
        match attr {
            Attr::RecencyDays => int(self.recency_days),
            Attr::OrderCount => Value::Int(self.order_count),
            Attr::TotalSpent => Value::Int(self.total_spent_fen),
            Attr::AvgOrderValue => int(self.avg_order_value_fen),
            Attr::OrderCount90d => Value::Int(self.order_count_90d),
            Attr::Spent90d => Value::Int(self.spent_90d_fen),
            Attr::Spent365d => Value::Int(self.spent_365d_fen),
            Attr::FirstOrderAt => int(self.first_order_day),
            Attr::LastOrderAt => int(self.last_order_day),
            Attr::DaysSinceJoined => Value::Int(self.days_since_joined),
            Attr::FavoriteDaypart => text(self.favorite_daypart.as_deref()),
            Attr::RScore => int(self.r_score),
            Attr::FScore => int(self.f_score),
            Attr::MScore => int(self.m_score),
            Attr::Rfm => text(self.rfm.as_deref()),
            Attr::Lifecycle => Value::Text(self.lifecycle.clone()),
            Attr::ValueTier => Value::Text(self.value_tier.clone()),
            Attr::DaysToBirthday => int(self.days_to_birthday),
            Attr::Tags => Value::Tags(self.tags.clone()),
            Attr::Store => text(self.store.as_deref()),
        }
    }
}

/// A change of segment membership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transition {
    /// `lifecycle:<stage>`, `tier:<tier>` or a custom segment's name.
    pub segment: String,
    /// `entered` or `left`.
    pub change: String,
    pub at: DateTime<Utc>,
}

/// A custom segment the customer is in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Membership {
    pub segment: String,
    pub entered_at: DateTime<Utc>,
}

/// One customer's attributes, segments and recent history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CustomerProfile {
    pub attributes: CustomerAttributes,
    pub memberships: Vec<Membership>,
    /// Newest first, at most [`PROFILE_TRANSITIONS`].
    pub transitions: Vec<Transition>,
}

/// How many transitions a profile shows.
pub const PROFILE_TRANSITIONS: i64 = 20;

/// What kind of segment a size is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SegmentKind {
    Lifecycle,
    Tier,
    Custom,
}

/// The size of one segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SegmentSize {
    pub segment: String,
    pub kind: SegmentKind,
    pub customers: u64,
}

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SegmentOutcome {
    /// Customers whose figures were recomputed from their orders.
    pub recomputed: u64,
    /// Rows of attributes that changed (figures, stage or tier).
    pub changed: u64,
    /// Transitions recorded (entered plus left).
    pub transitions: u64,
}

/// The summary of a run, as printed.
#[derive(Debug, Clone, Serialize)]
pub struct SegmentRunReport {
    pub mode: RecomputeMode,
    pub full_reason: Option<String>,
    #[serde(flatten)]
    pub outcome: SegmentOutcome,
    pub seconds: f64,
}
