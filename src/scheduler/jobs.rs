//! The jobs the scheduler runs and when: the segments job and housekeeping
//! on their configured schedules, and every enabled campaign on its schedule
//! in each time zone its stores are in (a broadcast without a schedule at its
//! `at`).

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;

use crate::campaigns::schedule::Schedule;
use crate::campaigns::spec::{Campaign, Trigger};
use crate::campaigns::watch::{ActiveCampaign, Snapshot};
use crate::domain::StoreInfo;

/// The job name of the segments job.
pub const SEGMENTS: &str = "segments";
/// The job name of housekeeping.
pub const HOUSEKEEPING: &str = "housekeeping";
/// Job names of campaigns start with this.
pub const CAMPAIGN_PREFIX: &str = "campaign:";

/// How late the built-in jobs may still run a missed tick.
pub const BUILTIN_CATCH_UP: Duration = Duration::days(1);

/// What a job does.
#[derive(Debug, Clone)]
pub enum JobKind {
    Segments,
    Campaign(Arc<ActiveCampaign>),
    Housekeeping,
}

/// When a job's ticks are.
#[derive(Debug, Clone)]
pub enum Timing {
    /// Every tick of each schedule in its zone (one campaign schedule in
    /// each of its stores' zones).
    Cron(Vec<(Schedule, Tz)>),
    /// One-off instants (a broadcast's `at` in each zone).
    At(Vec<DateTime<Utc>>),
}

impl Timing {
    /// The latest tick at or before `now`.
    pub fn latest(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Timing::Cron(list) => list
                .iter()
                .filter_map(|(s, tz)| s.last_at_or_before(*tz, now))
                .max(),
            Timing::At(list) => list.iter().filter(|t| **t <= now).max().copied(),
        }
    }

    /// The first tick strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Timing::Cron(list) => list
                .iter()
                .filter_map(|(s, tz)| s.next_after(*tz, after))
                .min(),
            Timing::At(list) => list.iter().filter(|t| **t > after).min().copied(),
        }
    }
}

/// One job of the scheduler.
#[derive(Debug, Clone)]
pub struct JobSpec {
    /// `segments`, `housekeeping` or `campaign:ID`: the key of its ticks.
    pub name: String,
    pub kind: JobKind,
    pub timing: Timing,
    /// A tick missed by more than this is recorded as skipped, not run.
    pub catch_up: Duration,
}

impl JobSpec {
    /// The order of a pass: segments first (campaigns read its results),
    /// campaigns, housekeeping last.
    pub fn rank(&self) -> u8 {
        match self.kind {
            JobKind::Segments => 0,
            JobKind::Campaign(_) => 1,
            JobKind::Housekeeping => 2,
        }
    }
}

/// Everything the job list is built from.
pub struct JobInputs<'a> {
    pub segments: &'a Schedule,
    pub housekeeping: &'a Schedule,
    pub default_tz: Tz,
    pub snapshot: &'a Snapshot,
    pub stores: &'a [StoreInfo],
}

/// The jobs in force: built-in ones, then the enabled campaigns by id.
pub fn specs(inputs: &JobInputs<'_>) -> Vec<JobSpec> {
    let mut jobs = vec![
        JobSpec {
            name: SEGMENTS.to_owned(),
            kind: JobKind::Segments,
            timing: Timing::Cron(vec![(inputs.segments.clone(), inputs.default_tz)]),
            catch_up: BUILTIN_CATCH_UP,
        },
        JobSpec {
            name: HOUSEKEEPING.to_owned(),
            kind: JobKind::Housekeeping,
            timing: Timing::Cron(vec![(inputs.housekeeping.clone(), inputs.default_tz)]),
            catch_up: BUILTIN_CATCH_UP,
        },
    ];
    for active in inputs.snapshot.campaigns.values() {
        let c = &active.campaign;
        if !c.enabled {
            continue;
        }
        let Some(timing) = campaign_timing(c, inputs.stores, inputs.default_tz) else {
            continue;
        };
        jobs.push(JobSpec {
            name: format!("{CAMPAIGN_PREFIX}{}", c.id),
            kind: JobKind::Campaign(active.clone()),
            timing,
            catch_up: c.catch_up,
        });
    }
    jobs
}

/// The zones a campaign's schedule is read in: its own `timezone`, or the
/// zones of the stores it reaches (all stores, and the default zone for
/// customers without a store, when it names none).
pub fn campaign_zones(c: &Campaign, stores: &[StoreInfo], default_tz: Tz) -> Vec<Tz> {
    if let Some(tz) = c.timezone {
        return vec![tz];
    }
    let zone_of = |code: &str| {
        stores
            .iter()
            .find(|s| s.code.as_str() == code)
            .map_or(default_tz, |s| s.timezone)
    };
    let mut names: BTreeSet<&'static str> = BTreeSet::new();
    let mut zones = Vec::new();
    let mut add = |tz: Tz| {
        if names.insert(tz.name()) {
            zones.push(tz);
        }
    };
    if c.audience.stores.is_empty() {
        add(default_tz);
        for s in stores {
            add(s.timezone);
        }
    } else {
        for code in &c.audience.stores {
            add(zone_of(code.as_str()));
        }
    }
    zones.sort_by_key(|z| z.name());
    zones
}

fn campaign_timing(c: &Campaign, stores: &[StoreInfo], default_tz: Tz) -> Option<Timing> {
    let zones = campaign_zones(c, stores, default_tz);
    if let Some(s) = &c.schedule {
        return Some(Timing::Cron(
            zones.into_iter().map(|tz| (s.clone(), tz)).collect(),
        ));
    }
    match &c.trigger {
        Trigger::Broadcast {
            absolute: Some(t), ..
        } => Some(Timing::At(vec![*t])),
        Trigger::Broadcast { at: Some(at), .. } => {
            let mut ticks: Vec<DateTime<Utc>> = zones
                .into_iter()
                .map(|tz| crate::campaigns::run::local_instant(tz, *at))
                .collect();
            ticks.sort();
            ticks.dedup();
            Some(Timing::At(ticks))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_schedule_in_two_zones_ticks_in_each() {
        let t = Timing::Cron(vec![
            (
                Schedule::parse("0 10 * * *").unwrap(),
                chrono_tz::Asia::Shanghai,
            ),
            (
                Schedule::parse("0 10 * * *").unwrap(),
                chrono_tz::Europe::London,
            ),
        ]);
        // 10:00 Shanghai = 02:00 UTC; 10:00 London (winter) = 10:00 UTC.
        assert_eq!(
            t.latest(utc("2026-12-01T09:00:00Z")),
            Some(utc("2026-12-01T02:00:00Z"))
        );
        assert_eq!(
            t.latest(utc("2026-12-01T10:00:00Z")),
            Some(utc("2026-12-01T10:00:00Z"))
        );
        assert_eq!(
            t.next_after(utc("2026-12-01T02:00:00Z")),
            Some(utc("2026-12-01T10:00:00Z"))
        );
    }

    #[test]
    fn one_off_instants() {
        let t = Timing::At(vec![
            utc("2026-12-24T02:00:00Z"),
            utc("2026-12-24T10:00:00Z"),
        ]);
        assert_eq!(t.latest(utc("2026-12-24T01:00:00Z")), None);
        assert_eq!(
            t.latest(utc("2026-12-24T11:00:00Z")),
            Some(utc("2026-12-24T10:00:00Z"))
        );
        assert_eq!(t.next_after(utc("2026-12-24T10:00:00Z")), None);
    }
}
