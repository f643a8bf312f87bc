use std::time::Duration;

use chrono::{DateTime, Utc};

use super::*;
use crate::dispatch::provider::Accepted;
use crate::store::Channel;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn message(attempts: u32) -> ClaimedMessage {
    ClaimedMessage {
        id: 42,
        dedupe_key: "bday/C1/2026".into(),
        campaign_id: "bday".into(),
        customer_id: "C1".into(),
        channel: Channel::Sms,
        provider: None,
        address: "+8613800138000".into(),
        payload: None,
        attempts,
        attempts_before_retry: 0,
        reason: None,
        coupon_code: None,
        store_code: None,
        store_name: None,
        sms_signature: None,
        timezone: None,
    }
}

const POLICY: Policy = Policy {
    max_attempts: 4,
    backoff_base: Duration::from_secs(30),
    backoff_max: Duration::from_secs(600),
    rate_pause: Duration::from_secs(60),
    reconcile_wait: Duration::from_secs(900),
};

fn ctx<'a>(m: &'a ClaimedMessage, next: Option<&'a str>, jitter: f64) -> Context<'a> {
    Context {
        message: m,
        token: "tok",
        now: t("2026-11-23T15:00:00+08:00"),
        tz: chrono_tz::Asia::Shanghai,
        window: SendWindow::default_hours(),
        policy: &POLICY,
        chain: ChainPosition {
            current: "aliyun",
            next,
            first: "aliyun",
        },
        jitter,
    }
}

fn err(class: FailureClass, code: &str) -> SendResult {
    Err(SendError::new(class, code, "words"))
}

#[test]
fn accepted_is_sent_with_the_providers_id() {
    let m = message(0);
    let s = ctx(&m, None, 0.5).settle(&Ok(Accepted {
        provider_message_id: Some("900619^0".into()),
    }));
    assert_eq!(s.status, MessageStatus::Sent);
    assert_eq!(s.attempts, 1);
    assert_eq!(s.provider.as_deref(), Some("aliyun"));
    assert_eq!(s.provider_message_id.as_deref(), Some("900619^0"));
    let a = s.attempt.unwrap();
    assert_eq!((a.number, a.outcome), (1, "sent"));
    assert!(s.suppress.is_none());
}

#[test]
fn permanent_fails_with_the_code_and_may_suppress_the_address() {
    let m = message(1);
    let s = ctx(&m, Some("tencent"), 0.5).settle(&err(
        FailureClass::Permanent {
            suppress_address: true,
        },
        "isv.MOBILE_NUMBER_ILLEGAL",
    ));
    assert_eq!(s.status, MessageStatus::Failed);
    assert_eq!(s.reason.as_deref(), Some("isv.MOBILE_NUMBER_ILLEGAL"));
    assert_eq!(s.attempts, 2);
    let x = s.suppress.unwrap();
    assert_eq!(x.address, "+8613800138000");
    assert_eq!(x.source, "provider:aliyun:isv.MOBILE_NUMBER_ILLEGAL");
    let s = ctx(&m, None, 0.5).settle(&err(
        FailureClass::Permanent {
            suppress_address: false,
        },
        "isv.SMS_CONTENT_ILLEGAL",
    ));
    assert!(s.suppress.is_none());
}

#[test]
fn transient_retries_with_doubling_jittered_backoff_then_dies() {
    let transient = FailureClass::Transient {
        outcome_unknown: false,
    };
    for (attempts, full) in [(0u64, 30u64), (1, 60), (2, 120)] {
        let m = message(attempts as u32);
        let now = ctx(&m, None, 0.0).now;
        let low = ctx(&m, None, 0.0).settle(&err(transient, "http 503"));
        let high = ctx(&m, None, 0.999_999).settle(&err(transient, "http 503"));
        assert_eq!(low.status, MessageStatus::Deferred);
        assert_eq!(low.reason.as_deref(), Some("retry"));
        let wait = |s: &Settlement| (s.next_attempt_at.unwrap() - now).num_milliseconds();
        assert_eq!(wait(&low), (full * 1000 / 2) as i64, "attempt {attempts}");
        assert!(
            wait(&high) > (full * 1000 * 99 / 100) as i64 && wait(&high) <= (full * 1000) as i64
        );
    }
    // The fourth attempt of four fails: dead, with the last code.
    let m = message(3);
    let s = ctx(&m, None, 0.5).settle(&err(transient, "isp.SYSTEM_ERROR"));
    assert_eq!(s.status, MessageStatus::Dead);
    assert_eq!(s.reason.as_deref(), Some("isp.SYSTEM_ERROR"));
    assert!(s.detail.unwrap().contains("after 4 attempts"));
    assert_eq!(s.attempt.unwrap().outcome, "dead");
}

#[test]
fn a_retried_message_has_a_fresh_budget_and_its_attempt_numbers_carry_on() {
    let transient = FailureClass::Transient {
        outcome_unknown: false,
    };
    // Died after 4 of 4, then retried by hand: calls 5 to 7 are retries
    // with a backoff that starts over, call 8 is the last of the new budget.
    let retried = |attempts| ClaimedMessage {
        attempts_before_retry: 4,
        ..message(attempts)
    };
    let m = retried(4);
    let s = ctx(&m, None, 0.0).settle(&err(transient, "timeout"));
    assert_eq!(s.status, MessageStatus::Deferred);
    assert_eq!(s.attempts, 5);
    assert_eq!(s.attempt.as_ref().unwrap().number, 5);
    let c = ctx(&m, None, 0.0);
    assert_eq!((s.next_attempt_at.unwrap() - c.now).num_seconds(), 15);
    assert!(s.detail.unwrap().contains("attempt 1 of 4"));
    let m = retried(7);
    let s = ctx(&m, None, 0.5).settle(&err(transient, "timeout"));
    assert_eq!(s.status, MessageStatus::Dead);
    assert_eq!(s.attempt.unwrap().number, 8);
}

