//! Tencent Cloud SMS (2021-01-11): `SendSms`, and the delivery-status and
//! reply callbacks.
//!
//! One JSON body, serialised once and signed (TC3-HMAC-SHA256) over exactly
//! the bytes sent. Every answer is HTTP 200: a request-level failure is
//! `Response.Error`, otherwise each number has its own `SendStatusSet` entry
//! whose `Code` is `"Ok"` when accepted. Failures are classified here from
//! those codes (see [`class_of`]). `SendSms` is not idempotent: a timeout is
//! `Transient { outcome_unknown }`.

use std::collections::HashSet;

use async_trait::async_trait;
use chrono::{DateTime, FixedOffset, NaiveTime, Utc};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap};
use reqwest::{StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock::SharedClock;
use crate::dispatch::provider::{
    Accepted, FailureClass, Outgoing, Provider, RateWait, Receipt, ReceiptKey, SendError,
    SendResult, SmsReply,
};
use crate::dispatch::providers::aliyun::{beijing_time, push_items, text_field};
use crate::dispatch::providers::http;
use crate::dispatch::settings::TencentSettings;
use crate::dispatch::sign::{host_header, tc3};
use crate::domain::Phone;
use crate::store::Channel;
use crate::templates::{Rendered, TencentSms as TencentTemplate};

/// The provider name in configuration and the send log.
pub const NAME: &str = "tencent";
/// SMS API version.
pub const API_VERSION: &str = "2021-01-11";
/// Default endpoint.
pub const DEFAULT_BASE_URL: &str = "https://sms.tencentcloudapi.com";
/// Default `X-TC-Region`.
pub const DEFAULT_REGION: &str = "ap-guangzhou";
/// Most numbers one `SendSms` call takes.
pub const MAX_BATCH: usize = 200;
/// The TC3 service name.
const SERVICE: &str = "sms";
/// The content type sent, and signed, byte for byte.
pub const JSON_CONTENT_TYPE: &str = "application/json; charset=utf-8";

/// Why the client could not be built from its settings.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// `base_url` does not parse as an http(s) URL.
    #[error("providers.tencent.base_url {url:?} is not a usable http(s) URL: {reason}")]
    BaseUrl { url: String, reason: String },
    /// The HTTP client (TLS) could not be set up.
    #[error("the tencent HTTP client could not be built: {0}")]
    Client(#[from] reqwest::Error),
}

/// Why a status or reply callback could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The body is not JSON, or neither an array nor an object.
    #[error("the callback body is not a JSON array: {0}")]
    NotJson(String),
    /// One item lacks a field or has a field of the wrong type.
    #[error("callback item {index}: {reason}")]
    Item { index: usize, reason: String },
}

/// The Tencent SMS client.
#[derive(Debug)]
pub struct TencentSms {
    client: reqwest::Client,
    base_url: Url,
    secret_id: String,
    secret_key: SecretString,
    sdk_app_id: String,
    region: String,
    clock: SharedClock,
}

