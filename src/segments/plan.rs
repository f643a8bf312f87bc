//! What one run of the segments job needs to know before it touches the
//! database: each store's local "today", the day boundaries of the lifecycle
//! rules, the birthday calendar, and whether an incremental run is valid.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, NaiveDate, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::file::{CustomSegment, SegmentsFile};
use super::rules::SegmentRules;
use crate::domain::{Birthday, StoreInfo};
use crate::expr::Attr;

/// The meta key holding [`SegmentState`].
pub const STATE_KEY: &str = "segments_state";

/// Full: every customer's figures are recomputed from their orders.
/// Incremental: only customers whose orders or store changed since, and those
/// whose windowed figures move with the date. Both give the same result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecomputeMode {
    Full,
    Incremental,
}

impl std::fmt::Display for RecomputeMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RecomputeMode::Full => "full",
            RecomputeMode::Incremental => "incremental",
        })
    }
}

/// One store's calendar for this run. `store_key` is the store code, or `""`
/// for customers without a store (they use the default time zone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreDay {
    pub store_key: String,
    pub tz: Tz,
    /// Today's local date as days since 1970-01-01.
    pub today: i64,
    /// The zone's UTC offset now, in milliseconds.
    pub offset_ms: i64,
    /// Start (UTC) of the local day `today - N` for the lifecycle thresholds:
    /// "joined within N days" means joined at or after this instant.
    pub new_since: DateTime<Utc>,
    pub active_since: DateTime<Utc>,
    pub at_risk_since: DateTime<Utc>,
    pub lapsed_since: DateTime<Utc>,
}

/// Days from a local date (given as `today`) to the next celebration of each
/// month-day: the rows of the `seg_birthdays` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BirthdayDistance {
    pub today: i64,
    pub month: u8,
    pub day: u8,
    pub days: i64,
}

/// Everything a store needs to run the segments job once.
#[derive(Debug, Clone)]
pub struct SegmentPlan {
    pub mode: RecomputeMode,
    /// Why a requested incremental run is full instead.
    pub full_reason: Option<String>,
    pub now: DateTime<Utc>,
    pub days: Vec<StoreDay>,
    pub birthdays: Vec<BirthdayDistance>,
    pub rules: SegmentRules,
    pub custom: Vec<CustomSegment>,
    /// Custom segments the previous run maintained that are gone now: their
    /// members leave them.
    pub removed: Vec<String>,
    /// Customers per write transaction when walking all customers in id order.
    pub batch_size: usize,
    /// Rows per write transaction when the rows are scattered (incremental
    /// runs, changed stages and tiers): each touches its own pages of every index, so
    /// smaller transactions keep the pages held in memory bounded.
    pub scattered_batch_size: usize,
    /// Customers a full run building on the previous one notes at most to
    /// rank one by one, where the store gathers their keys in the client
    /// (PostgreSQL, whose lanes write apart: 100,000 keys are 4 MB or so):
    /// more, and it ranks everyone (see [`SegmentPlan::after_figures`]).
    pub noted_at_most: usize,
    /// The previous run's custom segments (name → expression).
    previous_custom: BTreeMap<String, String>,
    /// Whether any store's local date differs from the previous run's.
    today_moved: bool,
    /// Whether the stored stages, tiers and memberships are those
    /// the previous run derived from the stored figures, so that a run may
    /// re-rank and re-evaluate only the customers whose figures or record
    /// changed and those a threshold or the date moved past. False without
    /// a previous run, when it did not finish, or when it ranked by other
    /// rules or calendars (what keeps a run from being incremental): a
    /// full run then ranks and evaluates everyone.
    pub builds_on_previous: bool,
}

