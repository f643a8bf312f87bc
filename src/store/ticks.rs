//! Job ticks as the store keeps them: one row per (job, scheduled_for). The
//! row is the tick's claim: whoever inserts it runs the tick, under a lease
//! that a process which dies mid-run lets run out, so another takes it over.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// How a tick ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TickOutcome {
    Ok,
    Failed,
    /// Not run: missed beyond the job's catch-up allowance, or folded into a
    /// later tick.
    Skipped,
}

impl TickOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            TickOutcome::Ok => "ok",
            TickOutcome::Failed => "failed",
            TickOutcome::Skipped => "skipped",
        }
    }
}

/// A request to run one tick of a job.
#[derive(Debug, Clone)]
pub struct TickClaim<'a> {
    pub job: &'a str,
    pub scheduled_for: DateTime<Utc>,
    /// The claiming process (`host:pid:random`).
    pub worker: &'a str,
    pub now: DateTime<Utc>,
    pub lease_until: DateTime<Utc>,
}

/// The end of a claimed tick.
#[derive(Debug, Clone)]
pub struct TickFinish<'a> {
    pub job: &'a str,
    pub scheduled_for: DateTime<Utc>,
    pub worker: &'a str,
    pub finished_at: DateTime<Utc>,
    pub outcome: TickOutcome,
    /// What the run did (JSON counts) or why it failed.
    pub detail: &'a str,
}

/// One tick as recorded: a job run, or one under way (`finished_at` empty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobRun {
    pub job: String,
    pub scheduled_for: DateTime<Utc>,
    pub claimed_by: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// `ok`, `failed`, `skipped`; empty while it runs.
    pub outcome: Option<String>,
    pub detail: Option<String>,
    /// 1, or more when a tick was taken over after its process died.
    pub attempt: i64,
    pub lease_until: Option<DateTime<Utc>>,
}

/// What housekeeping may delete or clear, by age.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Provider error texts of attempts older than this are cleared (the
    /// attempt, its outcome and code stay).
    pub attempt_detail_days: u32,
    /// Finished job runs older than this are deleted.
    pub job_runs_days: u32,
}

/// What one housekeeping pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct HousekeepingReport {
    pub attempt_details_cleared: u64,
    pub job_runs_deleted: u64,
    /// Ticks whose process died and which no process took over before a
    /// later tick of the same job ran: marked failed.
    pub ticks_abandoned: u64,
    /// Messages still `sending` under a lease that ran out (the dispatcher
    /// takes them over; counted for the record).
    pub expired_message_leases: u64,
}

/// Rows changed per transaction by housekeeping, so it never holds the
/// SQLite writer for long.
pub const HOUSEKEEPING_CHUNK: i64 = 5_000;

/// The detail written on a tick that was abandoned.
pub const ABANDONED_DETAIL: &str = "abandoned: the process running it stopped, and a later tick of the job ran before another process took it over";

/// A run lease as found: who holds it, until when. A job that must not run
/// twice at once (the segments job) holds one for its whole run and renews
/// it; a process that dies lets it run out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunLease {
    pub holder: String,
    pub until: DateTime<Utc>,
}

/// `host:pid:random`: who claims a tick or holds a run lease, new at each
/// call (a process keeps the one it took for its ticks; each segments run
/// takes its own).
pub fn worker_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    let tag = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}:{}:{}", std::process::id(), &tag[..8])
}
