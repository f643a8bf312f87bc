//! `[scheduler]` and `[retention]` in the configuration.

use serde::Deserialize;

use crate::campaigns::schedule::Schedule;

/// `[scheduler]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulerSettings {
    /// When the segments job runs (cron, default time zone).
    pub segments: String,
    /// When housekeeping runs (cron, default time zone).
    pub housekeeping: String,
    /// How often the scheduler looks for due and missed ticks even when no
    /// timer woke it.
    pub watchdog_seconds: u64,
    /// How long a tick is held by the process running it before another
    /// process may take it over; renewed while the job runs.
    pub lease_seconds: u64,
    /// An import of at least this many rows asks for a segments run (the
    /// daemon runs it within `watchdog_seconds`); 0 turns it off.
    pub segments_after_import_rows: u64,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        SchedulerSettings {
            segments: "0 3 * * *".into(),
            housekeeping: "30 4 * * *".into(),
            watchdog_seconds: 60,
            lease_seconds: 300,
            segments_after_import_rows: 10_000,
        }
    }
}

/// `[retention]`
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionSettings {
    /// Provider error texts of attempts older than this many days are cleared.
    pub attempt_detail_days: u32,
    /// Job runs older than this many days are deleted.
    pub job_runs_days: u32,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        RetentionSettings {
            attempt_detail_days: 180,
            job_runs_days: 90,
        }
    }
}

impl SchedulerSettings {
    /// The checked schedules of the built-in jobs.
    pub fn schedules(&self) -> Result<(Schedule, Schedule), String> {
        let segments =
            Schedule::parse(&self.segments).map_err(|e| format!("scheduler.segments: {e}"))?;
        let housekeeping = Schedule::parse(&self.housekeeping)
            .map_err(|e| format!("scheduler.housekeeping: {e}"))?;
        Ok((segments, housekeeping))
    }

    /// Reject values the scheduler cannot work with.
    pub fn check(&self) -> Result<(), String> {
        self.schedules()?;
        if !(1..=3600).contains(&self.watchdog_seconds) {
            return Err("scheduler.watchdog_seconds must be between 1 and 3600".into());
        }
        if !(10..=86_400).contains(&self.lease_seconds) {
            return Err("scheduler.lease_seconds must be between 10 and 86400".into());
        }
        Ok(())
    }
}

impl RetentionSettings {
    pub fn check(&self) -> Result<(), String> {
        if self.attempt_detail_days == 0 || self.job_runs_days == 0 {
            return Err(
                "retention.attempt_detail_days and retention.job_runs_days must be at least 1"
                    .into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        SchedulerSettings::default().check().unwrap();
        RetentionSettings::default().check().unwrap();
    }

    #[test]
    fn bad_values_are_named() {
        let s = SchedulerSettings {
            segments: "0 3 * *".into(),
            ..SchedulerSettings::default()
        };
        assert!(s.check().unwrap_err().starts_with("scheduler.segments:"));
        let s = SchedulerSettings {
            watchdog_seconds: 0,
            ..SchedulerSettings::default()
        };
        assert!(s.check().unwrap_err().contains("watchdog_seconds"));
        let r = RetentionSettings {
            job_runs_days: 0,
            ..RetentionSettings::default()
        };
        assert!(r.check().is_err());
    }
}
