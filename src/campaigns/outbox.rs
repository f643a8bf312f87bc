//! What passes between the campaign planner and the store: the query that
//! finds a run's candidates, the candidates themselves, and the messages (with
//! their coupons) the planner decides to write.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::expr::Expr;
use crate::segments::plan::{BirthdayDistance, StoreDay};
use crate::store::Channel;

/// A message's place in the send log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    Queued,
    Deferred,
    Sending,
    Sent,
    Delivered,
    Failed,
    Dead,
    Suppressed,
}

impl MessageStatus {
    pub const ALL: [MessageStatus; 8] = [
        MessageStatus::Queued,
        MessageStatus::Deferred,
        MessageStatus::Sending,
        MessageStatus::Sent,
        MessageStatus::Delivered,
        MessageStatus::Failed,
        MessageStatus::Dead,
        MessageStatus::Suppressed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Queued => "queued",
            MessageStatus::Deferred => "deferred",
            MessageStatus::Sending => "sending",
            MessageStatus::Sent => "sent",
            MessageStatus::Delivered => "delivered",
            MessageStatus::Failed => "failed",
            MessageStatus::Dead => "dead",
            MessageStatus::Suppressed => "suppressed",
        }
    }

    pub fn parse(s: &str) -> Option<MessageStatus> {
        MessageStatus::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// Why a message was not sent (status `suppressed`) or waits (`deferred`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    NoConsent,
    OptedOut,
    /// A provider or a delivery receipt reported the address permanently
    /// undeliverable (unknown number, blocked the account, …): it is on the
    /// suppression list, but the person did not ask to be left alone.
    Undeliverable,
    NoAddress,
    InvalidAddress,
    Capped,
    TemplateError,
    TooLate,
    SendWindow,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NoConsent => "no_consent",
            Reason::OptedOut => "opted_out",
            Reason::Undeliverable => "undeliverable",
            Reason::NoAddress => "no_address",
            Reason::InvalidAddress => "invalid_address",
            Reason::Capped => "capped",
            Reason::TemplateError => "template_error",
            Reason::TooLate => "too_late",
            Reason::SendWindow => "send_window",
        }
    }
}

/// Whether an address is on the suppression list, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Blocked {
    #[default]
    No,
    /// The person opted out (a reply, the link, the API, the CLI).
    OptedOut,
    /// A provider or a receipt reported it undeliverable.
    Undeliverable,
}

impl Blocked {
    /// From the store's code: 0 not listed, 1 opted out, 2 undeliverable
    /// (see `store::BLOCKED_CODE_SQL`).
    pub fn from_code(code: i64) -> Blocked {
        match code {
            1 => Blocked::OptedOut,
            2 => Blocked::Undeliverable,
            _ => Blocked::No,
        }
    }
}

/// How a run's candidates are found.
#[derive(Debug, Clone)]
pub enum Selector {
    /// Customers whose birthday (month, day) is due in their store.
    Birthday(Vec<BirthdayDue>),
    /// Customers whose last order's local day is within the range.
    Lapsed(Vec<LapseRange>),
    /// Customers who entered `segment` (its transition key) in `(since, until]`
    /// and are still in it.
    SegmentEntered {
        key: String,
        member: MemberTest,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    },
    /// Everyone in the audience, per store key.
    Broadcast(Vec<BroadcastDue>),
}

/// A birthday month-day that is due for a store key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BirthdayDue {
    pub store_key: String,
    pub month: u8,
    pub day: u8,
    /// `birthday:2027`.
    pub occurrence: String,
    /// When the message was due (its send day's first scheduled run).
    pub due_at: DateTime<Utc>,
}

/// Lapsed customers of a store key: last order on or before `last_day_max`
/// and (when set) on or after `last_day_min` (local day numbers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LapseRange {
    pub store_key: String,
    pub last_day_max: i64,
    pub last_day_min: Option<i64>,
}

/// A broadcast's occurrence for a store key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BroadcastDue {
    pub store_key: String,
    pub occurrence: String,
    pub due_at: DateTime<Utc>,
}

/// How to test that a customer is (still) in a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberTest {
    Stage(String),
    Tier(String),
    Custom(String),
}

/// The audience as the store filters it.
#[derive(Debug, Clone, Default)]
pub struct AudienceQuery {
    pub stores: Vec<String>,
    /// Any of these (all empty: everyone).
    pub include: Vec<MemberTest>,
    pub exclude: Vec<MemberTest>,
    pub filter: Option<Expr>,
}

/// Everything the store needs to find a run's candidates.
#[derive(Debug, Clone)]
pub struct CandidateQuery {
    pub campaign_id: String,
    pub now: DateTime<Utc>,
    /// Each store key's calendar (for the `where` expression and lapses).
    pub days: Vec<StoreDay>,
    pub birthdays: Vec<BirthdayDistance>,
    pub selector: Selector,
    pub audience: AudienceQuery,
    /// Messages since this instant count towards the frequency cap.
    pub cap_since: DateTime<Utc>,
    /// Candidates handed to the planner at a time.
    pub batch_size: usize,
    /// The campaign's priority, kept on its messages.
    pub priority: i32,
}

