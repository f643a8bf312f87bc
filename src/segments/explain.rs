//! Why a customer is in their stage, tier and custom segments, in words.

use serde::Serialize;

use super::attributes::CustomerAttributes;
use super::file::SegmentsFile;
use super::plan::SegmentPlan;
use super::rules::{RECENT_WINDOW_DAYS, SegmentRules, TIER_WINDOW_DAYS};
use crate::domain::Money;

/// One segment and the reason the customer is (or is not) in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    pub segment: String,
    pub member: bool,
    pub why: String,
}

fn yuan(fen: i64) -> String {
    format!("¥{}", Money::from_fen(fen))
}

fn days(n: i64) -> String {
    match n {
        0 => "today".into(),
        1 => "1 day ago".into(),
        n => format!("{n} days ago"),
    }
}

/// Why the customer is in their lifecycle stage.
pub fn lifecycle(a: &CustomerAttributes, plan: &SegmentPlan) -> String {
    let l = &plan.rules.lifecycle;
    let joined = a.days_since_joined;
    let activity = match a.recency_days {
        Some(r) => format!("last order {}", days(r)),
        None => format!("never ordered; joined {}", days(joined)),
    };
    match a.lifecycle.as_str() {
        "new" => format!(
            "joined {} (within {} days) with {} order(s) (at most {})",
            days(joined),
            l.new_within_days,
            a.order_count,
            l.new_max_orders
        ),
        "active" => format!("{activity} (within {} days)", l.active_within_days),
        "at_risk" => format!(
            "{activity}: more than {} and at most {} days",
            l.active_within_days, l.at_risk_within_days
        ),
        "lapsed" => format!(
            "{activity}: more than {} and at most {} days",
            l.at_risk_within_days, l.lapsed_within_days
        ),
        "churned" => format!("{activity}: more than {} days", l.lapsed_within_days),
        other => format!("stage {other:?} (not computed yet)"),
    }
}

/// Why the customer is in their value tier.
pub fn tier(a: &CustomerAttributes, rules: &SegmentRules) -> String {
    let t = &rules.tiers;
    let spent = a.spent_365d_fen;
    if spent <= 0 {
        return format!("spent nothing in the last {TIER_WINDOW_DAYS} days");
    }
    let store = a.store.as_deref().unwrap_or("customers without a store");
    match a.value_tier.as_str() {
        "vip" => format!(
            "spent {} in the last {TIER_WINDOW_DAYS} days: among the top {}% of {store}",
            yuan(spent),
            t.vip_top_percent
        ),
        "core" => format!(
            "spent {} in the last {TIER_WINDOW_DAYS} days: among the next {}% of {store} after the top {}%",
            yuan(spent),
            t.core_next_percent,
            t.vip_top_percent
        ),
        _ => format!(
            "spent {} in the last {TIER_WINDOW_DAYS} days: below the top {}% of {store}",
            yuan(spent),
            t.vip_top_percent + t.core_next_percent
        ),
    }
}

/// What the RFM scores mean for this customer.
pub fn scores(a: &CustomerAttributes) -> String {
    match (a.r_score, a.f_score, a.m_score) {
        (Some(r), Some(f), Some(m)) => format!(
            "R{r} F{f} M{m}: quintiles within {} among customers who ordered (5 = the best fifth) of \
             recency ({}), order count ({}) and total spent ({})",
            a.store.as_deref().unwrap_or("customers without a store"),
            a.recency_days.map_or("none".into(), days),
            a.order_count,
            yuan(a.total_spent_fen)
        ),
        _ => "no scores: no orders yet".into(),
    }
}

/// Every segment with membership and reason: stage, tier, custom segments.
pub fn reasons(a: &CustomerAttributes, file: &SegmentsFile, plan: &SegmentPlan) -> Vec<Reason> {
    let mut out = vec![
        Reason {
            segment: a.lifecycle.clone(),
            member: true,
            why: lifecycle(a, plan),
        },
        Reason {
            segment: a.value_tier.clone(),
            member: true,
            why: tier(a, &plan.rules),
        },
    ];
    for s in &file.custom {
        let clauses = s.expr.explain(a);
        let member = s.expr.eval(a);
        let why = clauses
            .iter()
            .map(|c| {
                format!(
                    "{} {} (is {})",
                    if c.held { "✓" } else { "✗" },
                    c.text,
                    c.actual
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        out.push(Reason {
            segment: s.name.clone(),
            member,
            why: format!("{}: {why}", s.expr.source()),
        });
    }
    out
}

/// The window the 90-day figures cover, for labels.
pub fn recent_label() -> String {
    format!("last {RECENT_WINDOW_DAYS} days")
}
