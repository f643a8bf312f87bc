//! A checked campaign: what the planner works from. Everything here was
//! validated by [`super::file`]; nothing in it can be wrong by construction
//! except facts about the database (customers, orders) that change later.

use std::path::PathBuf;

use chrono::{DateTime, Duration, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::schedule::Schedule;
use crate::domain::StoreCode;
use crate::expr::Expr;
use crate::segments::rules::{STAGES, TIERS};
use crate::store::Channel;
use crate::templates::coupon_value_text;

/// A campaign id: lower-case letters, digits, `-` and `_`, at most 64.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct CampaignId(String);

impl CampaignId {
    pub fn parse(s: &str) -> Result<CampaignId, String> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if ok {
            Ok(CampaignId(s.to_owned()))
        } else {
            Err(format!(
                "campaign id {s:?} must be lower-case letters, digits, '-' and '_' (at most 64, starting with a letter or digit), e.g. birthday-treat"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for CampaignId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What makes a customer due, and what counts as "the same occasion".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// `days_before` the birthday (0 = on the day), in the store's calendar.
    /// Occurrence: the year of the birthday celebrated.
    Birthday { days_before: u32 },
    /// No order for `inactive_days` (and at most `max_inactive_days`).
    /// Occurrence: the lapse episode, named by the last order's local date.
    Lapsed {
        inactive_days: u32,
        max_inactive_days: Option<u32>,
    },
    /// The segments job recorded the customer entering `segment`.
    /// Occurrence: that entry.
    SegmentEntered { segment: SegmentRef },
    /// One send to the audience at `at`: a local time in each store's zone,
    /// or one instant when the file gave an offset. Without `at`, one send
    /// per tick of the schedule (a monthly member day). Occurrence: that time.
    Broadcast {
        at: Option<NaiveDateTime>,
        absolute: Option<DateTime<Utc>>,
    },
}

impl Trigger {
    pub fn kind(&self) -> &'static str {
        match self {
            Trigger::Birthday { .. } => "birthday",
            Trigger::Lapsed { .. } => "lapsed",
            Trigger::SegmentEntered { .. } => "segment_entered",
            Trigger::Broadcast { .. } => "broadcast",
        }
    }
}

/// A segment a campaign names: a lifecycle stage, a value tier or a custom
/// segment of `segments.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SegmentRef {
    Stage(&'static str),
    Tier(&'static str),
    Custom(String),
}

impl SegmentRef {
    /// Resolve a name; `custom` lists the custom segments that exist.
    pub fn resolve(name: &str, custom: &[String]) -> Option<SegmentRef> {
        if let Some(s) = STAGES.iter().find(|s| **s == name) {
            return Some(SegmentRef::Stage(s));
        }
        if let Some(t) = TIERS.iter().find(|t| **t == name) {
            return Some(SegmentRef::Tier(t));
        }
        custom
            .iter()
            .any(|c| c == name)
            .then(|| SegmentRef::Custom(name.to_owned()))
    }

    pub fn name(&self) -> &str {
        match self {
            SegmentRef::Stage(s) | SegmentRef::Tier(s) => s,
            SegmentRef::Custom(s) => s,
        }
    }

    /// The name under which the segments job records entries and exits.
    pub fn transition_key(&self) -> String {
        match self {
            SegmentRef::Stage(s) => format!("lifecycle:{s}"),
            SegmentRef::Tier(t) => format!("tier:{t}"),
            SegmentRef::Custom(c) => c.clone(),
        }
    }
}

/// Who may receive the campaign at all.
#[derive(Debug, Clone, Default)]
pub struct Audience {
    /// Any of these (empty: everyone).
    pub segments: Vec<SegmentRef>,
    /// None of these.
    pub exclude_segments: Vec<SegmentRef>,
    /// Customers of these stores only (empty: all stores).
    pub stores: Vec<StoreCode>,
    /// An expression over the customer's attributes.
    pub filter: Option<Expr>,
}

/// What kind of discount a coupon gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CouponKind {
    AmountOff,
    PercentOff,
    FreeItem,
}

impl CouponKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CouponKind::AmountOff => "amount_off",
            CouponKind::PercentOff => "percent_off",
            CouponKind::FreeItem => "free_item",
        }
    }
}

