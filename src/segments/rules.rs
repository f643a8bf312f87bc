//! The built-in segment rules: lifecycle stages, value tiers and dayparts, with
//! the defaults a breakfast or milk-tea shop would pick.

use std::fmt;

/// The lifecycle stages, in the order they are tested.
pub const STAGES: [&str; 5] = ["new", "active", "at_risk", "lapsed", "churned"];
/// The value tiers, best first.
pub const TIERS: [&str; 3] = ["vip", "core", "regular"];
/// The dayparts, in the order of the day.
pub const DAYPARTS: [&str; 4] = ["morning", "noon", "afternoon", "evening"];
/// How many days of spending rank customers into value tiers.
pub const TIER_WINDOW_DAYS: i64 = 365;
/// How many days `order_count_90d` and `spent_90d` look back.
pub const RECENT_WINDOW_DAYS: i64 = 90;

/// Lifecycle thresholds, in days. A stage applies when the customer's last
/// order (or, for a customer who never ordered, the day they joined) is at
/// most that many days ago; past `lapsed_within_days` the customer is churned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LifecycleRules {
    /// `new`: joined at most this many days ago …
    pub new_within_days: u32,
    /// … with at most this many orders.
    pub new_max_orders: u32,
    /// `active`: last order at most this many days ago.
    pub active_within_days: u32,
    /// `at_risk`: last order at most this many days ago.
    pub at_risk_within_days: u32,
    /// `lapsed`: last order at most this many days ago; beyond: `churned`.
    pub lapsed_within_days: u32,
}

impl Default for LifecycleRules {
    fn default() -> Self {
        LifecycleRules {
            new_within_days: 30,
            new_max_orders: 1,
            active_within_days: 30,
            at_risk_within_days: 60,
            lapsed_within_days: 180,
        }
    }
}

/// Value tiers: the top `vip_top_percent` of a store's customers by spending
/// over the last 365 days are `vip`, the next `core_next_percent` are `core`,
/// the rest `regular`. Someone who spent nothing is always `regular`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TierRules {
    pub vip_top_percent: u32,
    pub core_next_percent: u32,
}

impl Default for TierRules {
    fn default() -> Self {
        TierRules {
            vip_top_percent: 10,
            core_next_percent: 30,
        }
    }
}

/// The store-local minute of the day at which each daypart starts. Evening
/// runs until morning starts the next day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Dayparts {
    pub morning: u16,
    pub noon: u16,
    pub afternoon: u16,
    pub evening: u16,
}

impl Default for Dayparts {
    fn default() -> Self {
        Dayparts {
            morning: 5 * 60,
            noon: 11 * 60,
            afternoon: 14 * 60,
            evening: 17 * 60,
        }
    }
}

impl Dayparts {
    /// The daypart of a store-local minute of the day.
    pub fn of_minute(&self, minute: u16) -> &'static str {
        if minute >= self.morning && minute < self.noon {
            "morning"
        } else if minute >= self.noon && minute < self.afternoon {
            "noon"
        } else if minute >= self.afternoon && minute < self.evening {
            "afternoon"
        } else {
            "evening"
        }
    }
}

/// Format a minute of the day as `HH:MM`.
pub fn hhmm(minute: u16) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

/// All built-in rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SegmentRules {
    pub lifecycle: LifecycleRules,
    pub tiers: TierRules,
    pub dayparts: Dayparts,
}

/// A rule that cannot work as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RuleError(pub String);

impl LifecycleRules {
    /// Check that the stages follow each other.
    pub fn validate(&self) -> Result<(), RuleError> {
        if self.active_within_days == 0 {
            return Err(RuleError(
                "lifecycle.active.last_order_within must be at least 1d".into(),
            ));
        }
        if self.at_risk_within_days <= self.active_within_days {
            return Err(RuleError(format!(
                "lifecycle.at_risk.last_order_within ({}d) must be longer than lifecycle.active.last_order_within ({}d)",
                self.at_risk_within_days, self.active_within_days
            )));
        }
        if self.lapsed_within_days <= self.at_risk_within_days {
            return Err(RuleError(format!(
                "lifecycle.lapsed.last_order_within ({}d) must be longer than lifecycle.at_risk.last_order_within ({}d)",
                self.lapsed_within_days, self.at_risk_within_days
            )));
        }
        Ok(())
    }
}

impl TierRules {
    /// Check that the percentages fit in 100 %.
    pub fn validate(&self) -> Result<(), RuleError> {
        if self.vip_top_percent + self.core_next_percent > 100 {
            return Err(RuleError(format!(
                "value_tiers: vip.top_percent ({}) plus core.next_percent ({}) is more than 100",
                self.vip_top_percent, self.core_next_percent
            )));
        }
        Ok(())
    }
}

impl Dayparts {
    /// Check that the dayparts start in the order of the day.
    pub fn validate(&self) -> Result<(), RuleError> {
        if !(self.morning < self.noon
            && self.noon < self.afternoon
            && self.afternoon < self.evening)
        {
            return Err(RuleError(format!(
                "dayparts must start in the order morning < noon < afternoon < evening, not {self}"
            )));
        }
        Ok(())
    }
}

impl fmt::Display for Dayparts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "morning {}, noon {}, afternoon {}, evening {}",
            hhmm(self.morning),
            hhmm(self.noon),
            hhmm(self.afternoon),
            hhmm(self.evening)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_follow_the_issue() {
        let r = SegmentRules::default();
        r.lifecycle.validate().unwrap();
        r.tiers.validate().unwrap();
        r.dayparts.validate().unwrap();
        assert_eq!(r.lifecycle.at_risk_within_days, 60);
        assert_eq!(r.tiers.vip_top_percent, 10);
    }

    #[test]
    fn daypart_boundaries() {
        let d = Dayparts::default();
        assert_eq!(d.of_minute(4 * 60 + 59), "evening");
        assert_eq!(d.of_minute(5 * 60), "morning");
        assert_eq!(d.of_minute(10 * 60 + 59), "morning");
        assert_eq!(d.of_minute(11 * 60), "noon");
        assert_eq!(d.of_minute(14 * 60), "afternoon");
        assert_eq!(d.of_minute(17 * 60), "evening");
        assert_eq!(d.of_minute(23 * 60 + 59), "evening");
    }

    #[test]
    fn invalid_rules_say_what_to_change() {
        let l = LifecycleRules {
            at_risk_within_days: 20,
            ..LifecycleRules::default()
        };
        assert!(l.validate().unwrap_err().0.contains("must be longer"));
        let t = TierRules {
            vip_top_percent: 80,
            core_next_percent: 30,
        };
        assert!(t.validate().unwrap_err().0.contains("more than 100"));
        let d = Dayparts {
            noon: 4 * 60,
            ..Dayparts::default()
        };
        assert!(d.validate().unwrap_err().0.contains("morning < noon"));
    }
}
