//! Aliyun SMS (Dysmsapi 2017-05-25): `SendSms`, `SendBatchSms`, and the
//! `SmsReport` / `SmsUp` HTTP pushes.
//!
//! Requests are signed with ACS3-HMAC-SHA256 (parameters in the query,
//! `SendBatchSms` arrays in a form body) or, when configured, with the legacy
//! RPC HMAC-SHA1 signature (every parameter in a form body). Business errors
//! come back as HTTP 200 with `Code != "OK"`; gateway errors as 4xx with the
//! same JSON shape. Every failure is classified here from `Code` and the HTTP
//! status (see [`class_of`]); message texts are only copied into the log.
//!
//! Neither call is idempotent: a timeout is `Transient { outcome_unknown }`
//! and must be reconciled (receipt or `QuerySendDetails`) before a resend.

use std::collections::{BTreeMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, FixedOffset, NaiveDateTime, Utc};
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap};
use reqwest::{StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;

use crate::clock::SharedClock;
use crate::dispatch::provider::{
    Accepted, FailureClass, Outgoing, Provider, RateWait, Receipt, ReceiptKey, SendError,
    SendResult, SmsReply,
};
use crate::dispatch::providers::http;
use crate::dispatch::settings::{AliyunSettings, AliyunSignature};
use crate::dispatch::sign::{acs3, encode, host_header, rpc};
use crate::domain::Phone;
use crate::store::Channel;
use crate::templates::{AliyunSms as AliyunTemplate, Rendered};

/// The provider name in configuration and the send log.
pub const NAME: &str = "aliyun";
/// Dysmsapi API version.
pub const API_VERSION: &str = "2017-05-25";
/// Default endpoint.
pub const DEFAULT_BASE_URL: &str = "https://dysmsapi.aliyuncs.com";
/// Most numbers one `SendBatchSms` call takes.
pub const MAX_BATCH: usize = 100;

const FORM: &str = "application/x-www-form-urlencoded";

/// Why the client could not be built from its settings.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// `base_url` does not parse as an http(s) URL.
    #[error("providers.aliyun.base_url {url:?} is not a usable http(s) URL: {reason}")]
    BaseUrl { url: String, reason: String },
    /// The HTTP client (TLS) could not be set up.
    #[error("the aliyun HTTP client could not be built: {0}")]
    Client(#[from] reqwest::Error),
}

/// Why a receipt (`SmsReport`) or reply (`SmsUp`) push could not be read.
/// Answer it with a 5xx so that Aliyun retries (after 1, 5 and 10 minutes).
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The body is not JSON, or neither an array nor an object.
    #[error("the push body is not a JSON array of reports: {0}")]
    NotJson(String),
    /// One item lacks a field or has a field of the wrong type.
    #[error("push item {index}: {reason}")]
    Item { index: usize, reason: String },
}

/// The Aliyun SMS client.
#[derive(Debug)]
pub struct AliyunSms {
    client: reqwest::Client,
    base_url: Url,
    access_key_id: String,
    access_key_secret: SecretString,
    signature: AliyunSignature,
    batch: bool,
    clock: SharedClock,
}

/// One API call before signing.
struct Call {
    action: &'static str,
    /// Business parameters that ACS3 puts in the query.
    query: BTreeMap<String, String>,
    /// Business parameters that ACS3 puts in a form body.
    form: BTreeMap<String, String>,
}

/// The JSON body of every Dysmsapi answer, success or error.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ApiBody {
    code: Option<String>,
    message: Option<String>,
    biz_id: Option<String>,
}

/// What a message contributes to a call, checked before anything is sent.
struct Prepared<'a> {
    sign_name: &'a str,
    template: &'a AliyunTemplate,
    phone: String,
}