/// The coupon a campaign issues with each message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CouponSpec {
    pub kind: CouponKind,
    /// Fen for `amount_off`, percent for `percent_off`, 0 for `free_item`.
    pub value: i64,
    /// For `free_item`: what is free.
    pub item: Option<String>,
    pub min_spend_fen: i64,
    pub valid_days: u32,
    pub code_prefix: String,
}

impl CouponSpec {
    /// The value as a message shows it: yuan off, percent off, or 0.
    pub fn display_value(&self) -> f64 {
        match self.kind {
            CouponKind::AmountOff => self.value as f64 / 100.0,
            CouponKind::PercentOff => self.value as f64,
            CouponKind::FreeItem => 0.0,
        }
    }

    /// "10元代金券", "8.5折券", "免费豆浆券" (the templates' wording).
    pub fn value_text(&self) -> String {
        coupon_value_text(
            self.kind.as_str(),
            self.display_value(),
            self.item.as_deref().unwrap_or_default(),
        )
    }
}

/// Local hours in which messages may leave: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SendWindow {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl SendWindow {
    /// 08:00–21:00, the hours China's SMS providers accept marketing in.
    pub fn default_hours() -> SendWindow {
        SendWindow {
            start: NaiveTime::from_hms_opt(8, 0, 0).unwrap_or_default(),
            end: NaiveTime::from_hms_opt(21, 0, 0).unwrap_or_default(),
        }
    }

    /// `None` when a message may leave at `now` in `tz`; otherwise the instant
    /// the window next opens.
    pub fn next_open(&self, tz: Tz, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = now.with_timezone(&tz);
        let t = local.time();
        if t >= self.start && t < self.end {
            return None;
        }
        let date = if t < self.start {
            local.date_naive()
        } else {
            local.date_naive() + Duration::days(1)
        };
        let naive = date.and_time(self.start);
        // A window opening in a DST gap opens at the first valid minute after.
        let mut probe = naive;
        for _ in 0..180 {
            if let Some(dt) = tz.from_local_datetime(&probe).earliest() {
                return Some(dt.with_timezone(&Utc));
            }
            probe += Duration::minutes(1);
        }
        Some(Utc.from_utc_datetime(&naive))
    }

    pub fn describe(&self) -> String {
        format!(
            "{}–{}",
            self.start.format("%H:%M"),
            self.end.format("%H:%M")
        )
    }
}

/// A checked campaign file.
#[derive(Debug, Clone)]
pub struct Campaign {
    pub id: CampaignId,
    pub name: String,
    pub enabled: bool,
    /// When the campaign job runs; `None` for a broadcast without one (it
    /// runs at its `at`).
    pub schedule: Option<Schedule>,
    /// A zone that overrides each store's for the schedule and window.
    pub timezone: Option<Tz>,
    pub trigger: Trigger,
    pub audience: Audience,
    pub coupon: Option<CouponSpec>,
    pub channels: Vec<Channel>,
    pub template: String,
    /// `None`: the configured default.
    pub send_window: Option<SendWindow>,
    pub priority: i32,
    /// How late a due message may still be sent after downtime.
    pub catch_up: Duration,
    pub path: PathBuf,
}

