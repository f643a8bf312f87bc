//! The send log as ops read it: a filtered, newest-first page of messages
//! with a keyset cursor for the next page; the audited retry of a message
//! that failed or died; and the depth of the queue.
//!
//! Pages are ordered by `(created_at DESC, id DESC)`: "newest" is when the
//! message was planned (the clock of the run that planned it), and the id
//! breaks ties, which are common — every message of a campaign run shares the
//! run's instant. The cursor is the last row's `(created_at, id)`, so a page
//! is one index range scan whatever its depth (never `OFFSET`).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::campaigns::outbox::MessageStatus;
use crate::domain::{Email, Phone, WeChatOpenId};
use crate::store::Channel;

/// Rows per page when none is asked for.
pub const DEFAULT_LIMIT: u32 = 50;
/// The largest page.
pub const MAX_LIMIT: u32 = 1000;

/// A filter of the send log, with the page to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendLogQuery {
    pub campaign: Option<String>,
    pub channel: Option<Channel>,
    pub status: Option<MessageStatus>,
    pub customer: Option<String>,
    /// Messages created at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Messages created before this instant (exclusive).
    pub until: Option<DateTime<Utc>>,
    /// Messages older than this position (the previous page's `next`).
    pub before: Option<LogCursor>,
    /// Rows per page; clamped to `1..=MAX_LIMIT` by [`SendLogQuery::page_size`].
    pub limit: u32,
}

impl Default for SendLogQuery {
    fn default() -> Self {
        SendLogQuery {
            campaign: None,
            channel: None,
            status: None,
            customer: None,
            since: None,
            until: None,
            before: None,
            limit: DEFAULT_LIMIT,
        }
    }
}

impl SendLogQuery {
    /// The page size actually used: `limit` within `1..=MAX_LIMIT`.
    pub fn page_size(&self) -> u32 {
        self.limit.clamp(1, MAX_LIMIT)
    }
}

/// A position in the send log: "rows older than this one". Its text form,
/// `<created_at in µs since 1970>-<id>`, goes in a URL (`cursor=`) or on the
/// command line (`--before`) as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogCursor {
    pub created_at: DateTime<Utc>,
    pub id: i64,
}

impl LogCursor {
    /// The cursor just after `row` (the next page starts with the row after it).
    pub fn after(row: &SendLogRow) -> LogCursor {
        LogCursor {
            created_at: row.created_at,
            id: row.id,
        }
    }

    /// `created_at` in microseconds since 1970.
    pub fn micros(&self) -> i64 {
        self.created_at.timestamp_micros()
    }
}

impl fmt::Display for LogCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.micros(), self.id)
    }
}

/// Serialized as its text form, so a JSON page carries `"next": "…-42"`.
impl Serialize for LogCursor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Why a cursor's text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{input:?} is not a send-log cursor: use the value printed after the previous page (like 1795660200000000-42)"
)]
pub struct CursorError {
    pub input: String,
}

impl FromStr for LogCursor {
    type Err = CursorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || CursorError {
            input: s.chars().take(40).collect(),
        };
        let t = s.trim();
        let (micros, id) = t.rsplit_once('-').ok_or_else(err)?;
        let digits = |v: &str| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit());
        let unsigned = micros.strip_prefix('-').unwrap_or(micros);
        if !digits(unsigned) || !digits(id) {
            return Err(err());
        }
        let micros: i64 = micros.parse().map_err(|_| err())?;
        let id: i64 = id.parse().map_err(|_| err())?;
        let created_at = DateTime::from_timestamp_micros(micros).ok_or_else(err)?;
        Ok(LogCursor { created_at, id })
    }
}

/// One message of the send log. `address` is the full address: callers mask
/// it (see [`SendLogRow::masked`]) unless the user asked to see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SendLogRow {
    pub id: i64,
    pub campaign_id: String,
    pub customer_id: String,
    pub occurrence: String,
    pub channel: Option<Channel>,
    pub provider: Option<String>,
    pub address: Option<String>,
    pub status: MessageStatus,
    /// Why it was not sent, or why it waits.
    pub reason: Option<String>,
    pub detail: Option<String>,
    /// Provider calls made.
    pub attempts: u32,
    pub provider_message_id: Option<String>,
    pub coupon_code: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

impl SendLogRow {
    /// The same row with its address masked.
    pub fn masked(mut self) -> SendLogRow {
        self.address = self
            .address
            .as_deref()
            .map(|a| mask_address(self.channel, a));
        self
    }
}

