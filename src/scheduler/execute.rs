//! Running one tick of a job: the segments job, a campaign run or
//! housekeeping. Every outcome becomes a [`JobResult`] with its counts, so a
//! failed run is recorded with its reason and the scheduler goes on.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::{Value, json};

use super::jobs::{JobKind, JobSpec};
use crate::campaigns::run::{self, Mode, RunInputs, RunSettings};
use crate::segments::{RecomputeMode, job as segments_job};
use crate::store::SharedStore;
use crate::store::ticks::{Retention, TickOutcome};
use crate::unsubscribe::LinkSigner;

/// What a job run needs besides the store.
#[derive(Debug, Clone)]
pub struct Executor {
    pub store: SharedStore,
    pub campaigns_dir: PathBuf,
    pub default_tz: Tz,
    pub run_settings: RunSettings,
    pub links: Arc<LinkSigner>,
    pub retention: Retention,
}

/// How a run ended, with what it did (JSON) and a line for people.
#[derive(Debug, Clone)]
pub struct JobResult {
    pub outcome: TickOutcome,
    pub detail: Value,
    pub summary: String,
}

impl JobResult {
    fn failed(reason: String) -> JobResult {
        JobResult {
            outcome: TickOutcome::Failed,
            summary: format!("failed: {reason}"),
            detail: json!({ "error": reason }),
        }
    }
}

impl Executor {
    /// Run `job` at `now`.
    pub async fn execute(&self, job: &JobSpec, now: DateTime<Utc>) -> JobResult {
        match &job.kind {
            JobKind::Segments => self.segments(now).await,
            JobKind::Campaign(active) => {
                let stores = match self.store.stores().await {
                    Ok(s) => s,
                    Err(e) => return JobResult::failed(e.to_string()),
                };
                let inputs = RunInputs {
                    campaign: &active.campaign,
                    templates: &active.templates,
                    stores: &stores,
                    settings: &self.run_settings,
                    links: &self.links,
                };
                match run::run(self.store.as_ref(), &inputs, now, Mode::Write).await {
                    Ok(mut report) => {
                        report.samples.clear();
                        JobResult {
                            outcome: TickOutcome::Ok,
                            summary: format!(
                                "candidates {}, queued {}, deferred {}, suppressed {}, coupons {}",
                                report.candidates,
                                report.queued,
                                report.deferred,
                                report.suppressed_total(),
                                report.coupons
                            ),
                            detail: json!({
                                "candidates": report.candidates,
                                "queued": report.queued,
                                "deferred": report.deferred,
                                "suppressed": report.suppressed,
                                "coupons": report.coupons,
                                "written": report.written,
                                "already": report.already,
                                "preempted": report.preempted,
                                "seconds": report.seconds,
                            }),
                        }
                    }
                    Err(e) => JobResult::failed(e.to_string()),
                }
            }
            JobKind::Housekeeping => match self.store.housekeeping(now, &self.retention).await {
                Ok(r) => JobResult {
                    outcome: TickOutcome::Ok,
                    summary: format!(
                        "attempt details cleared {}, job runs deleted {}, abandoned ticks closed {}, expired message leases {}",
                        r.attempt_details_cleared,
                        r.job_runs_deleted,
                        r.ticks_abandoned,
                        r.expired_message_leases
                    ),
                    detail: serde_json::to_value(r).unwrap_or(Value::Null),
                },
                Err(e) => JobResult::failed(e.to_string()),
            },
        }
    }

    async fn segments(&self, now: DateTime<Utc>) -> JobResult {
        let done = segments_job::run(
            self.store.as_ref(),
            &self.campaigns_dir,
            self.default_tz,
            now,
            RecomputeMode::Incremental,
        )
        .await;
        match done {
            Ok(report) => JobResult {
                outcome: TickOutcome::Ok,
                summary: format!(
                    "{} recompute: {} customers recomputed, {} changed, {} transitions",
                    report.mode,
                    report.outcome.recomputed,
                    report.outcome.changed,
                    report.outcome.transitions
                ),
                detail: serde_json::to_value(&report).unwrap_or(Value::Null),
            },
            // A broken segments.yaml lists its errors with file and line.
            Err(e) => JobResult::failed(e.to_string()),
        }
    }
}
