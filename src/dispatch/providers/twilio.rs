//! Twilio SMS (stores abroad): `POST /2010-04-01/Accounts/{sid}/Messages.json`
//! with HTTP Basic auth, and the status-callback and inbound-message
//! webhooks, whose `X-Twilio-Signature` is checked with [`TwilioSms::verify_webhook`].
//!
//! Success is a 2xx (201) with the message `sid`; errors are JSON
//! `{"code": 21211, "message": …, "status": 400}`, classified here by `code`
//! and HTTP status (see [`class_of`]).

use async_trait::async_trait;
use percent_encoding::percent_decode_str;
use reqwest::header::{ACCEPT, HeaderMap};
use reqwest::{StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::clock::SharedClock;
use crate::dispatch::provider::{
    Accepted, FailureClass, Outgoing, Provider, RateWait, Receipt, ReceiptKey, SendError,
    SendResult, SmsReply,
};
use crate::dispatch::providers::http;
use crate::dispatch::settings::TwilioSettings;
use crate::dispatch::sign::twilio as signature;
use crate::domain::Phone;
use crate::store::Channel;
use crate::templates::Rendered;

/// The provider name in configuration and the send log.
pub const NAME: &str = "twilio";
/// Default API origin.
pub const DEFAULT_BASE_URL: &str = "https://api.twilio.com";

/// Why the client could not be built from its settings.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// `base_url` does not parse as an http(s) URL.
    #[error("providers.twilio.base_url {url:?} is not a usable http(s) URL: {reason}")]
    BaseUrl { url: String, reason: String },
    /// Neither `from` nor `messaging_service_sid` is set.
    #[error("providers.twilio needs `from` (a sender number) or `messaging_service_sid`")]
    NoSender,
    /// The HTTP client (TLS) could not be set up.
    #[error("the twilio HTTP client could not be built: {0}")]
    Client(#[from] reqwest::Error),
}

/// Why a webhook body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// A form value is not valid percent-encoded UTF-8.
    #[error("the webhook form is not valid UTF-8 after percent-decoding: {0}")]
    Encoding(String),
    /// A required parameter is missing.
    #[error("the webhook has no `{0}` parameter")]
    Missing(&'static str),
    /// `MessageStatus` is not a status Twilio documents.
    #[error("unknown MessageStatus {0:?}")]
    UnknownStatus(String),
    /// The sender number cannot be normalised to E.164.
    #[error("the `From` number is not usable: {0}")]
    Phone(String),
}

/// The Twilio SMS client.
#[derive(Debug)]
pub struct TwilioSms {
    client: reqwest::Client,
    messages_url: Url,
    account_sid: String,
    auth_token: SecretString,
    from: Option<String>,
    messaging_service_sid: Option<String>,
    status_callback: Option<String>,
}

/// The parts of a 2xx answer we use.
#[derive(Debug, Deserialize)]
struct Created {
    sid: Option<String>,
}

/// An error answer.
#[derive(Debug, Deserialize)]
struct ApiError {
    code: Option<u32>,
    #[serde(default)]
    message: String,
}

impl TwilioSms {
    /// A client for `settings`. Twilio requests carry no timestamp, so the
    /// clock is not needed; it is taken so that every SMS client is built
    /// the same way.
    pub fn new(settings: &TwilioSettings, _clock: SharedClock) -> Result<Self, SetupError> {
        let raw = settings.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL);
        let mut messages_url = Url::parse(raw)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            .ok_or_else(|| SetupError::BaseUrl {
                url: raw.to_owned(),
                reason: "expected http(s)://host[:port]".to_owned(),
            })?;
        if settings.from.is_none() && settings.messaging_service_sid.is_none() {
            return Err(SetupError::NoSender);
        }
        if let Ok(mut segments) = messages_url.path_segments_mut() {
            segments.clear().extend([
                "2010-04-01",
                "Accounts",
                settings.account_sid.as_str(),
                "Messages.json",
            ]);
        }
        Ok(TwilioSms {
            client: http::client(&settings.limits())?,
            messages_url,
            account_sid: settings.account_sid.clone(),
            auth_token: settings.auth_token.clone(),
            from: settings.from.clone(),
            messaging_service_sid: settings.messaging_service_sid.clone(),
            status_callback: settings.status_callback.clone(),
        })
    }

    /// True when `signature_header` (`X-Twilio-Signature`) signs a webhook
    /// Twilio sent to `url` (exactly as configured, query included) with
    /// these form parameters ([`parse_form`]); the default port may be
    /// written or not.
    pub fn verify_webhook(
        &self,
        url: &str,
        params: &[(String, String)],
        signature_header: &str,
    ) -> bool {
        signature::verify(
            self.auth_token.expose_secret(),
            url,
            params,
            signature_header,
        )
    }
}

