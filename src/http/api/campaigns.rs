//! `GET /api/campaigns`: the campaigns in force (the last good version of
//! each file) with their send-log and coupon figures, the campaigns that
//! have messages but no file in force any more, and the files' errors with
//! file, line and column.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::unavailable;
use crate::campaigns::stats::CampaignStats;
use crate::campaigns::watch::ActiveCampaign;
use crate::commands::campaigns::describe_trigger;
use crate::domain::Money;
use crate::http::AppState;

/// `GET /api/campaigns`
pub async fn list(State(state): State<AppState>) -> Response {
    let snapshot = state.campaigns.snapshot();
    let stats = match state.store.campaign_stats(None).await {
        Ok(s) => s,
        Err(e) => return unavailable(&e),
    };
    let mut stats: BTreeMap<String, CampaignStats> = stats
        .into_iter()
        .map(|s| (s.campaign_id.clone(), s))
        .collect();
    let campaigns: Vec<Value> = snapshot
        .campaigns
        .iter()
        .map(|(id, active)| {
            let figures = stats.remove(id.as_str());
            campaign(active, snapshot.stale.contains(id), figures.as_ref())
        })
        .collect();
    // Messages of campaigns whose file is gone (or never passed a check).
    let retired: Vec<Value> = stats
        .values()
        .map(|s| json!({ "id": s.campaign_id, "stats": figures(Some(s)) }))
        .collect();
    let errors: Vec<Value> = snapshot
        .all_errors()
        .map(|e| {
            json!({
                "file": e.file,
                "line": e.line,
                "column": e.column,
                "message": e.message,
                "text": e.to_string(),
            })
        })
        .collect();
    Json(json!({
        "generation": snapshot.generation,
        "campaigns": campaigns,
        "not_in_force": retired,
        "errors": errors,
    }))
    .into_response()
}

fn campaign(a: &ActiveCampaign, stale: bool, stats: Option<&CampaignStats>) -> Value {
    let c = &a.campaign;
    json!({
        "id": c.id.as_str(),
        "name": c.name,
        "file": c.path,
        "enabled": c.enabled,
        // The file now fails its check: this is its last good version.
        "stale": stale,
        "trigger": c.trigger.kind(),
        "trigger_text": describe_trigger(c),
        "schedule": c.schedule.as_ref().map(|s| s.source()),
        "schedule_text": c.schedule.as_ref().map(|s| s.describe()),
        "timezone": c.timezone.map(|z| z.name()),
        "channels": c.channels,
        "template": c.template,
        "priority": c.priority,
        "stores": c.audience.stores.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "segments": c.audience.segments.iter().map(|s| s.name()).collect::<Vec<_>>(),
        "exclude_segments": c.audience.exclude_segments.iter().map(|s| s.name()).collect::<Vec<_>>(),
        "send_window": c.send_window.map(|w| w.describe()),
        "coupon": c.coupon.as_ref().map(|k| json!({
            "kind": k.kind,
            "value": k.value,
            "item": k.item,
            "min_spend": Money::from_fen(k.min_spend_fen).to_string(),
            "valid_days": k.valid_days,
            "code_prefix": k.code_prefix,
        })),
        "stats": figures(stats),
    })
}

/// A campaign's figures (zeros before its first message).
fn figures(s: Option<&CampaignStats>) -> Value {
    let default = CampaignStats::default();
    let s = s.unwrap_or(&default);
    let n = |status: &str| s.messages.get(status).copied().unwrap_or(0);
    json!({
        "messages": s.messages.values().sum::<u64>(),
        "waiting": n("queued") + n("deferred") + n("sending"),
        "sent": n("sent") + n("delivered"),
        "delivered": n("delivered"),
        "failed": n("failed") + n("dead"),
        "suppressed": n("suppressed"),
        "by_status": s.messages,
        "suppressed_by_reason": s.suppressed,
        "coupons_issued": s.coupons_issued,
        "coupons_voided": s.coupons_voided,
        "coupons_redeemed": s.coupons_redeemed,
        "redemption_rate": s.redemption_rate,
        "revenue": Money::from_fen(s.revenue_fen).to_string(),
        "revenue_fen": s.revenue_fen,
    })
}