/// The `SendSms` request body; field order as in the API reference.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct SendSmsBody<'a> {
    phone_number_set: Vec<&'a str>,
    sms_sdk_app_id: &'a str,
    sign_name: &'a str,
    template_id: &'a str,
    template_param_set: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    session_context: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Envelope {
    #[serde(rename = "Response")]
    response: Option<ResponseBody>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ResponseBody {
    error: Option<ApiError>,
    #[serde(default)]
    send_status_set: Vec<SendStatus>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ApiError {
    code: String,
    #[serde(default)]
    message: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SendStatus {
    serial_no: Option<String>,
    phone_number: Option<String>,
    code: String,
    #[serde(default)]
    message: String,
}

/// What a message contributes to a call, checked before anything is sent.
struct Prepared<'a> {
    sign_name: &'a str,
    template: &'a TencentTemplate,
}

impl TencentSms {
    /// A client for `settings`; "now" (`X-TC-Timestamp`) comes from `clock`.
    pub fn new(settings: &TencentSettings, clock: SharedClock) -> Result<Self, SetupError> {
        let raw = settings.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL);
        let base_url = Url::parse(raw)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            .ok_or_else(|| SetupError::BaseUrl {
                url: raw.to_owned(),
                reason: "expected http(s)://host[:port]".to_owned(),
            })?;
        Ok(TencentSms {
            client: http::client(&settings.limits())?,
            base_url,
            secret_id: settings.secret_id.clone(),
            secret_key: settings.secret_key.clone(),
            sdk_app_id: settings.sdk_app_id.clone(),
            region: settings
                .region
                .clone()
                .unwrap_or_else(|| DEFAULT_REGION.to_owned()),
            clock,
        })
    }

    /// One `SendSms` call for messages that share template, parameters and
    /// signature (checked by the caller). `Ok`: one result per message, in
    /// order, from `SendStatusSet`; `Err`: the call failed as a whole
    /// (transport, `Response.Error`, unreadable answer). A single message
    /// carries its id as `SessionContext`.
    async fn call(&self, msgs: &[&Outgoing]) -> Result<Vec<SendResult>, SendError> {
        let Some(first) = msgs.first() else {
            return Ok(Vec::new());
        };
        let prepared = prepare(first)?;
        let body = SendSmsBody {
            phone_number_set: msgs.iter().map(|m| m.address.as_str()).collect(),
            sms_sdk_app_id: &self.sdk_app_id,
            sign_name: prepared.sign_name,
            template_id: &prepared.template.template_id,
            template_param_set: &prepared.template.params,
            session_context: match msgs {
                [only] => Some(only.message_id.to_string()),
                _ => None,
            },
        };
        let bytes = serde_json::to_vec(&body).map_err(|e| {
            SendError::new(
                FailureClass::Permanent {
                    suppress_address: false,
                },
                "request_body",
                e.to_string(),
            )
        })?;
        for m in msgs {
            tracing::debug!(
                provider = NAME,
                message_id = m.message_id,
                to = %Phone::from_trusted(m.address.clone()).masked(),
                "SendSms"
            );
        }
        let now = self.clock.now();
        let host = host_header(&self.base_url);
        let req = tc3::Tc3Request {
            service: SERVICE,
            host: &host,
            content_type: JSON_CONTENT_TYPE,
            timestamp: now,
            body: &bytes,
        };
        let authorization =
            tc3::authorization(&req, &self.secret_id, self.secret_key.expose_secret());
        let response = self
            .client
            .post(self.base_url.clone())
            .header(CONTENT_TYPE, JSON_CONTENT_TYPE)
            .header("X-TC-Action", "SendSms")
            .header("X-TC-Version", API_VERSION)
            .header("X-TC-Timestamp", now.timestamp().to_string())
            .header("X-TC-Region", self.region.as_str())
            .header(AUTHORIZATION, authorization)
            .body(bytes)
            .send()
            .await
            .map_err(|e| http::transport_error(&e.without_url()))?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| http::transport_error(&e.without_url()))?;
        outcome(status, &headers, &bytes, msgs, now)
    }
}

#[async_trait]
impl Provider for TencentSms {
    fn name(&self) -> &str {
        NAME
    }

    fn channel(&self) -> Channel {
        Channel::Sms
    }

    /// 200 numbers per `SendSms` call.
    fn max_batch(&self) -> usize {
        MAX_BATCH
    }

    async fn send(&self, msg: &Outgoing) -> SendResult {
        self.call(&[msg])
            .await?
            .pop()
            .unwrap_or_else(|| Err(no_result()))
    }

    /// A call takes up to 200 numbers but one `TemplateParamSet` and one
    /// `SignName`, so only messages with the same template id, parameters
    /// and signature share a call (personalised texts go one by one). Each
    /// number gets its own `SendStatusSet` answer. A request-level error is
    /// the answer for every message of the call, except one that must be
    /// about a single message (a `Permanent` code such as a malformed
    /// number, or a per-number `LimitExceeded.PhoneNumber*`): the call was
    /// refused as a whole, so its messages are sent again one by one.
    /// Calls of several messages carry no `SessionContext` (it is one value
    /// per call); their receipts match on `SerialNo`.
    async fn send_batch(&self, msgs: &[Outgoing]) -> Vec<SendResult> {
        let mut results: Vec<Option<SendResult>> = vec![None; msgs.len()];
        let mut groups: Vec<(GroupKey<'_>, Vec<usize>)> = Vec::new();
        for (i, m) in msgs.iter().enumerate() {
            match prepare(m) {
                Err(e) => results[i] = Some(Err(e)),
                Ok(p) => {
                    let key = GroupKey {
                        template_id: &p.template.template_id,
                        params: &p.template.params,
                        sign_name: p.sign_name,
                    };
                    match groups.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, idx)) => idx.push(i),
                        None => groups.push((key, vec![i])),
                    }
                }
            }
        }
        for (_, idx) in &groups {
            for chunk in chunks_of_distinct_numbers(msgs, idx, MAX_BATCH) {
                let call_msgs: Vec<&Outgoing> = chunk.iter().map(|&i| &msgs[i]).collect();
                match self.call(&call_msgs).await {
                    Ok(answers) => {
                        for (&i, a) in chunk.iter().zip(answers) {
                            results[i] = Some(a);
                        }
                    }
                    Err(e) if chunk.len() > 1 && names_one_message(&e) => {
                        tracing::info!(
                            provider = NAME,
                            code = %e.code,
                            numbers = chunk.len(),
                            "SendSms refused for one of its numbers; sending them one by one"
                        );
                        for &i in &chunk {
                            results[i] = Some(self.send(&msgs[i]).await);
                        }
                    }
                    Err(e) => {
                        for &i in &chunk {
                            results[i] = Some(Err(e.clone()));
                        }
                    }
                }
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(no_result())))
            .collect()
    }
}