/// A page of the send log, newest first; `next` reads the page after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SendLogPage {
    pub rows: Vec<SendLogRow>,
    /// `None` on the last page.
    pub next: Option<LogCursor>,
}

/// What [`crate::store::Store::retry_message`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RetryOutcome {
    /// Back in the queue, due now, with a fresh attempt budget.
    Retried {
        previous_status: MessageStatus,
        previous_reason: Option<String>,
    },
    /// No message has this id.
    NotFound,
    /// Only `failed` and `dead` messages can be retried.
    NotRetryable { status: MessageStatus },
    /// The message's coupon can no longer be used: sending the message again
    /// would promise the customer something the shop would refuse.
    CouponUnusable { code: String, why: CouponBlock },
}

/// Why a coupon blocks a retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CouponBlock {
    /// Withdrawn (the address opted out, or the message gave way under the cap).
    Voided,
    /// Past its expiry.
    Expired,
    /// Already redeemed by an order.
    Redeemed,
}

impl CouponBlock {
    pub fn as_str(self) -> &'static str {
        match self {
            CouponBlock::Voided => "voided",
            CouponBlock::Expired => "expired",
            CouponBlock::Redeemed => "redeemed",
        }
    }
}

impl fmt::Display for RetryOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetryOutcome::Retried {
                previous_status,
                previous_reason,
            } => {
                write!(f, "queued again (was {}", previous_status.as_str())?;
                if let Some(r) = previous_reason {
                    write!(f, ": {r}")?;
                }
                f.write_str(")")
            }
            RetryOutcome::NotFound => f.write_str("no message has this id"),
            RetryOutcome::NotRetryable { status } => write!(
                f,
                "the message is {}; only failed and dead messages can be retried",
                status.as_str()
            ),
            RetryOutcome::CouponUnusable { code, why } => write!(
                f,
                "its coupon {code} is {}; a retry would offer the customer a coupon the shop refuses",
                why.as_str()
            ),
        }
    }
}

/// How many messages wait, for the queue gauge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QueueDepth {
    pub queued: u64,
    /// Waiting for a send window, a retry, a rate limit or a receipt.
    pub deferred: u64,
    /// Queued or deferred and due at `now`.
    pub due: u64,
    /// Claimed by a worker and not settled yet.
    pub sending: u64,
}

/// The detail a retried message carries until its next attempt.
pub fn retry_detail(actor: &str, was: MessageStatus, reason: Option<&str>) -> String {
    match reason {
        Some(r) => format!("retried by {actor}; it was {} ({r})", was.as_str()),
        None => format!("retried by {actor}; it was {}", was.as_str()),
    }
}

/// A status named by the user, or a sentence listing the valid ones.
pub fn parse_status(text: &str) -> Result<MessageStatus, String> {
    let t = text.trim().to_ascii_lowercase();
    MessageStatus::parse(&t).ok_or_else(|| {
        let valid: Vec<&str> = MessageStatus::ALL.iter().map(|s| s.as_str()).collect();
        format!(
            "unknown status {:?} (expected one of {})",
            text.chars().take(40).collect::<String>(),
            valid.join(", ")
        )
    })
}

/// A time bound relative to `now` (`30m`, `2h`, `7d`, `1w`, or with `s`) or
/// an RFC 3339 time.
pub fn parse_time_bound(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let t = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(t) {
        return Ok(at.with_timezone(&Utc));
    }
    let bad = || {
        format!(
            "{:?} is neither a duration like 30m, 2h or 7d nor an RFC 3339 time like 2026-11-24T08:00:00+08:00",
            t.chars().take(40).collect::<String>()
        )
    };
    let unit_at = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = t.split_at(unit_at);
    let n: i64 = n.parse().map_err(|_| bad())?;
    let d = match unit {
        "s" => Duration::try_seconds(n),
        "m" => Duration::try_minutes(n),
        "h" => Duration::try_hours(n),
        "d" => Duration::try_days(n),
        "w" => Duration::try_weeks(n),
        _ => None,
    }
    .ok_or_else(bad)?;
    now.checked_sub_signed(d).ok_or_else(bad)
}

/// Who asked for a retry: 1–64 characters of letters, digits and `. _ - @ :`.
pub fn parse_actor(text: &str) -> Result<String, String> {
    let ok = !text.is_empty()
        && text.chars().count() <= 64
        && text
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | ':'));
    if ok {
        Ok(text.to_owned())
    } else {
        Err("the actor must be 1 to 64 letters, digits or . _ - @ :".into())
    }
}