/// What the last completed run leaves behind for the next one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentState {
    pub version: u32,
    /// Store key → (time zone, local day) of the run.
    pub days: BTreeMap<String, (String, i64)>,
    /// The daypart boundaries, as written.
    pub dayparts: String,
    /// The lifecycle and tier rules, as a stable string.
    pub rules: String,
    /// Custom segment name → its expression.
    pub custom: BTreeMap<String, String>,
    pub finished_at: DateTime<Utc>,
}

/// The version of what a finished run leaves behind. 2: SQLite's stored
/// joined days are dated in each instant's own offset (version 1 used the
/// zone's offset at the run), and runs building on the previous one reuse
/// them; a run after a version 1 run works every row out afresh.
const STATE_VERSION: u32 = 2;

/// Customers to rank one by one above which a full run may rank everyone
/// instead (see [`SegmentPlan::after_figures`]): below it, either way
/// takes moments.
pub const MANY_TO_RANK: u64 = 10_000;

pub use crate::expr::{date_of_day_number as date_of_day, day_number};

/// The UTC instant at which a local date starts in `tz` (the first existing
/// local time of that date, should midnight fall in a DST gap).
pub fn start_of_day(tz: Tz, date: NaiveDate) -> DateTime<Utc> {
    let mut t = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    for _ in 0..180 {
        if let Some(dt) = tz.from_local_datetime(&t).earliest() {
            return dt.with_timezone(&Utc);
        }
        t += chrono::Duration::minutes(1);
    }
    Utc.from_utc_datetime(&t)
}

impl StoreDay {
    /// The calendar of a store (or of customers without one) at `now`.
    pub fn at(store_key: &str, tz: Tz, now: DateTime<Utc>, rules: &SegmentRules) -> StoreDay {
        let today = now.with_timezone(&tz).date_naive();
        let since = |days: u32| start_of_day(tz, today - chrono::Duration::days(i64::from(days)));
        let l = &rules.lifecycle;
        StoreDay {
            store_key: store_key.to_owned(),
            tz,
            today: day_number(today),
            offset_ms: i64::from(now.with_timezone(&tz).offset().fix().local_minus_utc()) * 1000,
            new_since: since(l.new_within_days),
            active_since: since(l.active_within_days),
            at_risk_since: since(l.at_risk_within_days),
            lapsed_since: since(l.lapsed_within_days),
        }
    }
}

fn rules_fingerprint(rules: &SegmentRules) -> String {
    format!("{:?} {:?}", rules.lifecycle, rules.tiers)
}

/// Days from each local `today` to the next celebration of every month-day,
/// Feb 29 included (celebrated on Feb 28 in common years).
pub fn birthday_calendar(todays: impl IntoIterator<Item = i64>) -> Vec<BirthdayDistance> {
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for today in todays {
        if !seen.insert(today) {
            continue;
        }
        let Some(date) = date_of_day(today) else {
            continue;
        };
        for month in 1..=12u8 {
            for day in 1..=31u8 {
                let Ok(b) = Birthday::new(month, day, None) else {
                    continue;
                };
                let this_year = b.celebrated_on(date.year());
                let next = if this_year >= date {
                    this_year
                } else {
                    b.celebrated_on(date.year() + 1)
                };
                out.push(BirthdayDistance {
                    today,
                    month,
                    day,
                    days: (next - date).num_days(),
                });
            }
        }
    }
    out
}