/// What messages must share to go in one call.
#[derive(Debug, PartialEq, Eq)]
struct GroupKey<'a> {
    template_id: &'a str,
    params: &'a [String],
    sign_name: &'a str,
}

/// A request-level failure that belongs to one (unknown) message of the call.
fn names_one_message(e: &SendError) -> bool {
    matches!(e.class, FailureClass::Permanent { .. })
        || e.code.starts_with("LimitExceeded.PhoneNumber")
}

fn no_result() -> SendError {
    SendError::new(
        FailureClass::Transient {
            outcome_unknown: false,
        },
        "unsent",
        "the message was left out of every call",
    )
}

/// Split `idx` into chunks of at most `max`, none with the same number twice.
fn chunks_of_distinct_numbers(msgs: &[Outgoing], idx: &[usize], max: usize) -> Vec<Vec<usize>> {
    let mut chunks: Vec<(HashSet<&str>, Vec<usize>)> = Vec::new();
    for &i in idx {
        let addr = msgs[i].address.as_str();
        match chunks
            .iter_mut()
            .find(|(seen, c)| c.len() < max && !seen.contains(addr))
        {
            Some((seen, c)) => {
                seen.insert(addr);
                c.push(i);
            }
            None => chunks.push((HashSet::from([addr]), vec![i])),
        }
    }
    chunks.into_iter().map(|(_, c)| c).collect()
}

/// Check what a message needs before it is sent.
fn prepare(msg: &Outgoing) -> Result<Prepared<'_>, SendError> {
    let permanent = |code: &str, message: &str| {
        SendError::new(
            FailureClass::Permanent {
                suppress_address: false,
            },
            code,
            message,
        )
    };
    let Rendered::Sms { tencent, .. } = &msg.rendered else {
        return Err(permanent("not_sms", "the message is not an SMS"));
    };
    let sign_name = match msg.sign_name.as_deref().map(str::trim) {
        Some(s) if !s.is_empty() => s,
        _ => {
            return Err(permanent(
                "no_sign_name",
                "the store has no SMS signature (sign name)",
            ));
        }
    };
    let Some(template) = tencent else {
        return Err(permanent(
            "no_template",
            "the template has no tencent section",
        ));
    };
    Ok(Prepared {
        sign_name,
        template,
    })
}

