//! The scheduler's passes: find each job's due tick, claim it in the
//! database, run it under a renewed lease and record how it ended. Several
//! processes may pass at once: the unique (job, scheduled_for) row decides
//! which one runs a tick.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::due::{self, Decision};
use super::execute::Executor;
use super::jobs::{self, JobInputs, JobKind, JobSpec, SEGMENTS, Timing};
use super::settings::SchedulerSettings;
use crate::campaigns::schedule::Schedule;
use crate::campaigns::watch::CampaignRegistry;
use crate::clock::SharedClock;
use crate::store::ticks::{JobRun, TickClaim, TickFinish, TickOutcome};
use crate::store::{SharedStore, StoreError};

/// Metadata key an import sets to ask for a segments run (RFC 3339 time).
pub const SEGMENTS_REQUESTED: &str = "segments_requested_at";

/// One tick this process ran or skipped.
#[derive(Debug, Clone, Serialize)]
pub struct TickReport {
    pub job: String,
    pub scheduled_for: DateTime<Utc>,
    pub attempt: i64,
    pub outcome: TickOutcome,
    /// Earlier ticks missed since the last recorded one, covered by this run.
    pub folded: u32,
    pub seconds: f64,
    pub summary: String,
    pub detail: Value,
}

/// What one pass did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PassReport {
    pub now: Option<DateTime<Utc>>,
    /// Ticks run or skipped here, in the order they were handled.
    pub ticks: Vec<TickReport>,
    /// Due ticks another process had already claimed.
    pub taken_elsewhere: u32,
    /// Due campaign ticks left for a later pass because another process is
    /// recomputing the segments they select from.
    pub waiting_for_segments: u32,
}

impl PassReport {
    pub fn failed(&self) -> usize {
        self.ticks
            .iter()
            .filter(|t| t.outcome == TickOutcome::Failed)
            .count()
    }
}

/// Why a pass could not look at the jobs.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whether the scheduler is alive, for `/healthz`.
#[derive(Debug)]
pub struct SchedulerStatus {
    /// Epoch ms of the end of the last pass (0: none yet).
    last_pass: AtomicI64,
    /// Epoch ms of the start of the pass under way (0: none).
    busy_since: AtomicI64,
    /// Epoch ms the scheduler was created.
    created: AtomicI64,
    watchdog: StdDuration,
}

impl SchedulerStatus {
    pub fn new(watchdog: StdDuration, now: DateTime<Utc>) -> SchedulerStatus {
        SchedulerStatus {
            last_pass: AtomicI64::new(0),
            busy_since: AtomicI64::new(0),
            created: AtomicI64::new(now.timestamp_millis()),
            watchdog,
        }
    }

    /// When the last pass ended.
    pub fn last_pass(&self) -> Option<DateTime<Utc>> {
        match self.last_pass.load(Ordering::Relaxed) {
            0 => None,
            ms => DateTime::from_timestamp_millis(ms),
        }
    }

    /// Since when a pass has been running.
    pub fn busy_since(&self) -> Option<DateTime<Utc>> {
        match self.busy_since.load(Ordering::Relaxed) {
            0 => None,
            ms => DateTime::from_timestamp_millis(ms),
        }
    }

    /// Alive: a pass is under way, or the last one ended (or, before the
    /// first, the scheduler started) within two watchdog periods and a
    /// little slack of `now`.
    pub fn alive(&self, now: DateTime<Utc>) -> bool {
        if self.busy_since().is_some() {
            return true;
        }
        let slack = Duration::from_std(self.watchdog * 2).unwrap_or(Duration::minutes(2))
            + Duration::seconds(10);
        let since = self
            .last_pass()
            .or_else(|| DateTime::from_timestamp_millis(self.created.load(Ordering::Relaxed)));
        since.is_some_and(|t| now - t <= slack)
    }

    fn begin(&self, now: DateTime<Utc>) {
        self.busy_since
            .store(now.timestamp_millis().max(1), Ordering::Relaxed);
    }

