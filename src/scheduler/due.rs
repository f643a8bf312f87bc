//! What a job's catch-up policy makes of the clock: given the latest tick
//! recorded for a job and the time now, run the latest due tick (folding the
//! ticks missed since the last recorded one into it: a campaign run looks
//! back over what it missed, a segments run recomputes everything due), skip
//! it when it was missed by more than the job's catch-up allowance, or do
//! nothing.

use chrono::{DateTime, Duration, Utc};

use super::jobs::Timing;

/// At most this many missed ticks are counted (a minutely job down for a
/// month would otherwise take long to count).
pub const MAX_COUNTED: u32 = 1_000;

/// What to do about a job now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// No tick is due: the latest is recorded, or none has come yet, or the
    /// job has never run and its latest tick is beyond catch-up.
    Idle,
    /// Run `tick`; `folded` earlier ticks since the last recorded one were
    /// missed and are covered by this run.
    Run { tick: DateTime<Utc>, folded: u32 },
    /// Record `tick` as skipped: it was missed by `late`, more than the
    /// catch-up allowance.
    Skip {
        tick: DateTime<Utc>,
        late: Duration,
        folded: u32,
    },
}

/// Decide for a job with `timing` and `catch_up` whose latest recorded tick
/// is `last`, at `now`.
pub fn decide(
    timing: &Timing,
    catch_up: Duration,
    last: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Decision {
    let Some(tick) = timing.latest(now) else {
        return Decision::Idle;
    };
    if last.is_some_and(|l| tick <= l) {
        return Decision::Idle;
    }
    let folded = last.map_or(0, |l| count_between(timing, l, tick));
    let late = now - tick;
    if late > catch_up {
        return match last {
            // Never ran: nothing was missed from the job's point of view.
            None => Decision::Idle,
            Some(_) => Decision::Skip { tick, late, folded },
        };
    }
    Decision::Run { tick, folded }
}

/// Ticks strictly between `from` and `to` (at most [`MAX_COUNTED`]).
fn count_between(timing: &Timing, from: DateTime<Utc>, to: DateTime<Utc>) -> u32 {
    let mut n = 0;
    let mut t = from;
    while n < MAX_COUNTED {
        match timing.next_after(t) {
            Some(next) if next < to => {
                n += 1;
                t = next;
            }
            _ => break,
        }
    }
    n
}

/// `late` in words for a skipped tick's record.
pub fn describe_skip(late: Duration, catch_up: Duration, folded: u32) -> String {
    let mut s = format!(
        "missed by {} (the process was not running or was busy); the job's catch_up allows {}",
        human(late),
        human(catch_up)
    );
    if folded > 0 {
        s.push_str(&format!(
            "; {}{} earlier tick(s) missed as well",
            folded,
            if folded >= MAX_COUNTED { "+" } else { "" }
        ));
    }
    s
}

/// A duration as `3d 4h`, `2h 5m`, `45s`.
pub fn human(d: Duration) -> String {
    let s = d.num_seconds().max(0);
    let (days, hours, mins, secs) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    match (days, hours, mins) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::campaigns::schedule::Schedule;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn daily_at_ten() -> Timing {
        Timing::Cron(vec![(
            Schedule::parse("0 10 * * *").unwrap(),
            chrono_tz::Asia::Shanghai,
        )])
    }

    #[test]
    fn runs_a_new_tick_once() {
        let t = daily_at_ten();
        let now = utc("2026-12-24T10:00:00+08:00");
        let d = decide(&t, Duration::hours(2), None, now);
        assert_eq!(
            d,
            Decision::Run {
                tick: now,
                folded: 0
            }
        );
        // Recorded: idle until the next day's tick.
        assert_eq!(
            decide(
                &t,
                Duration::hours(2),
                Some(now),
                utc("2026-12-24T23:59:00+08:00")
            ),
            Decision::Idle
        );
        assert_eq!(
            decide(
                &t,
                Duration::hours(2),
                Some(now),
                utc("2026-12-25T10:00:01+08:00")
            ),
            Decision::Run {
                tick: utc("2026-12-25T10:00:00+08:00"),
                folded: 0
            }
        );
    }

    #[test]
    fn before_the_first_tick_nothing_is_due() {
        let t = daily_at_ten();
        assert_eq!(
            decide(
                &t,
                Duration::hours(2),
                Some(utc("2026-12-23T10:00:00+08:00")),
                utc("2026-12-24T09:59:59+08:00")
            ),
            Decision::Idle
        );
    }

    #[test]
    fn downtime_folds_missed_ticks_into_the_latest() {
        let t = daily_at_ten();
        // Down from the 21st's tick to the 24th at 11:00: the 22nd and 23rd
        // were missed; the 24th's tick runs and covers them.
        let d = decide(
            &t,
            Duration::hours(2),
            Some(utc("2026-12-21T10:00:00+08:00")),
            utc("2026-12-24T11:00:00+08:00"),
        );
        assert_eq!(
            d,
            Decision::Run {
                tick: utc("2026-12-24T10:00:00+08:00"),
                folded: 2
            }
        );
    }

    #[test]
    fn a_tick_missed_beyond_catch_up_is_skipped_not_run() {
        let t = daily_at_ten();
        let d = decide(
            &t,
            Duration::hours(2),
            Some(utc("2026-12-23T10:00:00+08:00")),
            utc("2026-12-24T13:00:00+08:00"),
        );
        assert_eq!(
            d,
            Decision::Skip {
                tick: utc("2026-12-24T10:00:00+08:00"),
                late: Duration::hours(3),
                folded: 0
            }
        );
        let text = describe_skip(Duration::hours(3), Duration::hours(2), 0);
        assert!(text.contains("missed by 3h 0m"), "{text}");
        assert!(text.contains("allows 2h 0m"), "{text}");
        // A job that never ran does not report a skip at its first start.
        assert_eq!(
            decide(
                &t,
                Duration::hours(2),
                None,
                utc("2026-12-24T13:00:00+08:00")
            ),
            Decision::Idle
        );
    }

    #[test]
    fn counting_stops_at_the_cap() {
        let t = Timing::Cron(vec![(
            Schedule::parse("* * * * *").unwrap(),
            chrono_tz::Asia::Shanghai,
        )]);
        let d = decide(
            &t,
            Duration::days(30),
            Some(utc("2026-12-01T00:00:00Z")),
            utc("2026-12-10T00:00:30Z"),
        );
        assert_eq!(
            d,
            Decision::Run {
                tick: utc("2026-12-10T00:00:00Z"),
                folded: MAX_COUNTED
            }
        );
    }

    #[test]
    fn durations_in_words() {
        assert_eq!(human(Duration::seconds(45)), "45s");
        assert_eq!(human(Duration::minutes(125)), "2h 5m");
        assert_eq!(human(Duration::hours(76)), "3d 4h");
    }
}