/// An address for screens: the channel's own mask when it parses as one,
/// `****` when it does not (never the raw text).
pub fn mask_address(channel: Option<Channel>, address: &str) -> String {
    let by = |c: Channel| match c {
        Channel::Sms => Phone::parse(address).ok().map(|p| p.masked()),
        Channel::Email => Email::parse(address).ok().map(|e| e.masked()),
        Channel::Wechat => WeChatOpenId::parse(address).ok().map(|w| w.masked()),
    };
    let masked = match channel {
        Some(c) => by(c),
        None => [Channel::Sms, Channel::Email, Channel::Wechat]
            .into_iter()
            .find_map(by),
    };
    masked.unwrap_or_else(|| "****".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn cursors_round_trip_through_text() {
        let c = LogCursor {
            created_at: t("2026-11-24T08:30:00.123456Z"),
            id: 42,
        };
        let text = c.to_string();
        assert_eq!(text, "1795509000123456-42");
        assert_eq!(text.parse::<LogCursor>(), Ok(c));
        let early = LogCursor {
            created_at: t("1969-12-31T23:59:59Z"),
            id: 7,
        };
        assert_eq!(early.to_string().parse::<LogCursor>(), Ok(early));
    }

    #[test]
    fn bad_cursors_are_refused_with_a_hint() {
        for bad in [
            "",
            "42",
            "abc-1",
            "1-",
            "-1",
            "1-x",
            "1--2",
            "1.5-2",
            "99999999999999999999-1",
        ] {
            let e = bad.parse::<LogCursor>().unwrap_err();
            assert!(
                e.to_string().contains("not a send-log cursor"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn page_size_is_clamped() {
        let mut q = SendLogQuery::default();
        assert_eq!(q.page_size(), 50);
        q.limit = 0;
        assert_eq!(q.page_size(), 1);
        q.limit = 5000;
        assert_eq!(q.page_size(), 1000);
    }

    #[test]
    fn statuses_parse_or_list_the_valid_ones() {
        assert_eq!(parse_status(" Dead "), Ok(MessageStatus::Dead));
        let e = parse_status("lost").unwrap_err();
        assert!(e.contains("\"lost\""), "{e}");
        assert!(e.contains("queued, deferred, sending, sent, delivered, failed, dead, suppressed"));
    }

    #[test]
    fn time_bounds_are_durations_back_from_now_or_times() {
        let now = t("2026-11-24T12:00:00Z");
        assert_eq!(parse_time_bound("2h", now), Ok(t("2026-11-24T10:00:00Z")));
        assert_eq!(parse_time_bound("30m", now), Ok(t("2026-11-24T11:30:00Z")));
        assert_eq!(parse_time_bound("7d", now), Ok(t("2026-11-17T12:00:00Z")));
        assert_eq!(parse_time_bound("1w", now), Ok(t("2026-11-17T12:00:00Z")));
        assert_eq!(parse_time_bound("90s", now), Ok(t("2026-11-24T11:58:30Z")));
        assert_eq!(
            parse_time_bound("2026-11-24T08:00:00+08:00", now),
            Ok(t("2026-11-24T00:00:00Z"))
        );
        for bad in [
            "",
            "h",
            "2",
            "2x",
            "-2h",
            "2 h",
            "yesterday",
            "99999999999999d",
        ] {
            let e = parse_time_bound(bad, now).unwrap_err();
            assert!(e.contains("neither a duration"), "{bad}: {e}");
        }
    }

    #[test]
    fn actors_are_short_plain_names() {
        assert_eq!(parse_actor("ops:li.lei@shop"), Ok("ops:li.lei@shop".into()));
        assert!(parse_actor("").is_err());
        assert!(parse_actor("a b").is_err());
        assert!(parse_actor("x\ny").is_err());
        assert!(parse_actor(&"a".repeat(65)).is_err());
    }

    #[test]
    fn addresses_are_masked_even_when_they_do_not_parse() {
        assert_eq!(
            mask_address(Some(Channel::Sms), "+8613800138000"),
            "+86138****8000"
        );
        assert_eq!(
            mask_address(Some(Channel::Email), "xiaoming@163.com"),
            "x***@163.com"
        );
        assert_eq!(
            mask_address(None, "o6_bmjrPTlm6_2sgVt7hMZOPfL2M"),
            "o6_b****fL2M"
        );
        assert_eq!(
            mask_address(Some(Channel::Sms), "not a phone 12345"),
            "****"
        );
        assert_eq!(mask_address(Some(Channel::Email), "13800138000"), "****");
    }
}