#[async_trait]
impl Provider for TwilioSms {
    fn name(&self) -> &str {
        NAME
    }

    fn channel(&self) -> Channel {
        Channel::Sms
    }

    /// `Body` is the text, behind the store's signature as `【sign】` when
    /// there is one (as the Chinese providers show it).
    async fn send(&self, msg: &Outgoing) -> SendResult {
        let Rendered::Sms { text, .. } = &msg.rendered else {
            return Err(permanent("not_sms", "the message is not an SMS"));
        };
        if text.trim().is_empty() {
            return Err(permanent("empty_body", "the SMS text is empty"));
        }
        let body = match msg.sign_name.as_deref().map(str::trim) {
            Some(sign) if !sign.is_empty() => format!("【{sign}】{text}"),
            _ => text.clone(),
        };
        let mut form: Vec<(&str, &str)> = vec![("To", msg.address.as_str()), ("Body", &body)];
        if let Some(from) = &self.from {
            form.push(("From", from));
        }
        if let Some(sid) = &self.messaging_service_sid {
            form.push(("MessagingServiceSid", sid));
        }
        if let Some(cb) = &self.status_callback {
            form.push(("StatusCallback", cb));
        }
        tracing::debug!(
            provider = NAME,
            message_id = msg.message_id,
            to = %Phone::from_trusted(msg.address.clone()).masked(),
            "Messages.json"
        );
        let response = self
            .client
            .post(self.messages_url.clone())
            .basic_auth(&self.account_sid, Some(self.auth_token.expose_secret()))
            .header(ACCEPT, "application/json")
            .form(&form)
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
}

fn permanent(code: &str, message: &str) -> SendError {
    SendError::new(
        FailureClass::Permanent {
            suppress_address: false,
        },
        code,
        message,
    )
}

fn outcome(status: StatusCode, headers: &HeaderMap, bytes: &[u8]) -> SendResult {
    if status.is_success() {
        return match serde_json::from_slice::<Created>(bytes) {
            Ok(created) => Ok(Accepted {
                provider_message_id: created.sid,
            }),
            Err(_) => Err(SendError::new(
                FailureClass::Transient {
                    outcome_unknown: true,
                },
                "bad_response",
                format!("HTTP {status} with a body that is not a Message"),
            )),
        };
    }
    let parsed = serde_json::from_slice::<ApiError>(bytes).ok();
    let code = parsed.as_ref().and_then(|e| e.code);
    let class = match code.and_then(class_of) {
        Some(FailureClass::RateLimited(RateWait::Unspecified)) => FailureClass::RateLimited(
            http::retry_after(headers).map_or(RateWait::Unspecified, RateWait::For),
        ),
        Some(c) => c,
        None => http::status_class(status, headers),
    };
    let message = parsed
        .map(|e| e.message)
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("no reason").to_owned());
    let code = code.map_or_else(|| format!("http {}", status.as_u16()), |c| c.to_string());
    Err(SendError::new(class, code, message))
}

