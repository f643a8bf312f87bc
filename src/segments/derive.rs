//! Values both stores derive the same way when reading attributes back.

use super::attributes::{SegmentKind, SegmentSize};
use super::plan::SegmentPlan;

/// Local days between an instant and the plan's today, in a store's zone.
pub fn days_since(plan: &SegmentPlan, store_key: &str, at: chrono::DateTime<chrono::Utc>) -> i64 {
    let day = plan.day_of(store_key);
    day.today - super::plan::day_number(at.with_timezone(&day.tz).date_naive())
}

/// Days from `today` to the customer's next birthday, from the run's calendar.
pub fn days_to_birthday(
    plan: &SegmentPlan,
    today: i64,
    month: Option<i64>,
    day: Option<i64>,
) -> Option<i64> {
    let (month, day) = (month?, day?);
    plan.birthdays
        .iter()
        .find(|b| b.today == today && i64::from(b.month) == month && i64::from(b.day) == day)
        .map(|b| b.days)
}

/// Sizes of built-in segments in their natural order, zero for empty ones.
pub fn sizes_in_order(
    kind: SegmentKind,
    names: &[&str],
    counts: Vec<(String, i64)>,
) -> Vec<SegmentSize> {
    names
        .iter()
        .map(|name| SegmentSize {
            segment: (*name).to_owned(),
            kind,
            customers: counts
                .iter()
                .find(|(n, _)| n == name)
                .map_or(0, |(_, c)| u64::try_from(*c).unwrap_or(0)),
        })
        .collect()
}
