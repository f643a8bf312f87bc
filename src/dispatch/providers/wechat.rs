//! WeChat: official-account template messages and mini-program subscribe
//! messages, with the stable access token cached in the client.
//!
//! **Token.** `POST /cgi-bin/stable_token` with `force_refresh: false`, cached
//! until 60 s before `expires_in` runs out (by the injected clock). One fetch
//! at a time: the cache is a Tokio mutex held across the fetch, so concurrent
//! sends wait for the one fetch and then use its token. When a send is
//! answered `40001`/`40014`/`42001` the token is renewed and the send retried
//! exactly once: first a normal fetch (the platform may already hold a newer
//! token, e.g. after another process forced a refresh), and only if it
//! returns the rejected token again a `force_refresh: true` fetch, at most one
//! per 30 s (WeChat's minimum spacing; 20 a day). A second rejection is
//! `ProviderDown`. The token lives in a `SecretString` and travels only in the
//! query string; transport errors are stripped of the URL before they are
//! reported, so it never reaches the send log.
//!
//! **Classification** of a send's `errcode`:
//!
//! | errcode | class |
//! |---|---|
//! | 0 | accepted (`msgid` when given) |
//! | 43004 (not following), 43101 (refused / no subscription left), 43019 (blocklisted) | `Permanent { suppress_address: true }` |
//! | 40003 (invalid openid) | `Permanent { suppress_address: false }`: an OpenID is only valid for one app id, so a wrong `app_id` or OpenIDs imported from another account answer 40003 for everyone; suppressing would silently and lastingly block a whole list, while not suppressing costs one failed call per campaign for a truly bad OpenID |
//! | 40037, 40036 (template id), 47003 (data invalid), 41030 (page), 43116 (template banned) | `Permanent { suppress_address: false }`: a problem of this message's template or data, not of the account; another provider would not have the same template, and `ProviderDown` would take the whole channel down for one bad template |
//! | 48001 (API not authorised), 40013 (app id), 40164 (IP not allowed), 89503 (admin confirmation), 40125 (secret), 41001 (token missing) | `ProviderDown` |
//! | 40001, 40014, 42001 after the one retry | `ProviderDown` |
//! | 45009 (daily quota) | `RateLimited(NextDay)` |
//! | -1 (system busy) | `Transient { outcome_unknown: false }` |
//! | any other code | `Permanent { suppress_address: false }` with the code in the send log |
//! | HTTP non-2xx | `http::status_class` (429 → rate limited, 5xx → transient, 401/403 → provider down) |
//! | timeout / broken connection | `Transient { outcome_unknown: true }` (template sends carry `client_msg_id`, so a retry within 10 minutes is not delivered twice) |
//! | a 2xx answer that is not the expected JSON | `Transient { outcome_unknown: true }` |
//!
//! On the token endpoint: `-1` is transient, every other code (40013, 40001
//! wrong secret, 40125, 40164, 89503, 45009 …) is `ProviderDown`, since no
//! message can go without a token.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};
use tokio::sync::Mutex;

use super::http;
use crate::clock::SharedClock;
use crate::dispatch::provider::{
    Accepted, FailureClass, Outgoing, Provider, RateWait, SendError, SendResult,
};
use crate::dispatch::settings::WechatSettings;
use crate::domain::WeChatOpenId;
use crate::store::Channel;
use crate::templates::{Rendered, WechatKind};

/// `https://api.weixin.qq.com`
pub const DEFAULT_BASE_URL: &str = "https://api.weixin.qq.com";
/// Renew the token this long before WeChat says it expires.
const REFRESH_MARGIN: chrono::TimeDelta = chrono::TimeDelta::seconds(60);
/// WeChat's minimum spacing between two `force_refresh: true` calls.
const FORCE_SPACING: chrono::TimeDelta = chrono::TimeDelta::seconds(30);
/// Codes that mean "this access token is not (or no longer) valid".
const TOKEN_REJECTED: [i64; 3] = [40001, 40014, 42001];

/// Why the WeChat client could not be set up from `[providers.wechat]`.
#[derive(Debug, thiserror::Error)]
pub enum WechatError {
    /// `base_url` is not an absolute http(s) URL.
    #[error("[providers.wechat] base_url `{0}` is not an absolute http(s) URL")]
    BaseUrl(String),
    /// `mini_program_state` is not one WeChat knows.
    #[error(
        "[providers.wechat] mini_program_state must be `formal`, `trial` or `developer`, not `{0}`"
    )]
    MiniProgramState(String),
    /// The HTTP client could not be built.
    #[error("the HTTP client for WeChat could not be built: {0}")]
    Http(#[from] reqwest::Error),
}