/// One customer who may get the campaign's message, with what the planner
/// needs to decide and render it.
#[derive(Debug, Clone, Default)]
pub struct Candidate {
    pub customer_id: String,
    pub occurrence: String,
    pub due_at: DateTime<Utc>,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub wechat_openid: Option<String>,
    pub sms_opt_in: Option<bool>,
    pub email_opt_in: Option<bool>,
    pub wechat_opt_in: Option<bool>,
    /// The store key ('' for customers without a store).
    pub store_key: String,
    pub store_name: Option<String>,
    pub sms_signature: Option<String>,
    pub birth_month: Option<u8>,
    pub birth_day: Option<u8>,
    /// `;`-joined.
    pub tags: String,
    pub order_count: i64,
    pub total_spent_fen: i64,
    pub lifecycle: Option<String>,
    pub value_tier: Option<String>,
    pub days_to_birthday: Option<i64>,
    pub sms_blocked: Blocked,
    pub email_blocked: Blocked,
    pub wechat_blocked: Blocked,
    /// Marketing messages planned or sent to the customer since `cap_since`.
    pub recent_messages: i64,
    /// The customer's weakest message of a lower-priority campaign that
    /// counts towards the cap and has not left yet: what this campaign may
    /// replace when the cap is full.
    pub rival: Option<Rival>,
}

/// A message not yet sent that a higher-priority campaign may replace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rival {
    pub message_id: i64,
    pub campaign_id: String,
    pub priority: i32,
    pub created_at: DateTime<Utc>,
}

/// A lower-priority message a planned one takes the place of under the cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preemption {
    pub message_id: i64,
    /// What the replaced message's log row says.
    pub detail: String,
    /// What the planned message's row says if the rival left meanwhile.
    pub fallback_detail: String,
}

/// A coupon to issue with its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCoupon {
    pub code: String,
    pub kind: &'static str,
    pub value: i64,
    pub item: Option<String>,
    pub min_spend_fen: i64,
    pub expires_at: DateTime<Utc>,
}

/// A send-log row the planner decided on.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedMessage {
    pub customer_id: String,
    pub occurrence: String,
    pub channel: Option<Channel>,
    /// The full address (masked only when shown).
    pub address: Option<String>,
    pub status: MessageStatus,
    pub reason: Option<Reason>,
    pub detail: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The rendered message as JSON.
    pub payload: Option<String>,
    pub coupon: Option<NewCoupon>,
    /// The lower-priority message this one replaces (the cap is full).
    pub preempts: Option<Preemption>,
}

impl PlannedMessage {
    /// `campaign/customer/occurrence`: at most one message each.
    pub fn dedupe_key(&self, campaign_id: &str) -> String {
        dedupe_key(campaign_id, &self.customer_id, &self.occurrence)
    }
}

pub fn dedupe_key(campaign_id: &str, customer_id: &str, occurrence: &str) -> String {
    format!("{campaign_id}/{customer_id}/{occurrence}")
}

/// Decides what to write for a batch of candidates (the store calls it
/// between its reads and writes; it never touches the database).
pub trait CandidateSink: Send {
    fn plan(&mut self, batch: &[Candidate]) -> Vec<PlannedMessage>;
}

/// What the store did with a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct WriteTotals {
    /// Candidates found (customers due and in the audience, not yet messaged).
    pub candidates: u64,
    /// Message rows written.
    pub written: u64,
    /// Planned rows that already existed (another run got there first).
    pub already: u64,
    /// Coupons issued with the written messages.
    pub coupons: u64,
    /// Lower-priority messages replaced under the cap (their coupons voided).
    pub preempted: u64,
}

/// What the store wrote for one page.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PageWrite {
    pub messages: u64,
    pub coupons: u64,
    pub preempted: u64,
}

impl WriteTotals {
    /// Count a page of `planned` rows of which `w` were written.
    pub fn add(&mut self, w: &PageWrite, planned: usize) {
        self.written += w.messages;
        self.coupons += w.coupons;
        self.preempted += w.preempted;
        self.already += (planned as u64).saturating_sub(w.messages);
    }
}

/// What a run's log row says.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunRecord {
    pub outcome: String,
    pub planned: u64,
    pub suppressed: u64,
    pub detail: String,
}

/// A send-log row as read back.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessageRow {
    pub id: i64,
    pub campaign_id: String,
    pub customer_id: String,
    pub occurrence: String,
    pub channel: Option<String>,
    pub address: Option<String>,
    pub status: String,
    pub reason: Option<String>,
    pub detail: Option<String>,
    pub coupon_code: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub payload: Option<String>,
}

/// An issued coupon as read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CouponRow {
    pub code: String,
    pub campaign_id: String,
    pub customer_id: String,
    pub message_id: i64,
    pub kind: String,
    pub value: i64,
    pub min_spend_fen: i64,
    pub expires_at: DateTime<Utc>,
    pub redeemed_order_id: Option<String>,
    pub redeemed_at: Option<DateTime<Utc>>,
    /// Set when its message lost its place under the frequency cap.
    pub voided_at: Option<DateTime<Utc>>,
}