/// Turn an HTTP answer into one result per message of the call.
fn outcome(
    status: StatusCode,
    headers: &HeaderMap,
    bytes: &[u8],
    msgs: &[&Outgoing],
    now: DateTime<Utc>,
) -> Result<Vec<SendResult>, SendError> {
    let parsed = serde_json::from_slice::<Envelope>(bytes)
        .ok()
        .and_then(|e| e.response);
    let Some(response) = parsed else {
        if status.is_success() {
            return Err(SendError::new(
                FailureClass::Transient {
                    outcome_unknown: true,
                },
                "bad_response",
                format!("HTTP {status} with a body that is not a SendSms answer"),
            ));
        }
        return Err(SendError::new(
            http::status_class(status, headers),
            format!("http {}", status.as_u16()),
            status.canonical_reason().unwrap_or("no reason").to_owned(),
        ));
    };
    if let Some(err) = response.error {
        let class = match class_of(&err.code, now) {
            Some(FailureClass::RateLimited(RateWait::Unspecified)) => FailureClass::RateLimited(
                http::retry_after(headers).map_or(RateWait::Unspecified, RateWait::For),
            ),
            Some(c) => c,
            None if status.is_success() => FailureClass::Permanent {
                suppress_address: false,
            },
            None => http::status_class(status, headers),
        };
        return Err(SendError::new(class, err.code, err.message));
    }
    let by_index = response.send_status_set.len() == msgs.len()
        && response
            .send_status_set
            .iter()
            .all(|s| s.phone_number.is_none());
    let results: Vec<SendResult> = msgs
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let found = if by_index {
                response.send_status_set.get(i)
            } else {
                response
                    .send_status_set
                    .iter()
                    .find(|s| s.phone_number.as_deref() == Some(m.address.as_str()))
            };
            let Some(s) = found else {
                return Err(SendError::new(
                    FailureClass::Transient {
                        outcome_unknown: true,
                    },
                    "no_status",
                    "the answer has no SendStatusSet entry for this number",
                ));
            };
            if s.code == "Ok" {
                return Ok(Accepted {
                    provider_message_id: s.serial_no.clone(),
                });
            }
            let class = class_of(&s.code, now).unwrap_or(FailureClass::Permanent {
                suppress_address: false,
            });
            Err(SendError::new(class, s.code.clone(), s.message.clone()))
        })
        .collect();
    Ok(results)
}