/// The WeChat provider (`wechat`, channel WeChat). Cheap to clone: clones
/// share the HTTP pool and the cached token.
#[derive(Clone)]
pub struct WechatClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base_url: String,
    app_id: String,
    app_secret: SecretString,
    mini_program_app_id: Option<String>,
    mini_program_state: String,
    clock: SharedClock,
    token: Mutex<TokenState>,
}

#[derive(Default)]
struct TokenState {
    current: Option<CachedToken>,
    /// When the last `force_refresh: true` call was made.
    last_forced: Option<DateTime<Utc>>,
}

#[derive(Clone)]
struct CachedToken {
    value: SecretString,
    refresh_at: DateTime<Utc>,
}

impl fmt::Debug for WechatClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WechatClient")
            .field("base_url", &self.inner.base_url)
            .field("app_id", &self.inner.app_id)
            .field("mini_program_app_id", &self.inner.mini_program_app_id)
            .field("mini_program_state", &self.inner.mini_program_state)
            .finish_non_exhaustive()
    }
}

impl WechatClient {
    /// Builds the client. No request is made until the first send.
    pub fn new(settings: &WechatSettings, clock: SharedClock) -> Result<Self, WechatError> {
        let base_url = settings
            .base_url
            .as_deref()
            .unwrap_or(DEFAULT_BASE_URL)
            .trim()
            .trim_end_matches('/')
            .to_owned();
        if !(base_url.starts_with("https://") || base_url.starts_with("http://"))
            || reqwest::Url::parse(&base_url).is_err()
        {
            return Err(WechatError::BaseUrl(base_url));
        }
        let state = settings
            .mini_program_state
            .as_deref()
            .unwrap_or("formal")
            .trim()
            .to_owned();
        if !matches!(state.as_str(), "formal" | "trial" | "developer") {
            return Err(WechatError::MiniProgramState(state));
        }
        Ok(WechatClient {
            inner: Arc::new(Inner {
                http: http::client(&settings.limits())?,
                base_url,
                app_id: settings.app_id.trim().to_owned(),
                app_secret: settings.app_secret.clone(),
                mini_program_app_id: settings
                    .mini_program_app_id
                    .as_deref()
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
                mini_program_state: state,
                clock,
                token: Mutex::new(TokenState::default()),
            }),
        })
    }

    /// The JSON body and API path of `msg`.
    fn request(&self, msg: &Outgoing) -> Result<(&'static str, serde_json::Value), SendError> {
        let Rendered::Wechat {
            kind,
            template_id,
            page,
            url,
            data,
        } = &msg.rendered
        else {
            return Err(SendError::new(
                FailureClass::Permanent {
                    suppress_address: false,
                },
                "wrong_channel",
                format!(
                    "a {} message cannot go through WeChat",
                    msg.channel().as_str()
                ),
            ));
        };
        let data = data
            .iter()
            .map(|(k, v)| (k.as_str(), Value { value: v.as_str() }))
            .collect();
        let openid = msg.address.trim();
        let body = match kind {
            WechatKind::Template => serde_json::to_value(TemplateBody {
                touser: openid,
                template_id,
                url: url.as_deref(),
                miniprogram: match (&self.inner.mini_program_app_id, page) {
                    (Some(appid), Some(pagepath)) => Some(MiniProgram { appid, pagepath }),
                    _ => None,
                },
                client_msg_id: client_msg_id(&msg.dedupe_key),
                data,
            }),
            WechatKind::Subscribe => serde_json::to_value(SubscribeBody {
                touser: openid,
                template_id,
                page: page.as_deref(),
                miniprogram_state: &self.inner.mini_program_state,
                lang: "zh_CN",
                data,
            }),
        };
        let path = match kind {
            WechatKind::Template => "/cgi-bin/message/template/send",
            WechatKind::Subscribe => "/cgi-bin/message/subscribe/send",
        };
        // Serialising plain strings into a `Value` cannot fail.
        body.map(|b| (path, b)).map_err(|e| {
            SendError::new(
                FailureClass::Permanent {
                    suppress_address: false,
                },
                "request",
                e.to_string(),
            )
        })
    }

    /// The cached token, fetched when there is none or it is about to expire.
    /// With `rejected`, the token WeChat just refused: renew it (see the
    /// module documentation).
    async fn token(&self, rejected: Option<&SecretString>) -> Result<SecretString, SendError> {
        let inner = &self.inner;
        let mut state = inner.token.lock().await;
        let now = inner.clock.now();
        let usable = state
            .current
            .as_ref()
            .filter(|t| now < t.refresh_at)
            .filter(|t| rejected.is_none_or(|bad| !same(&t.value, bad)));
        if let Some(t) = usable {
            return Ok(t.value.clone());
        }
        let fresh = self.fetch_token(false).await?;
        let Some(bad) = rejected else {
            return Ok(store(&mut state, fresh));
        };
        if !same(&fresh.value, bad) {
            return Ok(store(&mut state, fresh));
        }
        if state.last_forced.is_some_and(|at| now - at < FORCE_SPACING) {
            return Err(SendError::new(
                FailureClass::ProviderDown,
                "token_rejected",
                "WeChat rejected a token forced fresh less than 30 s ago",
            ));
        }
        state.last_forced = Some(now);
        tracing::info!("wechat: access token rejected, forcing a refresh");
        let forced = self.fetch_token(true).await?;
        Ok(store(&mut state, forced))
    }

