//! `GET /api/jobs`: the latest tick of every job and recent job runs.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::AppState;

/// Query of `GET /api/jobs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsQuery {
    /// One job (`segments`, `housekeeping`, `campaign:ID`).
    pub job: Option<String>,
    /// How many runs (default 50, at most 500).
    pub limit: Option<u32>,
}

/// `GET /api/jobs?job=&limit=`
pub async fn list(State(state): State<AppState>, Query(q): Query<JobsQuery>) -> Response {
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"error": "limit must be between 1 and 500"})),
        )
            .into_response();
    }
    let latest = state.store.latest_job_runs().await;
    let runs = state.store.job_runs(q.job.as_deref(), limit).await;
    match (latest, runs) {
        (Ok(latest), Ok(runs)) => Json(json!({
            "latest": latest,
            "runs": runs,
            "scheduler": state.scheduler.as_ref().map(|s| json!({
                "alive": s.alive(state.clock.now()),
                "last_pass": s.last_pass(),
            })),
        }))
        .into_response(),
        (Err(e), _) | (_, Err(e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": e.to_string()})),
        )
            .into_response(),
    }
}