    fn end(&self, now: DateTime<Utc>) {
        self.last_pass
            .store(now.timestamp_millis().max(1), Ordering::Relaxed);
        self.busy_since.store(0, Ordering::Relaxed);
    }
}

/// The scheduler of one process.
#[derive(Debug)]
pub struct Scheduler {
    store: SharedStore,
    clock: SharedClock,
    registry: CampaignRegistry,
    executor: Executor,
    settings: SchedulerSettings,
    segments: Schedule,
    housekeeping: Schedule,
    worker: String,
    status: Arc<SchedulerStatus>,
}

impl Scheduler {
    /// A scheduler; `settings` must have passed [`SchedulerSettings::check`].
    pub fn new(
        store: SharedStore,
        clock: SharedClock,
        registry: CampaignRegistry,
        executor: Executor,
        settings: SchedulerSettings,
    ) -> Result<Scheduler, String> {
        let (segments, housekeeping) = settings.schedules()?;
        let status = Arc::new(SchedulerStatus::new(
            StdDuration::from_secs(settings.watchdog_seconds),
            clock.now(),
        ));
        Ok(Scheduler {
            store,
            clock,
            registry,
            executor,
            settings,
            segments,
            housekeeping,
            worker: crate::store::ticks::worker_id(),
            status,
        })
    }

    /// This process's name in `job_ticks.claimed_by`.
    pub fn worker(&self) -> &str {
        &self.worker
    }

    pub fn status(&self) -> Arc<SchedulerStatus> {
        self.status.clone()
    }

    pub fn registry(&self) -> &CampaignRegistry {
        &self.registry
    }

    pub fn settings(&self) -> &SchedulerSettings {
        &self.settings
    }

    /// The jobs in force now, in the order a pass handles them.
    pub async fn jobs(&self) -> Result<Vec<JobSpec>, StoreError> {
        let stores = self.store.stores().await?;
        let snapshot = self.registry.snapshot();
        let mut list = jobs::specs(&JobInputs {
            segments: &self.segments,
            housekeeping: &self.housekeeping,
            default_tz: self.executor.default_tz,
            snapshot: &snapshot,
            stores: &stores,
        });
        list.sort_by_key(JobSpec::rank);
        Ok(list)
    }

    /// Handle every job once at the clock's now: take over ticks whose
    /// process died, run due ticks, record ticks missed beyond catch-up.
    pub async fn pass(
        &self,
        jobs: &[JobSpec],
        shutdown: &CancellationToken,
    ) -> Result<PassReport, PassError> {
        let now = self.clock.now();
        self.status.begin(now);
        let result = self.pass_at(jobs, now, shutdown).await;
        self.status.end(self.clock.now());
        if result.as_ref().is_ok_and(|r| !r.ticks.is_empty()) {
            // A job run leaves megabytes freed on the threads that ran it.
            crate::memory::release_freed();
        }
        result
    }

