//! Timers that wake the scheduler at each job's ticks (tokio-cron-scheduler).
//!
//! They only wake it: what runs is decided from the database and the job's
//! own schedule (see [`due`](super::due)). tokio-cron-scheduler reduces a
//! zone to its offset when a job is created, never catches up, and fires in
//! every process; so a timer an hour off after a daylight-saving change, or
//! one that does not fire, costs at most one watchdog period.

use std::sync::Arc;

use chrono::Utc;
use tokio::sync::Notify;
use tokio_cron_scheduler::{Job, JobScheduler};
use uuid::Uuid;

use super::jobs::{JobSpec, Timing};
use crate::clock::SharedClock;

/// The timers of the jobs in force.
pub struct Timers {
    scheduler: JobScheduler,
    wake: Arc<Notify>,
    clock: SharedClock,
    /// What the timers were built from, to rebuild them only on a change.
    signature: String,
    ids: Vec<Uuid>,
}

impl Timers {
    /// Start the timer service; `None` (and a warning) when it cannot start:
    /// the watchdog then drives the scheduler alone.
    pub async fn start(wake: Arc<Notify>, clock: SharedClock) -> Option<Timers> {
        let started = async {
            let scheduler = JobScheduler::new().await?;
            scheduler.start().await?;
            Ok::<_, tokio_cron_scheduler::JobSchedulerError>(scheduler)
        }
        .await;
        match started {
            Ok(scheduler) => Some(Timers {
                scheduler,
                wake,
                clock,
                signature: String::new(),
                ids: Vec::new(),
            }),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the job timers; the watchdog alone wakes the scheduler");
                None
            }
        }
    }

    /// Make the timers match `jobs`.
    pub async fn sync(&mut self, jobs: &[JobSpec]) {
        let signature = signature(jobs);
        if signature == self.signature {
            return;
        }
        for id in self.ids.drain(..) {
            if let Err(e) = self.scheduler.remove(&id).await {
                tracing::debug!(error = %e, "cannot remove a job timer");
            }
        }
        let now = self.clock.now();
        for job in jobs {
            match &job.timing {
                Timing::Cron(list) => {
                    for (schedule, tz) in list {
                        let wake = self.wake.clone();
                        let made =
                            Job::new_async_tz(six_fields(schedule.source()), *tz, move |_, _| {
                                let wake = wake.clone();
                                Box::pin(async move { wake.notify_one() })
                            });
                        self.add(made, &job.name).await;
                    }
                }
                Timing::At(list) => {
                    for at in list.iter().filter(|t| **t > now) {
                        let wait = (*at - now).to_std().unwrap_or_default();
                        let wake = self.wake.clone();
                        let made = Job::new_one_shot_async(wait, move |_, _| {
                            let wake = wake.clone();
                            Box::pin(async move { wake.notify_one() })
                        });
                        self.add(made, &job.name).await;
                    }
                }
            }
        }
        self.signature = signature;
        tracing::debug!(timers = self.ids.len(), at = %Utc::now(), "job timers set");
    }

    async fn add(
        &mut self,
        made: Result<Job, tokio_cron_scheduler::JobSchedulerError>,
        name: &str,
    ) {
        let added = match made {
            Ok(job) => self.scheduler.add(job).await,
            Err(e) => Err(e),
        };
        match added {
            Ok(id) => self.ids.push(id),
            // The watchdog still runs the job's ticks.
            Err(e) => tracing::debug!(job = name, error = %e, "no timer for this job"),
        }
    }

    /// Stop the timer service.
    pub async fn shutdown(mut self) {
        if let Err(e) = self.scheduler.shutdown().await {
            tracing::debug!(error = %e, "the job timers did not stop cleanly");
        }
    }
}

/// tokio-cron-scheduler wants seconds first: `0 10 * * *` → `0 0 10 * * *`.
fn six_fields(source: &str) -> String {
    if source.split_whitespace().count() == 5 {
        format!("0 {source}")
    } else {
        source.to_owned()
    }
}

fn signature(jobs: &[JobSpec]) -> String {
    let mut s = String::new();
    for job in jobs {
        s.push_str(&job.name);
        match &job.timing {
            Timing::Cron(list) => {
                for (schedule, tz) in list {
                    s.push_str(&format!("|{}@{}", schedule.source(), tz.name()));
                }
            }
            Timing::At(list) => {
                for t in list {
                    s.push_str(&format!("|{}", t.timestamp()));
                }
            }
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_fields_get_seconds() {
        assert_eq!(six_fields("0 10 * * *"), "0 0 10 * * *");
        assert_eq!(six_fields("30 0 10 * * *"), "30 0 10 * * *");
    }
}