impl AliyunSms {
    /// A client for `settings`; "now" (signature timestamps) comes from `clock`.
    pub fn new(settings: &AliyunSettings, clock: SharedClock) -> Result<Self, SetupError> {
        let raw = settings.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL);
        let base_url = parse_base_url(raw)?;
        Ok(AliyunSms {
            client: http::client(&settings.limits())?,
            base_url,
            access_key_id: settings.access_key_id.clone(),
            access_key_secret: settings.access_key_secret.clone(),
            signature: settings.signature,
            batch: settings.batch,
            clock,
        })
    }

    /// Send one message with `SendSms` (`OutId` = message id).
    async fn send_one(&self, msg: &Outgoing) -> SendResult {
        let p = prepare(msg)?;
        let mut query = BTreeMap::new();
        query.insert("PhoneNumbers".to_owned(), p.phone.clone());
        query.insert("SignName".to_owned(), p.sign_name.to_owned());
        query.insert("TemplateCode".to_owned(), p.template.template_code.clone());
        if !p.template.params.is_empty() {
            query.insert("TemplateParam".to_owned(), to_json(&p.template.params)?);
        }
        query.insert("OutId".to_owned(), msg.message_id.to_string());
        tracing::debug!(
            provider = NAME,
            message_id = msg.message_id,
            to = %Phone::from_trusted(msg.address.clone()).masked(),
            "SendSms"
        );
        let call = Call {
            action: "SendSms",
            query,
            form: BTreeMap::new(),
        };
        let body = self.execute(call).await?;
        Ok(Accepted {
            provider_message_id: body.biz_id,
        })
    }

    /// One `SendBatchSms` call for messages sharing a template code. The
    /// answer is the call's `BizId`.
    async fn send_batch_call(&self, msgs: &[&Outgoing]) -> Result<Option<String>, SendError> {
        let mut phones = Vec::with_capacity(msgs.len());
        let mut signs = Vec::with_capacity(msgs.len());
        let mut params = Vec::with_capacity(msgs.len());
        let mut template_code = String::new();
        for m in msgs {
            let p = prepare(m)?;
            template_code.clone_from(&p.template.template_code);
            phones.push(p.phone);
            signs.push(p.sign_name.to_owned());
            params.push(&p.template.params);
        }
        let mut form = BTreeMap::new();
        form.insert("PhoneNumberJson".to_owned(), to_json(&phones)?);
        form.insert("SignNameJson".to_owned(), to_json(&signs)?);
        if params.iter().any(|p| !p.is_empty()) {
            form.insert("TemplateParamJson".to_owned(), to_json(&params)?);
        }
        let mut query = BTreeMap::new();
        query.insert("TemplateCode".to_owned(), template_code);
        tracing::debug!(provider = NAME, numbers = msgs.len(), "SendBatchSms");
        let call = Call {
            action: "SendBatchSms",
            query,
            form,
        };
        Ok(self.execute(call).await?.biz_id)
    }

    /// Sign, send, and read the answer: `Ok` only for HTTP 2xx with `Code == "OK"`.
    /// Transport errors drop their URL: with ACS3 the query holds the phone
    /// number, and the error text goes to the send log.
    async fn execute(&self, call: Call) -> Result<ApiBody, SendError> {
        let request = match self.signature {
            AliyunSignature::Acs3 => self.acs3_request(&call),
            AliyunSignature::Rpc => self.rpc_request(&call),
        };
        let response = request
            .header(ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| http::transport_error(&e.without_url()))?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| http::transport_error(&e.without_url()))?;
        outcome(status, &headers, &bytes)
    }

    fn acs3_request(&self, call: &Call) -> reqwest::RequestBuilder {
        let body = if call.form.is_empty() {
            String::new()
        } else {
            encode::query(&call.form)
        };
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let mut url = self.base_url.clone();
        let query = encode::query(&call.query);
        url.set_query((!query.is_empty()).then_some(query.as_str()));
        let host = host_header(&url);
        let req = acs3::Acs3Request {
            method: "POST",
            host: &host,
            action: call.action,
            version: API_VERSION,
            date: self.clock.now(),
            nonce: &nonce,
            query: &call.query,
            content_type: (!body.is_empty()).then_some(FORM),
            body: body.as_bytes(),
        };
        let signed = acs3::sign(
            &req,
            &self.access_key_id,
            self.access_key_secret.expose_secret(),
        );
        let mut builder = self.client.post(url);
        // reqwest writes `Host` from the URL: the same value as signed.
        for (name, value) in signed.headers.iter().filter(|(n, _)| *n != "host") {
            builder = builder.header(name.as_str(), value.as_str());
        }
        builder
            .header(reqwest::header::AUTHORIZATION, signed.authorization)
            .body(body)
    }

    fn rpc_request(&self, call: &Call) -> reqwest::RequestBuilder {
        let nonce = uuid::Uuid::new_v4().to_string();
        let mut params = rpc::common_params(
            &self.access_key_id,
            call.action,
            API_VERSION,
            self.clock.now(),
            &nonce,
        );
        params.extend(call.query.clone());
        params.extend(call.form.clone());
        let body = rpc::signed_form(self.access_key_secret.expose_secret(), "POST", &params);
        self.client
            .post(self.base_url.clone())
            .header(CONTENT_TYPE, FORM)
            .body(body)
    }
}

