//! What every provider client speaks: one message to send, what came of it,
//! and how a failure is classified. The classification is made by each
//! client from the provider's codes and HTTP status, never from message text.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::store::Channel;
use crate::templates::Rendered;

/// One message handed to a provider.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The send log's id. Aliyun `OutId` and Tencent `SessionContext` carry
    /// it so that receipts can be matched.
    pub message_id: i64,
    /// campaign / customer / occurrence. WeChat's `client_msg_id` is derived
    /// from it, so a retried request is not delivered twice.
    pub dedupe_key: String,
    /// Normalised address: E.164 phone (`+86…`), e-mail, or OpenID.
    pub address: String,
    /// The store's SMS signature (sign name, without 【】).
    pub sign_name: Option<String>,
    /// The store's display name (the e-mail sender's name).
    pub store_name: Option<String>,
    /// One-click unsubscribe link (e-mail `List-Unsubscribe`).
    pub unsubscribe_url: Option<String>,
    /// The rendered content.
    pub rendered: Rendered,
    /// 1 for the first attempt.
    pub attempt: u32,
}

impl Outgoing {
    /// The channel this message goes out on.
    pub fn channel(&self) -> Channel {
        self.rendered.channel()
    }
}

/// The provider took the message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accepted {
    /// The provider's id for it (Aliyun `BizId`, Tencent `SerialNo`, WeChat
    /// `msgid`, SMTP queue id, file name), used to match receipts.
    pub provider_message_id: Option<String>,
}

/// How long a rate-limited provider asks us to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateWait {
    /// The provider said how long (for example `Retry-After`).
    For(Duration),
    /// A daily quota: try again on the next local day.
    NextDay,
    /// Throttled without a hint: the dispatcher picks a pause.
    Unspecified,
}

/// What a failure means for the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// The message can never go as it is (invalid number, blocked user,
    /// refused content): it becomes `failed`. With `suppress_address`, the
    /// address goes on the suppression list (opted out, blocklisted, invalid).
    Permanent { suppress_address: bool },
    /// Worth retrying with backoff (5xx, timeouts, "busy"). With
    /// `outcome_unknown`, the request may have reached the provider (a
    /// timeout after it was sent), so it is reconciled before a retry.
    Transient { outcome_unknown: bool },
    /// Throttled: wait, then retry on the same provider.
    RateLimited(RateWait),
    /// The provider itself is unusable for now (authentication, outage,
    /// exhausted balance or quota, misconfiguration): the next provider of
    /// the channel takes the message; without one it is retried later.
    ProviderDown,
}

/// A failed send, classified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct SendError {
    pub class: FailureClass,
    /// The provider's code (`isv.MOBILE_NUMBER_ILLEGAL`, `LimitExceeded.…`,
    /// `45009`, `http 503`, `timeout`, an SMTP reply code, …).
    pub code: String,
    /// The provider's words, for the send log.
    pub message: String,
}

impl SendError {
    pub fn new(class: FailureClass, code: impl Into<String>, message: impl Into<String>) -> Self {
        SendError {
            class,
            code: code.into(),
            message: message.into(),
        }
    }
}

/// The result of one send.
pub type SendResult = Result<Accepted, SendError>;

/// A provider client for one channel.
#[async_trait]
pub trait Provider: Send + Sync + std::fmt::Debug {
    /// The name used in configuration and the send log (`aliyun`, `file`, …).
    fn name(&self) -> &str;

    /// The channel it sends on.
    fn channel(&self) -> Channel;

    /// The most messages one `send_batch` call takes (1: no batch API).
    fn max_batch(&self) -> usize {
        1
    }

    /// Send one message.
    async fn send(&self, msg: &Outgoing) -> SendResult;

    /// Send several messages; one result per message, in order. Providers
    /// with a batch API override this; the default sends one by one.
    async fn send_batch(&self, msgs: &[Outgoing]) -> Vec<SendResult> {
        let mut out = Vec::with_capacity(msgs.len());
        for m in msgs {
            out.push(self.send(m).await);
        }
        out
    }
}

/// How a delivery receipt names its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiptKey {
    /// Our message id, echoed back (Aliyun `out_id`, Tencent `SessionContext`).
    MessageId(i64),
    /// The provider's id returned at send time (`BizId`, `SerialNo`, `msgid`, `MessageSid`).
    ProviderMessageId(String),
}

/// A delivery receipt from a provider's push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub provider: String,
    pub key: ReceiptKey,
    /// Delivered to the handset / user, or failed.
    pub delivered: bool,
    /// The carrier's or provider's code (`DELIVRD`, `MK:0001`, `failed:user block`, …).
    pub code: String,
    /// The provider's description of the outcome.
    pub description: String,
    /// When the handset received it, if the receipt says.
    pub at: Option<DateTime<Utc>>,
    /// The receipt says the address cannot or will not receive (the user
    /// blocked the account, an unknown or landline number): it goes on the
    /// suppression list.
    pub suppress_address: bool,
}

/// An SMS reply pushed by a provider (for opt-outs such as `R` or `退订`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsReply {
    pub provider: String,
    /// The replying number, E.164.
    pub phone: String,
    pub text: String,
    pub at: Option<DateTime<Utc>>,
}
