//! The scheduler: wakes the jobs (the segments job, each campaign, and
//! housekeeping) and lets the database decide what runs.
//!
//! Every tick is a row `(job, scheduled_for)` under a unique key: the
//! process that inserts it runs it, under a lease it renews while the job
//! runs; if the process dies, the lease runs out and another process takes
//! the tick over. Timers (tokio-cron-scheduler) wake the scheduler at each
//! tick, and a watchdog every `watchdog_seconds` finds ticks that were missed
//! (downtime, a stalled timer) and applies the job's catch-up policy
//! ([`due`]). With several `outreach run` processes on one PostgreSQL
//! database, each tick runs exactly once.

pub mod due;
pub mod execute;
pub mod jobs;
pub mod settings;
pub mod ticker;
pub mod wake;

pub use execute::{Executor, JobResult};
pub use jobs::{JobKind, JobSpec, Timing};
pub use settings::{RetentionSettings, SchedulerSettings};
pub use ticker::{PassReport, SEGMENTS_REQUESTED, Scheduler, SchedulerStatus, TickReport};