/// The class of a Twilio error `code`, `None` for codes not listed (the HTTP
/// status then decides: 429 waits, 5xx retries, 401/403 is `ProviderDown`,
/// other 4xx are `Permanent { suppress_address: false }`).
///
/// - `21610` (the recipient replied STOP), `21211` (invalid `To`), `21614`
///   (`To` cannot receive SMS, e.g. a landline) →
///   `Permanent { suppress_address: true }`.
/// - `20003` (authentication), `20005` (account not active), `20404` (wrong
///   account SID), `21212`/`21606`/`21659`/`21660` (the sender cannot send),
///   `21408` (region not enabled), `21608` (trial account, unverified `To`)
///   → `ProviderDown`: the account or its configuration, not the message.
/// - `20429`, `14107` (rate limits) → `RateLimited` (with `Retry-After`).
/// - `20500`, `20503` → `Transient { outcome_unknown: false }`.
pub fn class_of(code: u32) -> Option<FailureClass> {
    let class = match code {
        21610 | 21211 | 21614 => FailureClass::Permanent {
            suppress_address: true,
        },
        20003 | 20005 | 20404 | 21212 | 21606 | 21659 | 21660 | 21408 | 21608 => {
            FailureClass::ProviderDown
        }
        20429 | 14107 => FailureClass::RateLimited(RateWait::Unspecified),
        20500 | 20503 => FailureClass::Transient {
            outcome_unknown: false,
        },
        _ => return None,
    };
    Some(class)
}

/// Decode an `application/x-www-form-urlencoded` webhook body into its
/// parameters, in order (`+` is a space; repeated names are kept).
pub fn parse_form(body: &[u8]) -> Result<Vec<(String, String)>, PushError> {
    let text = std::str::from_utf8(body).map_err(|e| PushError::Encoding(e.to_string()))?;
    let decode = |s: &str| -> Result<String, PushError> {
        let spaced = s.replace('+', " ");
        percent_decode_str(&spaced)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|e| PushError::Encoding(e.to_string()))
    };
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode(k)?, decode(v)?))
        })
        .collect()
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// The receipt a status callback carries, keyed by `MessageSid`: `delivered`
/// (and `read`) are delivered; `failed`, `undelivered` and `canceled` are
/// failed, with `ErrorCode` (e.g. `30003`) as the code when given;
/// intermediate statuses (`queued`, `sending`, `sent`, `accepted`,
/// `scheduled`, `receiving`, `received`, `partially_delivered`) give `None`.
pub fn receipt_from_status_callback(
    params: &[(String, String)],
) -> Result<Option<Receipt>, PushError> {
    let sid = param(params, "MessageSid")
        .or_else(|| param(params, "SmsSid"))
        .ok_or(PushError::Missing("MessageSid"))?;
    let status = param(params, "MessageStatus")
        .or_else(|| param(params, "SmsStatus"))
        .ok_or(PushError::Missing("MessageStatus"))?;
    let delivered = match status {
        "delivered" | "read" => true,
        "failed" | "undelivered" | "canceled" => false,
        "queued"
        | "sending"
        | "sent"
        | "accepted"
        | "scheduled"
        | "receiving"
        | "received"
        | "partially_delivered" => return Ok(None),
        other => return Err(PushError::UnknownStatus(other.to_owned())),
    };
    let code = match param(params, "ErrorCode") {
        Some(code) if !delivered => code,
        _ => status,
    };
    // 30005 unknown destination, 30006 landline: the number can never
    // receive SMS. (30003 unreachable and 30007 carrier filtering may pass.)
    let suppress_address = !delivered && matches!(code, "30005" | "30006");
    Ok(Some(Receipt {
        provider: NAME.to_owned(),
        key: ReceiptKey::ProviderMessageId(sid.to_owned()),
        delivered,
        suppress_address,
        code: code.to_owned(),
        description: param(params, "ErrorMessage").unwrap_or(status).to_owned(),
        at: None,
    }))
}

/// [`receipt_from_status_callback`] over a raw form body.
pub fn parse_status_callback(body: &[u8]) -> Result<Option<Receipt>, PushError> {
    receipt_from_status_callback(&parse_form(body)?)
}

/// The reply an inbound-message webhook carries (`From`, `Body`): what the
/// opt-out handling reads (`STOP`, `UNSUBSCRIBE`, …). Twilio itself already
/// blocks further sends after STOP (error `21610`).
pub fn reply_from_inbound(params: &[(String, String)]) -> Result<SmsReply, PushError> {
    let from = param(params, "From").ok_or(PushError::Missing("From"))?;
    let phone = Phone::parse(from).map_err(|e| PushError::Phone(e.to_string()))?;
    Ok(SmsReply {
        provider: NAME.to_owned(),
        phone: phone.as_str().to_owned(),
        text: param(params, "Body").unwrap_or_default().trim().to_owned(),
        at: None,
    })
}