#[test]
fn backoff_stops_at_the_cap() {
    let m = message(2);
    let mut policy = POLICY;
    policy.max_attempts = 100;
    policy.backoff_max = Duration::from_secs(90);
    let mut c = ctx(&m, None, 0.999_999);
    c.policy = &policy;
    let s = c.settle(&err(
        FailureClass::Transient {
            outcome_unknown: false,
        },
        "timeout",
    ));
    let wait = (s.next_attempt_at.unwrap() - c.now).num_seconds();
    assert!((45..=90).contains(&wait), "{wait}");
    let huge = ClaimedMessage {
        attempts: 80,
        ..message(0)
    };
    let mut c = ctx(&huge, None, 0.5);
    c.policy = &policy;
    let s = c.settle(&err(
        FailureClass::Transient {
            outcome_unknown: false,
        },
        "timeout",
    ));
    assert!((s.next_attempt_at.unwrap() - c.now).num_seconds() <= 90);
}

#[test]
fn an_unknown_outcome_waits_for_a_receipt() {
    let m = message(0);
    let c = ctx(&m, Some("tencent"), 0.5);
    let s = c.settle(&err(
        FailureClass::Transient {
            outcome_unknown: true,
        },
        "timeout",
    ));
    assert_eq!(s.status, MessageStatus::Deferred);
    assert_eq!(s.reason.as_deref(), Some("outcome_unknown"));
    assert_eq!(s.next_attempt_at, Some(c.now + Duration::from_secs(900)));
    assert_eq!(
        s.provider.as_deref(),
        Some("aliyun"),
        "stays with the provider that may have it"
    );
    assert_eq!(s.attempt.unwrap().outcome, "unknown");
}

#[test]
fn rate_limits_wait_as_told_or_until_the_next_local_morning() {
    let m = message(0);
    let c = ctx(&m, None, 0.5);
    let s = c.settle(&err(
        FailureClass::RateLimited(RateWait::For(Duration::from_secs(17))),
        "http 429",
    ));
    assert_eq!(s.reason.as_deref(), Some("rate_limited"));
    assert_eq!(s.next_attempt_at, Some(c.now + Duration::from_secs(17)));
    let s = c.settle(&err(
        FailureClass::RateLimited(RateWait::Unspecified),
        "Throttling.User",
    ));
    assert_eq!(s.next_attempt_at, Some(c.now + Duration::from_secs(60)));
    let s = c.settle(&err(FailureClass::RateLimited(RateWait::NextDay), "45009"));
    assert_eq!(s.next_attempt_at, Some(t("2026-11-24T08:00:00+08:00")));
    // Late at night in New York, the next day is New York's.
    let mut c = ctx(&m, None, 0.5);
    c.tz = chrono_tz::America::New_York;
    c.now = t("2026-11-23T23:30:00-05:00");
    let s = c.settle(&err(FailureClass::RateLimited(RateWait::NextDay), "45009"));
    assert_eq!(s.next_attempt_at, Some(t("2026-11-24T08:00:00-05:00")));
    assert_eq!(s.status, MessageStatus::Deferred);
    assert_eq!(s.attempts, 1);
}

#[test]
fn a_provider_outage_hands_the_message_to_the_next_provider() {
    let m = message(0);
    let c = ctx(&m, Some("tencent"), 0.5);
    let s = c.settle(&err(FailureClass::ProviderDown, "isv.OUT_OF_SERVICE"));
    assert_eq!(s.status, MessageStatus::Deferred);
    assert_eq!(s.reason.as_deref(), Some("failover"));
    assert_eq!(s.provider.as_deref(), Some("tencent"));
    assert_eq!(s.next_attempt_at, Some(c.now));
    // The last provider of the chain: back to the first, later.
    let mut c = ctx(&m, None, 0.0);
    c.chain.current = "tencent";
    let s = c.settle(&err(
        FailureClass::ProviderDown,
        "AuthFailure.SecretIdNotFound",
    ));
    assert_eq!(s.reason.as_deref(), Some("retry"));
    assert_eq!(s.provider.as_deref(), Some("aliyun"));
    assert_eq!(s.next_attempt_at, Some(c.now + Duration::from_secs(15)));
    let last = message(3);
    let mut c = ctx(&last, None, 0.0);
    c.chain.current = "tencent";
    let s = c.settle(&err(
        FailureClass::ProviderDown,
        "AuthFailure.SecretIdNotFound",
    ));
    assert_eq!(s.status, MessageStatus::Dead);
}

#[test]
fn release_and_wait_make_no_attempt() {
    let m = message(2);
    let c = ctx(&m, None, 0.5);
    let r = c.release();
    assert_eq!(r.status, MessageStatus::Queued);
    assert_eq!(r.attempts, 2);
    assert!(r.attempt.is_none());
    let w = c.wait(
        "send_window",
        t("2026-11-24T08:00:00+08:00"),
        "night".into(),
    );
    assert_eq!(w.status, MessageStatus::Deferred);
    assert_eq!(w.attempts, 2);
    assert!(w.attempt.is_none());
}