    async fn pass_at(
        &self,
        jobs: &[JobSpec],
        now: DateTime<Utc>,
        shutdown: &CancellationToken,
    ) -> Result<PassReport, PassError> {
        let latest: HashMap<String, JobRun> = self
            .store
            .latest_job_runs()
            .await?
            .into_iter()
            .map(|r| (r.job.clone(), r))
            .collect();
        let mut report = PassReport {
            now: Some(now),
            ..PassReport::default()
        };
        // Whether another process is recomputing segments: asked once per
        // pass, when the first campaign is due.
        let mut segments_elsewhere: Option<bool> = None;
        for job in jobs {
            if shutdown.is_cancelled() {
                break;
            }
            let last = latest.get(&job.name);
            // A tick whose process died mid-run: take it over.
            if let Some(run) = last
                && run.finished_at.is_none()
                && run.lease_until.is_some_and(|l| l < now)
            {
                if self
                    .wait_for_segments(job, now, &mut segments_elsewhere, &mut report)
                    .await?
                {
                    continue;
                }
                self.run_tick(job, run.scheduled_for, 0, &mut report)
                    .await?;
                continue;
            }
            if let JobKind::Segments = job.kind
                && let Some(requested) = self.segments_requested(last).await?
            {
                self.run_tick(job, requested, 0, &mut report).await?;
                continue;
            }
            match due::decide(
                &job.timing,
                job.catch_up,
                last.map(|r| r.scheduled_for),
                now,
            ) {
                Decision::Idle => {}
                Decision::Run { tick, folded } => {
                    if self
                        .wait_for_segments(job, now, &mut segments_elsewhere, &mut report)
                        .await?
                    {
                        continue;
                    }
                    self.run_tick(job, tick, folded, &mut report).await?;
                }
                Decision::Skip { tick, late, folded } => {
                    let detail = due::describe_skip(late, job.catch_up, folded);
                    if self
                        .store
                        .skip_tick(&job.name, tick, &self.worker, now, &detail)
                        .await?
                    {
                        tracing::warn!(job = %job.name, tick = %tick.to_rfc3339(), "{detail}");
                        metrics::counter!("outreach_job_runs_total", "job" => job.name.clone(), "outcome" => "skipped").increment(1);
                        report.ticks.push(TickReport {
                            job: job.name.clone(),
                            scheduled_for: tick,
                            attempt: 1,
                            outcome: TickOutcome::Skipped,
                            folded,
                            seconds: 0.0,
                            summary: detail.clone(),
                            detail: Value::String(detail),
                        });
                    }
                }
            }
        }
        Ok(report)
    }

    /// Whether `job` is a campaign that must wait because another process is
    /// recomputing the segments right now: run on, it would pick its audience
    /// from the previous run's segments. It is left for a later pass (the
    /// watchdog's at the latest); within one process segments run first
    /// anyway.
    async fn wait_for_segments(
        &self,
        job: &JobSpec,
        now: DateTime<Utc>,
        elsewhere: &mut Option<bool>,
        report: &mut PassReport,
    ) -> Result<bool, StoreError> {
        if !matches!(job.kind, JobKind::Campaign(_)) {
            return Ok(false);
        }
        let busy = match *elsewhere {
            Some(busy) => busy,
            None => {
                let runs = self.store.latest_job_runs().await?;
                let busy = runs.iter().any(|r| {
                    r.job == SEGMENTS
                        && r.finished_at.is_none()
                        && r.lease_until.is_some_and(|l| l >= now)
                        && r.claimed_by != self.worker
                });
                *elsewhere = Some(busy);
                busy
            }
        };
        if busy {
            tracing::info!(job = %job.name, "waiting for the segments run under way in another process");
            report.waiting_for_segments += 1;
        }
        Ok(busy)
    }

    /// An import asked for a segments run after the last one.
    async fn segments_requested(
        &self,
        last: Option<&JobRun>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let Some(raw) = self.store.meta(SEGMENTS_REQUESTED).await? else {
            return Ok(None);
        };
        let Ok(at) = DateTime::parse_from_rfc3339(&raw) else {
            return Ok(None);
        };
        let at = at.with_timezone(&Utc);
        Ok(match last {
            Some(l) if l.scheduled_for >= at => None,
            _ => Some(at),
        })
    }