    /// `POST /cgi-bin/stable_token`.
    async fn fetch_token(&self, force_refresh: bool) -> Result<CachedToken, SendError> {
        let inner = &self.inner;
        let body = TokenRequest {
            grant_type: "client_credential",
            appid: &inner.app_id,
            secret: inner.app_secret.expose_secret(),
            force_refresh,
        };
        let resp = inner
            .http
            .post(format!("{}/cgi-bin/stable_token", inner.base_url))
            .json(&body)
            .send()
            .await
            .map_err(|e| token_transport_error(e.without_url()))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(token_status_error(status, resp.headers()));
        }
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| token_transport_error(e.without_url()))?;
        let reply: TokenReply = serde_json::from_slice(&bytes).map_err(|_| {
            SendError::new(
                FailureClass::Transient {
                    outcome_unknown: false,
                },
                "token_reply",
                "the token endpoint's answer is not the expected JSON",
            )
        })?;
        match reply {
            TokenReply {
                errcode: 0,
                access_token: Some(value),
                expires_in: Some(expires_in),
                ..
            } if !value.expose_secret().is_empty() && expires_in > 0 => {
                let lifetime = chrono::TimeDelta::seconds(expires_in);
                let margin = REFRESH_MARGIN.min(lifetime / 2);
                Ok(CachedToken {
                    value,
                    refresh_at: inner.clock.now() + lifetime - margin,
                })
            }
            TokenReply {
                errcode: -1,
                errmsg,
                ..
            } => Err(SendError::new(
                FailureClass::Transient {
                    outcome_unknown: false,
                },
                "-1",
                format!("token: {errmsg}"),
            )),
            TokenReply {
                errcode, errmsg, ..
            } => Err(SendError::new(
                FailureClass::ProviderDown,
                if errcode == 0 {
                    "token_reply".to_owned()
                } else {
                    errcode.to_string()
                },
                format!("no access token: {errmsg}"),
            )),
        }
    }

    /// One API call with `token`.
    async fn post(
        &self,
        path: &str,
        token: &SecretString,
        body: &serde_json::Value,
    ) -> Result<ApiReply, SendError> {
        let inner = &self.inner;
        let resp = inner
            .http
            .post(format!("{}{path}", inner.base_url))
            .query(&[("access_token", token.expose_secret())])
            .json(body)
            .send()
            .await
            .map_err(|e| http::transport_error(&e.without_url()))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(SendError::new(
                http::status_class(status, resp.headers()),
                format!("http {}", status.as_u16()),
                format!("WeChat answered HTTP {status}"),
            ));
        }
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| http::transport_error(&e.without_url()))?;
        serde_json::from_slice(&bytes).map_err(|_| {
            SendError::new(
                FailureClass::Transient {
                    outcome_unknown: true,
                },
                "bad_reply",
                "WeChat's answer is not the expected JSON; the message may have gone",
            )
        })
    }

    async fn send_once(&self, msg: &Outgoing) -> SendResult {
        let (path, body) = self.request(msg)?;
        let token = self.token(None).await?;
        let mut reply = self.post(path, &token, &body).await?;
        if TOKEN_REJECTED.contains(&reply.errcode) {
            let token = self.token(Some(&token)).await?;
            reply = self.post(path, &token, &body).await?;
        }
        if reply.errcode == 0 {
            return Ok(Accepted {
                provider_message_id: reply.msgid.as_ref().and_then(msgid_text),
            });
        }
        Err(SendError::new(
            errcode_class(reply.errcode),
            reply.errcode.to_string(),
            reply.errmsg,
        ))
    }
}

#[async_trait]
impl Provider for WechatClient {
    fn name(&self) -> &str {
        "wechat"
    }

    fn channel(&self) -> Channel {
        Channel::Wechat
    }

    async fn send(&self, msg: &Outgoing) -> SendResult {
        let result = self.send_once(msg).await;
        let to = WeChatOpenId::from_trusted(msg.address.clone()).masked();
        match &result {
            Ok(a) => tracing::debug!(
                message.id = msg.message_id, to = %to, msgid = ?a.provider_message_id,
                "wechat: accepted"
            ),
            Err(e) => tracing::debug!(
                message.id = msg.message_id, to = %to, code = %e.code, class = ?e.class,
                "wechat: not accepted"
            ),
        }
        result
    }
}

