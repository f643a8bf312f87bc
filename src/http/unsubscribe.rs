//! One-click unsubscribe (RFC 8058): `GET /u/{token}` shows a confirmation
//! page, `POST /u/{token}` opts the address out. The token is signed, so it
//! can be neither forged nor enumerated; the POST needs no cookie, answers
//! without a redirect, and may be repeated.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use super::AppState;
use crate::store::{Channel, OptOut};

/// `GET /u/{token}`
pub async fn confirm(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    match state.links.verify(&token) {
        Err(_) => invalid(),
        Ok((channel, _)) => Html(page(
            "退订确认 · Unsubscribe",
            &format!(
                "<p>确认后，您将不再收到我们的{zh}营销消息。</p>\
                 <p>After you confirm, you will no longer receive our marketing {en}.</p>\
                 <form method=\"post\"><input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\
                 <button type=\"submit\">确认退订 · Unsubscribe</button></form>",
                zh = channel_zh(channel),
                en = channel_en(channel),
            ),
        ))
        .into_response(),
    }
}

/// `POST /u/{token}`: also the target of mail clients' one-click button.
pub async fn unsubscribe(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let Ok((channel, address)) = state.links.verify(&token) else {
        return invalid();
    };
    let done = state
        .store
        .record_opt_out(&OptOut {
            channel,
            address,
            source: "unsubscribe-link".into(),
            at: state.clock.now(),
        })
        .await;
    match done {
        Ok(_) => Html(page(
            "已退订 · Unsubscribed",
            &format!(
                "<p>您已退订，我们不会再向您发送{zh}营销消息。</p>\
                 <p>You are unsubscribed and will receive no more marketing {en} from us.</p>",
                zh = channel_zh(channel),
                en = channel_en(channel),
            ),
        ))
        .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "an unsubscribe could not be recorded");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Html(page(
                    "请稍后再试 · Please try again",
                    "<p>暂时无法处理您的退订，请稍后再试。</p><p>We could not record your request just now; please try again in a moment.</p>",
                )),
            )
                .into_response()
        }
    }
}

fn invalid() -> Response {
    (
        StatusCode::NOT_FOUND,
        Html(page(
            "链接无效 · Invalid link",
            "<p>此退订链接无效或已损坏。</p><p>This unsubscribe link is not valid.</p>",
        )),
    )
        .into_response()
}

fn channel_zh(c: Channel) -> &'static str {
    match c {
        Channel::Sms => "短信",
        Channel::Email => "邮件",
        Channel::Wechat => "微信",
    }
}

fn channel_en(c: Channel) -> &'static str {
    match c {
        Channel::Sms => "text messages",
        Channel::Email => "e-mail",
        Channel::Wechat => "WeChat messages",
    }
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;line-height:1.6}}\
         button{{font-size:1rem;padding:.6rem 1.2rem}}</style></head>\
         <body><h1>{title}</h1>{body}</body></html>"
    )
}
