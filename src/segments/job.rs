//! The `segments` job: load the rules, plan the run, let the store do the
//! set-based work, remember what was done for the next incremental run.

use std::path::Path;
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use tracing::Instrument;

use super::attributes::SegmentRunReport;
use super::file::SegmentsFile;
use super::plan::{RecomputeMode, STATE_KEY, SegmentPlan, SegmentState};
use crate::expr::CheckContext;
use crate::store::ticks::worker_id;
use crate::store::{Store, StoreError};
use crate::yaml_file::FileError;

/// Why the job could not run.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// `segments.yaml` has errors; nothing was recomputed.
    #[error("{} has {} error(s); nothing was recomputed:\n{}", .path, .errors.len(), render(.errors))]
    File {
        path: String,
        errors: Vec<FileError>,
    },
    /// The run's lease ran out before it could renew it (the database
    /// was unreachable for longer than the lease lasts): it stopped, since
    /// another run may have started. What it committed stands.
    #[error(
        "the segments run stopped: its lease ran out (not renewed within {LEASE_SECONDS} s) and another run may have taken over; an interrupted run is followed by a full one"
    )]
    LeaseLost,
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn render(errors: &[FileError]) -> String {
    errors
        .iter()
        .map(|e| format!("  {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Load `segments.yaml` from the campaigns folder, checked against the stores
/// the database knows.
pub async fn load_file(store: &dyn Store, campaigns_dir: &Path) -> Result<SegmentsFile, JobError> {
    let stores = store.stores().await?;
    let ctx = CheckContext {
        stores: Some(stores.iter().map(|s| s.code.as_str().to_owned()).collect()),
    };
    SegmentsFile::load(campaigns_dir, &ctx).map_err(|errors| JobError::File {
        path: campaigns_dir
            .join(super::file::FILE_NAME)
            .display()
            .to_string(),
        errors,
    })
}

/// The meta key holding the mode and start of an unfinished run ("" once
/// none is unfinished): `full 2026-11-23T04:00:00+00:00`, say.
const RUN_STARTED_KEY: &str = "segments_run_started";

/// The previous run's state, if any (an unreadable state means "none").
pub async fn previous_state(store: &dyn Store) -> Result<Option<SegmentState>, StoreError> {
    Ok(store
        .meta(STATE_KEY)
        .await?
        .and_then(|s| serde_json::from_str(&s).ok()))
}

/// Plan a run (or a read of date-dependent attributes) at `now`.
pub async fn plan(
    store: &dyn Store,
    file: &SegmentsFile,
    default_tz: Tz,
    now: DateTime<Utc>,
    requested: RecomputeMode,
) -> Result<SegmentPlan, StoreError> {
    let stores = store.stores().await?;
    let previous = previous_state(store).await?;
    let mut plan = SegmentPlan::new(file, &stores, default_tz, now, requested, previous.as_ref());
    if let Some(started) = store.meta(RUN_STARTED_KEY).await?.filter(|s| !s.is_empty()) {
        let (mode, at) = started.split_once(' ').unwrap_or(("", &started));
        plan.previous_unfinished(format!("the {mode} run started at {at} did not finish"));
    }
    Ok(plan)
}

/// The run lease the segments job holds for its whole run: two runs at
/// once (the daemon's and a command's, from two processes, say) would rank
/// the same customers from the same old values and record each change
/// twice. The second waits for the first.
const RUN_LEASE: &str = "segments";

/// How long a run's lease lasts unless renewed (every third of it): a
/// process that dies holds up the next run this long at most.
const LEASE_SECONDS: i64 = 60;

/// How often a run renews its lease: every third of its length.
const LEASE_RENEWAL: StdDuration = StdDuration::from_secs(LEASE_SECONDS.unsigned_abs() / 3);

/// How often a run waiting for the lease tries again.
const LEASE_POLL: StdDuration = StdDuration::from_millis(250);

/// What a run of the segments job is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// A run in this mode (an incremental one may become full, saying why).
    Mode(RecomputeMode),
    /// A full run that ranks and evaluates every customer, whatever the
    /// previous run left: stored stages, tiers and memberships that
    /// differ from what the figures give are put right (and each change
    /// recorded), even where no figure changed. (Scores are not stored:
    /// they are read from the figures and the run's thresholds.)
    Rebuild,
}

impl From<RecomputeMode> for Request {
    fn from(mode: RecomputeMode) -> Request {
        Request::Mode(mode)
    }
}

impl Request {
    fn mode(self) -> RecomputeMode {
        match self {
            Request::Mode(mode) => mode,
            Request::Rebuild => RecomputeMode::Full,
        }
    }
}

/// Run the segments job once at `now` as `request` asks (a
/// [`RecomputeMode`], or [`Request::Rebuild`]), under the job's run lease
/// (waiting for a run that holds it to finish).
pub async fn run(
    store: &dyn Store,
    campaigns_dir: &Path,
    default_tz: Tz,
    now: DateTime<Utc>,
    request: impl Into<Request>,
) -> Result<SegmentRunReport, JobError> {
    let request = request.into();
    let requested = request.mode();
    let rebuild = request == Request::Rebuild;
    let span = tracing::info_span!("job", job = "segments", mode = %requested, rebuild, now = %now);
    async move {
        let started = Instant::now();
        // The lease's time moves on from `now` as the run goes.
        let at = || now + chrono::Duration::from_std(started.elapsed()).unwrap_or_default();
        let holder = worker_id();
        take_lease(store, &holder, &at).await?;
        let done = tokio::select! {
            lost = keep_lease(store, &holder, &at, LEASE_RENEWAL) => Err(lost),
            done = run_leased(store, campaigns_dir, default_tz, now, request) => done,
        };
        if let Err(e) = store.release_run_lease(RUN_LEASE, &holder).await {
            tracing::warn!(error = %e, "cannot release the segments run's lease; it runs out in {LEASE_SECONDS} s");
        }
        done
    }
    .instrument(span)
    .await
}

/// Take the run lease, waiting while another run holds it.
async fn take_lease(
    store: &dyn Store,
    holder: &str,
    at: &impl Fn() -> DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut waited = false;
    loop {
        let now = at();
        let lease = chrono::Duration::seconds(LEASE_SECONDS);
        let Some(other) = store
            .take_run_lease(RUN_LEASE, holder, now, now + lease)
            .await?
        else {
            return Ok(());
        };
        if other.until > now + lease * 2 {
            // No run on this clock renews that far ahead: the lease was
            // left by a run travelling in time (`--now` in the future)
            // that did not finish. Waiting for it could take days.
            tracing::warn!(
                holder = %other.holder,
                until = %other.until,
                "taking over a segments lease that runs out far beyond this run's clock"
            );
            store.release_run_lease(RUN_LEASE, &other.holder).await?;
            continue;
        }
        if !waited {
            tracing::info!(
                holder = %other.holder,
                until = %other.until,
                "another segments run is under way; waiting for it to finish"
            );
            waited = true;
        }
        tokio::time::sleep(LEASE_POLL).await;
    }
}

/// Renew the run lease `every` so often; returns only when it was lost.
async fn keep_lease(
    store: &dyn Store,
    holder: &str,
    at: &impl Fn() -> DateTime<Utc>,
    every: StdDuration,
) -> JobError {
    loop {
        tokio::time::sleep(every).await;
        let until = at() + chrono::Duration::seconds(LEASE_SECONDS);
        match store.renew_run_lease(RUN_LEASE, holder, until).await {
            Ok(true) => {}
            Ok(false) => return JobError::LeaseLost,
            // The next renewal may get through before the lease runs out.
            Err(e) => tracing::warn!(error = %e, "cannot renew the segments run's lease"),
        }
    }
}

/// The run itself, its lease held.
async fn run_leased(
    store: &dyn Store,
    campaigns_dir: &Path,
    default_tz: Tz,
    now: DateTime<Utc>,
    request: Request,
) -> Result<SegmentRunReport, JobError> {
    // The report's seconds leave out any wait for the lease.
    let started = Instant::now();
    let file = load_file(store, campaigns_dir).await?;
    let mut plan = plan(store, &file, default_tz, now, request.mode()).await?;
    if request == Request::Rebuild {
        plan = plan.ranking_everyone();
    }
    if let Some(reason) = &plan.full_reason {
        tracing::info!(reason = %reason, "running a full recompute instead of an incremental one");
    }
    // Until this run has finished, the next one must be a full one: a full
    // run rebuilds what incremental runs build on (the figures' histogram
    // among them), and either run ranks and evaluates a customer only
    // after committing new figures and clearing the customer's mark. An
    // incremental run stopped in between would leave customers whose new
    // figures no later incremental run ranks.
    store
        .set_meta(
            RUN_STARTED_KEY,
            &format!("{} {}", plan.mode, now.to_rfc3339()),
        )
        .await?;
    let outcome = store.recompute_segments(&plan).await?;
    let state = plan.finished_state(now);
    store
        .set_meta(
            STATE_KEY,
            &serde_json::to_string(&state).unwrap_or_else(|_| "{}".into()),
        )
        .await?;
    store.set_meta(RUN_STARTED_KEY, "").await?;
    let report = SegmentRunReport {
        mode: plan.mode,
        full_reason: plan.full_reason.clone(),
        outcome,
        seconds: started.elapsed().as_secs_f64(),
    };
    tracing::info!(
        mode = %report.mode,
        recomputed = report.outcome.recomputed,
        changed = report.outcome.changed,
        transitions = report.outcome.transitions,
        seconds = format!("{:.2}", report.seconds),
        "segments recomputed"
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;
    use chrono::TimeZone;

    fn secs(n: i64) -> chrono::Duration {
        chrono::Duration::seconds(n)
    }

    /// A run renews its lease while it holds it, and stops with
    /// `LeaseLost` once another holder has it: the lease ran out while the
    /// database was out of reach, say, and another run took it.
    #[tokio::test]
    async fn a_run_renews_its_lease_and_stops_once_another_holds_it() {
        let (_dir, store) = SqliteStore::temporary(2).await;
        let t0 = Utc.with_ymd_and_hms(2026, 11, 23, 4, 0, 0).unwrap();
        let started = Instant::now();
        let at = || t0 + chrono::Duration::from_std(started.elapsed()).unwrap_or_default();
        let taken = store
            .take_run_lease(RUN_LEASE, "run", t0, t0 + secs(LEASE_SECONDS))
            .await
            .unwrap();
        assert!(taken.is_none(), "nobody held the lease");

        let keeper = keep_lease(&store, "run", &at, StdDuration::from_millis(20));
        tokio::pin!(keeper);
        tokio::select! {
            lost = &mut keeper => panic!("the run lost a lease nobody took: {lost}"),
            () = tokio::time::sleep(StdDuration::from_millis(300)) => {}
        }
        // Renewed as the clock moved on: it runs out later than first taken.
        let held = store
            .take_run_lease(RUN_LEASE, "other", at(), at() + secs(LEASE_SECONDS))
            .await
            .unwrap()
            .expect("the run holds the lease");
        assert_eq!(held.holder, "run");
        assert!(
            held.until > t0 + secs(LEASE_SECONDS),
            "the lease was not renewed: it runs out at {}",
            held.until
        );

        store.release_run_lease(RUN_LEASE, "run").await.unwrap();
        let taken = store
            .take_run_lease(RUN_LEASE, "other", at(), at() + secs(LEASE_SECONDS))
            .await
            .unwrap();
        assert!(taken.is_none(), "the other run took the lease");
        let lost = tokio::time::timeout(StdDuration::from_secs(5), keeper)
            .await
            .expect("the run went on without its lease");
        assert!(matches!(lost, JobError::LeaseLost), "{lost}");
    }
}