impl SegmentPlan {
    /// Plan a run at `now`. `requested` may be downgraded from incremental to
    /// full when the previous state does not allow it (see `full_reason`).
    pub fn new(
        file: &SegmentsFile,
        stores: &[StoreInfo],
        default_tz: Tz,
        now: DateTime<Utc>,
        requested: RecomputeMode,
        previous: Option<&SegmentState>,
    ) -> SegmentPlan {
        let rules = file.rules;
        let mut days = vec![StoreDay::at("", default_tz, now, &rules)];
        days.extend(
            stores
                .iter()
                .map(|s| StoreDay::at(s.code.as_str(), s.timezone, now, &rules)),
        );
        let birthdays = birthday_calendar(days.iter().map(|d| d.today));
        let removed = previous
            .map(|p| {
                p.custom
                    .keys()
                    .filter(|name| file.custom(name).is_none())
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let today_moved = previous.is_none_or(|p| {
            days.iter().any(|d| {
                p.days
                    .get(&d.store_key)
                    .is_none_or(|(_, day)| *day != d.today)
            })
        });
        let mut plan = SegmentPlan {
            mode: requested,
            full_reason: None,
            now,
            days,
            birthdays,
            rules,
            custom: file.custom.clone(),
            removed,
            batch_size: 50_000,
            scattered_batch_size: 5_000,
            noted_at_most: 100_000,
            previous_custom: previous.map(|p| p.custom.clone()).unwrap_or_default(),
            today_moved,
            builds_on_previous: false,
        };
        match plan.incremental_blocker(previous) {
            None => plan.builds_on_previous = true,
            Some(reason) if requested == RecomputeMode::Incremental => {
                plan.mode = RecomputeMode::Full;
                plan.full_reason = Some(reason);
            }
            Some(_) => {}
        }
        plan
    }

    /// The previous run did not finish: nothing stored can be built on.
    /// An incremental run becomes a full one, for `reason`.
    pub fn previous_unfinished(&mut self, reason: String) {
        self.builds_on_previous = false;
        if self.mode == RecomputeMode::Incremental {
            self.mode = RecomputeMode::Full;
            self.full_reason = Some(reason);
        }
    }

    /// After a full run's figures: this plan, or, when the `todo`
    /// customers to rank one by one (those whose figures changed, and the
    /// marked) are many (at least [`MANY_TO_RANK`]) and a tenth or more of
    /// the `recomputed`, one that ranks and evaluates everyone, which then
    /// costs less.
    pub fn after_figures(&self, todo: u64, recomputed: u64) -> std::borrow::Cow<'_, SegmentPlan> {
        if self.notes_changes() && todo >= MANY_TO_RANK && todo.saturating_mul(10) >= recomputed {
            std::borrow::Cow::Owned(self.ranking_everyone())
        } else {
            std::borrow::Cow::Borrowed(self)
        }
    }

    /// This plan, building on nothing stored: a full run ranks and
    /// evaluates everyone.
    pub fn ranking_everyone(&self) -> SegmentPlan {
        SegmentPlan {
            builds_on_previous: false,
            ..self.clone()
        }
    }

    /// Whether this is a full run building on the previous one: its phase
    /// A notes the customers it must rank (those whose rows it writes, and
    /// the marked) and brings the histogram up to date by their changes.
    pub fn notes_changes(&self) -> bool {
        self.mode == RecomputeMode::Full && self.builds_on_previous
    }

    /// Whether a full run ranks and evaluates every customer (see
    /// [`SegmentPlan::builds_on_previous`]).
    pub fn ranks_everyone(&self) -> bool {
        self.mode == RecomputeMode::Full && !self.builds_on_previous
    }

    /// Why the stored figures cannot simply be brought up to date, if so.
    fn incremental_blocker(&self, previous: Option<&SegmentState>) -> Option<String> {
        let Some(prev) = previous else {
            return Some("no earlier run to build on".into());
        };
        if prev.version != STATE_VERSION {
            return Some("the previous run was made by another version".into());
        }
        if prev.dayparts != self.rules.dayparts.to_string() {
            return Some("the dayparts changed".into());
        }
        if prev.rules != rules_fingerprint(&self.rules) {
            return Some("the lifecycle or value-tier rules changed".into());
        }
        for d in &self.days {
            match prev.days.get(&d.store_key) {
                None => return Some(format!("store {:?} is new", d.store_key)),
                Some((tz, _)) if tz != d.tz.name() => {
                    return Some(format!("store {:?} changed its time zone", d.store_key));
                }
                Some((_, day)) if *day > d.today => {
                    return Some("the clock is earlier than the previous run".into());
                }
                Some(_) => {}
            }
        }
        None
    }

    /// The state to record once this run has finished.
    pub fn finished_state(&self, finished_at: DateTime<Utc>) -> SegmentState {
        SegmentState {
            version: STATE_VERSION,
            days: self
                .days
                .iter()
                .map(|d| (d.store_key.clone(), (d.tz.name().to_owned(), d.today)))
                .collect(),
            dayparts: self.rules.dayparts.to_string(),
            rules: rules_fingerprint(&self.rules),
            custom: self
                .custom
                .iter()
                .map(|c| (c.name.clone(), c.expr.source().to_owned()))
                .collect(),
            finished_at,
        }
    }

    /// Whether a custom segment must be evaluated over every customer: in a
    /// run that ranks everyone, for a new or changed definition, and when it
    /// reads a date-dependent attribute and the date moved. Otherwise only
    /// the customers whose attributes or record this run changed can have
    /// entered or left it.
    pub fn evaluate_all(&self, segment: &CustomSegment) -> bool {
        self.ranks_everyone()
            || self.previous_custom.get(&segment.name).map(String::as_str)
                != Some(segment.expr.source())
            || (segment.expr.depends_on_today() && self.today_moved)
    }

    /// Whether some custom segment is evaluated only over the customers
    /// whose attributes this run changed (see [`SegmentPlan::evaluate_all`]).
    pub fn evaluates_some_segment_over_changes(&self) -> bool {
        self.custom.iter().any(|c| !self.evaluate_all(c))
    }

    /// Whether a custom segment evaluated over the changed customers reads
    /// a score: scores are not stored, so the customers whose score a moved
    /// threshold changed count among the changed ones.
    pub fn reads_scores_over_changes(&self) -> bool {
        self.custom
            .iter()
            .filter(|c| !self.evaluate_all(c))
            .any(|c| c.expr.attributes().any(Attr::is_score))
    }

    /// The calendar of a store key (falls back to the default zone's).
    pub fn day_of(&self, store_key: &str) -> &StoreDay {
        self.days
            .iter()
            .find(|d| d.store_key == store_key)
            .unwrap_or(&self.days[0])
    }

    /// The latest local day among the stores (an index bound).
    pub fn max_today(&self) -> i64 {
        self.days.iter().map(|d| d.today).max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::{Asia::Shanghai, Australia::Sydney};

    fn day(y: i32, m: u32, d: u32) -> i64 {
        day_number(NaiveDate::from_ymd_opt(y, m, d).unwrap())
    }

    #[test]
    fn day_numbers_round_trip() {
        assert_eq!(day(1970, 1, 1), 0);
        assert_eq!(day(2026, 11, 23), 20780);
        assert_eq!(date_of_day(20780), NaiveDate::from_ymd_opt(2026, 11, 23));
    }

    #[test]
    fn today_is_local_per_store() {
        // 2026-11-23 17:30 UTC is already the 24th in Sydney (UTC+11) but the
        // 24th only 01:30 in Shanghai (UTC+8).
        let now = Utc.with_ymd_and_hms(2026, 11, 23, 15, 30, 0).unwrap();
        let rules = SegmentRules::default();
        let sh = StoreDay::at("SH-001", Shanghai, now, &rules);
        let syd = StoreDay::at("SYD-001", Sydney, now, &rules);
        assert_eq!(sh.today, day(2026, 11, 23));
        assert_eq!(syd.today, day(2026, 11, 24));
        // Active since = start of local day today - 30, Shanghai midnight = 16:00 UTC the day before.
        assert_eq!(
            sh.active_since,
            Utc.with_ymd_and_hms(2026, 10, 23, 16, 0, 0).unwrap()
        );
    }

    #[test]
    fn birthday_distances_include_feb_29() {
        let cal = birthday_calendar([day(2026, 11, 23)]);
        assert_eq!(cal.len(), 366);
        let get = |m, d| {
            cal.iter()
                .find(|b| b.month == m && b.day == d)
                .unwrap()
                .days
        };
        assert_eq!(get(11, 23), 0);
        assert_eq!(get(11, 24), 1);
        assert_eq!(get(11, 22), 364);
        // 2027 is common: Feb 29 is celebrated on Feb 28, the same day as Feb 28.
        assert_eq!(get(2, 29), get(2, 28));
        // In 2027-11-23 the next Feb 29 birthday is in 2028, a leap year: Feb 29 itself.
        let cal = birthday_calendar([day(2027, 11, 23)]);
        let get = |m, d| {
            cal.iter()
                .find(|b| b.month == m && b.day == d)
                .unwrap()
                .days
        };
        assert_eq!(get(2, 29), get(2, 28) + 1);
    }

    #[test]
    fn incremental_falls_back_to_full_with_a_reason() {
        let now = Utc.with_ymd_and_hms(2026, 11, 23, 4, 0, 0).unwrap();
        let file = SegmentsFile::defaults();
        let p = SegmentPlan::new(&file, &[], Shanghai, now, RecomputeMode::Incremental, None);
        assert_eq!(p.mode, RecomputeMode::Full);
        assert!(p.full_reason.unwrap().contains("no earlier run"));
        let state = SegmentPlan::new(&file, &[], Shanghai, now, RecomputeMode::Full, None)
            .finished_state(now);
        let p = SegmentPlan::new(
            &file,
            &[],
            Shanghai,
            now,
            RecomputeMode::Incremental,
            Some(&state),
        );
        assert_eq!(p.mode, RecomputeMode::Incremental);
        let earlier = now - chrono::Duration::days(2);
        let p = SegmentPlan::new(
            &file,
            &[],
            Shanghai,
            earlier,
            RecomputeMode::Incremental,
            Some(&state),
        );
        assert_eq!(p.mode, RecomputeMode::Full);
        assert!(p.full_reason.unwrap().contains("earlier"));
    }

    /// A full run builds on the previous one only when an incremental run
    /// could, and ranks everyone once many customers changed.
    #[test]
    fn a_full_run_builds_on_a_finished_run_with_the_same_rules() {
        let now = Utc.with_ymd_and_hms(2026, 11, 23, 4, 0, 0).unwrap();
        let file = SegmentsFile::defaults();
        let plan = |mode, previous: Option<&SegmentState>| {
            SegmentPlan::new(&file, &[], Shanghai, now, mode, previous)
        };
        let full = |previous| plan(RecomputeMode::Full, previous);
        assert!(full(None).ranks_everyone());
        let state = full(None).finished_state(now);
        let p = full(Some(&state));
        assert!(p.builds_on_previous && !p.ranks_everyone());
        let mut other_rules = state.clone();
        other_rules.rules.push('x');
        assert!(full(Some(&other_rules)).ranks_everyone());
        let mut stopped = full(Some(&state));
        stopped.previous_unfinished("stopped".into());
        assert!(stopped.ranks_everyone());
        assert_eq!(stopped.full_reason, None, "a full run was asked for");

        // Many to rank one by one: a tenth of the customers, and at least
        // MANY_TO_RANK.
        assert!(
            !p.after_figures(MANY_TO_RANK - 1, MANY_TO_RANK)
                .ranks_everyone()
        );
        assert!(
            p.after_figures(MANY_TO_RANK, 10 * MANY_TO_RANK)
                .ranks_everyone()
        );
        assert!(
            !p.after_figures(MANY_TO_RANK, 10 * MANY_TO_RANK + 1)
                .ranks_everyone()
        );
        assert!(p.after_figures(u64::MAX, 1_000_000).ranks_everyone());
        let incremental = plan(RecomputeMode::Incremental, Some(&state));
        assert!(!incremental.after_figures(u64::MAX, 1).ranks_everyone());
    }
}