/// `1d`, `12h`, `90m`, `2w`: a catch-up allowance.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let hint = || format!("{s:?} is not a duration; write e.g. 1d, 12h, 30m or 2w");
    let unit = t.chars().last().ok_or_else(hint)?;
    let num: i64 = t[..t.len() - unit.len_utf8()]
        .trim()
        .parse()
        .map_err(|_| hint())?;
    if num < 0 {
        return Err(hint());
    }
    let d = match unit {
        'm' => Duration::minutes(num),
        'h' => Duration::hours(num),
        'd' => Duration::days(num),
        'w' => Duration::weeks(num),
        _ => return Err(hint()),
    };
    if d > Duration::days(366) {
        return Err(format!("{s:?} is longer than a year; at most 366d"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(CampaignId::parse("birthday-treat").is_ok());
        assert!(CampaignId::parse("vip_day2").is_ok());
        for bad in ["", "Birthday", "-x", "a b", "生日", &"x".repeat(65)] {
            assert!(CampaignId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn yuan() {
        use crate::domain::Money;
        use crate::templates::yuan_text;
        let y = |fen| yuan_text(Money::from_fen(fen));
        assert_eq!(y(1000), "10");
        assert_eq!(y(1050), "10.50");
        assert_eq!(y(1005), "10.05");
        assert_eq!(y(5), "0.05");
        assert_eq!(y(-250), "-2.50");
    }

    #[test]
    fn coupon_texts() {
        let mut c = CouponSpec {
            kind: CouponKind::AmountOff,
            value: 1000,
            item: None,
            min_spend_fen: 0,
            valid_days: 7,
            code_prefix: "B".into(),
        };
        assert_eq!(c.value_text(), "10元代金券");
        c.kind = CouponKind::PercentOff;
        c.value = 15;
        assert_eq!(c.value_text(), "8.5折券");
        c.value = 20;
        assert_eq!(c.value_text(), "8折券");
        c.kind = CouponKind::FreeItem;
        c.item = Some("豆浆".into());
        assert_eq!(c.value_text(), "免费豆浆券");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1d").unwrap(), Duration::days(1));
        assert_eq!(parse_duration("12h").unwrap(), Duration::hours(12));
        assert_eq!(parse_duration("30m").unwrap(), Duration::minutes(30));
        assert_eq!(parse_duration("2w").unwrap(), Duration::weeks(2));
        assert_eq!(parse_duration("0d").unwrap(), Duration::zero());
        for bad in ["", "d", "1", "1y", "-1d", "1.5d", "400d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn send_window_edges() {
        let w = SendWindow::default_hours();
        let sh = chrono_tz::Asia::Shanghai;
        // 07:59 local is outside: opens at 08:00 the same day.
        assert_eq!(
            w.next_open(sh, utc("2026-11-23T07:59:00+08:00")),
            Some(utc("2026-11-23T08:00:00+08:00"))
        );
        assert_eq!(w.next_open(sh, utc("2026-11-23T08:00:00+08:00")), None);
        assert_eq!(w.next_open(sh, utc("2026-11-23T20:59:59+08:00")), None);
        // 21:00 is outside: the next morning.
        assert_eq!(
            w.next_open(sh, utc("2026-11-23T21:00:00+08:00")),
            Some(utc("2026-11-24T08:00:00+08:00"))
        );
        // Another zone's morning.
        let ny = chrono_tz::America::New_York;
        assert_eq!(
            w.next_open(ny, utc("2026-11-23T12:00:00Z")),
            Some(utc("2026-11-23T08:00:00-05:00"))
        );
    }

    #[test]
    fn segment_refs() {
        let custom = vec!["morning_regulars".to_owned()];
        assert_eq!(
            SegmentRef::resolve("at_risk", &custom),
            Some(SegmentRef::Stage("at_risk"))
        );
        assert_eq!(
            SegmentRef::resolve("vip", &custom),
            Some(SegmentRef::Tier("vip"))
        );
        assert_eq!(
            SegmentRef::resolve("morning_regulars", &custom)
                .unwrap()
                .transition_key(),
            "morning_regulars"
        );
        assert_eq!(
            SegmentRef::Stage("at_risk").transition_key(),
            "lifecycle:at_risk"
        );
        assert_eq!(SegmentRef::resolve("loyal", &custom), None);
    }
}