/// The class of a non-zero `errcode` of a send (see the module documentation).
pub fn errcode_class(errcode: i64) -> FailureClass {
    match errcode {
        43004 | 43101 | 43019 => FailureClass::Permanent {
            suppress_address: true,
        },
        48001 | 40013 | 40164 | 89503 | 40125 | 41001 | 40001 | 40014 | 42001 => {
            FailureClass::ProviderDown
        }
        45009 => FailureClass::RateLimited(RateWait::NextDay),
        -1 => FailureClass::Transient {
            outcome_unknown: false,
        },
        _ => FailureClass::Permanent {
            suppress_address: false,
        },
    }
}

/// `client_msg_id` (WeChat's 10-minute dedupe key for template messages, at
/// most 32 characters): the first 32 hex digits of SHA-1(dedupe key). The
/// dedupe key is stable across retries of a message and may be longer than
/// 32 characters; 128 bits of its hash keep distinct messages apart.
pub fn client_msg_id(dedupe_key: &str) -> String {
    let mut h = hex::encode(Sha1::digest(dedupe_key.as_bytes()));
    h.truncate(32);
    h
}

fn store(state: &mut TokenState, token: CachedToken) -> SecretString {
    let value = token.value.clone();
    state.current = Some(token);
    value
}

fn same(a: &SecretString, b: &SecretString) -> bool {
    a.expose_secret() == b.expose_secret()
}

fn msgid_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// A failed token request sent no message: never "outcome unknown".
fn token_transport_error(e: reqwest::Error) -> SendError {
    let mut err = http::transport_error(&e);
    if let FailureClass::Transient { outcome_unknown } = &mut err.class {
        *outcome_unknown = false;
    }
    err.code = format!("token_{}", err.code);
    err
}

/// A non-2xx token answer: throttling and 5xx are passing, anything else
/// (404 on a wrong `base_url`, 401/403) makes the provider unusable.
fn token_status_error(status: StatusCode, headers: &reqwest::header::HeaderMap) -> SendError {
    let class = match http::status_class(status, headers) {
        c @ (FailureClass::RateLimited(_) | FailureClass::Transient { .. }) => c,
        _ => FailureClass::ProviderDown,
    };
    SendError::new(
        class,
        format!("token_http {}", status.as_u16()),
        format!("the token endpoint answered HTTP {status}"),
    )
}

#[derive(Serialize)]
struct TokenRequest<'a> {
    grant_type: &'static str,
    appid: &'a str,
    secret: &'a str,
    force_refresh: bool,
}

#[derive(Deserialize)]
struct TokenReply {
    #[serde(default)]
    errcode: i64,
    #[serde(default)]
    errmsg: String,
    access_token: Option<SecretString>,
    expires_in: Option<i64>,
}

#[derive(Deserialize)]
struct ApiReply {
    #[serde(default)]
    errcode: i64,
    #[serde(default)]
    errmsg: String,
    msgid: Option<serde_json::Value>,
}

#[derive(Serialize)]
struct Value<'a> {
    value: &'a str,
}

#[derive(Serialize)]
struct MiniProgram<'a> {
    appid: &'a str,
    pagepath: &'a str,
}

#[derive(Serialize)]
struct TemplateBody<'a> {
    touser: &'a str,
    template_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    miniprogram: Option<MiniProgram<'a>>,
    client_msg_id: String,
    data: BTreeMap<&'a str, Value<'a>>,
}

#[derive(Serialize)]
struct SubscribeBody<'a> {
    touser: &'a str,
    template_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    page: Option<&'a str>,
    miniprogram_state: &'a str,
    lang: &'static str,
    data: BTreeMap<&'a str, Value<'a>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_msg_id_is_short_and_stable() {
        let a = client_msg_id("birthday/2026/customer-000042/wechat");
        assert_eq!(a.len(), 32);
        assert_eq!(a, client_msg_id("birthday/2026/customer-000042/wechat"));
        assert_ne!(a, client_msg_id("birthday/2026/customer-000043/wechat"));
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn errcodes() {
        for c in [43004, 43101, 43019] {
            assert_eq!(
                errcode_class(c),
                FailureClass::Permanent {
                    suppress_address: true
                }
            );
        }
        for c in [40003, 40037, 40036, 47003, 41030, 43116, 99999] {
            assert_eq!(
                errcode_class(c),
                FailureClass::Permanent {
                    suppress_address: false
                }
            );
        }
        for c in [48001, 40013, 40164, 89503, 40001] {
            assert_eq!(errcode_class(c), FailureClass::ProviderDown);
        }
        assert_eq!(
            errcode_class(45009),
            FailureClass::RateLimited(RateWait::NextDay)
        );
        assert_eq!(
            errcode_class(-1),
            FailureClass::Transient {
                outcome_unknown: false
            }
        );
    }
}