#[async_trait]
impl Provider for AliyunSms {
    fn name(&self) -> &str {
        NAME
    }

    fn channel(&self) -> Channel {
        Channel::Sms
    }

    /// 100 with `batch = true` (one `SendBatchSms` call), else 1.
    fn max_batch(&self) -> usize {
        if self.batch { MAX_BATCH } else { 1 }
    }

    async fn send(&self, msg: &Outgoing) -> SendResult {
        self.send_one(msg).await
    }

    /// With `batch` on, messages sharing a template code go out together in
    /// `SendBatchSms` calls of at most 100 distinct numbers; a template code
    /// with a single message uses `SendSms`. The call's one answer is the
    /// answer for every message in it:
    ///
    /// - `OK`: each message is accepted with `<BizId>/<E.164 phone>` as its
    ///   provider id (the call has one `BizId` and no per-message `OutId`, so
    ///   [`parse_receipts`] keys a batch receipt the same way);
    /// - a call-level failure (auth, balance, quota, throttling, 5xx,
    ///   timeout, template or signature not approved) is returned for every
    ///   message of the call, with the same class;
    /// - a failure that names one message without saying which (a
    ///   `Permanent` code such as an illegal number or parameter, or the
    ///   per-number `isv.BUSINESS_LIMIT_CONTROL`) is never applied to all:
    ///   the call was refused as a whole, so its messages are sent again one
    ///   by one with `SendSms`, and each gets its own answer.
    ///
    /// Messages that cannot be sent at all (no signature, no aliyun section)
    /// fail on their own without affecting the others.
    async fn send_batch(&self, msgs: &[Outgoing]) -> Vec<SendResult> {
        if !self.batch || msgs.len() < 2 {
            let mut out = Vec::with_capacity(msgs.len());
            for m in msgs {
                out.push(self.send_one(m).await);
            }
            return out;
        }
        let mut results: Vec<Option<SendResult>> = vec![None; msgs.len()];
        // Template code → indices, in order of first appearance.
        let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
        for (i, m) in msgs.iter().enumerate() {
            match prepare(m) {
                Err(e) => results[i] = Some(Err(e)),
                Ok(p) => match groups
                    .iter_mut()
                    .find(|(code, _)| *code == p.template.template_code)
                {
                    Some((_, idx)) => idx.push(i),
                    None => groups.push((p.template.template_code.clone(), vec![i])),
                },
            }
        }
        for (_, idx) in &groups {
            for chunk in chunks_of_distinct_numbers(msgs, idx, MAX_BATCH) {
                if let [only] = chunk.as_slice() {
                    results[*only] = Some(self.send_one(&msgs[*only]).await);
                    continue;
                }
                let call_msgs: Vec<&Outgoing> = chunk.iter().map(|&i| &msgs[i]).collect();
                match self.send_batch_call(&call_msgs).await {
                    Ok(biz_id) => {
                        for &i in &chunk {
                            let id = biz_id
                                .as_ref()
                                .map(|b| batch_provider_id(b, &msgs[i].address));
                            results[i] = Some(Ok(Accepted {
                                provider_message_id: id,
                            }));
                        }
                    }
                    Err(e) if names_one_message(&e) => {
                        tracing::info!(
                            provider = NAME,
                            code = %e.code,
                            numbers = chunk.len(),
                            "SendBatchSms refused for one of its messages; sending them one by one"
                        );
                        for &i in &chunk {
                            results[i] = Some(self.send_one(&msgs[i]).await);
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
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(SendError::new(
                        FailureClass::Transient {
                            outcome_unknown: false,
                        },
                        "unsent",
                        "the message was left out of every batch call",
                    ))
                })
            })
            .collect()
    }
}

/// A batch failure that belongs to one (unknown) message of the call.
fn names_one_message(e: &SendError) -> bool {
    matches!(e.class, FailureClass::Permanent { .. }) || e.code == "isv.BUSINESS_LIMIT_CONTROL"
}

/// The provider id of one message of a `SendBatchSms` call.
pub fn batch_provider_id(biz_id: &str, phone_e164: &str) -> String {
    format!("{biz_id}/{phone_e164}")
}

/// Split `idx` into chunks of at most `max` messages, none with the same
/// number twice (two messages to one number in one call could not be told
/// apart in the receipts).
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

fn parse_base_url(raw: &str) -> Result<Url, SetupError> {
    let url = Url::parse(raw).map_err(|e| SetupError::BaseUrl {
        url: raw.to_owned(),
        reason: e.to_string(),
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(SetupError::BaseUrl {
            url: raw.to_owned(),
            reason: "expected http(s)://host[:port]".to_owned(),
        });
    }
    Ok(url)
}

/// Check what a message needs before it is sent.
fn prepare(msg: &Outgoing) -> Result<Prepared<'_>, SendError> {
    let Rendered::Sms { aliyun, .. } = &msg.rendered else {
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
    let Some(template) = aliyun else {
        return Err(permanent(
            "no_template",
            "the template has no aliyun section",
        ));
    };
    Ok(Prepared {
        sign_name,
        template,
        phone: aliyun_phone(&msg.address),
    })
}

/// The number as Aliyun takes it: mainland numbers as 11 national digits,
/// others as country code + number without `+`.
fn aliyun_phone(e164: &str) -> String {
    match e164.strip_prefix("+86") {
        Some(national) => national.to_owned(),
        None => e164.trim_start_matches('+').to_owned(),
    }
}

fn to_json<T: serde::Serialize + ?Sized>(v: &T) -> Result<String, SendError> {
    serde_json::to_string(v).map_err(|e| permanent("template_param", e.to_string()))
}

fn permanent(code: &str, message: impl Into<String>) -> SendError {
    SendError::new(
        FailureClass::Permanent {
            suppress_address: false,
        },
        code,
        message,
    )
}

/// Turn an HTTP answer into the call's body (accepted) or a classified error.
fn outcome(status: StatusCode, headers: &HeaderMap, bytes: &[u8]) -> Result<ApiBody, SendError> {
    let parsed: Option<ApiBody> = serde_json::from_slice(bytes).ok();
    let Some(body) = parsed.filter(|b| b.code.is_some()) else {
        if status.is_success() {
            // A 2xx we cannot read: the message may have been taken.
            return Err(SendError::new(
                FailureClass::Transient {
                    outcome_unknown: true,
                },
                "bad_response",
                format!("HTTP {status} with a body that is not a Dysmsapi answer"),
            ));
        }
        return Err(SendError::new(
            http::status_class(status, headers),
            format!("http {}", status.as_u16()),
            status.canonical_reason().unwrap_or("no reason").to_owned(),
        ));
    };
    let code = body.code.clone().unwrap_or_default();
    if code == "OK" && status.is_success() {
        return Ok(body);
    }
    let class = match class_of(&code) {
        Some(FailureClass::RateLimited(RateWait::Unspecified)) => FailureClass::RateLimited(
            http::retry_after(headers).map_or(RateWait::Unspecified, RateWait::For),
        ),
        Some(class) => class,
        None if status.is_success() => FailureClass::Permanent {
            suppress_address: false,
        },
        None => http::status_class(status, headers),
    };
    Err(SendError::new(
        class,
        code,
        body.message.unwrap_or_default(),
    ))
}

/// The class of a Dysmsapi or gateway `Code`, `None` for codes not listed
/// (an unknown code on HTTP 200 is then `Permanent { suppress_address: false }`:
/// a business refusal of this message that retrying will not change, kept in
/// the send log with its code; on 4xx/5xx the HTTP status decides).
///
/// - `isv.BUSINESS_LIMIT_CONTROL` → `RateLimited(NextDay)`: the per-number
///   flow control (marketing/notification: 50 a day per signature, template
///   and number; verification codes 1/min, 5/h, 10/day). It concerns this
///   number only, and what we send is marketing, so the wait that works is
///   the next day (Aliyun counts a rolling 24 h, so a message retried the
///   next morning can still meet it once more). The dispatcher must delay
///   this message, not pause the provider.
/// - `isv.DAY_LIMIT_CONTROL` → `RateLimited(NextDay)`: the account's own
///   daily quota (console setting); it resets tomorrow, and everything on
///   this provider waits till then.
/// - `isv.MONTH_LIMIT_CONTROL` → `ProviderDown`: tomorrow does not help; the
///   next SMS provider takes over until someone raises the quota.
/// - `isv.MOBILE_NUMBER_ILLEGAL` → `Permanent { suppress_address: true }`.
/// - `isv.BLACK_KEY_CONTROL_LIMIT` → `Permanent { suppress_address: false }`:
///   despite the name (黑名单管控) this is the *keyword* blocklist on the
///   template variables (Aliyun's explanation: 变量内容含有限制发送的内容),
///   not a number blocklist; suppressing the recipient would unsubscribe
///   good customers because of our copy. Opt-outs show up in receipts.
/// - template or signature not approved, disabled or of the wrong kind
///   (`isv.SMS_TEMPLATE_ILLEGAL`, `isv.SMS_SIGNATURE_ILLEGAL`,
///   `isv.SMS_SIGN_ILLEGAL`, `isv.SIGN_STATE_ILLEGAL`,
///   `isv.SMS_SIGNATURE_SCENE_ILLEGAL`) → `ProviderDown`: every message of
///   that template fails on Aliyun until the console is fixed, which is not
///   the message's nor the customer's fault; another provider has its own
///   approved template, and without one the message waits for the approval
///   instead of failing the whole campaign.
/// - parameter and content errors of this message (`isv.TEMPLATE_MISSING_PARAMETERS`,
///   `isv.TEMPLATE_PARAMS_ILLEGAL`, `isv.INVALID_JSON_PARAM`,
///   `isv.PARAM_LENGTH_LIMIT`, `isv.PARAM_NOT_SUPPORT_URL`,
///   `isv.SMS_CONTENT_ILLEGAL`, `isv.INVALID_PARAMETERS`,
///   `isv.MOBILE_COUNT_OVER_LIMIT`, `isv.EXTEND_CODE_ERROR`,
///   `isv.DOMESTIC_NUMBER_NOT_SUPPORTED`) → `Permanent { suppress_address: false }`.
/// - account, balance, permission, origin IP, credentials and clock
///   (`isv.OUT_OF_SERVICE`, `isv.AMOUNT_NOT_ENOUGH`, `isv.PRODUCT_UN_SUBSCRIPT`,
///   `isv.PRODUCT_UNSUBSCRIBE`, `isv.ACCOUNT_NOT_EXISTS`, `isv.ACCOUNT_ABNORMAL`,
///   `isv.DENY_IP_RANGE`, `isp.RAM_PERMISSION_DENY`, `SignatureDoesNotMatch`,
///   `IncompleteSignature`, `InvalidAccessKeyId.*`, `InvalidTimeStamp.*`,
///   `Forbidden.*`) → `ProviderDown`.
/// - `Throttling*` → `RateLimited` (with `Retry-After` when sent).
/// - `isp.SYSTEM_ERROR`, `isv.SYSTEM_ERROR`, `ServiceUnavailable`,
///   `InternalError`, `SignatureNonceUsed` (a fresh nonce fixes it) →
///   `Transient { outcome_unknown: false }`: the call was answered with a
///   refusal, so nothing was sent.
pub fn class_of(code: &str) -> Option<FailureClass> {
    const PERMANENT: FailureClass = FailureClass::Permanent {
        suppress_address: false,
    };
    const SUPPRESS: FailureClass = FailureClass::Permanent {
        suppress_address: true,
    };
    const RETRY: FailureClass = FailureClass::Transient {
        outcome_unknown: false,
    };
    let class = match code {
        "isv.BUSINESS_LIMIT_CONTROL" | "isv.DAY_LIMIT_CONTROL" => {
            FailureClass::RateLimited(RateWait::NextDay)
        }
        "isv.MONTH_LIMIT_CONTROL" => FailureClass::ProviderDown,
        "isv.MOBILE_NUMBER_ILLEGAL" => SUPPRESS,
        "isv.BLACK_KEY_CONTROL_LIMIT"
        | "isv.TEMPLATE_MISSING_PARAMETERS"
        | "isv.TEMPLATE_PARAMS_ILLEGAL"
        | "isv.INVALID_JSON_PARAM"
        | "isv.PARAM_LENGTH_LIMIT"
        | "isv.PARAM_NOT_SUPPORT_URL"
        | "isv.SMS_CONTENT_ILLEGAL"
        | "isv.INVALID_PARAMETERS"
        | "isv.MOBILE_COUNT_OVER_LIMIT"
        | "isv.EXTEND_CODE_ERROR"
        | "isv.DOMESTIC_NUMBER_NOT_SUPPORTED" => PERMANENT,
        "isv.SMS_TEMPLATE_ILLEGAL"
        | "isv.SMS_SIGNATURE_ILLEGAL"
        | "isv.SMS_SIGN_ILLEGAL"
        | "isv.SIGN_STATE_ILLEGAL"
        | "isv.SMS_SIGNATURE_SCENE_ILLEGAL" => FailureClass::ProviderDown,
        "isv.OUT_OF_SERVICE"
        | "isv.AMOUNT_NOT_ENOUGH"
        | "isv.PRODUCT_UN_SUBSCRIPT"
        | "isv.PRODUCT_UNSUBSCRIBE"
        | "isv.ACCOUNT_NOT_EXISTS"
        | "isv.ACCOUNT_ABNORMAL"
        | "isv.DENY_IP_RANGE"
        | "isp.RAM_PERMISSION_DENY"
        | "SignatureDoesNotMatch"
        | "IncompleteSignature" => FailureClass::ProviderDown,
        "isp.SYSTEM_ERROR" | "isv.SYSTEM_ERROR" | "ServiceUnavailable" | "InternalError"
        | "SignatureNonceUsed" => RETRY,
        c if c.starts_with("Throttling") => FailureClass::RateLimited(RateWait::Unspecified),
        c if c.starts_with("InvalidAccessKeyId")
            || c.starts_with("InvalidTimeStamp")
            || c.starts_with("Forbidden") =>
        {
            FailureClass::ProviderDown
        }
        _ => return None,
    };
    Some(class)
}

/// Beijing wall-clock time `yyyy-MM-dd HH:mm:ss`, as both Chinese providers
/// write times in their pushes, to UTC.
pub fn beijing_time(s: &str) -> Option<DateTime<Utc>> {
    let naive = NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%d %H:%M:%S").ok()?;
    let beijing = FixedOffset::east_opt(8 * 3600)?;
    naive
        .and_local_timezone(beijing)
        .single()
        .map(|t| t.with_timezone(&Utc))
}

/// The items of a JSON push: an array (one object is taken as an array of
/// one), or the reason it is not one. Shared with the Tencent pushes.
pub(crate) fn push_items(body: &[u8]) -> Result<Vec<Value>, String> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(items)) => Ok(items),
        Ok(obj @ Value::Object(_)) => Ok(vec![obj]),
        Ok(other) => Err(format!("found {other}")),
        Err(e) => Err(e.to_string()),
    }
}