/// The class of a Tencent error code (request-level `Response.Error.Code` or
/// per-number `SendStatusSet[].Code`), `None` for a code not listed (an
/// unknown code on HTTP 200 is then `Permanent { suppress_address: false }`).
/// `now` places the wait of the marketing send-time window.
///
/// - `FailedOperation.PhoneNumberInBlacklist` (opted out or on the carrier's
///   do-not-disturb list), `InvalidParameterValue.IncorrectPhoneNumber`,
///   `FailedOperation.PhoneNumberParseFail` → `Permanent { suppress_address: true }`.
/// - `LimitExceeded.PhoneNumberThirtySecondLimit` → `RateLimited(30 s)`,
///   `…OneHourLimit` → `RateLimited(1 h)`, `…DailyLimit`,
///   `…SameContentDailyLimit` and the app's daily limits → `RateLimited(NextDay)`;
///   other `LimitExceeded.*` → `RateLimited(Unspecified)`;
///   `LimitExceeded.PhoneNumberCountLimit` (over 200 numbers) is our bug →
///   `Permanent`. The `PhoneNumber*` limits are per number: the dispatcher
///   should delay that message, not pause the provider.
/// - `RequestLimitExceeded*` → `RateLimited` (with `Retry-After` when sent).
/// - `FailedOperation.MarketingSendTimeConstraint` → `RateLimited(For(…))`
///   until the next 08:00 Beijing time: marketing SMS only go out 08:00–22:00
///   there, the message itself is fine. If our clock says the window is
///   open (clock skew), `RateLimited(Unspecified)`.
/// - template or signature missing, unapproved, or a marketing template
///   without the opt-out text (`FailedOperation.Template*` except the
///   parameter-count mismatch, `FailedOperation.Signature*`,
///   `FailedOperation.Missing*List`, `InvalidParameterValue.MarketingTemplateWithoutUnsubscribe`)
///   → `ProviderDown`: it fails every message of that template on Tencent
///   and is no fault of the message; another provider has its own template.
/// - parameters and content of this message (`FailedOperation.TemplateParamSetNotMatchApprovedTemplate`,
///   `InvalidParameterValue.*`, `FailedOperation.ContainSensitiveWord`,
///   `InvalidParameter*`, `MissingParameter*`, `UnsupportedOperation*`,
///   `FailedOperation.JsonParseFail`, …) → `Permanent { suppress_address: false }`.
/// - credentials, clock, account, balance, permissions (`AuthFailure.*`,
///   `UnauthorizedOperation.*`, `FailedOperation.InsufficientBalanceInSmsPackage`,
///   `FailedOperation.ForbidAddMarketingTemplates`, `ResourceUnavailable*`,
///   `InternalError.RequestTimeException`: our clock is over 10 min off, so
///   every retry would fail too) → `ProviderDown`.
/// - `InternalError.Timeout` and `InternalError.SendAndRecvFail` →
///   `Transient { outcome_unknown: true }` (the backend may have sent it);
///   other `InternalError*` → `Transient { outcome_unknown: false }`.
pub fn class_of(code: &str, now: DateTime<Utc>) -> Option<FailureClass> {
    const PERMANENT: FailureClass = FailureClass::Permanent {
        suppress_address: false,
    };
    const SUPPRESS: FailureClass = FailureClass::Permanent {
        suppress_address: true,
    };
    let class = match code {
        "FailedOperation.PhoneNumberInBlacklist"
        | "InvalidParameterValue.IncorrectPhoneNumber"
        | "FailedOperation.PhoneNumberParseFail" => SUPPRESS,
        "LimitExceeded.PhoneNumberThirtySecondLimit" => {
            FailureClass::RateLimited(RateWait::For(std::time::Duration::from_secs(30)))
        }
        "LimitExceeded.PhoneNumberOneHourLimit" => {
            FailureClass::RateLimited(RateWait::For(std::time::Duration::from_secs(3600)))
        }
        "LimitExceeded.PhoneNumberDailyLimit"
        | "LimitExceeded.PhoneNumberSameContentDailyLimit"
        | "LimitExceeded.AppDailyLimit"
        | "LimitExceeded.AppMainlandChinaDailyLimit"
        | "LimitExceeded.AppGlobalDailyLimit"
        | "LimitExceeded.AppCountryOrRegionDailyLimit"
        | "LimitExceeded.DailyLimit" => FailureClass::RateLimited(RateWait::NextDay),
        "LimitExceeded.PhoneNumberCountLimit" => PERMANENT,
        "FailedOperation.MarketingSendTimeConstraint" => {
            FailureClass::RateLimited(until_marketing_window(now))
        }
        "FailedOperation.TemplateParamSetNotMatchApprovedTemplate" => PERMANENT,
        "InvalidParameterValue.MarketingTemplateWithoutUnsubscribe"
        | "FailedOperation.InsufficientBalanceInSmsPackage"
        | "FailedOperation.ForbidAddMarketingTemplates"
        | "InternalError.RequestTimeException" => FailureClass::ProviderDown,
        "InternalError.Timeout" | "InternalError.SendAndRecvFail" => FailureClass::Transient {
            outcome_unknown: true,
        },
        c if c.starts_with("LimitExceeded") || c.starts_with("RequestLimitExceeded") => {
            FailureClass::RateLimited(RateWait::Unspecified)
        }
        c if c.starts_with("FailedOperation.Template")
            || c.starts_with("FailedOperation.Signature")
            || c.starts_with("FailedOperation.MissingSignature")
            || c.starts_with("FailedOperation.MissingTemplate") =>
        {
            FailureClass::ProviderDown
        }
        c if c.starts_with("AuthFailure")
            || c.starts_with("UnauthorizedOperation")
            || c.starts_with("ResourceUnavailable") =>
        {
            FailureClass::ProviderDown
        }
        c if c.starts_with("InternalError") => FailureClass::Transient {
            outcome_unknown: false,
        },
        c if c.starts_with("InvalidParameter")
            || c.starts_with("MissingParameter")
            || c.starts_with("UnsupportedOperation")
            || c.starts_with("FailedOperation") =>
        {
            PERMANENT
        }
        _ => return None,
    };
    Some(class)
}

/// How long until marketing SMS may go out again (08:00 Beijing time).
/// Tencent allows them 08:00–22:00; from 21:55 on, the next morning counts.
pub fn until_marketing_window(now: DateTime<Utc>) -> RateWait {
    let (Some(beijing), Some(open), Some(closing)) = (
        FixedOffset::east_opt(8 * 3600),
        NaiveTime::from_hms_opt(8, 0, 0),
        NaiveTime::from_hms_opt(21, 55, 0),
    ) else {
        return RateWait::Unspecified;
    };
    let local = now.with_timezone(&beijing);
    let t = local.time();
    if t >= open && t < closing {
        return RateWait::Unspecified;
    }
    let day = if t < open {
        Some(local.date_naive())
    } else {
        local.date_naive().succ_opt()
    };
    day.map(|d| d.and_time(open))
        .and_then(|d| d.and_local_timezone(beijing).single())
        .and_then(|next| (next - local).to_std().ok())
        .map_or(RateWait::Unspecified, RateWait::For)
}