/// [`reply_from_inbound`] over a raw form body.
pub fn parse_inbound(body: &[u8]) -> Result<SmsReply, PushError> {
    reply_from_inbound(&parse_form(body)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_classified() {
        let suppress = FailureClass::Permanent {
            suppress_address: true,
        };
        assert_eq!(class_of(21610), Some(suppress));
        assert_eq!(class_of(21211), Some(suppress));
        assert_eq!(class_of(21614), Some(suppress));
        assert_eq!(class_of(20003), Some(FailureClass::ProviderDown));
        assert_eq!(
            class_of(20429),
            Some(FailureClass::RateLimited(RateWait::Unspecified))
        );
        assert_eq!(class_of(21617), None);
    }

    #[test]
    fn errors_fall_back_on_the_status() {
        let h = HeaderMap::new();
        let e = outcome(
            StatusCode::BAD_REQUEST,
            &h,
            br#"{"code":21617,"message":"too long","status":400}"#,
        )
        .unwrap_err();
        assert_eq!(
            e.class,
            FailureClass::Permanent {
                suppress_address: false
            }
        );
        assert_eq!(e.code, "21617");
        assert_eq!(e.message, "too long");
        let e = outcome(StatusCode::INTERNAL_SERVER_ERROR, &h, b"oops").unwrap_err();
        assert_eq!(e.code, "http 500");
        let ok = outcome(
            StatusCode::CREATED,
            &h,
            br#"{"sid":"SM1","status":"queued"}"#,
        )
        .unwrap();
        assert_eq!(ok.provider_message_id.as_deref(), Some("SM1"));
    }

    #[test]
    fn forms_decode_plus_and_percent() {
        let p = parse_form(b"Body=Stop+it%21&From=%2B15017122661&Empty=&Flag").unwrap();
        assert_eq!(
            p,
            vec![
                ("Body".to_owned(), "Stop it!".to_owned()),
                ("From".to_owned(), "+15017122661".to_owned()),
                ("Empty".to_owned(), String::new()),
                ("Flag".to_owned(), String::new()),
            ]
        );
        assert!(matches!(parse_form(b"a=%FF"), Err(PushError::Encoding(_))));
    }

    #[test]
    fn status_callbacks_become_receipts() {
        let r = parse_status_callback(
            b"MessageSid=SM1&MessageStatus=delivered&SmsStatus=delivered&To=%2B15558675310",
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.key, ReceiptKey::ProviderMessageId("SM1".to_owned()));
        assert!(r.delivered);
        assert_eq!(r.code, "delivered");
        let r = parse_status_callback(b"MessageSid=SM2&MessageStatus=undelivered&ErrorCode=30003")
            .unwrap()
            .unwrap();
        assert!(!r.delivered);
        assert_eq!(r.code, "30003");
        let r = parse_status_callback(b"MessageSid=SM3&MessageStatus=failed")
            .unwrap()
            .unwrap();
        assert!(!r.delivered);
        assert_eq!(r.code, "failed");
        for s in ["queued", "sent", "sending", "accepted"] {
            let body = format!("MessageSid=SM4&MessageStatus={s}");
            assert_eq!(parse_status_callback(body.as_bytes()).unwrap(), None, "{s}");
        }
        assert!(matches!(
            parse_status_callback(b"MessageSid=SM5&MessageStatus=exploded"),
            Err(PushError::UnknownStatus(_))
        ));
        assert!(matches!(
            parse_status_callback(b"MessageStatus=delivered"),
            Err(PushError::Missing("MessageSid"))
        ));
    }

    #[test]
    fn inbound_stop_is_a_reply() {
        let r = parse_inbound(b"From=%2B15017122661&To=%2B15558675310&Body=STOP+").unwrap();
        assert_eq!(r.phone, "+15017122661");
        assert_eq!(r.text, "STOP");
        assert_eq!(r.provider, "twilio");
        assert!(matches!(
            parse_inbound(b"Body=STOP"),
            Err(PushError::Missing("From"))
        ));
        assert!(matches!(
            parse_inbound(b"From=abc&Body=STOP"),
            Err(PushError::Phone(_))
        ));
    }
}