/// A non-blank string or number field of a push item, as text.
pub(crate) fn text_field(item: &Value, name: &str) -> Option<String> {
    match item.get(name)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Read an `SmsReport` push: a JSON array of delivery reports.
///
/// The key is `out_id` as our message id when it is numeric (every `SendSms`
/// sets it); otherwise (a `SendBatchSms` receipt, which has no per-message
/// `OutId`) `<biz_id>/<E.164 phone>` when `phone_number` parses, which is the
/// provider id [`AliyunSms`] gave that message; else the bare `biz_id`.
/// `report_time` (Beijing time) is the receipt's instant.
pub fn parse_receipts(body: &[u8]) -> Result<Vec<Receipt>, PushError> {
    let items = push_items(body).map_err(PushError::NotJson)?;
    let mut out = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let err = |reason: &str| PushError::Item {
            index,
            reason: reason.to_owned(),
        };
        if !item.is_object() {
            return Err(err("not a JSON object"));
        }
        let delivered = match item.get("success") {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => true,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => false,
            _ => return Err(err("`success` is missing or not a boolean")),
        };
        let out_id = text_field(item, "out_id").and_then(|s| s.parse::<i64>().ok());
        let biz_id = text_field(item, "biz_id");
        let phone = text_field(item, "phone_number").and_then(|p| Phone::parse(&p).ok());
        let key = match (out_id, biz_id, phone) {
            (Some(id), _, _) => ReceiptKey::MessageId(id),
            (None, Some(biz), Some(phone)) => {
                ReceiptKey::ProviderMessageId(batch_provider_id(&biz, phone.as_str()))
            }
            (None, Some(biz), None) => ReceiptKey::ProviderMessageId(biz),
            (None, None, _) => return Err(err("neither a numeric `out_id` nor a `biz_id`")),
        };
        out.push(Receipt {
            suppress_address: false,
            provider: NAME.to_owned(),
            key,
            delivered,
            code: text_field(item, "err_code").unwrap_or_default(),
            description: text_field(item, "err_msg").unwrap_or_default(),
            at: text_field(item, "report_time").and_then(|t| beijing_time(&t)),
        });
    }
    Ok(out)
}

