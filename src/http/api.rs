//! The JSON API: bearer-token protected when a token is configured.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use crate::dispatch::sign::constant_time_eq;
use crate::domain::{Email, Phone, WeChatOpenId};
use crate::store::{Channel, OptOut};

/// Rejects API requests without `Authorization: Bearer <http.token>` when a
/// token is configured.
pub async fn require_token(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(token) = &state.token {
        let given = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !constant_time_eq(given.as_bytes(), token.expose_secret().as_bytes()) {
            return (
                StatusCode::UNAUTHORIZED,
                Json(json!({"error": "a bearer token is required: Authorization: Bearer <http.token>"})),
            )
                .into_response();
        }
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
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(json!({"error": message})),
    )
        .into_response()
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