    /// Claim `tick` of `job`; when this process gets it, run it under a
    /// lease renewed in the background and record the result.
    async fn run_tick(
        &self,
        job: &JobSpec,
        tick: DateTime<Utc>,
        folded: u32,
        report: &mut PassReport,
    ) -> Result<(), PassError> {
        let lease = Duration::seconds(i64::try_from(self.settings.lease_seconds).unwrap_or(300));
        let now = self.clock.now();
        let claimed = self
            .store
            .claim_tick(&TickClaim {
                job: &job.name,
                scheduled_for: tick,
                worker: &self.worker,
                now,
                lease_until: now + lease,
            })
            .await?;
        let Some(attempt) = claimed else {
            report.taken_elsewhere += 1;
            return Ok(());
        };
        let span = tracing::info_span!(
            "job_run",
            job = %job.name,
            tick = %tick.to_rfc3339(),
            attempt,
        );
        let renewal = self.spawn_renewal(job.name.clone(), tick, lease);
        let started = Instant::now();
        let result = self
            .executor
            .execute(job, self.clock.now())
            .instrument(span.clone())
            .await;
        renewal.cancel();
        let seconds = started.elapsed().as_secs_f64();
        let detail = result.detail.to_string();
        let held = self
            .store
            .finish_tick(&TickFinish {
                job: &job.name,
                scheduled_for: tick,
                worker: &self.worker,
                finished_at: self.clock.now(),
                outcome: result.outcome,
                detail: &detail,
            })
            .await?;
        let _entered = span.enter();
        if !held {
            tracing::warn!(
                "the tick's lease ran out during the run and another process took it over; its record wins (the run's writes are idempotent)"
            );
        }
        match result.outcome {
            TickOutcome::Failed => tracing::error!(seconds, "{}", result.summary),
            _ => tracing::info!(seconds, folded, "{}", result.summary),
        }
        metrics::histogram!("outreach_job_duration_seconds", "job" => job.name.clone())
            .record(seconds);
        metrics::counter!("outreach_job_runs_total", "job" => job.name.clone(), "outcome" => result.outcome.as_str())
            .increment(1);
        report.ticks.push(TickReport {
            job: job.name.clone(),
            scheduled_for: tick,
            attempt,
            outcome: result.outcome,
            folded,
            seconds,
            summary: result.summary,
            detail: result.detail,
        });
        Ok(())
    }

    /// Renew the tick's lease every third of its length until cancelled.
    fn spawn_renewal(
        &self,
        job: String,
        tick: DateTime<Utc>,
        lease: Duration,
    ) -> CancellationToken {
        let stop = CancellationToken::new();
        let store = self.store.clone();
        let clock = self.clock.clone();
        let worker = self.worker.clone();
        let every = (lease / 3).to_std().unwrap_or(StdDuration::from_secs(60));
        let token = stop.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tokio::time::sleep(every) => {}
                }
                match store
                    .renew_tick(&job, tick, &worker, clock.now() + lease)
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(job = %job, "lost the tick's lease to another process");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(job = %job, error = %e, "cannot renew the tick's lease")
                    }
                }
            }
        });
        stop
    }

    /// Passes until `shutdown`: on every wake-up (a job's timer, a change of
    /// the campaigns, the watchdog), due and missed ticks are handled.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let wake = Arc::new(tokio::sync::Notify::new());
        let mut timers = super::wake::Timers::start(wake.clone(), self.clock.clone()).await;
        let mut campaigns = self.registry.subscribe();
        let watchdog = StdDuration::from_secs(self.settings.watchdog_seconds);
        loop {
            match self.jobs().await {
                Ok(jobs) => {
                    if let Some(t) = timers.as_mut() {
                        t.sync(&jobs).await;
                    }
                    if let Err(e) = self.pass(&jobs, &shutdown).await {
                        tracing::error!(error = %e, "the scheduler could not look at its jobs; trying again at the next wake-up");
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "the scheduler cannot read the stores; trying again at the next wake-up")
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = wake.notified() => {}
                _ = tokio::time::sleep(watchdog) => {}
                changed = campaigns.changed() => {
                    if changed.is_err() {
                        // The watcher stopped (shutdown): keep the watchdog only.
                        campaigns = self.registry.subscribe();
                        tokio::select! {
                            _ = shutdown.cancelled() => break,
                            _ = tokio::time::sleep(watchdog) => {}
                        }
                    }
                }
            }
        }
        if let Some(t) = timers {
            t.shutdown().await;
        }
    }
}

/// The next tick of any job after `now` (for the log and the ops page).
pub fn next_tick(timing: &Timing, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    timing.next_after(now)
}
