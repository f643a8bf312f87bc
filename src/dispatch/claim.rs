//! What passes between the outbox worker and the store: a claim of due
//! messages under a lease, the claimed messages, and how each one is settled
//! after its provider call.

use chrono::{DateTime, Utc};

use crate::campaigns::outbox::MessageStatus;
use crate::dispatch::provider::Receipt;
use crate::store::Channel;

/// Take up to `limit` due messages for `token` until `lease_until`.
#[derive(Debug, Clone)]
pub struct Claim {
    pub now: DateTime<Utc>,
    pub lease_until: DateTime<Utc>,
    pub limit: usize,
    /// Names this claim; only its holder may settle the messages.
    pub token: String,
}

/// A message taken for sending, with what its provider needs.
#[derive(Debug, Clone)]
pub struct ClaimedMessage {
    pub id: i64,
    pub dedupe_key: String,
    pub campaign_id: String,
    pub customer_id: String,
    pub channel: Channel,
    /// The provider of the last attempt (or the one failover chose next).
    pub provider: Option<String>,
    pub address: String,
    /// The rendered message (JSON of `templates::Rendered`).
    pub payload: Option<String>,
    /// Provider calls made so far.
    pub attempts: u32,
    /// Provider calls made before the message was last retried by hand: the
    /// attempt budget (`dispatch.max_attempts`) counts from here.
    pub attempts_before_retry: u32,
    /// Why it waited, when it did (`retry`, `outcome_unknown`, …).
    pub reason: Option<String>,
    pub coupon_code: Option<String>,
    pub store_code: Option<String>,
    pub store_name: Option<String>,
    pub sms_signature: Option<String>,
    /// IANA zone of the customer's store (for send windows and "next day").
    pub timezone: Option<String>,
}

/// The provider call made for a message, for `message_attempts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRow {
    /// 1 for the first call.
    pub number: u32,
    pub provider: String,
    /// `sent`, `failed`, `retry`, `rate_limited`, `provider_down`, `unknown`, `dead`.
    pub outcome: &'static str,
    pub provider_code: Option<String>,
    pub detail: Option<String>,
}

/// How one claimed message leaves the claim.
#[derive(Debug, Clone)]
pub struct Settlement {
    pub message_id: i64,
    /// The claim's token; a message whose lease was lost is left alone.
    pub token: String,
    pub at: DateTime<Utc>,
    pub status: MessageStatus,
    pub reason: Option<String>,
    pub detail: Option<String>,
    /// The provider now in charge (the one that sent, or the next to try).
    pub provider: Option<String>,
    pub provider_message_id: Option<String>,
    /// When a `queued`/`deferred` message is next due.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Provider calls made, this one included.
    pub attempts: u32,
    /// The call made, if one was.
    pub attempt: Option<AttemptRow>,
    /// Put the address on the suppression list (`opt_outs`) with this source.
    pub suppress: Option<Suppression>,
}

/// An address the provider says must not be written to again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppression {
    pub channel: Channel,
    pub address: String,
    /// `provider:<name>:<code>`.
    pub source: String,
}

/// What settling a batch changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SettleCounts {
    pub settled: u64,
    /// Messages whose lease had passed to another claim: left alone.
    pub lease_lost: u64,
}

/// What a batch of receipts changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceiptCounts {
    pub delivered: u64,
    pub failed: u64,
    /// Receipts naming no message we know, or one already final.
    pub unmatched: u64,
}

/// What an opt-out changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OptOutOutcome {
    /// False when the address had already opted out.
    pub recorded: bool,
    /// Unsent messages to the address that became `suppressed: opted_out`.
    pub suppressed: u64,
}

/// One message of the send log with every provider call made for it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MessageDetail {
    pub id: i64,
    pub campaign_id: String,
    pub customer_id: String,
    pub occurrence: String,
    pub channel: Option<String>,
    pub provider: Option<String>,
    pub address: Option<String>,
    pub status: String,
    pub reason: Option<String>,
    pub detail: Option<String>,
    pub attempts: u32,
    pub provider_message_id: Option<String>,
    pub coupon_code: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    /// Provider calls, oldest first.
    pub history: Vec<AttemptLog>,
    /// Retries asked for by hand, oldest first.
    pub retries: Vec<RetryLog>,
}

impl MessageDetail {
    /// The same message with its address masked.
    pub fn masked(mut self) -> MessageDetail {
        let channel = self.channel.as_deref().and_then(|c| c.parse().ok());
        self.address = self
            .address
            .as_deref()
            .map(|a| crate::store::send_log::mask_address(channel, a));
        self
    }
}

/// One retry of a failed or dead message, as audited.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RetryLog {
    pub actor: String,
    pub at: DateTime<Utc>,
    pub previous_status: String,
    pub previous_reason: Option<String>,
    pub previous_detail: Option<String>,
    /// Provider calls made before the retry.
    pub previous_attempts: u32,
}

/// One provider call as recorded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AttemptLog {
    pub attempt: u32,
    pub provider: String,
    pub at: DateTime<Utc>,
    pub outcome: String,
    pub provider_code: Option<String>,
    pub detail: Option<String>,
}

/// Detail written on a message suppressed because its address opted out.
pub const OPTED_OUT_DETAIL: &str =
    "the address opted out before the message left; its coupon is withdrawn";

/// What a receipt says, for the message's detail.
pub fn receipt_detail(r: &Receipt) -> String {
    let verdict = if r.delivered {
        "delivered"
    } else {
        "not delivered"
    };
    if r.description.is_empty() {
        format!("{} receipt: {verdict} ({})", r.provider, r.code)
    } else {
        format!(
            "{} receipt: {verdict} ({}: {})",
            r.provider, r.code, r.description
        )
    }
}
