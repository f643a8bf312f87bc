//! The send log over HTTP: `GET /api/messages` (a filtered page, newest
//! first, with the cursor of the next), `GET /api/messages/{id}` (one
//! message with its provider calls and retries) and
//! `POST /api/messages/{id}/retry` (audited). Addresses are masked unless
//! `reveal=true`.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{bad, error, unavailable};
use crate::campaigns::spec::CampaignId;
use crate::domain::CustomerId;
use crate::http::AppState;
use crate::store::send_log::{MAX_LIMIT, parse_actor, parse_status, parse_time_bound};
use crate::store::{Channel, LogCursor, RetryOutcome, SendLogQuery};

/// The header naming who asks for a retry (default `api`).
pub const ACTOR_HEADER: &str = "x-outreach-actor";

/// Query parameters of `GET /api/messages`.
const LIST_PARAMS: [&str; 9] = [
    "campaign", "channel", "status", "customer", "since", "until", "limit", "cursor", "reveal",
];

/// The parameters as given, each at most once; an empty value counts as
/// absent (a form's empty field).
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(
        query: Result<Query<Vec<(String, String)>>, QueryRejection>,
        known: &[&str],
    ) -> Result<Params, String> {
        let Query(pairs) = query.map_err(|e| format!("the query string: {e}"))?;
        let mut seen: Vec<&str> = Vec::new();
        for (k, _) in &pairs {
            let Some(name) = known.iter().find(|n| **n == k) else {
                return Err(format!(
                    "unknown parameter {:?} (known: {})",
                    k.chars().take(40).collect::<String>(),
                    known.join(", ")
                ));
            };
            if seen.contains(name) {
                return Err(format!("{name}: given more than once"));
            }
            seen.push(name);
        }
        Ok(Params(pairs))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// `name` parsed by `parse`, or a sentence naming the parameter.
    fn parsed<T, E: std::fmt::Display>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<Option<T>, String> {
        self.get(name)
            .map(parse)
            .transpose()
            .map_err(|e| format!("{name}: {e}"))
    }

    fn reveal(&self) -> Result<bool, String> {
        Ok(self
            .parsed("reveal", |v| match v.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Ok(true),
                "false" | "0" | "no" => Ok(false),
                _ => Err(format!("{v:?} is not true or false")),
            })?
            .unwrap_or(false))
    }
}

/// The filters of a request as a store query.
fn query_of(p: &Params, now: chrono::DateTime<chrono::Utc>) -> Result<SendLogQuery, String> {
    let limit = p
        .parsed("limit", |v| match v.parse::<u32>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(format!("{v:?} is not a whole number from 1 to {MAX_LIMIT}")),
        })?
        .unwrap_or(crate::store::send_log::DEFAULT_LIMIT);
    Ok(SendLogQuery {
        campaign: p.parsed("campaign", |v| {
            CampaignId::parse(v).map(|c| c.as_str().to_owned())
        })?,
        channel: p.parsed("channel", str::parse::<Channel>)?,
        status: p.parsed("status", parse_status)?,
        customer: p.parsed("customer", |v| {
            CustomerId::parse(v).map(|c| c.as_str().to_owned())
        })?,
        since: p.parsed("since", |v| parse_time_bound(v, now))?,
        until: p.parsed("until", |v| parse_time_bound(v, now))?,
        before: p.parsed("cursor", str::parse::<LogCursor>)?,
        limit,
    })
}

/// `GET /api/messages?campaign=&channel=&status=&customer=&since=&until=&limit=&cursor=&reveal=`
pub async fn list(
    State(state): State<AppState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let parsed = Params::parse(query, &LIST_PARAMS)
        .and_then(|p| Ok((query_of(&p, state.clock.now())?, p.reveal()?)));
    let (q, reveal) = match parsed {
        Ok(ok) => ok,
        Err(e) => return bad(e),
    };
    match state.store.send_log(&q).await {
        Ok(page) => {
            let rows: Vec<_> = page
                .rows
                .into_iter()
                .map(|r| if reveal { r } else { r.masked() })
                .collect();
            Json(json!({ "messages": rows, "next": page.next })).into_response()
        }
        Err(e) => unavailable(&e),
    }
}

fn message_id(text: &str) -> Result<i64, String> {
    text.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| {
            format!(
                "id: {:?} is not a message id (a positive whole number)",
                text.chars().take(40).collect::<String>()
            )
        })
}

/// `GET /api/messages/{id}?reveal=`
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let parsed =
        message_id(&id).and_then(|id| Ok((id, Params::parse(query, &["reveal"])?.reveal()?)));
    let (id, reveal) = match parsed {
        Ok(ok) => ok,
        Err(e) => return bad(e),
    };
    match state.store.message_detail(id).await {
        Ok(Some(m)) => Json(if reveal { m } else { m.masked() }).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no message has id {id}")),
        Err(e) => unavailable(&e),
    }
}

/// `POST /api/messages/{id}/retry`: a failed or dead message back to the
/// queue, audited under the `X-Outreach-Actor` header's name (default
/// `api`). 404 for an unknown id, 409 for a message that cannot be retried.
pub async fn retry(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let id = match message_id(&id) {
        Ok(id) => id,
        Err(e) => return bad(e),
    };
    let actor = match headers.get(ACTOR_HEADER) {
        None => "api".to_owned(),
        Some(v) => match v
            .to_str()
            .map_err(|_| "not text".to_owned())
            .and_then(parse_actor)
        {
            Ok(a) => a,
            Err(e) => return bad(format!("X-Outreach-Actor: {e}")),
        },
    };
    let outcome = match state
        .store
        .retry_message(id, &actor, state.clock.now())
        .await
    {
        Ok(o) => o,
        Err(e) => return unavailable(&e),
    };
    let status = match outcome {
        RetryOutcome::Retried { .. } => StatusCode::OK,
        RetryOutcome::NotFound => StatusCode::NOT_FOUND,
        RetryOutcome::NotRetryable { .. } | RetryOutcome::CouponUnusable { .. } => {
            StatusCode::CONFLICT
        }
    };
    let mut body = serde_json::to_value(&outcome).unwrap_or_else(|_| json!({}));
    if status == StatusCode::OK {
        body["id"] = json!(id);
        body["actor"] = json!(actor);
    } else {
        body["error"] = json!(format!("message {id}: {outcome}"));
    }
    (status, Json(body)).into_response()
}