/// Read a delivery-status callback ("短信下发状态通知"): a JSON array of
/// `{user_receive_time, nationcode, mobile, report_status, errmsg,
/// description, sid}`. The key is `sid`, the `SerialNo` returned at send
/// time; `report_status` is `SUCCESS` or `FAIL`; `errmsg` (e.g. `DELIVRD`)
/// is the code; `user_receive_time` is Beijing time.
pub fn parse_receipts(body: &[u8]) -> Result<Vec<Receipt>, PushError> {
    let items = push_items(body).map_err(PushError::NotJson)?;
    let mut out = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let err = |reason: &str| PushError::Item {
            index,
            reason: reason.to_owned(),
        };
        let sid = text_field(item, "sid").ok_or_else(|| err("no `sid`"))?;
        let delivered = match text_field(item, "report_status").as_deref() {
            Some("SUCCESS") => true,
            Some("FAIL") => false,
            _ => return Err(err("`report_status` is neither SUCCESS nor FAIL")),
        };
        out.push(Receipt {
            suppress_address: false,
            provider: NAME.to_owned(),
            key: ReceiptKey::ProviderMessageId(sid),
            delivered,
            code: text_field(item, "errmsg").unwrap_or_default(),
            description: text_field(item, "description").unwrap_or_default(),
            at: text_field(item, "user_receive_time").and_then(|t| beijing_time(&t)),
        });
    }
    Ok(out)
}

