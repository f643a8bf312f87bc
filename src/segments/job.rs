//! The `segments` job: load the rules, plan the run, let the store do the
//! set-based work, remember what was done for the next incremental run.

use std::path::Path;
use std::time::Instant;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use tracing::Instrument;

use super::attributes::SegmentRunReport;
use super::file::SegmentsFile;
use super::plan::{RecomputeMode, STATE_KEY, SegmentPlan, SegmentState};
use crate::expr::CheckContext;
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

/// The meta key holding when an unfinished full run started ("" once none
/// is unfinished).
const FULL_RUN_STARTED_KEY: &str = "segments_full_run_started";

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
    if plan.mode == RecomputeMode::Incremental
        && let Some(started) = store
            .meta(FULL_RUN_STARTED_KEY)
            .await?
            .filter(|s| !s.is_empty())
    {
        plan.mode = RecomputeMode::Full;
        plan.full_reason = Some(format!("the full run started at {started} did not finish"));
    }
    Ok(plan)
}

/// Run the segments job once at `now`.
pub async fn run(
    store: &dyn Store,
    campaigns_dir: &Path,
    default_tz: Tz,
    now: DateTime<Utc>,
    requested: RecomputeMode,
) -> Result<SegmentRunReport, JobError> {
    let span = tracing::info_span!("job", job = "segments", mode = %requested, now = %now);
    async move {
        let started = Instant::now();
        let file = load_file(store, campaigns_dir).await?;
        let plan = plan(store, &file, default_tz, now, requested).await?;
        if let Some(reason) = &plan.full_reason {
            tracing::info!(reason = %reason, "running a full recompute instead of an incremental one");
        }
        if plan.mode == RecomputeMode::Full {
            // A full run rebuilds what incremental runs build on (the
            // figures' histogram among them): until it has finished, the
            // next run must be a full one too.
            store
                .set_meta(FULL_RUN_STARTED_KEY, &now.to_rfc3339())
                .await?;
        }
        let outcome = store.recompute_segments(&plan).await?;
        let state = plan.finished_state(now);
        store
            .set_meta(
                STATE_KEY,
                &serde_json::to_string(&state).unwrap_or_else(|_| "{}".into()),
            )
            .await?;
        if plan.mode == RecomputeMode::Full {
            store.set_meta(FULL_RUN_STARTED_KEY, "").await?;
        }
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
    .instrument(span)
    .await
}
