//! A campaign's `schedule`: cron with 5 fields (minute hour day month
//! weekday), or 6 with seconds first, evaluated in a time zone.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// A checked cron expression.
#[derive(Debug, Clone)]
pub struct Schedule {
    source: String,
    cron: Cron,
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Schedule {
    /// Parse `0 10 * * *` or `0 0 10 * * *`. The error says what to write.
    pub fn parse(source: &str) -> Result<Schedule, String> {
        let fields = source.split_whitespace().count();
        if source.trim().starts_with('@') {
            return Err(format!(
                "{source:?}: write the schedule as 5 cron fields (minute hour day month weekday), e.g. \"0 10 * * *\" for 10:00 every day"
            ));
        }
        if fields != 5 && fields != 6 {
            return Err(format!(
                "{source:?} has {fields} field(s); a schedule has 5 (minute hour day month weekday, e.g. \"0 10 * * *\") or 6 with seconds first (\"0 0 10 * * *\")"
            ));
        }
        let parser = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build();
        let cron = parser.parse(source).map_err(|e| {
            format!(
                "{source:?} is not a valid cron schedule ({e}); fields are minute (0-59) hour (0-23) day (1-31) month (1-12) weekday (0-6, Sunday 0), e.g. \"0 10 * * *\""
            )
        })?;
        Ok(Schedule {
            source: source.trim().to_owned(),
            cron,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The first tick strictly after `after`, in `tz`. Ticks are whole
    /// seconds, whatever fraction of a second `after` has.
    pub fn next_after(&self, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&whole_second(after).with_timezone(&tz), false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The last tick at or before `at`, in `tz` (a whole second).
    pub fn last_at_or_before(&self, tz: Tz, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_previous_occurrence(&whole_second(at).with_timezone(&tz), true)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The schedule in English words.
    pub fn describe(&self) -> String {
        self.cron.describe()
    }
}

/// `t` without its fraction of a second.
fn whole_second(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn five_and_six_fields() {
        let s = Schedule::parse("0 10 * * *").unwrap();
        let sh = chrono_tz::Asia::Shanghai;
        assert_eq!(
            s.next_after(sh, utc("2026-11-23T09:00:00+08:00")),
            Some(utc("2026-11-23T10:00:00+08:00"))
        );
        assert_eq!(
            s.next_after(sh, utc("2026-11-23T10:00:00+08:00")),
            Some(utc("2026-11-24T10:00:00+08:00"))
        );
        assert_eq!(
            s.last_at_or_before(sh, utc("2026-11-23T10:00:00+08:00")),
            Some(utc("2026-11-23T10:00:00+08:00"))
        );
        let s6 = Schedule::parse("30 0 10 * * *").unwrap();
        assert_eq!(
            s6.next_after(sh, utc("2026-11-23T09:00:00+08:00")),
            Some(utc("2026-11-23T10:00:30+08:00"))
        );
    }

    #[test]
    fn ticks_are_whole_seconds() {
        let s = Schedule::parse("0 10 * * *").unwrap();
        let sh = chrono_tz::Asia::Shanghai;
        let now = utc("2026-11-23T10:00:00.390+08:00");
        assert_eq!(
            s.last_at_or_before(sh, now),
            Some(utc("2026-11-23T10:00:00+08:00"))
        );
        assert_eq!(
            s.next_after(sh, utc("2026-11-23T09:59:59.5+08:00")),
            Some(utc("2026-11-23T10:00:00+08:00"))
        );
        assert_eq!(
            s.next_after(sh, now),
            Some(utc("2026-11-24T10:00:00+08:00"))
        );
    }

    #[test]
    fn evaluated_in_the_zone() {
        let s = Schedule::parse("0 10 * * *").unwrap();
        let ny = chrono_tz::America::New_York;
        assert_eq!(
            s.next_after(ny, utc("2026-11-23T00:00:00Z")),
            Some(utc("2026-11-23T10:00:00-05:00"))
        );
    }

    #[test]
    fn bad_schedules_say_what_to_write() {
        let e = Schedule::parse("0 10 * *").unwrap_err();
        assert!(e.contains("has 4 field(s)"), "{e}");
        assert!(e.contains("0 10 * * *"), "{e}");
        let e = Schedule::parse("0 25 * * *").unwrap_err();
        assert!(e.contains("not a valid cron schedule"), "{e}");
        let e = Schedule::parse("0 0 10 * * * 2027").unwrap_err();
        assert!(e.contains("7 field(s)"), "{e}");
        assert!(Schedule::parse("@daily").is_err());
        assert!(Schedule::parse("").is_err());
    }

    #[test]
    fn describes_itself() {
        let s = Schedule::parse("0 10 * * *").unwrap();
        assert!(!s.describe().is_empty());
    }
}
