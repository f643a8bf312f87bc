//! Provider pushes: delivery receipts and SMS replies.
//!
//! - Aliyun and Tencent sign nothing, so their endpoints live under an
//!   unguessable path token (`http.hooks_token`):
//!   `/hooks/{token}/aliyun/receipts`, `/hooks/{token}/aliyun/replies`,
//!   `/hooks/{token}/tencent/receipts`, `/hooks/{token}/tencent/replies`.
//!   Without a configured token they do not exist.
//! - WeChat (`/hooks/wechat`) and Twilio (`/hooks/twilio/status`,
//!   `/hooks/twilio/inbound`) are verified by the provider's signature.
//!
//! A reply that means "stop" (`R`, `TD`, `T`, `N`, `退订`, `STOP`) opts the
//! number out of SMS. A push we cannot parse is answered 400; one we could
//! not record is answered 500 so the provider sends it again.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use serde_json::json;

use super::AppState;
use crate::dispatch::providers::{aliyun, tencent, twilio, wechat_callback};
use crate::dispatch::replies::is_opt_out;
use crate::dispatch::sign;
use crate::dispatch::{Receipt, SmsReply};
use crate::store::{Channel, OptOut, StoreError};

/// Which push an unsigned endpoint takes.
#[derive(Debug, Clone, Copy)]
enum Push {
    AliyunReceipts,
    AliyunReplies,
    TencentReceipts,
    TencentReplies,
}

/// `POST /hooks/{token}/{provider}/{kind}`
pub async fn unsigned(
    State(state): State<AppState>,
    Path((token, provider, kind)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let Some(expected) = &state.hooks.path_token else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if !sign::constant_time_eq(token.as_bytes(), expected.expose_secret().as_bytes()) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let push = match (provider.as_str(), kind.as_str()) {
        ("aliyun", "receipts") => Push::AliyunReceipts,
        ("aliyun", "replies") => Push::AliyunReplies,
        ("tencent", "receipts") => Push::TencentReceipts,
        ("tencent", "replies") => Push::TencentReplies,
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let outcome = match push {
        Push::AliyunReceipts => match aliyun::parse_receipts(&body) {
            Ok(r) => receipts(&state, &r).await,
            Err(e) => Err(bad(e.to_string())),
        },
        Push::TencentReceipts => match tencent::parse_receipts(&body) {
            Ok(r) => receipts(&state, &r).await,
            Err(e) => Err(bad(e.to_string())),
        },
        Push::AliyunReplies => match aliyun::parse_replies(&body) {
            Ok(r) => replies(&state, &r).await,
            Err(e) => Err(bad(e.to_string())),
        },
        Push::TencentReplies => match tencent::parse_replies(&body) {
            Ok(r) => replies(&state, &r).await,
            Err(e) => Err(bad(e.to_string())),
        },
    };
    match (outcome, push) {
        (Err(response), _) => response,
        (Ok(()), Push::AliyunReceipts | Push::AliyunReplies) => {
            axum::Json(json!({"code": 0, "msg": "接收成功"})).into_response()
        }
        (Ok(()), Push::TencentReceipts | Push::TencentReplies) => {
            axum::Json(json!({"result": 0, "errmsg": "OK"})).into_response()
        }
    }
}

/// `GET /hooks/wechat`: WeChat's server check; echoes `echostr` when signed.
pub async fn wechat_check(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if !wechat_signed(&state, &q) {
        return StatusCode::FORBIDDEN.into_response();
    }
    q.get("echostr")
        .cloned()
        .unwrap_or_default()
        .into_response()
}

/// `POST /hooks/wechat`: `TEMPLATESENDJOBFINISH` events become receipts.
pub async fn wechat_event(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    if !wechat_signed(&state, &q) {
        return StatusCode::FORBIDDEN.into_response();
    }
    match wechat_callback::parse_event(&body) {
        Ok(None) => "success".into_response(),
        Ok(Some(r)) => match receipts(&state, std::slice::from_ref(&r)).await {
            Ok(()) => "success".into_response(),
            Err(resp) => resp,
        },
        Err(e) => bad(e.to_string()),
    }
}

fn wechat_signed(state: &AppState, q: &HashMap<String, String>) -> bool {
    let Some(token) = &state.hooks.wechat_token else {
        return false;
    };
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or("");
    wechat_callback::verify_signature(
        token.expose_secret(),
        get("timestamp"),
        get("nonce"),
        get("signature"),
    )
}

/// `POST /hooks/twilio/status` and `/hooks/twilio/inbound`.
pub async fn twilio(
    State(state): State<AppState>,
    Path(kind): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(token) = &state.hooks.twilio_auth_token else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let params = match twilio::parse_form(&body) {
        Ok(p) => p,
        Err(e) => return bad(e.to_string()),
    };
    let url = format!("{}{}", state.hooks.public_url.trim_end_matches('/'), uri);
    let header = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !sign::twilio::verify(token.expose_secret(), &url, &params, header) {
        return StatusCode::FORBIDDEN.into_response();
    }
    let outcome = match kind.as_str() {
        "status" => match twilio::receipt_from_status_callback(&params) {
            Ok(Some(r)) => receipts(&state, std::slice::from_ref(&r)).await,
            Ok(None) => Ok(()),
            Err(e) => Err(bad(e.to_string())),
        },
        "inbound" => match twilio::reply_from_inbound(&params) {
            Ok(r) => replies(&state, std::slice::from_ref(&r)).await,
            Err(e) => Err(bad(e.to_string())),
        },
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    match outcome {
        Ok(()) => (
            [("content-type", "text/xml")],
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>",
        )
            .into_response(),
        Err(resp) => resp,
    }
}

async fn receipts(state: &AppState, receipts: &[Receipt]) -> Result<(), Response> {
    let counts = state
        .store
        .apply_receipts(receipts, state.clock.now())
        .await
        .map_err(unavailable)?;
    if let Some(first) = receipts.first() {
        crate::metrics::receipts_applied(
            &first.provider,
            counts.delivered,
            counts.failed,
            counts.unmatched,
        );
    }
    tracing::info!(
        delivered = counts.delivered,
        failed = counts.failed,
        unmatched = counts.unmatched,
        "delivery receipts"
    );
    Ok(())
}

async fn replies(state: &AppState, replies: &[SmsReply]) -> Result<(), Response> {
    for r in replies.iter().filter(|r| is_opt_out(&r.text)) {
        let done = state
            .store
            .record_opt_out(&OptOut {
                channel: Channel::Sms,
                address: r.phone.clone(),
                source: format!("sms-reply:{}", r.provider),
                at: r.at.unwrap_or_else(|| state.clock.now()),
            })
            .await
            .map_err(unavailable)?;
        tracing::info!(
            provider = %r.provider,
            to = %crate::domain::Phone::from_trusted(r.phone.clone()).masked(),
            suppressed = done.suppressed,
            "opted out by SMS reply"
        );
    }
    Ok(())
}

fn bad(message: String) -> Response {
    tracing::warn!(error = %message, "a provider push could not be read");
    (StatusCode::BAD_REQUEST, message).into_response()
}

fn unavailable(e: StoreError) -> Response {
    tracing::error!(error = %e, "a provider push could not be recorded");
    StatusCode::INTERNAL_SERVER_ERROR.into_response()
}