/// Read an `SmsUp` push (replies such as `R` or `退订`): a JSON array of
/// objects with `phone_number`, `send_time`, `content`, `sign_name`,
/// `dest_code` and `sequence_id` (the documented SmsUp fields; not confirmed
/// against a live push). The number is normalised to E.164; `send_time`
/// (Beijing time) is the reply's instant.
pub fn parse_replies(body: &[u8]) -> Result<Vec<SmsReply>, PushError> {
    let items = push_items(body).map_err(PushError::NotJson)?;
    let mut out = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let err = |reason: String| PushError::Item { index, reason };
        let raw_phone =
            text_field(item, "phone_number").ok_or_else(|| err("no `phone_number`".to_owned()))?;
        let phone = Phone::parse(&raw_phone).map_err(|e| err(format!("phone_number: {e}")))?;
        let text = match item.get("content") {
            Some(Value::String(s)) => s.trim().to_owned(),
            _ => return Err(err("no `content`".to_owned())),
        };
        out.push(SmsReply {
            provider: NAME.to_owned(),
            phone: phone.as_str().to_owned(),
            text,
            at: text_field(item, "send_time").and_then(|t| beijing_time(&t)),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_classified() {
        use FailureClass::*;
        let cases = [
            ("isv.BUSINESS_LIMIT_CONTROL", RateLimited(RateWait::NextDay)),
            ("isv.DAY_LIMIT_CONTROL", RateLimited(RateWait::NextDay)),
            ("isv.MONTH_LIMIT_CONTROL", ProviderDown),
            (
                "isv.MOBILE_NUMBER_ILLEGAL",
                Permanent {
                    suppress_address: true,
                },
            ),
            (
                "isv.BLACK_KEY_CONTROL_LIMIT",
                Permanent {
                    suppress_address: false,
                },
            ),
            (
                "isv.MOBILE_COUNT_OVER_LIMIT",
                Permanent {
                    suppress_address: false,
                },
            ),
            ("isv.SMS_TEMPLATE_ILLEGAL", ProviderDown),
            ("isv.SMS_SIGNATURE_SCENE_ILLEGAL", ProviderDown),
            (
                "isv.TEMPLATE_MISSING_PARAMETERS",
                Permanent {
                    suppress_address: false,
                },
            ),
            (
                "isv.SMS_CONTENT_ILLEGAL",
                Permanent {
                    suppress_address: false,
                },
            ),
            ("isv.AMOUNT_NOT_ENOUGH", ProviderDown),
            ("isv.DENY_IP_RANGE", ProviderDown),
            ("isp.RAM_PERMISSION_DENY", ProviderDown),
            ("SignatureDoesNotMatch", ProviderDown),
            ("InvalidAccessKeyId.NotFound", ProviderDown),
            ("InvalidTimeStamp.Expired", ProviderDown),
            (
                "isp.SYSTEM_ERROR",
                Transient {
                    outcome_unknown: false,
                },
            ),
            (
                "SignatureNonceUsed",
                Transient {
                    outcome_unknown: false,
                },
            ),
            ("Throttling.User", RateLimited(RateWait::Unspecified)),
            ("Throttling", RateLimited(RateWait::Unspecified)),
        ];
        for (code, class) in cases {
            assert_eq!(class_of(code), Some(class), "{code}");
        }
        assert_eq!(class_of("isv.SOMETHING_NEW"), None);
    }

    #[test]
    fn unknown_codes_fall_back_on_the_status() {
        let h = HeaderMap::new();
        let e = outcome(StatusCode::OK, &h, br#"{"Code":"isv.NEW","Message":"m"}"#).unwrap_err();
        assert_eq!(
            e.class,
            FailureClass::Permanent {
                suppress_address: false
            }
        );
        assert_eq!(e.code, "isv.NEW");
        let e = outcome(
            StatusCode::SERVICE_UNAVAILABLE,
            &h,
            br#"{"Code":"Whatever"}"#,
        )
        .unwrap_err();
        assert_eq!(
            e.class,
            FailureClass::Transient {
                outcome_unknown: false
            }
        );
        let e = outcome(StatusCode::BAD_GATEWAY, &h, b"<html>").unwrap_err();
        assert_eq!(e.code, "http 502");
        let e = outcome(StatusCode::OK, &h, b"<html>").unwrap_err();
        assert_eq!(
            e.class,
            FailureClass::Transient {
                outcome_unknown: true
            }
        );
        // OK on a non-2xx status is not a success.
        assert!(outcome(StatusCode::BAD_REQUEST, &h, br#"{"Code":"OK"}"#).is_err());
    }

    #[test]
    fn receipts_use_out_id_then_batch_key_then_biz_id() {
        let body = r#"[
          {"phone_number":"13811112222","send_time":"2017-01-01 00:00:00","report_time":"2017-01-01 08:00:05","success":true,"err_code":"DELIVERED","err_msg":"用户接收成功","sms_size":"1","biz_id":"12345","out_id":"67890"},
          {"phone_number":"13811112222","success":false,"err_code":"MK:0001","err_msg":"x","biz_id":"900^0"},
          {"phone_number":"1381111****","success":"false","err_code":"UNDELIV","biz_id":"901^0","out_id":"campaign"}
        ]"#;
        let r = parse_receipts(body.as_bytes()).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].key, ReceiptKey::MessageId(67890));
        assert!(r[0].delivered);
        assert_eq!(r[0].code, "DELIVERED");
        assert_eq!(r[0].description, "用户接收成功");
        assert_eq!(
            r[0].at,
            Some(
                DateTime::parse_from_rfc3339("2017-01-01T00:00:05Z")
                    .unwrap()
                    .with_timezone(&Utc)
            )
        );
        assert_eq!(
            r[1].key,
            ReceiptKey::ProviderMessageId("900^0/+8613811112222".to_owned())
        );
        assert!(!r[1].delivered);
        assert_eq!(r[2].key, ReceiptKey::ProviderMessageId("901^0".to_owned()));
        assert!(!r[2].delivered);
    }

    #[test]
    fn bad_receipts_say_why() {
        assert!(matches!(
            parse_receipts(b"nope"),
            Err(PushError::NotJson(_))
        ));
        assert!(matches!(parse_receipts(b"42"), Err(PushError::NotJson(_))));
        let e = parse_receipts(br#"[{"success":true,"out_id":"1"},{"biz_id":"2"}]"#).unwrap_err();
        assert!(matches!(e, PushError::Item { index: 1, .. }), "{e}");
        let e = parse_receipts(br#"[{"success":true}]"#).unwrap_err();
        assert!(e.to_string().contains("biz_id"), "{e}");
        assert_eq!(parse_receipts(b"[]").unwrap(), vec![]);
    }

    #[test]
    fn replies_are_normalised_to_e164() {
        let body = r#"[{"phone_number":"13800138000","send_time":"2024-03-02 07:30:00","content":"R","sign_name":"小馆咖啡","dest_code":"1234","sequence_id":1234567}]"#;
        let r = parse_replies(body.as_bytes()).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].phone, "+8613800138000");
        assert_eq!(r[0].text, "R");
        assert_eq!(r[0].provider, "aliyun");
        assert_eq!(
            r[0].at,
            Some(
                DateTime::parse_from_rfc3339("2024-03-01T23:30:00Z")
                    .unwrap()
                    .with_timezone(&Utc)
            )
        );
        let e = parse_replies(br#"[{"phone_number":"12345","content":"R"}]"#).unwrap_err();
        assert!(matches!(e, PushError::Item { index: 0, .. }));
        // The error text never carries the full number.
        let e = parse_replies(br#"[{"phone_number":"1380013800099","content":"R"}]"#).unwrap_err();
        assert!(!e.to_string().contains("1380013800099"), "{e}");
        assert!(parse_replies(br#"[{"phone_number":"13800138000"}]"#).is_err());
    }

    #[test]
    fn phones_are_written_the_aliyun_way() {
        assert_eq!(aliyun_phone("+8613800138000"), "13800138000");
        assert_eq!(aliyun_phone("+85291234567"), "85291234567");
    }

    #[test]
    fn chunks_hold_distinct_numbers() {
        use crate::templates::SmsKind;
        let msg = |id: i64, addr: &str| Outgoing {
            message_id: id,
            dedupe_key: String::new(),
            address: addr.to_owned(),
            sign_name: Some("s".to_owned()),
            store_name: None,
            unsubscribe_url: None,
            rendered: Rendered::Sms {
                kind: SmsKind::Marketing,
                text: String::new(),
                aliyun: None,
                tencent: None,
            },
            attempt: 1,
        };
        let msgs = vec![
            msg(1, "+861"),
            msg(2, "+862"),
            msg(3, "+861"),
            msg(4, "+863"),
        ];
        let c = chunks_of_distinct_numbers(&msgs, &[0, 1, 2, 3], 100);
        assert_eq!(c, vec![vec![0, 1, 3], vec![2]]);
        let c = chunks_of_distinct_numbers(&msgs, &[0, 1, 3], 2);
        assert_eq!(c, vec![vec![0, 1], vec![3]]);
    }
}