/// Read a reply callback ("回复回调"): one object, or an array of them, with
/// `nationcode`, `mobile`, `text`, `sign`, `extend` and `time` (unix
/// seconds). These field names come from Tencent's callback documentation and
/// are not confirmed against a live push. The number is normalised to E.164.
pub fn parse_replies(body: &[u8]) -> Result<Vec<SmsReply>, PushError> {
    let items = push_items(body).map_err(PushError::NotJson)?;
    let mut out = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let err = |reason: String| PushError::Item { index, reason };
        let mobile = text_field(item, "mobile").ok_or_else(|| err("no `mobile`".to_owned()))?;
        let raw = match text_field(item, "nationcode") {
            Some(cc) if !mobile.starts_with('+') => format!("+{cc}{mobile}"),
            _ => mobile,
        };
        let phone = Phone::parse(&raw).map_err(|e| err(format!("mobile: {e}")))?;
        let text = match item.get("text") {
            Some(Value::String(s)) => s.trim().to_owned(),
            _ => return Err(err("no `text`".to_owned())),
        };
        let at = text_field(item, "time")
            .and_then(|t| t.parse::<i64>().ok())
            .and_then(|secs| DateTime::from_timestamp(secs, 0));
        out.push(SmsReply {
            provider: NAME.to_owned(),
            phone: phone.as_str().to_owned(),
            text,
            at,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn codes_are_classified() {
        use FailureClass::*;
        let now = at("2024-03-01T04:00:00Z");
        let cases = [
            (
                "FailedOperation.PhoneNumberInBlacklist",
                Permanent {
                    suppress_address: true,
                },
            ),
            (
                "InvalidParameterValue.IncorrectPhoneNumber",
                Permanent {
                    suppress_address: true,
                },
            ),
            (
                "LimitExceeded.PhoneNumberDailyLimit",
                RateLimited(RateWait::NextDay),
            ),
            (
                "LimitExceeded.AppDailyLimit",
                RateLimited(RateWait::NextDay),
            ),
            (
                "LimitExceeded.PhoneNumberThirtySecondLimit",
                RateLimited(RateWait::For(std::time::Duration::from_secs(30))),
            ),
            (
                "LimitExceeded.DeliveryFrequencyLimit",
                RateLimited(RateWait::Unspecified),
            ),
            ("RequestLimitExceeded", RateLimited(RateWait::Unspecified)),
            (
                "RequestLimitExceeded.IPLimitExceeded",
                RateLimited(RateWait::Unspecified),
            ),
            (
                "LimitExceeded.PhoneNumberCountLimit",
                Permanent {
                    suppress_address: false,
                },
            ),
            ("AuthFailure.SignatureFailure", ProviderDown),
            ("AuthFailure.SignatureExpire", ProviderDown),
            (
                "UnauthorizedOperation.ServiceSuspendDueToArrears",
                ProviderDown,
            ),
            (
                "FailedOperation.InsufficientBalanceInSmsPackage",
                ProviderDown,
            ),
            (
                "FailedOperation.TemplateIncorrectOrUnapproved",
                ProviderDown,
            ),
            (
                "FailedOperation.SignatureIncorrectOrUnapproved",
                ProviderDown,
            ),
            ("FailedOperation.MissingTemplateList", ProviderDown),
            (
                "InvalidParameterValue.MarketingTemplateWithoutUnsubscribe",
                ProviderDown,
            ),
            (
                "FailedOperation.TemplateParamSetNotMatchApprovedTemplate",
                Permanent {
                    suppress_address: false,
                },
            ),
            (
                "InvalidParameterValue.TemplateParameterLengthLimit",
                Permanent {
                    suppress_address: false,
                },
            ),
            (
                "FailedOperation.ContainSensitiveWord",
                Permanent {
                    suppress_address: false,
                },
            ),
            (
                "InternalError.Timeout",
                Transient {
                    outcome_unknown: true,
                },
            ),
            (
                "InternalError.OtherError",
                Transient {
                    outcome_unknown: false,
                },
            ),
            ("InternalError.RequestTimeException", ProviderDown),
        ];
        for (code, class) in cases {
            assert_eq!(class_of(code, now), Some(class), "{code}");
        }
        assert_eq!(class_of("Something.New", now), None);
    }

    #[test]
    fn the_marketing_window_opens_at_eight_beijing_time() {
        let hours = |h: u64| RateWait::For(std::time::Duration::from_secs(h * 3600));
        // 23:00 Beijing → 9 h until 08:00.
        assert_eq!(until_marketing_window(at("2024-03-01T15:00:00Z")), hours(9));
        // 06:30 Beijing → 1.5 h.
        assert_eq!(
            until_marketing_window(at("2024-03-01T22:30:00Z")),
            RateWait::For(std::time::Duration::from_secs(5400))
        );
        // 21:58 Beijing (close enough to 22:00) → the next morning.
        assert_eq!(
            until_marketing_window(at("2024-03-01T13:58:00Z")),
            RateWait::For(std::time::Duration::from_secs(10 * 3600 + 2 * 60))
        );
        // Noon Beijing: our clock says open; no guess.
        assert_eq!(
            until_marketing_window(at("2024-03-01T04:00:00Z")),
            RateWait::Unspecified
        );
        assert_eq!(
            class_of(
                "FailedOperation.MarketingSendTimeConstraint",
                at("2024-03-01T15:00:00Z")
            ),
            Some(FailureClass::RateLimited(hours(9)))
        );
    }

    #[test]
    fn receipts_are_keyed_by_serial_number() {
        let body = r#"[{"user_receive_time":"2015-10-17 08:03:04","nationcode":"86","mobile":"13800138000","report_status":"SUCCESS","errmsg":"DELIVRD","description":"用户短信送达成功","sid":"5000:1045710669157053657849499619"},
                      {"user_receive_time":"","nationcode":"86","mobile":"13800138001","report_status":"FAIL","errmsg":"MK:0001","description":"x","sid":"5000:2"}]"#;
        let r = parse_receipts(body.as_bytes()).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(
            r[0].key,
            ReceiptKey::ProviderMessageId("5000:1045710669157053657849499619".to_owned())
        );
        assert!(r[0].delivered);
        assert_eq!(r[0].code, "DELIVRD");
        assert_eq!(r[0].at, Some(at("2015-10-17T00:03:04Z")));
        assert!(!r[1].delivered);
        assert_eq!(r[1].code, "MK:0001");
        assert_eq!(r[1].at, None);
        let e = parse_receipts(br#"[{"sid":"1","report_status":"MAYBE"}]"#).unwrap_err();
        assert!(matches!(e, PushError::Item { index: 0, .. }));
        assert!(parse_receipts(br#"[{"report_status":"SUCCESS"}]"#).is_err());
        assert!(matches!(parse_receipts(b"{"), Err(PushError::NotJson(_))));
    }

    #[test]
    fn replies_are_normalised_to_e164() {
        let body = r#"{"extend":"","mobile":"13800138000","nationcode":"86","sign":"腾讯云","text":"R","time":1700000000}"#;
        let r = parse_replies(body.as_bytes()).unwrap();
        assert_eq!(
            r,
            vec![SmsReply {
                provider: "tencent".to_owned(),
                phone: "+8613800138000".to_owned(),
                text: "R".to_owned(),
                at: DateTime::from_timestamp(1_700_000_000, 0),
            }]
        );
        assert!(parse_replies(br#"[{"mobile":"123","nationcode":"86","text":"R"}]"#).is_err());
        assert!(parse_replies(br#"[{"mobile":"13800138000","nationcode":"86"}]"#).is_err());
    }
}
