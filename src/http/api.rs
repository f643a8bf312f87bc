//! The JSON API: bearer-token protected when a token is configured.
//! Opt-outs here; the send log and retries in [`messages`], the campaigns in
//! force in [`campaigns`], customers and orders in [`ingest`].

pub mod campaigns;
pub mod ingest;
pub mod messages;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use std::sync::Arc;

use super::AppState;
use super::auth::{Access, Gate};
use crate::domain::{Email, Phone, WeChatOpenId};
use crate::store::{Channel, OptOut};

/// Rejects API (and `/metrics`) requests that [`Gate::check`] does not let
/// in: `Authorization: Bearer <http.token>` or a session cookie from
/// `/login` when a token is configured (even on loopback); without a token,
/// only a loopback listener is open. Answers 401 with a JSON error.
pub async fn require_token(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let allowed = req
        .extensions()
        .get::<Arc<Gate>>()
        .is_some_and(|gate| gate.check(req.headers(), state.clock.now()) != Access::Denied);
    if !allowed {
        return super::auth::unauthorized_json();
    }
    next.run(req).await
}

/// Body of `POST /api/optouts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptOutRequest {
    pub channel: String,
    pub address: String,
    /// Where it came from (default `http`).
    pub source: Option<String>,
}

fn bad(message: String) -> Response {
    error(StatusCode::UNPROCESSABLE_ENTITY, message)
}

/// `{"error": message}` with `status`.
fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// A database that did not answer: 503, the request can be repeated.
fn unavailable(e: &crate::store::StoreError) -> Response {
    tracing::warn!(error = %e, "an API request found the database unavailable");
    error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
}

/// `POST /api/optouts`: `{"channel":"sms","address":"13800138000"}`.
pub async fn opt_out(State(state): State<AppState>, Json(req): Json<OptOutRequest>) -> Response {
    let channel: Channel = match req.channel.parse() {
        Ok(c) => c,
        Err(e) => return bad(format!("channel: {e}")),
    };
    let parsed = match channel {
        Channel::Sms => Phone::parse(&req.address)
            .map(|p| p.as_str().to_owned())
            .map_err(|e| e.to_string()),
        Channel::Email => Email::parse(&req.address)
            .map(|e| e.as_str().to_owned())
            .map_err(|e| e.to_string()),
        Channel::Wechat => WeChatOpenId::parse(&req.address)
            .map(|w| w.as_str().to_owned())
            .map_err(|e| e.to_string()),
    };
    let address = match parsed {
        Ok(a) => a,
        Err(e) => return bad(format!("address: {e}")),
    };
    let done = state
        .store
        .record_opt_out(&OptOut {
            channel,
            address,
            source: req.source.unwrap_or_else(|| "http".into()),
            at: state.clock.now(),
        })
        .await;
    match done {
        Ok(d) => Json(json!({"recorded": d.recorded, "suppressed": d.suppressed})).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": e.to_string()})),
        )
            .into_response(),
    }
}
